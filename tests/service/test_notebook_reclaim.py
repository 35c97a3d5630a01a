"""Idle reclaim and lifetime of notebook sessions through the live control plane: the session's
"Jupyter server" is a real small HTTP server answering ``/api/status`` and ``/api/kernels`` as
Jupyter does (its last activity and kernels set by the test); the reaper's rounds are run by the
test (``SessionReaper.check``) so that nothing waits on its interval. An idle session is warned,
then stopped with ``stopped_by`` idle (its GPUs freed, the warning in its events); a busy one is
never reclaimed for idleness but ends at its lifetime, warned first."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gpupool.engine.ports import NotebookEndpoint

from .conftest import free_port
from .executors import wait_until
from .test_notebooks import JUPYTER_TOKEN, NotebookServer, gpus_used

QUEUES = """
partitions:
  - name: default
    queues:
      - name: root
        submitacl: "*"
        queues:
          - name: a
            properties: {session.warning: 1s}
            resources: {guaranteed: {gpu: 8}, max: {gpu: 16}}
"""

STARTED = "2026-01-01T00:00:00.000000Z"  # long ago: the server's own last activity is old


class ActivityServer:
    """Answers ``api/status`` and ``api/kernels`` (token checked) with ``kernels`` as set."""

    def __init__(self) -> None:
        self.kernels: list[dict] = []
        self.last_activity = STARTED

        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == f"token {JUPYTER_TOKEN}"

        async def status(request: Request) -> JSONResponse:
            if not authorised(request):
                return JSONResponse({}, status_code=403)
            return JSONResponse(
                {
                    "started": STARTED,
                    "last_activity": self.last_activity,
                    "connections": 0,
                    "kernels": len(self.kernels),
                }
            )

        async def kernels(request: Request) -> JSONResponse:
            if not authorised(request):
                return JSONResponse({}, status_code=403)
            return JSONResponse(self.kernels)

        routes = [
            Route("/notebooks/{name}/api/status", status),
            Route("/notebooks/{name}/api/kernels", kernels),
        ]
        self.port = free_port()
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ActivityServer:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=20)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def server(tmp_path: Path):
    config = tmp_path / "queues.yaml"
    config.write_text(QUEUES)
    s = NotebookServer(tmp_path / "data", config=config).start()
    yield s
    s.stop()


def run_rounds(server: NotebookServer, name: str, state: str, timeout: float = 20) -> dict:
    """Run the reaper's rounds until the session is in ``state``; its answer then."""
    reaper = server.app.state.reaper

    def reached() -> dict | None:
        reaper.check()
        with server.http() as h:
            nb = h.get(f"/notebooks/{name}").json()
        return nb if nb["state"] == state else None

    return wait_until(reached, timeout=timeout, interval=0.2)


def events(server: NotebookServer, workload_id: str) -> list[tuple[str, str]]:
    with server.http() as h:
        return [(e["kind"], e["message"]) for e in h.get(f"/workloads/{workload_id}/events").json()]


def test_an_idle_session_is_warned_then_reclaimed_and_a_busy_one_ends_at_its_lifetime(server) -> None:
    with ActivityServer() as jupyter, server.http() as h:
        server.executor.endpoint = NotebookEndpoint(f"http://127.0.0.1:{jupyter.port}", JUPYTER_TOKEN)
        r = h.post("/notebooks", json={"name": "idle", "queue": "root.a", "gpus": 1, "idle_timeout": 2})
        assert r.status_code == 201, r.text
        wait_until(lambda: h.get("/notebooks/idle").json()["state"] == "running")
        assert gpus_used(server) == 1
        nb = run_rounds(server, "idle", "stopped")
        assert nb["stopped_by"] == "idle" and nb["reason"].startswith("stopped (idle): idle for ")
        kinds = [k for k, _ in events(server, nb["id"])]
        assert kinds.index("reclaim-warning") < kinds.index("state:cancelled"), kinds
        wait_until(lambda: gpus_used(server) == 0)

        # Busy: a kernel executing is activity, so only the lifetime ends it (warned first).
        # (Its last activity is old: executing is what counts.)
        jupyter.kernels = [
            {
                "id": "k1",
                "name": "python3",
                "execution_state": "busy",
                "last_activity": STARTED,
                "connections": 1,
            }
        ]
        body = {"name": "busy", "queue": "root.a", "gpus": 1, "idle_timeout": 2, "max_lifetime": 3}
        assert h.post("/notebooks", json=body).status_code == 201
        wait_until(lambda: h.get("/notebooks/busy").json()["state"] == "running")
        nb = run_rounds(server, "busy", "stopped")
        assert nb["stopped_by"] == "lifetime" and "max lifetime 3s reached" in nb["reason"], nb
        messages = dict(events(server, nb["id"]))
        assert "max lifetime 3s ends in" in messages["reclaim-warning"]


def test_a_warning_is_in_the_api_and_cli_until_activity_withdraws_it(server) -> None:
    with ActivityServer() as jupyter, server.http() as h:
        server.executor.endpoint = NotebookEndpoint(f"http://127.0.0.1:{jupyter.port}", JUPYTER_TOKEN)
        body = {"name": "warned", "queue": "root.a", "gpus": 1, "idle_timeout": 3, "max_lifetime": 3600}
        assert h.post("/notebooks", json=body).status_code == 201
        nb = wait_until(lambda: (n := h.get("/notebooks/warned").json())["state"] == "running" and n)
        assert nb["warning"] is None and nb["reclaim_at"] is None
        assert nb["ends_at"] == pytest.approx(nb["started_at"] + 3600)
        reaper = server.app.state.reaper

        def warned() -> dict | None:
            reaper.check()
            n = h.get("/notebooks/warned").json()
            return n if n["warning"] is not None else None

        nb = wait_until(warned, timeout=20, interval=0.2)
        assert nb["reclaim_why"] == "idle" and nb["state"] == "running"
        assert "unless it is used" in nb["warning"] and nb["reclaim_at"] > nb["started_at"]
        listed = {n["name"]: n for n in h.get("/notebooks").json()}
        assert listed["warned"]["reclaim_at"] == nb["reclaim_at"]
        # Activity (a client's request, as the server records it) withdraws it.
        jupyter.last_activity = datetime.fromtimestamp(reaper.plane.clock(), UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        reaper.check()
        nb = h.get("/notebooks/warned").json()
        assert nb["state"] == "running" and nb["warning"] is None and nb["reclaim_why"] is None, nb
        kinds = [k for k, _ in events(server, nb["id"])]
        assert kinds.index("reclaim-warning") < kinds.index("reclaim-withdrawn")


def reclaimed_metric(server: NotebookServer, queue: str = "root.a") -> float | None:
    with server.http() as h:
        text = h.get("/metrics").text
    line = f'gpupool_session_idle_gpu_hours_reclaimed_total{{queue="{queue}"}} '
    found = [float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)]
    return found[0] if found else None


def test_idle_gpu_hours_reclaimed_are_counted_per_queue_and_survive_a_restart(server) -> None:
    with ActivityServer() as jupyter:
        server.executor.endpoint = NotebookEndpoint(f"http://127.0.0.1:{jupyter.port}", JUPYTER_TOKEN)
        with server.http() as h:
            assert reclaimed_metric(server) is None
            body = {"name": "idle", "queue": "root.a", "gpus": 2, "idle_timeout": 2, "max_lifetime": 3600}
            assert h.post("/notebooks", json=body).status_code == 201
            wait_until(lambda: h.get("/notebooks/idle").json()["state"] == "running")
            stopped = run_rounds(server, "idle", "stopped")
            assert stopped["stopped_by"] == "idle"
            growing = reclaimed_metric(server)
            assert growing is not None and growing > 0
            resumed = h.post("/notebooks/idle/resume").json()
        # From the reclaim until the resume, 2 GPUs: no longer growing once resumed.
        expected = 2 * (resumed["submitted_at"] - stopped["finished_at"]) / 3600
        assert reclaimed_metric(server) == pytest.approx(expected)
        server.stop()
        server.start()
        assert reclaimed_metric(server) == pytest.approx(expected)
        with server.http() as h:
            h.cookies.set("gpupool_token", server.admin_token)
            page = h.get("/portal/notebooks").text
        assert 'data-queue="root.a"' in page and f"{expected:.2f}" in page


def test_a_gpu_in_use_keeps_a_session_and_no_nvml_keeps_todays_rule(server) -> None:
    with ActivityServer() as jupyter, server.http() as h:
        server.executor.endpoint = NotebookEndpoint(f"http://127.0.0.1:{jupyter.port}", JUPYTER_TOKEN)
        server.executor.utilisation = 40.0  # above the 5% threshold: in use
        body = {"name": "gpu", "queue": "root.a", "gpus": 1, "idle_timeout": 2, "max_lifetime": 3600}
        assert h.post("/notebooks", json=body).status_code == 201
        nb = wait_until(lambda: (n := h.get("/notebooks/gpu").json())["state"] == "running" and n)
        reaper = server.app.state.reaper
        plane = reaper.plane
        # Rounds until well past its idle timeout: the busy GPU keeps it (no warning).
        while plane.clock() < nb["started_at"] + 4:
            reaper.check()
        assert h.get("/notebooks/gpu").json()["warning"] is None
        assert "reclaim-warning" not in [k for k, _ in events(server, nb["id"])]
        reads = server.executor.utilisation_reads
        reaper.check()
        assert server.executor.utilisation_reads == reads + 1  # one read per session per round
        # No NVML: the GPU condition is left out, and the idle session is warned as before.
        server.executor.utilisation = None
        nb = run_rounds(server, "gpu", "stopped")
        assert nb["stopped_by"] == "idle" and "GPU utilisation" not in nb["reason"]
