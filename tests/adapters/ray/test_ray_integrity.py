"""Work stays inside its reservation, and every scheduled field reaches Ray, on a real local cluster.

* ``runtime.member_options`` of the entrypoint's own member is refused at once (it used to
  wait forever), and the other members' work lands in their bundles without ``ray.init`` first;
* a task the job starts without naming a placement group runs inside the reservation;
* work that escapes it anyway is found within a few polls, stopped, and reported;
* bundles have the shape the core assigned (a fallback shape runs with its own GPUs);
* an entrypoint that cannot start fails at once, in plain words;
* an elastic workload's extra members start and stop live (``resize``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import ray
from raytest_support import Watcher, clock, python, workload, write

from gpupool.adapters.ray.executor import RayExecutor
from gpupool.engine.model import TaskGroup, Workload, WorkloadSpec
from gpupool.engine.ports import Finished, Started, StartFailed, Stopped


def started(wid: str):
    return lambda o: isinstance(o, Started) and o.workload_id == wid


def ended(wid: str):
    return lambda o: isinstance(o, Finished | Stopped | StartFailed) and o.workload_id == wid


def lines(executor: RayExecutor, wid: str, prefix: str) -> list[dict]:
    return [json.loads(x[len(prefix) :]) for x in executor.logs(wid).splitlines() if x.startswith(prefix)]


# The docstring's example, without ray.init() first: member 0 is refused at once, member 1 runs.
MEMBERS = """
import json, ray
from gpupool import runtime

@ray.remote
def where():
    me = ray.get_runtime_context().get_node_id()
    labels = next(n["Labels"] for n in ray.nodes() if n["NodeID"] == me)
    return labels.get("gpupool.io/node"), runtime.gpu_ids()

try:
    runtime.member_options("worker-0")
    print("OUT " + json.dumps({"refused": None}), flush=True)
except ValueError as exc:
    print("OUT " + json.dumps({"refused": str(exc)}), flush=True)
node, gpus = ray.get(where.options(**runtime.member_options("worker-1")).remote(), timeout=60)
print("OUT " + json.dumps({"node": node, "gpus": gpus}), flush=True)
"""


def test_member_options_refuses_the_entrypoints_own_member_and_runs_the_others(
    executor: RayExecutor, tmp_path: Path
):
    w = workload(
        "members-1",
        {"worker-0": "h100-0", "worker-1": "a100-0"},
        python(write(tmp_path, "members", MEMBERS)),
        groups=(("worker", 2),),
    )
    watch = Watcher(executor)
    executor.start(w, clock())
    assert watch.until(ended(w.id), timeout=90) == Finished(w.id, 1, True, "its job exited 0")
    refused, ran = lines(executor, w.id, "OUT ")
    assert "worker-0 is the member this entrypoint runs as" in refused["refused"]
    assert ran["node"] == "a100-0" and len(ran["gpus"]) == 1


# Starts a GPU task and a CPU actor without naming any placement group: both stay inside.
CAPTURED = """
import json, ray
from gpupool import runtime

ray.init()

@ray.remote(num_gpus=1)
def task():
    ctx = ray.get_runtime_context()
    labels = next(n["Labels"] for n in ray.nodes() if n["NodeID"] == ctx.get_node_id())
    return labels.get("gpupool.io/node"), ctx.get_placement_group_id()

@ray.remote
class Actor:
    def where(self):
        return ray.get_runtime_context().get_placement_group_id()

a = Actor.remote()
print("OUT " + json.dumps({"task": ray.get(task.remote(), timeout=60),
                           "actor": ray.get(a.where.remote(), timeout=60),
                           "pg": runtime.placement_group().id.hex()}), flush=True)
"""


def test_tasks_a_job_starts_without_a_placement_group_run_inside_its_reservation(
    executor: RayExecutor, tmp_path: Path
):
    # Member 1's GPU on a100-0 is the only free GPU of the reservation; h100-1 has 4 idle GPUs.
    w = workload(
        "captured-1",
        {"worker-0": "h100-0", "worker-1": "a100-0"},
        python(write(tmp_path, "captured", CAPTURED)),
        groups=(("worker", 2),),
    )
    watch = Watcher(executor)
    executor.start(w, clock())
    assert watch.until(ended(w.id), timeout=90) == Finished(w.id, 1, True, "its job exited 0")
    (out,) = lines(executor, w.id, "OUT ")
    assert out["task"] == ["a100-0", out["pg"]]
    assert out["actor"] == out["pg"]


ESCAPING = """
import time, ray
ray.init()

@ray.remote(num_gpus=2)
def outside():
    time.sleep(600)

ref = outside.options(scheduling_strategy="DEFAULT").remote()  # explicitly not captured
print("started", flush=True)
ray.get(ref)
"""


def _gpus_outside_placement_groups() -> float:
    from ray._private.state import state

    total = state.total_resources_per_node()
    avail = state.available_resources_per_node()
    out = 0.0
    for node_id, res in total.items():
        reserved = sum(v for k, v in res.items() if k.startswith("GPU_group_") and k.count("_") == 2)
        out += res.get("GPU", 0) - avail.get(node_id, {}).get("GPU", 0) - reserved
    return out


def test_work_that_escapes_its_reservation_is_stopped_and_reported(executor: RayExecutor, tmp_path: Path):
    w = workload("escape-1", {"worker-0": "h100-0"}, python(write(tmp_path, "escaping", ESCAPING)))
    watch = Watcher(executor)
    executor.start(w, clock())
    watch.until(started(w.id), timeout=60)
    t0 = clock()
    obs = watch.until(ended(w.id), timeout=60)
    assert isinstance(obs, Finished) and not obs.ok
    assert "started task outside with 2 GPU(s)" in obs.message and "outside its reservation" in obs.message
    deadline = clock() + 20
    while _gpus_outside_placement_groups() > 0:
        assert clock() < deadline, "the escaped task still holds its GPUs"
        time.sleep(0.2)
    print(f"escape stopped and reported {clock() - t0:.1f}s after the job started")


def test_bundles_have_the_shape_the_core_assigned(executor: RayExecutor, tmp_path: Path):
    # The size's first shape is 4 GPUs; the core fell back to its second shape, 2 GPUs.
    spec = WorkloadSpec(
        name="fallback",
        task_groups=(
            TaskGroup(
                "main",
                1,
                {"gpu": 4000, "vcore": 1000},
                ("H100",),
                alternatives=(({"gpu": 2000, "vcore": 1000}, ("A100",)),),
            ),
        ),
        entrypoint="python -c \"from gpupool import runtime; print('GPUS', len(runtime.gpu_ids()))\"",
    )
    w = Workload("fallback-1", spec, 0.0, attempt=1, placement={"main-0": "a100-0"})
    w.assigned = {"main-0": {"gpu": 2000, "vcore": 1000}}
    watch = Watcher(executor)
    executor.start(w, clock())
    watch.until(started(w.id), timeout=60)
    pg = next(v for v in ray.util.placement_group_table().values() if v["name"] == "gpupool.pg.fallback-1.1")
    assert pg["bundles"][0]["GPU"] == 2
    assert watch.until(ended(w.id), timeout=60) == Finished(w.id, 1, True, "its job exited 0")
    assert "GPUS 2" in executor.logs(w.id)


def test_an_entrypoint_that_cannot_start_fails_at_once_in_plain_words(executor: RayExecutor):
    missing = workload("nodir-1", {"worker-0": "h100-1"}, "true")
    missing = Workload(
        missing.id,
        WorkloadSpec("nodir", missing.spec.task_groups, entrypoint="true", working_dir="/no/such/dir"),
        0.0,
        attempt=1,
        placement=missing.placement,
    )
    watch = Watcher(executor)
    executor.start(missing, clock())
    obs = watch.until(ended(missing.id), timeout=60)
    assert obs == StartFailed(
        missing.id, 1, "its working_dir /no/such/dir does not exist on this node", retry=False
    )
    assert not any(v["name"] == "gpupool.pg.nodir-1.1" and v["state"] != "REMOVED" for v in _pgs())


def _pgs() -> list[dict]:
    return list(ray.util.placement_group_table().values())


# Lists its members every 0.3 s and runs a task in each extra member's reservation.
ELASTIC = """
import json, time, ray
from gpupool import runtime

@ray.remote
def where():
    me = ray.get_runtime_context().get_node_id()
    return next(n["Labels"] for n in ray.nodes() if n["NodeID"] == me).get("gpupool.io/node")

for _ in range(400):
    members = runtime.placement()
    ran = {}
    for member, node in members[1:]:
        try:
            ran[member] = ray.get(where.options(**runtime.member_options(member)).remote(), timeout=10)
        except Exception as exc:
            ran[member] = type(exc).__name__
    print("OUT " + json.dumps({"members": members, "ran": ran}), flush=True)
    time.sleep(0.3)
"""


def test_an_elastic_workload_grows_and_shrinks_live(executor: RayExecutor, tmp_path: Path):
    spec = WorkloadSpec(
        name="elastic",
        task_groups=(TaskGroup("worker", 1, {"gpu": 1000, "vcore": 1000}, max_members=2),),
        entrypoint=python(write(tmp_path, "elastic", ELASTIC)),
    )
    w = Workload("elastic-1", spec, 0.0, attempt=1, placement={"worker-0": "h100-0"})
    watch = Watcher(executor)
    executor.start(w, clock())
    watch.until(started(w.id), timeout=60)

    def seen(predicate, timeout: float = 60.0) -> dict:
        deadline = clock() + timeout
        while True:
            out = lines(executor, w.id, "OUT ")
            if out and predicate(out[-1]):
                return out[-1]
            assert clock() < deadline, out[-3:]
            watch.seen.extend(executor.poll(clock()))
            time.sleep(0.3)

    seen(lambda o: len(o["members"]) == 1)
    # The scheduler gave it an extra member on a100-0: it starts there while the job runs.
    w.placement["worker-1"] = "a100-0"
    w.assigned["worker-1"] = {"gpu": 1000, "vcore": 1000}
    executor.resize(w, clock())
    grown = seen(lambda o: o["ran"].get("worker-1") == "a100-0")
    assert grown["members"] == [["worker-0", "h100-0"], ["worker-1", "a100-0"]]
    assert any(v["name"] == "gpupool.pgx.elastic-1.1.worker-1" and v["state"] == "CREATED" for v in _pgs())
    removed = executor.reap_orphans(keep=set())  # what a restart does: the running extra stays
    assert not any("elastic-1" in name for name in removed)
    assert any(v["name"] == "gpupool.pgx.elastic-1.1.worker-1" and v["state"] == "CREATED" for v in _pgs())
    # It is given back: the job sees one member again and the reservation is gone.
    del w.placement["worker-1"], w.assigned["worker-1"]
    executor.resize(w, clock())
    seen(lambda o: len(o["members"]) == 1)
    assert not any(v["name"].startswith("gpupool.pgx.elastic-1.") and v["state"] != "REMOVED" for v in _pgs())
    executor.cancel(w, clock())
    assert isinstance(watch.until(ended(w.id), timeout=60), Stopped)


def test_placement_group_names_map_back_to_their_workload():
    from gpupool.adapters.ray import naming

    assert naming.pg_workload(naming.pg_name("w-000007", 3)) == "w-000007"
    assert naming.pg_workload(naming.extra_pg_name("w-000007", 3, "worker-2")) == "w-000007"
    assert naming.pg_workload("someone.elses.pg") is None


def test_the_next_attempt_resumes_from_the_newest_checkpoint_of_any_attempt(
    executor: RayExecutor, tmp_path: Path
):
    # Attempt 1 was preempted with a checkpoint (the driver keeps it as w.checkpoint); attempt 2
    # reported a newer one, then its node died before it could say so: attempt 3 takes that one.
    from gpupool.adapters.ray import naming

    older, newer = tmp_path / "step-16.json", tmp_path / "step-24.json"
    root = naming.checkpoint_root(executor.data_dir, "newest-1")
    root.mkdir(parents=True, exist_ok=True)
    (root / "latest.json").write_text(json.dumps({"path": str(newer), "attempt": 2}))
    w = workload(
        "newest-1",
        {"worker-0": "h100-1"},
        "python -c \"from gpupool import runtime; print('FROM', runtime.resume_from())\"",
        attempt=3,
    )
    w.checkpoint = str(older)
    watch = Watcher(executor)
    executor.start(w, clock())
    assert watch.until(ended(w.id), timeout=60) == Finished(w.id, 3, True, "its job exited 0")
    assert f"FROM {newer}" in executor.logs(w.id)
