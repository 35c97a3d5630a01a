"""Notebook sessions through the real HTTP server: start, list, status, stop (GPUs freed, the
reason kept), resume, every refusal storing nothing, the SDK and the CLI; and the proxy, against
a real small HTTP and websocket server standing in for a session's Jupyter server: the caller's
gpupool token is checked (another team's gets 403) and replaced by the session's own token,
which the caller never sees, and websockets are relayed both ways."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
import typer
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gpupool.cli.notebook_cmd import notebook_app, notebooks_app
from gpupool.engine.model import SESSION_AUTOSAVE, SESSION_GRACE
from gpupool.engine.ports import NotebookEndpoint
from gpupool.service.app import create_app
from gpupool.service.portal.router import TOKEN_COOKIE

from .conftest import LiveServer, free_port
from .executors import wait_until
from .null_executor import NullExecutor

app = typer.Typer()
app.add_typer(notebooks_app)
app.add_typer(notebook_app, name="notebook")
runner = CliRunner()
JUPYTER_TOKEN = "the-sessions-own-token"


class FakeJupyter:
    """A real HTTP server on 127.0.0.1 that answers like a Jupyter server would be asked: it
    echoes what it received (path, query, Authorization, cookies) and echoes websocket messages."""

    def __init__(self) -> None:
        async def page(request: Request) -> HTMLResponse:  # as JupyterLab's page carries its token
            return HTMLResponse(f'<script id="jupyter-config-data">{{"token": "{JUPYTER_TOKEN}"}}</script>')

        async def echo(request: Request) -> JSONResponse:
            body = await request.body()
            return JSONResponse(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "authorization": request.headers.get("authorization"),
                    "cookies": dict(request.cookies),
                    "body": len(body),
                }
            )

        async def ws_echo(ws: WebSocket) -> None:
            if ws.headers.get("authorization") != f"token {JUPYTER_TOKEN}":
                await ws.close(code=1008)
                return
            await ws.accept(subprotocol=(ws.scope.get("subprotocols") or [None])[0])
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await ws.send_text("echo:" + message["text"])
                else:
                    await ws.send_bytes(b"echo:" + message["bytes"])

        routes = [
            Route("/notebooks/{name}/lab/page", page),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
            WebSocketRoute("/{path:path}", ws_echo),
        ]
        self.port = free_port()
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeJupyter:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=20)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class NotebookExecutor(NullExecutor):
    """Starts nothing; a running session's server is ``endpoint`` (when set); keeps the
    environment each session would get."""

    def __init__(self) -> None:
        super().__init__()
        self.session_env: dict[str, dict[str, str]] = {}
        self._provide: Any = None

    def set_session_env(self, provide: Any) -> None:
        self._provide = provide

    def start(self, workload, now):
        if workload.spec.kind == "notebook" and self._provide is not None:
            self.session_env[workload.id] = self._provide(workload)
        super().start(workload, now)


class NotebookServer(LiveServer):
    def start(self) -> NotebookServer:
        self.executor = NotebookExecutor()  # type: ignore[assignment]
        self.app = create_app(self.settings, self.executor)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=30)
        assert self._server.started, "the server did not start"
        return self


@pytest.fixture
def server(tmp_path):
    s = NotebookServer(tmp_path / "data").start()
    yield s
    s.stop()


def body(**kw: Any) -> dict[str, Any]:
    return {"name": "lab", "queue": "root.a", "gpus": 1, **kw}


def gpus_used(server: LiveServer, queue: str = "root.a") -> float:
    with server.http() as h:
        q = next(q for q in h.get("/queues").json() if q["path"] == queue)
    return q["allocated"].get("gpu", 0)


def cli(server: LiveServer, *args: str, token: str | None = None):
    env = {"GPUPOOL_URL": server.url, "GPUPOOL_TOKEN": token or server.admin_token, "GPUPOOL_DATA_DIR": ""}
    return runner.invoke(app, list(args), env=env)


def test_start_list_stop_resume(server) -> None:
    alice = server.token("alice", ("team-a",))
    with server.http(alice) as h:
        r = h.post("/notebooks", json=body(idle_timeout=1800, max_lifetime=8 * 3600))
        assert r.status_code == 201, r.text
        nb = r.json()
        assert (nb["name"], nb["queue"], nb["gpus"], nb["user"]) == ("lab", "root.a", 1, "alice")
        assert (nb["idle_timeout"], nb["max_lifetime"], nb["preemptible"]) == (1800, 8 * 3600, False)
        first = nb["id"]
        # Placed and started, but its server does not answer: "starting", no URL.
        nb = wait_until(lambda: (n := h.get("/notebooks/lab").json())["node"] and n)
        assert nb["state"] == "starting" and nb["url"] is None and len(nb["gpu_ids"]) == 1
        server.executor.endpoint = NotebookEndpoint("http://127.0.0.1:1", JUPYTER_TOKEN)
        nb = wait_until(lambda: (n := h.get("/notebooks/lab").json())["state"] == "running" and n)
        assert nb["url"] == f"{server.url}/notebooks/lab/lab"
        assert [n["name"] for n in h.get("/notebooks").json()] == ["lab"]
        env = server.executor.session_env[first]
        assert env["GPUPOOL_URL"] == server.url
        assert gpus_used(server) == 1
        # The session's own token is alice's: the SDK inside it acts as her.
        with server.http(env["GPUPOOL_TOKEN"]) as inside:
            assert inside.get("/whoami").json()["user"] == "alice"
        server.executor.endpoint = None

        stopped = h.post("/notebooks/lab/stop").json()
        assert (stopped["state"], stopped["stopped_by"], stopped["reason"]) == (
            "stopped",
            "user",
            "stopped by alice",
        )
        wait_until(lambda: gpus_used(server) == 0)
        # The token minted for that run stopped working with it (also in the proxy's cache).
        with server.http(env["GPUPOOL_TOKEN"]) as inside:
            assert inside.get("/whoami").status_code == 401
        assert h.post("/notebooks/lab/stop").status_code == 409  # not running
        again = h.post("/notebooks", json=body())
        assert again.status_code == 409 and "resume" in again.json()["hint"]

        resumed = h.post("/notebooks/lab/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["id"] != first and resumed.json()["queue"] == "root.a"
        assert resumed.json()["idle_timeout"] == 1800
        wait_until(lambda: gpus_used(server) == 1)
        # A resume mints a new token, which works; the old one still does not.
        fresh = server.executor.session_env[resumed.json()["id"]]["GPUPOOL_TOKEN"]
        assert fresh != env["GPUPOOL_TOKEN"]
        with server.http(fresh) as inside:
            assert inside.get("/whoami").json()["user"] == "alice"
        assert h.post("/notebooks/lab/resume").status_code == 409  # it runs
        listed = h.get("/notebooks").json()
        assert [(n["name"], n["id"]) for n in listed] == [("lab", resumed.json()["id"])]


@pytest.mark.parametrize(
    ("change", "status", "field", "words"),
    [
        ({"queue": "root.nope"}, 422, "body.queue", "no queue 'root.nope'"),
        ({"queue": "root"}, 422, "body.queue", "parent queue"),
        ({"queue": "root.b"}, 403, "body.queue", "may not submit to root.b"),
        ({"gpus": 5}, 422, "body.gpus", "no node"),
        ({"gpus": 1.5}, 422, "body.gpus", "not whole"),
        ({"gpus": None}, 422, "body.gpus", "exactly one of"),
        ({"size": "nope", "gpus": None}, 422, "body.size", "unknown size"),
        ({"gpu_type": "V100"}, 422, "body.gpus", "V100"),
        ({"idle_timeout": 0}, 422, "body.idle_timeout", "greater than 0"),
        (
            {"idle_timeout": 5 * 3600},
            422,
            "body.idle_timeout",
            "idle_timeout 5h is more than queue root.a allows",
        ),
        ({"max_lifetime": 25 * 3600}, 422, "body.max_lifetime", "(session.lifetime.max 24h)"),
        ({"idle_timeout": 60}, 422, "body.idle_timeout", "not longer than queue root.a's warning lead"),
        ({"name": "no spaces"}, 422, "body.name", "pattern"),
    ],
)
def test_every_refusal_names_its_field_and_stores_nothing(server, change, status, field, words) -> None:
    payload = {k: v for k, v in body(**change).items() if v is not None}
    with server.http(server.token("alice", ("team-a",))) as h:
        r = h.post("/notebooks", json=payload)
        assert r.status_code == status, r.text
        err = r.json()
        assert field in [f["field"] for f in err["fields"]], err
        assert words in err["message"] + " ".join(f["message"] for f in err["fields"]), err
    with server.http() as h:
        assert h.get("/workloads").json() == []
        assert h.get("/notebooks").json() == []
    assert gpus_used(server) == 0


def test_the_proxy_checks_the_callers_token_and_adds_the_sessions_own(server) -> None:
    alice = server.token("alice", ("team-a",))
    teammate = server.token("carol", ("team-a",))
    other_team = server.token("bob", ("team-b",))
    with FakeJupyter() as jupyter, server.http(alice) as h:
        assert h.post("/notebooks", json=body()).status_code == 201
        wait_until(lambda: h.get("/notebooks/lab").json()["node"])
        # Not answering yet: a clear 409, not a hang.
        r = h.get("/notebooks/lab/api/status")
        assert r.status_code == 409 and "not answering" in r.json()["message"]
        server.executor.endpoint = NotebookEndpoint(f"http://127.0.0.1:{jupyter.port}", JUPYTER_TOKEN)
        wait_until(lambda: h.get("/notebooks/lab").json()["state"] == "running")

        r = h.post(
            "/notebooks/lab/api/kernels?x=1", json={"name": "python3"}, headers={"Cookie": "_xsrf=abc"}
        )
        assert r.status_code == 200, r.text
        seen = r.json()
        assert seen["path"] == "/notebooks/lab/api/kernels" and seen["query"] == "x=1"
        assert seen["authorization"] == f"token {JUPYTER_TOKEN}"  # the caller's token never reaches it
        assert seen["method"] == "POST" and seen["body"] > 0
        big = b"x" * (3 << 20)  # a large notebook saved: the API's 1 MiB body limit is not the proxy's
        r = h.put("/notebooks/lab/api/contents/big.ipynb", content=big)
        assert r.status_code == 200 and r.json()["body"] == len(big), r.text
        assert h.post("/notebooks/lab/stop", content=big).status_code == 413  # the API's own paths are
        page = h.get("/notebooks/lab/lab/page", headers={"Accept-Encoding": "gzip"})
        assert page.status_code == 200 and page.text == (
            '<script id="jupyter-config-data">{"token": ""}</script>'
            '<script id="gpupool-warning-script" src="/portal/static/session-warning.js" '
            'data-url="/notebooks/lab/-/warning" data-every="5"></script>'
        )
        assert h.get("/portal/static/session-warning.js").status_code == 200
        # What that script reads: the session's pending reclaim (none yet), answered by the proxy.
        pending = h.get("/notebooks/lab/-/warning").json()
        assert pending == {"state": "running", "warning": None, "reclaim_at": None, "reclaim_why": None}

        # A browser: the portal's sign-in cookie instead of a header; the cookie is not passed on.
        with httpx.Client(base_url=server.url, cookies={TOKEN_COOKIE: teammate, "_xsrf": "abc"}) as browser:
            seen = browser.get("/notebooks/lab/lab/tree").json()
            assert seen["cookies"] == {"_xsrf": "abc"}
            assert seen["authorization"] == f"token {JUPYTER_TOKEN}"
            assert browser.get("/notebooks/lab/-/warning").json()["state"] == "running"
        with httpx.Client(base_url=server.url) as nobody:
            assert nobody.get("/notebooks/lab/lab").status_code == 401
            assert nobody.get("/notebooks/lab/-/warning").status_code == 401
            page = nobody.get("/notebooks/lab/lab?x=1", headers={"Accept": "text/html"})  # a browser
            assert page.status_code == 200 and 'id="signin-form"' in page.text
            assert 'data-next="/notebooks/lab/lab?x=1"' in page.text
        with server.http(other_team) as bob:
            r = bob.get("/notebooks/lab/lab")
            assert r.status_code == 403 and "bob may not open notebook lab" in r.json()["message"]
            assert bob.get("/notebooks/lab").status_code == 404
            assert bob.get("/notebooks/lab/-/warning").status_code == 404
            assert bob.post("/notebooks/lab/stop").status_code == 404
        with server.http(teammate) as carol:  # may open it (submit access), may not stop it
            assert carol.post("/notebooks/lab/stop").status_code == 403
        assert h.get("/notebooks/nope/lab").status_code == 404

        # The sync client: the test process may hold a running event loop (Playwright's).
        ws_url = server.url.replace("http://", "ws://") + "/notebooks/lab/api/kernels/k1/channels?s=1"
        with connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {alice}"},
            subprotocols=["v1.kernel.websocket.jupyter.org"],  # type: ignore[list-item]
        ) as ws:
            assert ws.subprotocol == "v1.kernel.websocket.jupyter.org"
            ws.send("hello")
            assert ws.recv(timeout=10) == "echo:hello"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=10) == b"echo:\x00\x01"
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers={"Authorization": f"Bearer {other_team}"}).close()
        assert refused.value.response.status_code == 403


def test_the_sdk_and_the_cli(server) -> None:
    gp = server.client()
    nb = gp.start_notebook("sdk", "root.a", gpus=1, idle_timeout=600)
    assert (nb.name, nb.state, nb.idle_timeout) == ("sdk", "pending", 600)
    assert nb.max_lifetime == 8 * 3600  # not asked: the queue's default (session.lifetime)
    server.executor.endpoint = NotebookEndpoint("http://127.0.0.1:1", JUPYTER_TOKEN)
    assert gp.wait_notebook("sdk", timeout=20).state == "running"
    assert [n.name for n in gp.notebooks()] == ["sdk"]

    out = cli(server, "notebook", "start", "cli", "-q", "root.a", "--gpus", "1", "--idle-timeout", "30m")
    assert out.exit_code == 0, out.output
    assert "cli running in root.a on " in out.output and f"{server.url}/notebooks/cli/lab" in out.output
    out = cli(server, "notebook", "open", "cli")
    assert out.output == f"{server.url}/notebooks/cli/lab\n"
    out = cli(server, "notebooks", "--json")
    listed = json.loads(out.output)
    assert {n["name"] for n in listed} == {"sdk", "cli"}
    for n in listed:
        assert {"name", "state", "url", "queue", "gpus", "node"} <= set(n)
    assert cli(server, "notebook", "stop", "cli").exit_code == 0
    out = cli(server, "notebook", "open", "cli")
    assert out.exit_code == 1 and "resume it with `gpupool notebook resume cli`" in out.output
    out = cli(server, "notebook", "resume", "cli", "--json")
    assert out.exit_code == 0 and json.loads(out.output)["state"] == "running"
    out = cli(server, "notebook", "start", "x", "-q", "root.nope", "--gpus", "1")
    assert out.exit_code == 1 and out.output.startswith("Error: no queue 'root.nope'"), out.output
    assert gp.stop_notebook("sdk").stopped_by == "user"


def test_start_is_refused_when_the_executor_cannot_run_notebooks(tmp_path) -> None:
    server = LiveServer(tmp_path / "data").start()  # the process executor: jobs only
    try:
        with server.http() as h:
            r = h.post("/notebooks", json=body())
            assert r.status_code == 501, r.text
            assert "notebook sessions need an executor" in r.json()["message"]
            assert h.get("/workloads").json() == []
    finally:
        server.stop()


def test_within_the_guarantee_no_session_is_preempted_above_it_only_a_preemptible_one(server) -> None:
    """root.a and root.b are each guaranteed 8 of the 16 GPUs (4 nodes of 4). Team a runs a
    session of 4 GPUs that is not preemptible and two preemptible ones (12: 4 above its
    guarantee); a fourth session that is not preemptible waits, though 4 GPUs are idle: it runs
    only within a's guarantee (before, it ran above it and could never be preempted). Team b then
    asks for its guarantee in batch jobs: only a preemptible session above a's guarantee gives
    its GPUs back; a later batch job of team b above its own guarantee takes nothing from team a,
    now within its guarantee. Once a's preemptible sessions stop, the waiting one starts."""
    alice = server.token("alice", ("team-a",))
    bob = server.token("bob", ("team-b",))
    with server.http(alice) as h:
        for name, preemptible in (("keep-1", False), ("spare", True), ("borrow", True)):
            r = h.post("/notebooks", json=body(name=name, gpus=4, preemptible=preemptible))
            assert r.status_code == 201, r.text
        wait_until(lambda: all(n["node"] for n in h.get("/notebooks").json()), timeout=20)
        r = h.post("/notebooks", json=body(name="keep-2", gpus=4))
        assert r.status_code == 201, r.text
        waiting = wait_until(
            lambda: "guarantee" in (n := h.get("/notebooks/keep-2").json())["reason"] and n, timeout=20
        )
        assert waiting["state"] == "pending" and waiting["node"] is None, waiting
        assert waiting["reason"].startswith(
            "waiting: queue root.a would go above its guarantee (gpu: 12 in use, 8 guaranteed, it asks "
            "for 4): work that may not be preempted runs only within its queue's guarantee"
        ), waiting["reason"]
        why = h.get(f"/workloads/{waiting['id']}/why").json()["lines"]
        assert "its queue is at its guarantee, and it may not be preempted" in why[0], why
        assert any("--preemptible" in line for line in why), why
    assert gpus_used(server) == 12
    job = {"queue": "root.b", "entrypoint": "true", "task_groups": [{"name": "w", "members": 1, "gpus": 4}]}
    with server.http(bob) as b:
        ids = [b.post("/workloads", json={**job, "name": f"batch-{i}"}).json()["id"] for i in range(2)]
        wait_until(
            lambda: all(b.get(f"/workloads/{i}").json()["state"] == "running" for i in ids), timeout=30
        )
    with server.http(alice) as h:
        # (The executor here starts no server: a placed session stays "starting".) One of the
        # two preemptible sessions (the victim order decides which) gave its GPUs back.
        states = {n["name"]: n["state"] for n in h.get("/notebooks").json()}
        preempted = next(name for name, state in states.items() if state == "preempted")
        assert preempted in ("spare", "borrow"), states
        expected = {"keep-1": "starting", "spare": "starting", "borrow": "starting", "keep-2": "pending"}
        expected[preempted] = "preempted"
        assert states == expected, states
        assert "preempt" in " ".join(t["reason"] for t in h.get(f"/notebooks/{preempted}").json()["history"])
        # It was warned first (an event, as an idle one is), with a grace period long enough for
        # JupyterLab's autosave; the warning went with its server.
        gone = h.get(f"/notebooks/{preempted}").json()
        assert gone["warning"] is None
        warned = [
            e["message"]
            for e in h.get(f"/workloads/{gone['id']}/events").json()
            if e["kind"] == "reclaim-warning"
        ]
        assert len(warned) == 1 and warned[0].startswith("preempted (") and "autosaved every 30s" in warned[0]
        assert SESSION_GRACE >= SESSION_AUTOSAVE
    assert gpus_used(server) == 8 and gpus_used(server, "root.b") == 8
    with server.http(bob) as b:  # above b's guarantee: it may only borrow, and nothing is idle
        extra = b.post("/workloads", json={**job, "name": "batch-more"}).json()["id"]
        time.sleep(3)  # well past preemption.delay (1 s): a wrong preemption would have happened
        assert b.get(f"/workloads/{extra}").json()["state"] == "pending"
    with server.http(alice) as h:
        states = {n["name"]: n["state"] for n in h.get("/notebooks").json()}
        assert states == expected, states
        assert gpus_used(server) == 8
        for name in ("borrow", "spare"):
            assert h.post(f"/notebooks/{name}/stop").status_code == 200
        started = wait_until(lambda: (n := h.get("/notebooks/keep-2").json())["node"] and n, timeout=20)
        assert started["state"] == "starting", started
    assert gpus_used(server) == 8


GUARANTEED_2 = """
partitions:
  - name: default
    queues:
      - name: root
        submitacl: ""
        adminacl: " admins"
        queues:
          - name: a
            submitacl: " team-a"
            resources: {guaranteed: {gpu: 2}, max: {gpu: 16}}
          - name: open
            submitacl: "*"
            resources: {max: {gpu: 4}}
"""


def test_a_session_that_could_never_run_within_its_guarantee_is_refused_at_start_and_resume(tmp_path) -> None:
    """Not preemptible: refused (422, nothing stored) in a queue that guarantees no GPU, or when
    it alone is above the guarantee; started with --preemptible it is taken. At resume, after
    the guarantee was lowered below it, it is refused the same way."""
    config = tmp_path / "queues.yaml"
    config.write_text(GUARANTEED_2)
    server = NotebookServer(tmp_path / "data", config=config).start()
    try:
        alice = server.token("alice", ("team-a",))
        with server.http(alice) as h:
            for change, field, words in (
                ({"gpus": 4}, "body.gpus", "queue root.a guarantees gpu 2, less than the 4 asked"),
                (
                    {"queue": "root.open"},
                    "body.queue",
                    "queue root.open guarantees no GPUs (its guarantee: none)",
                ),
            ):
                r = h.post("/notebooks", json=body(**change))
                assert r.status_code == 422, r.text
                err = r.json()
                assert err["message"].startswith(f"refused: {words}: work that may not be preempted"), err
                assert [f["field"] for f in err["fields"]] == [field], err
                assert "--preemptible" in err["hint"], err
            assert h.get("/notebooks").json() == [] and h.get("/workloads").json() == []
            out = cli(
                server, "notebook", "start", "x", "-q", "root.open", "--gpus", "1", "--no-wait", token=alice
            )
            assert out.exit_code == 1 and out.output.startswith(
                "Error: refused: queue root.open guarantees no GPUs"
            )
            assert "--preemptible" in out.output, out.output
            assert h.get("/notebooks").json() == []
            r = h.post("/notebooks", json=body(name="free", queue="root.open", preemptible=True))
            assert r.status_code == 201, r.text  # preemptible: it may borrow idle GPUs
            r = h.post("/notebooks", json=body(gpus=2))
            assert r.status_code == 201, r.text
            wait_until(lambda: h.get("/notebooks/lab").json()["node"])
            assert h.post("/notebooks/lab/stop").status_code == 200
        config.write_text(GUARANTEED_2.replace("guaranteed: {gpu: 2}", "guaranteed: {gpu: 1}"))
        with server.http() as admin:
            assert admin.post("/config/reload").status_code == 200
        with server.http(alice) as h:
            r = h.post("/notebooks/lab/resume")
            assert r.status_code == 422, r.text
            assert r.json()["message"].startswith(
                "refused: queue root.a guarantees gpu 1, less than the 2 asked"
            )
            assert h.get("/notebooks/lab").json()["state"] == "stopped"
            assert sorted(n["name"] for n in h.get("/notebooks").json()) == ["free", "lab"]
    finally:
        server.stop()
