"""RayExecutor on a real local Ray cluster: nodes, gangs pinned to the chosen nodes, finish, fail,
preempt with a checkpoint and resume, grace expiry, cancel, logs, node failure, adoption."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import ray
from raytest_support import CHECKPOINTING, GANG, Watcher, clock, python, workload, write

from gpupool.adapters.ray.cluster import LocalRayCluster, parse_cluster_spec
from gpupool.adapters.ray.executor import RayExecutor
from gpupool.engine.model import WorkloadState
from gpupool.engine.ports import Finished, NodeDown, NodeUp, Started, StartFailed, Stopped


def started(wid: str):
    return lambda o: isinstance(o, Started) and o.workload_id == wid


def ended(wid: str):
    return lambda o: isinstance(o, Finished | Stopped | StartFailed) and o.workload_id == wid


def test_parse_cluster_spec():
    nodes = parse_cluster_spec("2xH100:4, A100:8:cpu=16:memory=128Gi")
    assert [(n.name, n.gpu_type, n.gpus) for n in nodes] == [
        ("h100-0", "H100", 4),
        ("h100-1", "H100", 4),
        ("a100-0", "A100", 8),
    ]
    assert nodes[2].cpus == 16 and nodes[2].memory == 128 * 1024**3
    assert [n.name for n in parse_cluster_spec("1xH100:4", nodes)] == ["h100-2"]
    with pytest.raises(ValueError, match="Hint"):
        parse_cluster_spec("two H100s")


def test_nodes_are_reported_with_gpu_types(cluster: LocalRayCluster, executor: RayExecutor):
    specs = {n.name: n for n in executor.nodes()}
    assert {"h100-0", "h100-1", "a100-0"} <= set(specs)
    assert "head" not in specs
    assert specs["h100-0"].labels == {"gpu-type": "H100"}
    assert specs["a100-0"].labels == {"gpu-type": "A100"}
    assert specs["h100-1"].capacity == {"gpu": 4000, "vcore": 32000, "memory": 256 * 1024**3}
    assert {n.name: n for n in cluster.nodes()}["a100-0"] == specs["a100-0"]
    first = executor.poll(clock())
    assert {o.node.name for o in first if isinstance(o, NodeUp)} >= {"h100-0", "h100-1", "a100-0"}


def test_gang_is_pinned_to_the_chosen_nodes_with_gpu_ids(executor: RayExecutor, tmp_path: Path):
    script = write(tmp_path, "gang", GANG)
    w = workload(
        "gang-1",
        {"head-0": "h100-1", "worker-0": "a100-0", "worker-1": "h100-1"},
        python(script),
        gpus=2,
        groups=(("head", 1), ("worker", 2)),
    )
    watch = Watcher(executor)
    executor.start(w, clock())
    executor.start(w, clock())  # idempotent
    watch.until(started(w.id))
    table = ray.util.placement_group_table()
    pg = next(v for v in table.values() if v["name"] == "gpupool.pg.gang-1.1")
    names = {n["NodeID"]: n["Labels"].get("gpupool.io/node") for n in ray.nodes()}
    assert [names[pg["bundles_to_node_id"][i]] for i in range(3)] == ["h100-1", "a100-0", "h100-1"]
    obs = watch.until(ended(w.id))
    assert obs == Finished(w.id, 1, True, "its job exited 0")
    line = next(x for x in executor.logs(w.id).splitlines() if x.startswith("GANG "))
    out = json.loads(line[5:])
    assert out["entry"]["node"] == "h100-1" and len(out["entry"]["gpus"]) == 2
    assert out["entry"]["cuda"] == ",".join(str(i) for i in out["entry"]["gpus"])
    assert out["members"]["worker-0"]["node"] == "a100-0" and len(out["members"]["worker-0"]["gpus"]) == 2
    assert out["members"]["worker-1"]["node"] == "h100-1"
    # Both members on h100-1 hold distinct GPUs.
    assert not set(out["entry"]["gpus"]) & set(out["members"]["worker-1"]["gpus"])
    assert ray.util.placement_group_table()[pg["placement_group_id"]]["state"] == "REMOVED"


def test_finish_ok_and_fail_and_logs(executor: RayExecutor):
    ok = workload("ok-1", {"worker-0": "h100-0"}, "echo hello from $GPUPOOL_WORKLOAD_ID; exit 0")
    bad = workload("bad-1", {"worker-0": "h100-0"}, "echo about to fail >&2; exit 3")
    watch = Watcher(executor)
    executor.start(ok, clock())
    executor.start(bad, clock())
    # The two jobs race: take their ends in whichever order they come.
    either = lambda o: ended(ok.id)(o) or ended(bad.id)(o)  # noqa: E731
    ends = {o.workload_id: o for o in (watch.until(either), watch.until(either))}  # type: ignore[union-attr]
    assert ends[ok.id] == Finished(ok.id, 1, True, "its job exited 0")
    assert ends[bad.id] == Finished(bad.id, 1, False, "its job exited with code 3")
    assert any(isinstance(o, Started) and o.workload_id == bad.id for o in watch.seen)
    assert executor.logs(ok.id) == "hello from ok-1\n"
    assert "about to fail" in executor.logs(bad.id)
    assert executor.logs("nobody") == ""


def test_start_on_an_unknown_node_fails_with_retry(executor: RayExecutor):
    w = workload("lost-1", {"worker-0": "no-such-node"}, "true")
    executor.start(w, clock())
    obs = Watcher(executor).until(ended(w.id), timeout=5)
    assert isinstance(obs, StartFailed) and obs.retry and "no-such-node" in obs.message


def test_preempt_with_checkpoint_then_resume(executor: RayExecutor, tmp_path: Path):
    script = write(tmp_path, "ckpt", CHECKPOINTING)
    w = workload("ckpt-1", {"worker-0": "h100-0"}, python(script), gpus=4)
    watch = Watcher(executor)
    executor.start(w, clock())
    watch.until(started(w.id))
    time.sleep(1.0)
    t0 = clock()
    executor.preempt(w, grace=30, now=t0)
    stopped = watch.until(ended(w.id))
    assert isinstance(stopped, Stopped) and stopped.checkpoint is not None
    assert clock() - t0 < 25  # it reported well before the grace period ran out
    step = json.loads(Path(stopped.checkpoint).read_text())["step"]
    assert step > 1 and f"attempt-1{os.sep}state.json" in stopped.checkpoint

    w.attempt, w.checkpoint, w.placement = 2, stopped.checkpoint, {"worker-0": "h100-1"}
    executor.start(w, clock())
    assert watch.until(ended(w.id)) == Finished(w.id, 2, True, "its job exited 0")
    logs = executor.logs(w.id)
    assert f"checkpointed at step {step}" in logs
    assert f"resumed from step {step} (attempt 2)" in logs and f"done at step {step + 5}" in logs
    assert logs.startswith("--- attempt 1 ---")


def test_grace_expiry_stops_a_job_that_ignores_the_request(executor: RayExecutor):
    w = workload("deaf-1", {"worker-0": "a100-0"}, "trap '' TERM; while true; do sleep 0.2; done")
    watch = Watcher(executor)
    executor.start(w, clock())
    watch.until(started(w.id))
    t0 = clock()
    executor.preempt(w, grace=2, now=t0)
    executor.preempt(w, grace=2, now=t0)  # idempotent
    obs = watch.until(ended(w.id))
    took = clock() - t0
    assert obs == Stopped(w.id, 1, None)
    assert 2 <= took < 25  # grace, then SIGTERM ignored, SIGKILL after term_timeout


def test_cancel_stops_at_once(executor: RayExecutor):
    w = workload("cancel-1", {"worker-0": "a100-0"}, "sleep 600")
    watch = Watcher(executor)
    executor.start(w, clock())
    watch.until(started(w.id))
    t0 = clock()
    executor.cancel(w, clock())
    assert watch.until(ended(w.id)) == Stopped(w.id, 1, None)
    assert clock() - t0 < 20
    executor.cancel(w, clock())  # after the fact: Stopped again, harmless for the driver
    assert watch.until(ended(w.id), timeout=5) == Stopped(w.id, 1)


def test_node_failure_is_reported_as_node_down(cluster: LocalRayCluster, executor: RayExecutor):
    [name] = cluster.add_node("1xA100:2")
    watch = Watcher(executor)
    watch.until(lambda o: isinstance(o, NodeUp) and o.node.name == name, timeout=30)
    w = workload("victim-1", {"worker-0": name}, "sleep 600", gpus=2)
    executor.start(w, clock())
    watch.until(started(w.id))
    cluster.kill_node(name)
    down = watch.until(lambda o: isinstance(o, NodeDown) and o.name == name, timeout=40)
    assert down.message
    assert name not in {n.name for n in executor.nodes()}
    assert not any(ended(w.id)(o) for o in watch.seen)  # the driver cancels it on NodeDown
    executor.cancel(w, clock())
    assert isinstance(watch.until(ended(w.id), timeout=30), Stopped)


def test_adopt_after_an_executor_restart(cluster: LocalRayCluster, executor: RayExecutor, data_dir: Path):
    w = workload("adopt-1", {"worker-0": "h100-0"}, "echo up; sleep 3; echo bye")
    executor.start(w, clock())
    Watcher(executor).until(started(w.id))
    w.state = WorkloadState.RUNNING
    assert cluster.address is not None
    fresh = RayExecutor(cluster.address, data_dir, term_timeout=2.0)  # all in-memory state is gone
    ghost = workload("ghost-1", {"worker-0": "h100-0"}, "true", attempt=3)
    assert fresh.adopt(ghost) is False
    assert fresh.adopt(w) is True and fresh.adopt(w) is True
    watch = Watcher(fresh)
    watch.until(started(w.id))  # reported again; the driver ignores it for a running workload
    assert watch.until(ended(w.id)) == Finished(w.id, 1, True, "its job exited 0")
    assert fresh.logs(w.id) == "up\nbye\n"
    assert fresh.adopt(w) is False  # it is over: nothing to re-attach to


def test_adopt_then_start_never_runs_two_attempts(cluster: LocalRayCluster, executor: RayExecutor):
    w = workload("twice-1", {"worker-0": "h100-1"}, "sleep 600")
    executor.start(w, clock())
    Watcher(executor).until(started(w.id))
    assert cluster.address is not None
    fresh = RayExecutor(cluster.address, executor.data_dir, term_timeout=2.0)
    w.attempt = 2  # the database requeued it: the new attempt replaces the old one's leftovers
    fresh.start(w, clock())
    watch = Watcher(fresh)
    watch.until(started(w.id))
    live = {e["name"] for e in ray.util.list_named_actors(all_namespaces=True)}
    assert "gpupool.job.twice-1.2" in live and "gpupool.job.twice-1.1" not in live
    fresh.cancel(w, clock())
    assert watch.until(ended(w.id)) == Stopped(w.id, 2, None)
    assert fresh.reap_orphans(keep=set()) == []


def test_gpu_utilisation_is_read_by_a_task_on_the_node(executor: RayExecutor):
    """The reaper's NVML read runs as a CPU-less task pinned to a node: the local cluster's GPUs
    are logical (no NVML), so each node answers None; a node that does not exist is None too."""
    import ray

    from gpupool.adapters.ray.notebooks import read_gpu_utilisation

    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 4
    assert [read_gpu_utilisation(node_id, [0], timeout=30) for node_id in alive] == [None] * 4
    assert read_gpu_utilisation("ff" * 28, [0], timeout=5) is None
