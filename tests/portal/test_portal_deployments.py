"""The portal's deployments pages in a real headless Chromium against a live control plane whose
executor starts nothing and reports the load a test sets (``NullExecutor``): the list, a
deployment's charts, decisions and replicas as it scales up, the deploy form (created, and
refused with the API's field error, storing nothing), the scale form's request (a rolling update),
undeploy; no console error, no horizontal overflow at 375 px."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gpupool.engine.ports import ServingLoad
from gpupool.service.app import create_app
from gpupool.service.settings import ServiceSettings
from service.conftest import free_port
from service.executors import wait_until
from service.null_executor import NullExecutor

from .conftest import CONFIG, PHONE, PortalServer, portal_nodes, shot, sign_in

MARK = "window.__gpupoolMark = 'same-page'"
SAME_PAGE = "() => window.__gpupoolMark === 'same-page'"
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button, [tabindex]')]
    .filter((e) => !e.hidden && e.type !== 'hidden' && !e.closest('[hidden]'))
    .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                   && !e.getAttribute('aria-labelledby') && !e.textContent.trim() && e.id !== 'main')
    .map((e) => e.outerHTML.slice(0, 80))"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


class ServingNull(NullExecutor):
    """The executor that starts nothing, on the portal's nodes, answering as a Ray Serve entry
    would: requests counted (``load`` of them each tick), one error in fifty, latency growing with
    the load per ready replica, and a URL."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[str, int] = {}

    def nodes(self):
        return portal_nodes()

    def serving_load(self, workload):
        base = super().serving_load(workload)
        name = workload.spec.name
        load = self.load.get(name, 0.0)
        n = self.requests[name] = self.requests.get(name, 0) + 1 + int(load)
        per = load / max(1, base.ready)
        return ServingLoad(
            in_flight=base.in_flight,
            queued=0,
            ready=base.ready,
            requests=n,
            errors=n // 50,
            p50_ms=5.0 + 2 * per,
            p99_ms=20.0 + 8 * per,
        )

    def deployment_url(self, workload) -> str:
        return f"http://127.0.0.1:1/{workload.spec.name}"


class ServingPortal(PortalServer):
    """The portal's control plane (its queues and nodes) with ``ServingNull`` as executor."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = ServiceSettings(
            data_dir=data_dir, config_path=CONFIG, port=self.port, tick_interval=0.1
        )
        self.executor = ServingNull()  # type: ignore[assignment]
        self.app = create_app(self.settings, self.executor)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture
def serving(tmp_path) -> Iterator[ServingPortal]:
    server = ServingPortal(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


def body(**kw: Any) -> dict[str, Any]:
    return {"name": "chat", "import_path": "demo.app:app", "queue": "root.a", "gpus": 1, **kw}


def gpus_allocated(server: ServingPortal, queue: str) -> float:
    with server.http() as h:
        return next(q for q in h.get("/queues").json() if q["path"] == queue)["allocated"].get("gpu", 0)


def chart_points(page, chart: str) -> int:
    return int(page.get_attribute(f"#{chart} svg", "data-points") or 0)


def test_list_and_page_show_a_deployment_scaling_up_live(serving, open_page):
    alice = serving.token("alice", ("team-a",))
    with serving.http(alice) as h:
        r = h.post(
            "/deployments",
            json=body(gpu_type="H100", min_replicas=1, max_replicas=3, upscale_delay=0, look_back=2),
        )
        assert r.status_code == 201, r.text
        wait_until(lambda: h.get("/deployments/chat").json()["ready"] == 1, timeout=15)
    page = open_page()
    outside: list[str] = []  # offline: every request the pages make is to the control plane

    def only_local(route) -> None:
        if route.request.url.startswith(serving.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    sign_in(page, serving.url, alice, "/portal/deployments")
    row = "#deployments tbody tr[data-name=chat]"
    page.wait_for_selector(f"{row}[data-state=running]")
    cells = page.locator(f"{row} td").all_inner_texts()
    assert cells[0] == "chat" and cells[2] == "root.a"
    assert cells[3].startswith("1 / 1") and "1 ready" in cells[3] and cells[4] == "1"
    assert cells[9] == "1..3"
    assert page.get_attribute(f"{row} a.url", "href") == "http://127.0.0.1:1/chat"
    assert "ms" in cells[7] and int(cells[5].replace(",", "")) > 0
    shot(page, "deployments-list")

    page.click(f"{row} a[href='/portal/deployments/chat']")
    page.wait_for_url("**/portal/deployments/chat")
    page.evaluate(MARK)
    page.wait_for_selector("#d-state:has-text('running')")
    page.wait_for_function("() => +document.querySelector('#chart-replicas svg')?.dataset.points >= 3")
    for chart in ("chart-replicas", "chart-rps", "chart-latency", "chart-errors", "chart-gpus"):
        assert chart_points(page, chart) >= 3, chart
        assert page.locator(f"#{chart} svg path.line").first.get_attribute("d").startswith("M"), chart
    assert page.locator("#decisions tbody").inner_text() == "No change of the replica count yet."
    assert "Wants 1 replica" in page.inner_text("#scale-reason")
    assert page.locator("#held").is_hidden()
    assert page.get_attribute("#d-url", "href") == "http://127.0.0.1:1/chat"

    # Load for three replicas at a target of two each, no upscale delay: up to 3, live.
    serving.executor.load["chat"] = 6.0
    # As the load averaged over the look back rises: 1 -> 3, or 1 -> 2 -> 3; newest first.
    page.wait_for_selector("#decisions tbody tr.up:first-child:has-text('→ 3')")
    decisions = page.locator("#decisions tbody tr").all_inner_texts()
    assert decisions[-1].split("\t")[1].startswith("1 →") and all("scale up" in d for d in decisions)
    page.wait_for_function(
        "() => document.querySelectorAll('#replicas tbody tr[data-state=placed]').length === 3"
    )
    replicas = page.locator("#replicas tbody tr").all()
    assert [r.get_attribute("data-member") for r in replicas] == ["replica-0", "replica-1", "replica-2"]
    texts = [r.inner_text() for r in replicas]
    assert "min" in texts[0] and "extra" in texts[1] and "extra" in texts[2]
    assert all("h100-" in t for t in texts)
    latest = "(chart, text) => document.querySelector(`#${chart} desc`).textContent.includes(text)"
    for chart, text in (("chart-replicas", "placed 3"), ("chart-gpus", "GPUs 3")):
        page.wait_for_function(f"() => ({latest})('{chart}', '{text}')")
    rps = re.search(r"requests/s ([\d.,]+)\.$", page.text_content("#chart-rps desc"))
    assert rps and float(rps.group(1).replace(",", "")) > 0
    assert "Wants 3 replicas" in page.inner_text("#scale-reason")
    assert page.evaluate(SAME_PAGE)
    shot(page, "deployment-scaled-up")
    assert page.evaluate(UNLABELLED) == []

    page.goto(serving.url + "/portal/deployments")
    page.wait_for_function(
        "() => document.querySelector('#deployments tbody tr[data-name=chat] td.replicas')"
        "?.textContent.startsWith('3 / 3')"
    )
    assert page.inner_text(f"{row} td.gpus") == "3"
    assert page.evaluate(UNLABELLED) == []
    # The queues page tells the replicas' GPUs apart from batch work's.
    page.goto(serving.url + "/")
    gpu_row = "[data-queue='root.a'] .res:has(.res-name:text-is('gpu'))"
    page.wait_for_selector(f"{gpu_row} .serving-num:text-is('3')")
    assert "(3 serving)" in page.get_attribute(f"{gpu_row} .bar", "aria-label")

    page.set_viewport_size(PHONE)
    for name, path in (("list", "/portal/deployments"), ("page", "/portal/deployments/chat")):
        page.goto(serving.url + path)
        page.wait_for_selector("#live-status:has-text('updated')")
        assert page.evaluate(OVERFLOW) <= 0, name
        shot(page, f"phone-deployment-{name}")
    assert page.js_errors == [] and outside == []


def test_deploy_form_refuses_with_the_field_error_and_creates(serving, open_page):
    alice = serving.token("alice", ("team-a",))
    page = open_page()
    sign_in(page, serving.url, alice, "/portal/deployments")
    page.wait_for_selector("#deployments tbody:has-text('No live deployments.')")
    assert page.locator("#d-queue option").all_inner_texts() == ["root.a", "root.open"]

    # An import path that is not module:attribute: the API's 422 names the field.
    page.get_by_label("Name").fill("bad")
    page.get_by_label("Import path").fill("nocolon")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_selector("#d-import-err:not(:empty)")
    assert "module:attribute" in page.inner_text("#d-import-err")
    assert page.get_attribute("#d-import", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "d-import"
    line = page.inner_text("#deploy-error")
    assert line.startswith("Not deployed:") and "body.import_path" in line and "nocolon" in line
    shot(page, "deploy-refused-import-path")

    # More replicas than the queue's max allows: the service's own refusal, next to max replicas.
    page.get_by_label("Import path").fill("demo.app:app")
    page.get_by_label("Queue").select_option("root.open")
    page.get_by_label("Max replicas").fill("5")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_selector("#d-max-err:has-text('root.open')")
    assert page.locator("#d-import-err").is_hidden()  # the earlier error is gone
    assert "max_replicas" in page.inner_text("#deploy-error")
    with serving.http(alice) as h:
        assert h.get("/deployments", params={"all": "true"}).json() == []
        assert h.get("/workloads").json() == []

    page.get_by_label("Name").fill("web")
    page.get_by_label("Queue").select_option("root.a")
    page.get_by_label("small").check()
    page.get_by_label("Max replicas").fill("2")
    page.get_by_label("Target ongoing requests").fill("4")
    page.get_by_label("Upscale delay (s)").fill("5")
    page.get_by_label("Environment").fill("MODEL=tiny\nLOG=debug")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url("**/portal/deployments/web")
    page.wait_for_selector("#d-state:has-text('running')")
    page.wait_for_selector("#replicas tbody tr[data-state=placed]")
    assert "MODEL=tiny LOG=debug" in page.inner_text("#d-facts")
    shot(page, "deploy-created")
    with serving.http(alice) as h:
        (d,) = h.get("/deployments").json()
    assert (d["name"], d["queue"], d["size"]) == ("web", "root.a", "small")
    assert (d["min_replicas"], d["max_replicas"]) == (1, 2)
    assert (d["target_ongoing_requests"], d["upscale_delay"], d["downscale_delay"]) == (4, 5, 600)
    assert d["env"] == {"MODEL": "tiny", "LOG": "debug"} and d["user"] == "alice"
    assert page.js_errors == []


def test_scale_form_posts_the_deployment_as_it_is_and_undeploy_confirms(serving, open_page):
    alice = serving.token("alice", ("team-a",))
    spec = body(
        gpus=0.5,
        gpu_type="A100",
        cpu=2,
        memory="8Gi",
        min_replicas=1,
        max_replicas=2,
        target_ongoing_requests=3,
        upscale_delay=7,
        downscale_delay=60,
        look_back=9,
        max_ongoing_requests=8,
        working_dir="/srv/chat",
        env={"MODEL": "tiny"},
    )
    with serving.http(alice) as h:
        assert h.post("/deployments", json=spec).status_code == 201
    page = open_page()
    sign_in(page, serving.url, alice, "/portal/deployments/chat")
    page.wait_for_selector("#d-state:has-text('running')")
    page.wait_for_selector("#scale-form:not([hidden])")
    assert page.input_value("#sc-min") == "1" and page.input_value("#sc-max") == "2"

    page.get_by_label("Min replicas").fill("2")
    page.get_by_label("Max replicas").fill("4")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/deployments")) as sent:
        page.get_by_role("button", name="Scale").click()
    posted = sent.value.post_data_json
    # Every field as the deployment has it, the bounds changed.
    changed = {"min_replicas": 2, "max_replicas": 4, "memory": str(8 << 30), "scale_to_zero_after": None}
    assert posted == {**spec, **changed}
    # A redeploy of a live name with new bounds is a rolling update: revision 2 replaces 1.
    page.wait_for_selector("#scale-done:has-text('Redeployed with 2..4 replicas.')")
    with serving.http(alice) as h:
        first = h.get("/deployments", params={"all": "true"}).json()[-1]
        wait_until(lambda: h.get("/deployments/chat").json()["state"] == "running", timeout=10)
        new = h.get("/deployments/chat").json()
        assert (new["revision"], new["replaces"], new["min_replicas"]) == (2, first["id"], 2)
        wait_until(lambda: h.get(f"/workloads/{first['id']}").json()["state"] == "cancelled", timeout=10)
    page.wait_for_selector(f"#d-id:has-text('{new['id']}')")
    shot(page, "deployment-scaled-by-rolling-update")
    wait_until(lambda: gpus_allocated(serving, "root.a") == 1.0, timeout=10)  # 2 replicas of 0.5

    # A dismissed confirm does nothing; an accepted one undeploys, and the GPUs go back.
    page.once("dialog", lambda d: d.dismiss())
    page.get_by_role("button", name="Undeploy").click()
    with serving.http(alice) as h:
        assert h.get("/deployments/chat").json()["state"] == "running"
    assert gpus_allocated(serving, "root.a") == 1.0
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Undeploy").click()
    page.wait_for_selector("#d-state:has-text('cancelled')")
    assert page.locator("#undeploy").is_hidden() and page.locator("#scale-form").is_hidden()
    assert "Not scaling: cancelled" in page.inner_text("#scale-reason")
    page.wait_for_selector("#timeline li.st-cancelled")
    wait_until(lambda: gpus_allocated(serving, "root.a") == 0, timeout=10)
    shot(page, "deployment-undeployed")

    # The body the form sent is a whole deployment: deployed again, it is the same one scaled.
    with serving.http(alice) as h:
        r = h.post("/deployments", json=posted)
        assert r.status_code == 201, r.text
        d = r.json()
    for key, value in spec.items():
        if key not in ("min_replicas", "max_replicas", "gpu_type", "cpu", "memory"):
            assert d[key] == value, key
    assert (d["min_replicas"], d["max_replicas"], d["gpu_types"]) == (2, 4, ["A100"])
    assert d["resources"]["vcore"] == 2000 and d["resources"]["memory"] == 8 << 30
    # The page still open follows the new deployment of the name, its charts started afresh.
    page.wait_for_selector(f"#d-id:has-text('{d['id']}')")
    page.wait_for_selector("#d-state:has-text('running')")
    page.wait_for_function("() => document.querySelector('#chart-gpus desc').textContent.includes('GPUs 1.')")
    assert page.locator("#scale-form").is_visible() and page.input_value("#sc-min") == "2"
    shown = chart_points(page, "chart-gpus")
    with serving.http(alice) as h:
        assert shown <= len(h.get("/deployments/chat/series").json()["points"])  # none of the old one's
    page.goto(serving.url + "/portal/deployments")
    page.wait_for_selector("#deployments tbody tr[data-name=chat][data-state=running]")
    page.check("#d-all")
    page.wait_for_selector("#deployments tbody tr[data-name=chat][data-state=cancelled]")
    assert page.js_errors == []


def test_a_replica_held_by_the_queue_max_says_so(serving, open_page):
    alice = serving.token("alice", ("team-a",))
    with serving.http(alice) as h:
        batch = {"name": "batch", "queue": "root.open", "size": "medium", "entrypoint": "sleep 600"}
        assert h.post("/workloads", json=batch).status_code == 201
        r = h.post("/deployments", json=body(queue="root.open", max_replicas=3, upscale_delay=0, look_back=1))
        assert r.status_code == 201, r.text
    serving.executor.load["chat"] = 6.0  # three replicas wanted; root.open's max of 4 GPUs holds two
    page = open_page()
    sign_in(page, serving.url, alice, "/portal/deployments/chat")
    page.wait_for_selector("#held:has-text('1 of 3 replicas wait')")
    assert "root.open" in page.inner_text("#held")
    waiting = page.locator("#replicas tbody tr[data-state=waiting]")
    assert waiting.count() == 1 and "root.open" in waiting.inner_text() and "extra" in waiting.inner_text()
    assert page.locator("#replicas tbody tr[data-state=placed]").count() == 2
    shot(page, "deployment-held")
    assert page.js_errors == []
