"""Portal fixes seen in a browser: the node map's queue colours are told apart, the submit form
offers GPUs, members and GPU type (not only sizes), and a validation message sits next to the
field it names."""

from __future__ import annotations

import itertools
import re

import pytest

from gpupool.service.plane import DEFAULT_CONFIG

from .conftest import PortalServer, shot, sign_in


@pytest.fixture
def default_portal(tmp_path):
    """The packaged default config: research, training, inference and default, as a new user has it."""
    server = PortalServer(tmp_path / "data", DEFAULT_CONFIG).start()
    try:
        yield server
    finally:
        server.stop()


def _lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB 0-255 -> CIE L*a*b* (D65)."""

    def lin(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_queue_colours_on_the_node_map_are_told_apart(default_portal, open_page):
    with default_portal.http() as http:
        for q in ("research", "training", "inference", "default"):
            body = {"name": f"on-{q}", "queue": f"root.{q}", "entrypoint": "sleep 60"}
            r = http.post("/workloads", json={**body, "task_groups": [{"gpus": 1}]})
            assert r.status_code == 201, r.json()
    page = open_page()
    sign_in(page, default_portal.url, default_portal.admin_token, "/portal/nodes")
    page.wait_for_function("document.querySelectorAll('#node-legend .swatch[style]').length >= 4")
    shot(page, "nodes-queue-colours")
    swatches = page.evaluate(
        """() => [...document.querySelectorAll('#node-legend li')]
            .filter((li) => li.querySelector('.swatch[style]'))
            .map((li) => [li.textContent.trim(),
                          getComputedStyle(li.querySelector('.swatch')).backgroundColor])"""
    )
    colours = {name: _lab(tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])) for name, css in swatches}
    assert set(colours) == {"root.research", "root.training", "root.inference", "root.default"}
    for (a, la), (b, lb) in itertools.combinations(colours.items(), 2):
        distance = sum((p - q) ** 2 for p, q in zip(la, lb, strict=True)) ** 0.5
        assert distance > 25, (a, b, distance)  # CIE76 delta E: clearly different colours
    # The cells of one queue have its legend colour.
    cell = page.evaluate("getComputedStyle(document.querySelector('.cell-used')).backgroundColor")
    assert cell in {css for _, css in swatches}
    assert page.js_errors == []


def _near(page, a: str, b: str, gap: float = 60) -> bool:
    """Whether element ``b`` starts within ``gap`` px below element ``a`` (or beside it)."""
    ba, bb = page.locator(a).bounding_box(), page.locator(b).bounding_box()
    return bb["y"] >= ba["y"] and bb["y"] - (ba["y"] + ba["height"]) <= gap


def test_submit_form_offers_gpus_members_and_type_with_errors_in_place(default_portal, open_page):
    page = open_page()
    sign_in(page, default_portal.url, default_portal.admin_token, "/portal/submit")
    page.wait_for_selector("#submit-form")
    assert page.locator("#s-gpu-type option").all_inner_texts() == ["any", "A100", "H100"]
    page.get_by_label("Name").fill("custom-shape")
    page.get_by_label("Entrypoint").fill("sleep 30")
    page.select_option("#s-queue", "root.research")
    # Typing a GPU count chooses the custom shape.
    page.get_by_label("GPUs per member").fill("2")
    assert page.is_checked("#s-custom")
    page.get_by_label("Members").fill("0")
    page.get_by_role("button", name="Submit").click()
    assert page.inner_text("#s-members-err").startswith("A whole number of members")
    assert page.get_attribute("#s-members", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "s-members"
    assert _near(page, "#s-members", "#s-members-err")
    assert "marked above" in page.inner_text("#submit-error")

    # The server's refusal (no node has 9 GPUs) is shown by the GPU fields, not only at the bottom.
    page.get_by_label("Members").fill("1")
    page.get_by_label("GPUs per member").fill("9")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_selector("#s-custom-err:has-text('no node could ever hold')")
    assert "what exists" in page.inner_text("#s-custom-err")
    assert page.get_attribute("#s-gpus", "aria-invalid") == "true"
    assert _near(page, "#s-gpus", "#s-custom-err", gap=120)
    shot(page, "submit-refused-in-place")

    page.get_by_label("GPUs per member").fill("2")
    page.get_by_label("Members").fill("2")
    page.select_option("#s-gpu-type", "H100")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_selector("#created-link")
    wid = re.search(r"\((w-\d+)\)", page.inner_text("#created-link")).group(1)
    with default_portal.http() as http:
        w = http.get(f"/workloads/{wid}").json()
    assert w["queue"] == "root.research" and w["size"] is None
    shape = [(g["members"], g["resources"]["gpu"], g["gpu_types"]) for g in w["task_groups"]]
    assert shape == [(2, 2, ["H100"])]
    shot(page, "submit-custom-created")
    assert page.js_errors == []


def test_a_share_is_submitted_from_the_form_and_shown_on_its_gpu(default_portal, open_page):
    page = open_page()
    sign_in(page, default_portal.url, default_portal.admin_token, "/portal/submit")
    page.wait_for_selector("#submit-form")
    page.get_by_label("Name").fill("quarter")
    page.get_by_label("Entrypoint").fill("sleep 60")
    page.select_option("#s-queue", "root.research")
    page.get_by_label("GPUs per member").fill("0.0001")
    page.get_by_role("button", name="Submit").click()
    assert "share of one GPU" in page.inner_text("#s-gpus-err")
    page.get_by_label("GPUs per member").fill("0.25")
    page.get_by_label("Members").fill("1")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_selector("#created-link")
    wid = re.search(r"\((w-\d+)\)", page.inner_text("#created-link")).group(1)
    with default_portal.http() as http:
        w = http.get(f"/workloads/{wid}").json()
        assert w["task_groups"][0]["resources"]["gpu"] == 0.25 and w["gpus"] == 0.25
        for _ in range(100):
            w = http.get(f"/workloads/{wid}").json()
            if w["gpu_ids"]:
                break
            page.wait_for_timeout(100)
    node, index = w["placement"]["worker-0"], w["gpu_ids"]["worker-0"][0]
    page.goto(f"{default_portal.url}/portal/nodes")
    cell = f"article[data-node='{node}'] .cell-shared[data-gpu='{index}']"
    page.wait_for_selector(cell)
    title = page.get_attribute(cell, "title")
    assert title.startswith(f"GPU {index}: shared, 0.25 used: 0.25 {wid} quarter"), title
    assert page.locator(".cell-shared").count() == 1
    assert "root.research ×0.25" in page.inner_text(f"article[data-node='{node}'] .holders")
    shot(page, "nodes-share")
    assert page.js_errors == []
