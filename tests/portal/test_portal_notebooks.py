"""The portal's Notebooks page in a real headless Chromium against a live control plane whose
executor starts nothing (``NullExecutor``) and whose sessions' "Jupyter server" is a real small
HTTP server that echoes what it receives (``FakeJupyter``): start from the form (and a refusal
next to its field, storing nothing), the session's row going live, Open through the proxy with
the portal's sign-in (the session's own token added, the portal's kept back), another team's
user refused, a browser not signed in led through the sign-in back to the notebook, Stop and
Resume; no script error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from gpupool.engine.ports import NotebookEndpoint
from gpupool.service.app import create_app
from gpupool.service.settings import ServiceSettings
from service.conftest import free_port
from service.executors import wait_until
from service.null_executor import NullExecutor
from service.test_notebooks import JUPYTER_TOKEN, FakeJupyter

from .conftest import CONFIG, PortalServer, portal_nodes, shot, sign_in


class PortalNull(NullExecutor):
    def nodes(self):
        return portal_nodes()


class NotebookPortal(PortalServer):
    """The portal's control plane (its queues and nodes) with ``PortalNull`` as executor."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = ServiceSettings(
            data_dir=data_dir, config_path=CONFIG, port=self.port, tick_interval=0.1
        )
        self.executor = PortalNull()  # type: ignore[assignment]
        self.app = create_app(self.settings, self.executor)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture
def notebooks(tmp_path) -> Iterator[NotebookPortal]:
    server = NotebookPortal(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


def echoed(page) -> dict:
    """What the fake Jupyter server received, as the page shows its JSON answer."""
    page.wait_for_function("() => document.body && document.body.innerText.trim().startsWith('{')")
    return json.loads(page.locator("body").inner_text())


def test_start_open_stop_resume_from_the_notebooks_page(notebooks, open_page):
    alice = notebooks.token("alice", ("team-a",))
    bob = notebooks.token("bob", ("team-b",))
    page = open_page()
    sign_in(page, notebooks.url, alice, "/portal/notebooks")
    page.wait_for_selector("#notebooks tbody td:has-text('No notebooks yet.')")

    # A refusal comes back next to the field it names, and nothing is stored.
    page.fill("#n-name", "lab")
    page.fill("#n-gpus", "5")
    page.click("#notebook-button")
    page.wait_for_selector("#n-gpus-err:has-text('no node')")
    assert page.get_attribute("#n-gpus", "aria-invalid") == "true"
    assert "Not started:" in page.inner_text("#notebook-error")
    with notebooks.http() as h:
        assert h.get("/notebooks").json() == []

    page.fill("#n-gpus", "1")
    page.fill("#n-idle", "30")
    page.click("#notebook-button")
    row = "#notebooks tbody tr[data-name=lab]"
    page.wait_for_selector(f"{row}[data-state=starting]")
    with notebooks.http(alice) as h:
        nb = h.get("/notebooks/lab").json()
    assert (nb["queue"], nb["gpus"], nb["idle_timeout"], nb["user"]) == ("root.a", 1, 1800, "alice")
    shot(page, "notebooks-starting")

    with FakeJupyter() as jupyter:
        notebooks.executor.endpoint = NotebookEndpoint(f"http://127.0.0.1:{jupyter.port}", JUPYTER_TOKEN)
        page.wait_for_selector(f"{row}[data-state=running] a.open")
        href = page.get_attribute(f"{row} a.open", "href")
        assert href == f"{notebooks.url}/notebooks/lab/lab"
        cells = page.locator(f"{row} td").all_inner_texts()
        assert cells[0] == "lab" and cells[2] == "alice" and cells[3] == "root.a" and cells[4] == "1"
        shot(page, "notebooks-running")

        # Open: the browser's sign-in cookie gets through; Jupyter sees only its own token.
        with page.context.expect_page() as opened:
            page.click(f"{row} a.open")
        tab = opened.value
        tab.wait_for_load_state()
        seen = echoed(tab)
        assert seen["path"] == "/notebooks/lab/lab" and seen["authorization"] == f"token {JUPYTER_TOKEN}"
        assert "gpupool_token" not in seen["cookies"]

        # Another team's user, signed in: refused.
        other = open_page()
        sign_in(other, notebooks.url, bob, "/portal/notebooks")
        other.goto(href)
        assert "bob may not open notebook lab" in other.locator("body").inner_text()

        # A browser not signed in: the sign-in page, then the notebook.
        fresh = open_page()
        fresh.goto(href + "?reset")
        fresh.get_by_label("API token").fill(alice)
        fresh.get_by_role("button", name="Sign in").click()
        fresh.wait_for_url(href + "?reset")
        assert echoed(fresh)["query"] == "reset"

        page.click("#stop-lab")
        page.wait_for_selector(f"{row}[data-state=stopped]")
        assert "stopped (user)" in page.inner_text(row)
        shot(page, "notebooks-stopped")
        wait_until(lambda: _gpus(notebooks) == 0)
        page.click("#resume-lab")
        page.wait_for_selector(f"{row}[data-state=running]")
    assert page.js_errors == []  # type: ignore[attr-defined]


def _gpus(server: NotebookPortal) -> float:
    with server.http() as h:
        return sum(q["allocated"].get("gpu", 0) for q in h.get("/queues").json() if q["path"] == "root.a")
