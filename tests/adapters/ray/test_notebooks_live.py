"""Notebook sessions end to end, the way a user runs them: ``gpupool up`` (its own local Ray
cluster: two nodes with two T4 each), the CLI, and HTTP and websocket requests to the URL it
prints, through the control plane's proxy with gpupool's own token (no Jupyter token anywhere).

Queues: ``root.team-a`` and ``root.team-b``, each taking submissions from its own group. The
tests run in order on one platform:

1. bad input stores nothing: an unknown queue, more GPUs than any node has, a queue of another
   team, an idle timeout above the queue's maximum (each a one-line error from the CLI);
2. a session with 1 GPU starts in JupyterLab's real server on the node the core chose; through
   the proxy a kernel is created over REST and a cell run over the kernel's websocket prints the
   GPU ids the session was given, a Ray task's result (``ray.init()`` attaches to the cluster)
   and the user the SDK acts as without any configuration; another team's token gets 403;
3. in Chromium, signed in to the portal: the Notebooks page's Open link leads into JupyterLab
   through the proxy; a new notebook's cell, run from the page, prints the session's GPU ids and
   a Ray task's result (the kernel's websocket through the proxy, with the portal's cookie);
4. a crash of the control plane (kill -9) and a restart: the session is adopted, not restarted
   (the same server and kernels answer through the new control plane);
5. ``stop`` ends the server and frees the GPU; a file written before it is there after ``resume``;
6. idle reclaim with a short timeout: warned (API, CLI, portal), reclaimed, counted, resumed;
7. a ``--preemptible`` session above its queue's guarantee, with a notebook edited in Chromium and
   not saved: another team's job within its guarantee preempts it; the session is warned (in the
   API and in a bar across JupyterLab), its server keeps running through the grace period,
   JupyterLab's autosave saves the edit, then it stops; once GPUs free up it starts again by
   itself, and the edit is in the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from raytest_support import clock
from websockets.sync.client import connect

from browser_support import shared_browser
from gpupool.adapters.ray.cluster import free_port
from gpupool.adapters.ray.procs import start_time
from gpupool.client import Client
from gpupool.engine.model import SESSION_AUTOSAVE
from portal.conftest import ARTIFACTS, shot

QUEUES = """
partitions:
  - name: default
    queues:
      - name: root
        submitacl: ""
        adminacl: " admins"
        queues:
          - name: team-a
            submitacl: " team-a"
            resources: {guaranteed: {gpu: 2}, max: {gpu: 4}}
          - name: team-b
            submitacl: " team-b"
            resources: {guaranteed: {gpu: 2}, max: {gpu: 4}}
          - name: short
            submitacl: " team-a"
            properties: {session.idle.timeout: 12s, session.warning: 8s}
            resources: {guaranteed: {gpu: 1}, max: {gpu: 2}}
          - name: lend
            submitacl: " team-a"
            resources: {max: {gpu: 4}}
          - name: claim
            submitacl: " team-b"
            properties: {preemption.delay: 2s}
            resources: {guaranteed: {gpu: 4}, max: {gpu: 4}}
"""
CHECK_INTERVAL = "1"  # seconds between the idle checks (gpupool up --session-check-interval)
SHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "notebooks"  # committed screenshots

GPUPOOL = str(Path(sys.executable).parent / "gpupool")

CELL = """
import os, ray
from gpupool import Client, runtime
ray.init()

@ray.remote
def square(x):
    return x * x

print("GPUS", os.environ["CUDA_VISIBLE_DEVICES"], runtime.gpu_ids(), runtime.node())
print("RAY", ray.get(square.remote(7)))
print("SDK", Client().whoami().user)
print("TOKEN", os.environ["GPUPOOL_TOKEN"])
with open("from-the-kernel.txt", "w") as f:
    f.write("written by a cell")
"""


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = clock() + timeout
    while True:
        value = what()
        if value:
            return value
        if clock() > deadline:
            raise AssertionError(f"{message} within {timeout:g}s (last: {value!r})")
        threading.Event().wait(0.3)


class Platform:
    """``gpupool up`` on a data dir of its own, stopped (SIGTERM: it stops its cluster) at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.data = work / "data"
        (work / "queues.yaml").write_text(QUEUES)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / "up.log").open("ab")
        self.tokens: dict[str, str] = {}
        self.start()

    def start(self) -> None:
        cmd = [GPUPOOL, "up", "--data-dir", str(self.data), "--port", str(self.port)]
        cmd += ["--config", str(self.work / "queues.yaml"), "--cluster", "2xT4:2:cpu=4:memory=6Gi"]
        cmd += ["--session-check-interval", CHECK_INTERVAL]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def crash(self) -> None:
        """kill -9 the control plane alone: its Ray cluster and what runs there go on."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait_up(self, timeout: float = 240.0) -> None:
        def answers() -> bool:
            assert self.proc.poll() is None, f"gpupool up exited with {self.proc.returncode}"
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False).status_code == 200
            return False

        wait_for(answers, timeout, "gpupool up did not answer")

    def token(self, user: str, groups: str) -> str:
        if user not in self.tokens:
            out = self.cli("token", "create", user, "--groups", groups, "--json")
            assert out.returncode == 0, out.stderr
            self.tokens[user] = json.loads(out.stdout)["token"]
        return self.tokens[user]

    def client(self, token: str) -> Client:
        return Client(self.url, token)

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GPUPOOL_DATA_DIR": str(self.data), "COLUMNS": "200"}
        env.pop("GPUPOOL_TOKEN", None)
        if token is not None:
            env["GPUPOOL_TOKEN"] = token
        return subprocess.run(
            [GPUPOOL, *args], capture_output=True, text=True, env=env, timeout=600, check=False
        )

    def gpus_used(self) -> float:
        with Client(self.url, (self.data / "admin.token").read_text().strip()) as gp:
            return sum(float(q.allocated.get("gpu", 0)) for q in gp.queues() if q.path.startswith("root."))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=180)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, the one the portal tests use (see browser_support)."""
    with shared_browser() as b:
        yield b


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = Platform(tmp_path_factory.mktemp("notebooks-live"))
    try:
        p.wait_up()
        yield p
    finally:
        p.stop()


def run_cell(ws_url: str, token: str, code: str, timeout: float = 120.0) -> str:
    """Run ``code`` in the kernel behind ``ws_url`` (Jupyter's kernel protocol over the
    websocket, JSON messages) and return what it printed; fails on an error in the cell. The
    sync client: the test process may hold a running event loop (Playwright's)."""
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    printed: list[str] = []
    deadline = clock() + timeout
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
        ws.send(json.dumps(request))
        while True:
            msg = json.loads(ws.recv(timeout=max(0.1, deadline - clock())))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                printed.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("the cell failed: " + "\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                return "".join(printed)


def run_in_terminal(ws_url: str, token: str, command: str, expect: str, timeout: float = 60.0) -> str:
    """Type ``command`` into the terminal behind ``ws_url`` (terminado's JSON messages) and return
    its output once ``expect`` shows in it."""
    out = ""
    deadline = clock() + timeout
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
        ws.send(json.dumps(["stdin", command + "\r"]))
        while expect not in out:
            msg = json.loads(ws.recv(timeout=max(0.1, deadline - clock())))
            if msg[0] == "stdout":
                out += msg[1]
    return out


@contextlib.contextmanager
def portal_page(
    browser: Any, platform: Platform, token: str, session: str, size: tuple[int, int]
) -> Iterator[Any]:
    """A page of a new browser context signed in to the portal's Notebooks page, where ``session``
    is running; the context is closed at the end."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    context.set_default_timeout(60_000)  # JupyterLab's bundles on a busy 2-core machine
    try:
        page = context.new_page()
        page.goto(f"{platform.url}/portal/notebooks")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector(f"#notebooks tbody tr[data-name={session}][data-state=running]")
        yield page
    finally:
        context.close()


def test_bad_input_stores_nothing(platform: Platform) -> None:
    alice = platform.token("alice", "team-a")
    cases = [
        (["-q", "root.nope", "--gpus", "1"], "Error: no queue 'root.nope'"),
        (["-q", "root.team-a", "--gpus", "3"], "Error: refused: no node"),
        (["-q", "root.team-b", "--gpus", "1"], "Error: alice may not submit to root.team-b"),
        (
            ["-q", "root.team-a", "--gpus", "1", "--idle-timeout", "5h"],
            "Error: refused: idle_timeout 5h is more than queue root.team-a allows "
            "(session.idle.timeout.max 4h)",
        ),
    ]
    for args, words in cases:
        out = platform.cli("notebook", "start", "bad", *args, token=alice)
        assert out.returncode == 1, out.stdout + out.stderr
        assert out.stderr.startswith(words), out.stderr
        assert "Traceback" not in out.stderr
    with platform.client(alice) as gp:
        assert gp.notebooks() == [] and gp.list() == []


def test_a_session_runs_jupyter_on_its_gpus_and_ray(platform: Platform) -> None:
    alice = platform.token("alice", "team-a")
    bob = platform.token("bob", "team-b")
    out = platform.cli("notebook", "start", "lab", "-q", "root.team-a", "--gpus", "1", "--json", token=alice)
    assert out.returncode == 0, out.stdout + out.stderr
    nb = json.loads(out.stdout)
    assert (nb["name"], nb["state"], nb["queue"], nb["gpus"]) == ("lab", "running", "root.team-a", 1)
    assert nb["url"] == f"{platform.url}/notebooks/lab/lab" and nb["node"] and len(nb["gpu_ids"]) == 1
    assert platform.cli("notebook", "open", "lab", token=alice).stdout == nb["url"] + "\n"

    base = f"{platform.url}/notebooks/lab"
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        page = h.get(nb["url"])
        assert page.status_code == 200 and "JupyterLab" in page.text  # the real server, no token asked
        kernel = h.post(f"{base}/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kid = kernel.json()["id"]
    with httpx.Client(headers={"Authorization": f"Bearer {bob}"}, timeout=60, trust_env=False) as other:
        refused = other.get(nb["url"])
        assert refused.status_code == 403 and "bob may not open notebook lab" in refused.json()["message"]
        assert other.get(f"{base}/api/kernels").status_code == 403

    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kid}/channels"
    printed = run_cell(ws_url, alice, CELL)
    gpu = ",".join(map(str, nb["gpu_ids"]))
    assert f"GPUS {gpu} {nb['gpu_ids']} {nb['node']}\n" in printed, printed
    assert "RAY 49\n" in printed, printed
    assert "SDK alice\n" in printed, printed
    SESSION_TOKEN.append(printed.split("TOKEN ", 1)[1].split()[0])
    # A terminal through the proxy (REST, then its websocket): a shell in the session's reservation.
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        term = h.post(f"{base}/api/terminals")
        assert term.status_code == 200, term.text
    assert f"TERM-{gpu}" in run_in_terminal(
        base.replace("http://", "ws://") + f"/terminals/websocket/{term.json()['name']}",
        alice,
        "echo TERM-$CUDA_VISIBLE_DEVICES",
        f"TERM-{gpu}",
    )
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        # JupyterLab's autosave, from the session's overrides.json: what a preemption's grace waits for.
        docmanager = h.get(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin").json()
    assert docmanager["schema"]["properties"]["autosaveInterval"]["default"] == SESSION_AUTOSAVE


SESSION_TOKEN: list[str] = []  # the GPUPOOL_TOKEN a cell saw (revoked when the session stops)


# One line each (no indentation for the editor to redo); typed into a JupyterLab cell.
BROWSER_CELL = (
    "import os, ray; ray.init(); square = ray.remote(lambda x: x * x)\n"
    "print('GPUS', os.environ['CUDA_VISIBLE_DEVICES']); print('RAY', ray.get(square.remote(8)))"
)


def test_the_portal_opens_it_in_jupyterlab_and_a_cell_runs(platform: Platform, browser) -> None:
    alice = platform.token("alice", "team-a")
    with platform.client(alice) as gp:
        nb = gp.notebook("lab")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)  # JupyterLab's bundles on a busy 2-core machine
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{platform.url}/portal/notebooks")
        page.get_by_label("API token").fill(alice)
        page.get_by_role("button", name="Sign in").click()
        row = "#notebooks tbody tr[data-name=lab][data-state=running]"
        page.wait_for_selector(f"{row} a.open")
        with context.expect_page() as opened:
            page.click(f"{row} a.open")
        lab = opened.value
        lab.wait_for_selector(".jp-LauncherCard[data-category=Notebook]")
        assert lab.url.startswith(f"{platform.url}/notebooks/lab/lab")
        lab.click(".jp-LauncherCard[data-category=Notebook]")
        try:
            # The kernel up and connected (its websocket through the proxy) before the cell is sent.
            lab.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (ipykernel) | Idle')")
            cell = lab.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
            cell.click()
            lab.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-editor.cm-focused")
            lab.keyboard.insert_text(BROWSER_CELL)
            lab.wait_for_function(
                "() => document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content')"
                ".innerText.includes('square.remote(8)')"
            )
            lab.keyboard.press("Shift+Enter")
            output = lab.wait_for_selector(".jp-OutputArea-output:has-text('RAY 64')", timeout=120_000)
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot(lab, "notebook-live-jupyterlab")
            SHOTS.mkdir(parents=True, exist_ok=True)
            lab.screenshot(path=str(SHOTS / "jupyterlab-through-the-proxy.png"))
        text = output.inner_text()
        assert f"GPUS {','.join(map(str, nb.gpu_ids))}" in text, text
        assert not [e for e in errors if "token" in e.lower()], errors
    finally:
        context.close()


def server_pid(platform: Platform, workload_id: str) -> int:
    """The pid of the session's Jupyter server, from the info file it wrote."""
    (info,) = (platform.data / "jobs" / workload_id / "attempt-1" / "jupyter").glob("jpserver-*.json")
    return int(json.loads(info.read_text())["pid"])


def running(pid: int) -> bool:
    return start_time(pid) is not None  # None: gone, or a zombie


def test_a_crash_of_the_control_plane_leaves_the_session_running(platform: Platform) -> None:
    alice = platform.token("alice", "team-a")
    base = f"{platform.url}/notebooks/lab"
    with platform.client(alice) as gp:
        before = gp.notebook("lab")
    pid = server_pid(platform, before.id)
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        kernels = sorted(k["id"] for k in h.get(f"{base}/api/kernels").json())
    assert len(kernels) == 2  # the one created over REST, the browser's notebook's
    platform.crash()
    platform.start()
    platform.wait_up()
    with platform.client(alice) as gp:
        after = wait_for(lambda: (n := gp.notebook("lab")).state == "running" and n, 120, "not running again")
    assert (after.id, after.node, after.gpu_ids) == (before.id, before.node, before.gpu_ids)
    assert server_pid(platform, after.id) == pid and running(pid)
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        assert sorted(k["id"] for k in h.get(f"{base}/api/kernels").json()) == kernels


def test_stop_frees_the_gpus_and_resume_restores_the_files(platform: Platform) -> None:
    alice = platform.token("alice", "team-a")
    base = f"{platform.url}/notebooks/lab"
    with platform.client(alice) as gp:
        pid = server_pid(platform, gp.notebook("lab").id)
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        put = h.put(
            f"{base}/api/contents/notes.txt", json={"type": "file", "format": "text", "content": "kept"}
        )
        assert put.status_code in (200, 201), put.text
    assert platform.gpus_used() == 1

    out = platform.cli("notebook", "stop", "lab", "--json", token=alice)
    assert out.returncode == 0, out.stderr
    assert (json.loads(out.stdout)["state"], json.loads(out.stdout)["stopped_by"]) == ("stopped", "user")
    wait_for(lambda: platform.gpus_used() == 0, 60, "the session's GPU was not freed")
    assert not running(pid), "its Jupyter server still runs"
    # The token minted for that run no longer works.
    assert len(SESSION_TOKEN) == 1
    with httpx.Client(headers={"Authorization": f"Bearer {SESSION_TOKEN[0]}"}, trust_env=False) as h:
        assert h.get(f"{platform.url}/whoami").status_code == 401
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        assert h.get(f"{base}/lab").status_code == 409  # stopped: nothing to open

    out = platform.cli("notebook", "resume", "lab", "--json", token=alice)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["state"] == "running"
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        for name, content in (("notes.txt", "kept"), ("from-the-kernel.txt", "written by a cell")):
            got = h.get(f"{base}/api/contents/{name}", params={"content": "1", "format": "text"})
            assert got.status_code == 200, got.text
            assert got.json()["content"] == content
    out = platform.cli("notebook", "stop", "lab", token=alice)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: platform.gpus_used() == 0, 60, "the session's GPU was not freed")


def test_an_idle_session_is_warned_then_reclaimed_and_resume_brings_its_files_back(
    platform: Platform,
    browser,
) -> None:
    """root.short reclaims after 12 s idle, warning 8 s ahead; the idle checks run every second."""
    alice = platform.token("alice", "team-a")
    out = platform.cli("notebook", "start", "short", "-q", "root.short", "--gpus", "1", "--json", token=alice)
    assert out.returncode == 0, out.stdout + out.stderr
    nb = json.loads(out.stdout)
    assert (nb["state"], nb["idle_timeout"], nb["warning"]) == ("running", 12, None)
    base = f"{platform.url}/notebooks/short"
    with portal_page(browser, platform, alice, "short", (1100, 640)) as page:
        with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
            put = h.put(
                f"{base}/api/contents/idle.txt", json={"type": "file", "format": "text", "content": "kept"}
            )
            assert put.status_code in (200, 201), put.text  # its last activity
        with platform.client(alice) as gp:
            warned = wait_for(lambda: (n := gp.notebook("short")).warning and n, 60, "no warning")
            assert warned.state == "running" and warned.reclaim_why == "idle", warned
            assert "unless it is used" in warned.warning and warned.reclaim_at is not None
            page.wait_for_selector("#warning-short", timeout=20_000)
            page.screenshot(path=str(SHOTS / "portal-notebooks-warning.png"))
            status = platform.cli("notebook", "status", "short", token=alice)
            assert "warning (idle, at " in status.stdout, status.stdout
            stopped = wait_for(
                lambda: (n := gp.notebook("short")).state == "stopped" and n, 60, "not reclaimed"
            )
            assert stopped.stopped_by == "idle" and stopped.warning is None, stopped
            kinds = [e.kind for e in gp.events(stopped.id)]
            assert kinds.index("reclaim-warning") < kinds.index("state:cancelled"), kinds
    wait_for(lambda: platform.gpus_used() == 0, 60, "the session's GPU was not freed")
    metrics = httpx.get(f"{platform.url}/metrics", trust_env=False).text
    assert 'gpupool_session_idle_gpu_hours_reclaimed_total{queue="root.short"}' in metrics

    out = platform.cli("notebook", "resume", "short", "--json", token=alice)
    assert out.returncode == 0, out.stdout + out.stderr
    with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
        got = h.get(f"{base}/api/contents/idle.txt", params={"content": "1", "format": "text"})
        assert got.status_code == 200 and got.json()["content"] == "kept", got.text
    assert platform.cli("notebook", "stop", "short", token=alice).returncode == 0
    wait_for(lambda: platform.gpus_used() == 0, 60, "the session's GPU was not freed")


TYPED = "print('typed before the preemption')"


def test_a_preempted_session_is_warned_saves_its_edits_and_starts_again(platform: Platform, browser) -> None:
    """root.lend guarantees nothing, so a preemptible session there runs above its guarantee;
    root.claim (team b) is guaranteed all 4 GPUs and preempts after 2 s."""
    alice = platform.token("alice", "team-a")
    bob = platform.token("bob", "team-b")
    start = ["notebook", "start", "borrow", "-q", "root.lend", "--gpus", "2", "--preemptible", "--json"]
    out = platform.cli(*start, token=alice)
    assert out.returncode == 0, out.stdout + out.stderr
    nb = json.loads(out.stdout)
    assert (nb["state"], nb["preemptible"]) == ("running", True), nb
    job = {
        "queue": "root.claim",
        "entrypoint": "sleep 600",
        "task_groups": [{"name": "w", "members": 1, "gpus": 2}],
    }
    with httpx.Client(
        base_url=platform.url, headers={"Authorization": f"Bearer {bob}"}, timeout=60, trust_env=False
    ) as b:
        hold = b.post("/workloads", json={**job, "name": "hold"}).json()["id"]  # the other node
        wait_for(lambda: b.get(f"/workloads/{hold}").json()["state"] == "running", 120, "hold did not run")
        with portal_page(browser, platform, alice, "borrow", (1280, 900)) as page:
            page.goto(nb["url"])
            page.click(".jp-LauncherCard[data-category=Notebook]")
            page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (ipykernel) | Idle')")
            cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
            cell.click()
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-editor.cm-focused")
            page.keyboard.insert_text(TYPED)  # typed, not run and not saved
            claim = b.post("/workloads", json={**job, "name": "claim"}).json()["id"]
            with platform.client(alice) as gp:
                warned = wait_for(lambda: (n := gp.notebook("borrow")).warning and n, 60, "no warning")
                assert warned.reclaim_why == "preemption" and warned.state == "preempting", warned
                # Inside JupyterLab too: the bar the proxy's script shows (it reads every 5 s).
                bar = page.wait_for_selector("#gpupool-warning", timeout=30_000)
                assert bar.inner_text() == f"gpupool: {warned.warning}", bar.inner_text()
                page.screenshot(path=str(SHOTS / "jupyterlab-during-a-preemption-grace.png"))
                # Through the grace period its server answers (the autosave reaches it), then it stops.
                stopped = wait_for(
                    lambda: (n := gp.notebook("borrow")).state in ("preempted", "pending") and n,
                    150,
                    "not preempted",
                )
                assert stopped.warning is None, stopped
                kinds = [e.kind for e in gp.events(stopped.id)]
                assert "reclaim-warning" in kinds, kinds
            wait_for(
                lambda: b.get(f"/workloads/{claim}").json()["state"] == "running", 120, "claim did not run"
            )
        # The hold job ends: the session starts again on the GPUs it frees, by itself.
        assert b.post(f"/workloads/{hold}/cancel").status_code == 200
        with platform.client(alice) as gp:
            again = wait_for(lambda: (n := gp.notebook("borrow")).state == "running" and n, 180, "not back")
        assert again.id == stopped.id == nb["id"], again  # the same session, placed again
        with httpx.Client(headers={"Authorization": f"Bearer {alice}"}, timeout=60, trust_env=False) as h:
            got = h.get(
                f"{platform.url}/notebooks/borrow/api/contents/Untitled.ipynb", params={"content": "1"}
            )
            assert got.status_code == 200, got.text
            sources = ["".join(c["source"]) for c in got.json()["content"]["cells"]]
            assert TYPED in sources, sources
        assert platform.cli("notebook", "stop", "borrow", token=alice).returncode == 0
        assert b.post(f"/workloads/{claim}/cancel").status_code == 200
    wait_for(lambda: platform.gpus_used() == 0, 60, "the GPUs were not freed")
