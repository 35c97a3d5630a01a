"""Restarting the control plane (gracefully, or kill -9) loses nothing and runs nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .conftest import TEST_CONFIG, free_port
from .executors import wait_until


def _gated_job(tmp_path: Path, name: str) -> tuple[str, Path, Path]:
    """A job that records each start in ``mark`` and runs until ``gate`` exists."""
    mark, gate = tmp_path / f"{name}.starts", tmp_path / f"{name}.go"
    cmd = f"echo start >> {mark}; while [ ! -f {gate} ]; do sleep 0.05; done; echo finished"
    return cmd, mark, gate


def test_restart_restores_states_and_adopts_running_jobs(make_server, database_url, tmp_path):
    data = tmp_path / "data"
    first = make_server(data, database_url)
    gp = first.client()
    cmd, mark, gate = _gated_job(tmp_path, "run")
    running = gp.submit(
        "running",
        queue="root.a",
        entrypoint=cmd,
        task_groups=[{"members": 2, "gpus": 4, "gpu_types": ["H100"]}],
        span_regions=True,
    )
    waiting = gp.submit(
        "waiting",
        queue="root.a",
        entrypoint="true",
        task_groups=[{"members": 4, "gpus": 4, "gpu_types": ["H100"]}],
    )
    done = gp.submit("done", queue="root.b", entrypoint="echo ok", size="small")
    gp.wait(running.id, states={"running"}, timeout=20, interval=0.1)
    gp.wait(done.id, timeout=20, interval=0.1)
    before = {w.id: w for w in gp.list()}
    first.stop()

    second = make_server(data, database_url)
    gp2 = second.client()
    after = {w.id: w for w in gp2.list()}
    assert {k: (w.state, w.attempt, w.placement) for k, w in after.items()} == {
        k: (w.state, w.attempt, w.placement) for k, w in before.items()
    }
    assert [t.new for t in gp2.get(running.id).history] == ["admitted", "running"]
    assert gp2.get(running.id).span_regions is True  # the spec comes back from the journal
    assert gp2.get(done.id).span_regions is False
    # The core holds the running gang on its recorded nodes again.
    queues = {q.path: q for q in gp2.queues()}
    assert queues["root.a"].allocated["gpu"] == 8
    assert gp2.why(waiting.id).state == "pending"
    # Adopted, not started again; and it still finishes through the new control plane.
    assert second.executor.starts == 0
    gate.touch()
    final = gp2.wait(running.id, timeout=20, interval=0.1)
    assert final.state == "succeeded" and final.attempt == 1
    assert mark.read_text().count("start") == 1
    assert "finished" in gp2.logs(running.id)
    # New ids carry on after the recovered ones.
    assert gp2.submit("next", queue="root.b", entrypoint="true", size="small").id > done.id


def test_job_gone_after_restart_is_requeued(make_server, tmp_path):
    data = tmp_path / "data"
    first = make_server(data)
    gp = first.client()
    cmd, mark, gate = _gated_job(tmp_path, "lost")
    w = gp.submit("lost", queue="root.a", entrypoint=cmd, size="small")
    gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    first.stop()
    first.executor.kill_all()
    for pid_file in (data / "jobs").glob(f"{w.id}.*.pid"):
        pid_file.unlink()  # as if its node had been wiped

    second = make_server(data)
    gp2 = second.client()
    again = gp2.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    assert again.attempt == 2
    reasons = [t.reason for t in again.history]
    assert any("not found after a control-plane restart" in r for r in reasons)
    gate.touch()
    assert gp2.wait(w.id, timeout=20, interval=0.1).state == "succeeded"
    assert mark.read_text().count("start") == 2


def test_kill_9_loses_nothing(make_server, tmp_path):
    data = tmp_path / "data"
    port = free_port()
    serve = Path(__file__).parent / "serve.py"
    proc = subprocess.Popen(
        [sys.executable, str(serve), str(data), str(port), str(TEST_CONFIG)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60)
        token = (data / "admin.token").read_text().strip()
        from gpupool.client import Client

        gp = Client(url, token)
        cmd, mark, gate = _gated_job(tmp_path, "k9")
        w = gp.submit("survivor", queue="root.a", entrypoint=cmd, task_groups=[{"members": 2, "gpus": 2}])
        pend = gp.submit(
            "waiter",
            queue="root.b",
            entrypoint="true",
            task_groups=[{"members": 4, "gpus": 4, "gpu_types": ["H100"]}],
        )
        key = gp.submit("keyed", queue="root.b", entrypoint="true", size="small", idempotency_key="k9")
        gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    second = make_server(data)
    gp2 = second.client()
    assert gp2.get(w.id).state == "running" and gp2.get(w.id).attempt == 1
    assert gp2.get(pend.id).state == "pending"
    assert (
        gp2.submit("keyed", queue="root.b", entrypoint="true", size="small", idempotency_key="k9").id
        == key.id
    )
    gate.touch()
    assert gp2.wait(w.id, timeout=20, interval=0.1).state == "succeeded"
    assert mark.read_text().count("start") == 1
    second.executor.kill_all()


def test_journal_spec_round_trips_span_regions_and_reads_rows_without_it():
    from gpupool.engine.model import TaskGroup, WorkloadSpec
    from gpupool.service.journal import spec_from_json, spec_to_json

    spec = WorkloadSpec(name="g", task_groups=(TaskGroup("w", 2, {"gpu": 8000}),), span_regions=True)
    raw = spec_to_json(spec)
    assert raw["span_regions"] is True
    assert spec_from_json(raw).span_regions is True
    del raw["span_regions"]  # a row written before the field existed
    assert spec_from_json(raw).span_regions is False


def test_a_share_keeps_its_gpu_across_a_restart_and_new_work_does_not_overbook_it(
    make_server, database_url, tmp_path
):
    data = tmp_path / "data"
    first = make_server(data, database_url)
    gp = first.client()
    h100 = {"gpu_types": ["H100"]}
    big = gp.submit(
        "big", queue="root.a", entrypoint="sleep 60", task_groups=[{"members": 2, "gpus": 3, **h100}]
    )
    gp.wait(big.id, states={"running"}, timeout=20, interval=0.1)
    share = gp.submit("share", queue="root.a", entrypoint="sleep 60", task_groups=[{"gpus": 0.25, **h100}])
    gp.wait(share.id, states={"running"}, timeout=20, interval=0.1)
    got = gp.get(share.id)
    assert got.gpu_ids == {"worker-0": [3]}, got.gpu_ids  # GPUs 0-2 of both H100 nodes are big's
    node = got.placement["worker-0"]
    gp.cancel(big.id)
    gp.wait(big.id, states={"cancelled"}, timeout=20, interval=0.1)
    first.stop()

    # Restarted with GPU 3 the only one used: picked afresh, the share would be shown GPU 0.
    second = make_server(data, database_url)
    gp2 = second.client()
    assert gp2.get(share.id).state == "running" and second.executor.starts == 0
    assert gp2.get(share.id).gpu_ids == {"worker-0": [3]}
    assert {n.name: n.gpu_use for n in gp2.nodes()}[node] == [0, 0, 0, 0.25]

    # New work fills both H100 nodes: it must go around the share's process, still on GPU 3.
    fill = gp2.submit(
        "fill", queue="root.a", entrypoint="sleep 60", task_groups=[{"members": 2, "gpus": 3, **h100}]
    )
    more = gp2.submit("more", queue="root.a", entrypoint="sleep 60", task_groups=[{"gpus": 0.75, **h100}])
    for w in (fill, more):
        gp2.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    real = {name: [0.0] * 4 for name in ("h100-0", "h100-1")}
    real[node][3] += 0.25  # where the share's process really is
    for w, per in ((fill, 1.0), (more, 0.75)):
        now = gp2.get(w.id)
        for member, ids in now.gpu_ids.items():
            for i in ids:
                real[now.placement[member]][i] += per
    assert all(u <= 1.0 for use in real.values() for u in use), real
    assert {n.name: n.gpu_use for n in gp2.nodes() if n.name in real} == real
    for w in (share, fill, more):
        gp2.cancel(w.id)
