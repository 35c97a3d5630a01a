"""The Jupyter activity reader against a real Jupyter server (a subprocess of this test, always stopped).

A kernel is started over REST and runs ``time.sleep(3)`` sent over its websocket, as a notebook
tab would: the reader sees it busy, then idle with a later last activity. Waits are bounded
polls for a state, never assertions on how long something took.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from websockets.sync.client import connect

from gpupool.adapters.jupyter_activity import (
    JupyterActivityError,
    JupyterActivityReader,
    ServerActivity,
    parse_time,
)
from gpupool.adapters.ray.cluster import free_port
from gpupool.core.sessions import IdleClock, Keep, SessionPolicy

T = TypeVar("T")
WAIT = 60.0  # the most any state is waited for (a slow, shared machine), not a measure


@dataclass
class Server:
    url: str
    token: str
    root: Path
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, trust_env=False
        )


def wait_for(what: str, probe: Callable[[], T | None], log: Path | None = None) -> T:
    """Poll ``probe`` until it gives a value; fail with ``what`` (and the server's log) after WAIT."""
    deadline = time.monotonic() + WAIT  # noqa: TID251 - tests wait on real processes
    while time.monotonic() < deadline:  # noqa: TID251
        value = probe()
        if value is not None:
            return value
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"gave up waiting for {what}\n{tail}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "notebooks"
    root.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        # Nothing of the user's or another run's Jupyter state: config, data, runtime, IPython.
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    log = base / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--IdentityProvider.token={token}",
                f"--port={port}",
                "--ip=127.0.0.1",
                "--no-browser",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.port_retries=0",
                "--allow-root",  # this machine runs tests as root
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its kernels share its process group, stopped with it
        )
    srv = Server(f"http://127.0.0.1:{port}/", token, root, log)
    try:

        def ready() -> bool | None:
            if proc.poll() is not None:
                pytest.fail(f"jupyter server exited with {proc.returncode}\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError), srv.api() as api:
                return api.get("api/status").status_code == 200 or None
            return None

        wait_for("the jupyter server to answer", ready, log)
        yield srv
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a kernel the server left behind


@pytest.fixture
def reader(server: Server) -> Iterator[JupyterActivityReader]:
    with JupyterActivityReader(server.url, server.token) as r:
        yield r


def test_a_fresh_server_is_idle_and_reading_it_is_not_activity(reader: JupyterActivityReader) -> None:
    first = reader.read()
    assert first.kernels == ()
    assert not first.kernel_busy
    assert first.connections == 0
    assert first.started <= first.last_activity
    again = reader.read()
    assert again.last_activity == first.last_activity  # our two reads did not count
    assert again.latest == first.latest


def test_a_busy_kernel_is_seen_busy_then_idle_with_a_later_last_activity(
    server: Server, reader: JupyterActivityReader
) -> None:
    with server.api() as api:
        kernel = api.post("api/kernels", json={"name": "python3"}).json()
    kid = kernel["id"]

    def idle_kernel() -> ServerActivity | None:
        seen = reader.read()
        return seen if [k.execution_state for k in seen.kernels if k.id == kid] == ["idle"] else None

    started = reader.read()
    # Until a client connects, Jupyter keeps a new kernel `starting`: not busy.
    assert [k.execution_state for k in started.kernels] in (["starting"], ["idle"])
    assert not started.kernel_busy

    ws_url = f"ws://127.0.0.1:{server.url.split(':')[2].rstrip('/')}/api/kernels/{kid}/channels"
    with connect(ws_url, additional_headers={"Authorization": f"token {server.token}"}) as ws:
        before = wait_for("the connected kernel to be idle", idle_kernel, server.log)
        assert not before.kernel_busy
        assert before.connections == 1
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps(execute_request(msg_id, "import time; time.sleep(3)")))
        busy = wait_for(
            "the kernel to be seen busy", lambda: ((r := reader.read()).kernel_busy and r) or None
        )
        assert [k.execution_state for k in busy.kernels] == ["busy"]
        assert busy.latest > before.latest

        def reply() -> dict | None:
            msg = json.loads(ws.recv(timeout=WAIT))
            done = (
                msg["header"]["msg_type"] == "execute_reply" and msg["parent_header"].get("msg_id") == msg_id
            )
            return msg if done else None

        answer = wait_for("the execute_reply", reply)
        assert answer["content"]["status"] == "ok"

    after = wait_for("the kernel to be idle again", idle_kernel, server.log)
    assert not after.kernel_busy
    (k,) = after.kernels
    assert k.last_activity > busy.kernels[0].last_activity  # the reply came after it was seen busy
    assert after.latest >= k.last_activity > before.latest

    # The reading, as the idle clock's observation: activity at the kernel's last message.
    policy = SessionPolicy(idle_timeout=1800.0, lifetime=28800.0, warning=300.0, gpu_threshold=5.0)
    now = after.latest + 60.0
    _, decision = IdleClock.start(policy, after.started).step(after.observe(now, gpu_utilisation=None))
    assert decision == Keep(idle_since=after.latest, reclaim_at=after.latest + 1800.0)
    _, decision = IdleClock.start(policy, busy.started).step(busy.observe(now))
    assert decision == Keep(idle_since=now, reclaim_at=now + 1800.0)  # busy now: idle from now at most


def test_a_client_request_is_activity(server: Server, reader: JupyterActivityReader) -> None:
    before = reader.read()
    (server.root / "a.txt").write_text("x")
    with server.api() as api:
        assert api.get("api/contents").status_code == 200  # what an open JupyterLab tab does
    after = reader.read()
    assert after.last_activity > before.last_activity


def test_a_wrong_token_and_a_closed_port_are_one_line_errors(server: Server) -> None:
    with (
        JupyterActivityReader(server.url, "not-the-token") as wrong,
        pytest.raises(JupyterActivityError) as info,
    ):
        wrong.read()
    assert str(info.value) == f"{server.url}api/status answered HTTP 403 (is the token right?)"
    closed = f"http://127.0.0.1:{free_port()}/"
    with (
        JupyterActivityReader(closed, "t", timeout=5.0) as nobody,
        pytest.raises(JupyterActivityError) as info,
    ):
        nobody.read()
    assert str(info.value).startswith(f"could not read {closed}api/status: ConnectError")
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-12-04T20:31:07.250000Z", datetime(2026, 12, 4, 20, 31, 7, 250000, tzinfo=UTC).timestamp()),
        ("2026-12-04T21:31:07+01:00", datetime(2026, 12, 4, 20, 31, 7, tzinfo=UTC).timestamp()),
        ("2026-12-04T20:31:07", datetime(2026, 12, 4, 20, 31, 7, tzinfo=UTC).timestamp()),
    ],
)
def test_jupyter_times_are_epoch_seconds(text: str, epoch: float) -> None:
    assert parse_time(text, "t") == epoch


def test_a_time_that_is_not_iso_is_an_error() -> None:
    with pytest.raises(JupyterActivityError, match="api/status started 'yesterday' is not an ISO 8601 time"):
        parse_time("yesterday", "api/status started")


def execute_request(msg_id: str, code: str) -> dict[str, object]:
    """A Jupyter messaging-protocol execute_request, as JupyterLab sends it on the shell channel."""
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "date": datetime.now(UTC).isoformat(),  # noqa: TID251 - a real message's time
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
