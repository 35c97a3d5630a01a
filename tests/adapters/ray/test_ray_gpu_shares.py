"""GPU shares live on a local Ray cluster of its own: one node with two GPUs (and a head).

Four workloads of 0.25 GPU go to the same GPU of the node, and each job's process sees the index
the core chose (CUDA_VISIBLE_DEVICES and ``gpupool.runtime.gpu_ids()``); a whole-GPU gang takes the
other GPU, never the shared one; a fifth 0.25 then waits, and ``why`` says so in plain words.

Then Ray's own per-GPU accounting is made to disagree with the core's (docs/runtime.md, "GPU
shares"): the processes still see the core's index, and a whole-GPU reservation that Ray cannot
fit on its fragmented instances times out and is requeued.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray
from raytest_support import clock, python, write

from gpupool.adapters.ray.cluster import LocalRayCluster
from gpupool.adapters.ray.executor import RayExecutor
from gpupool.config import parse_config
from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.engine.model import TaskGroup, Workload, WorkloadSpec, WorkloadState

CONFIG = {
    "partitions": [
        {"name": "default", "queues": [{"name": "root", "submitacl": "*", "queues": [{"name": "a"}]}]}
    ]
}

# Writes what the entrypoint sees, then runs until the test is done with it.
SEES = """
import json, os, sys, time
from pathlib import Path
from gpupool import runtime

out = Path(sys.argv[1])
seen = {"gpus": runtime.gpu_ids(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}
(out / (runtime.workload_id() + ".json")).write_text(json.dumps(seen))
deadline = time.time() + 300
while time.time() < deadline and not (out / "stop").exists():
    time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    """A cluster of its own (one start for the module): h100-0 with 2 GPUs. Ray keeps one
    connection per process, so the session cluster's (if any) is dropped first and this one's
    after: the next executor connects afresh."""
    ray.shutdown()
    c = LocalRayCluster("1xH100:2:cpu=4", tmp_path_factory.mktemp("ray-shares"))
    try:
        c.start()
        yield c
    finally:
        ray.shutdown()
        c.stop()


@pytest.fixture
def executor(cluster: LocalRayCluster, tmp_path: Path) -> Iterator[RayExecutor]:
    """A fresh executor per test (it announces the nodes to that test's driver)."""
    assert cluster.address is not None
    ex = RayExecutor(
        cluster.address, tmp_path / "data", term_timeout=2.0, node_poll_interval=0.5, start_timeout=10.0
    )
    yield ex


def share(name: str, milli: int = 250) -> TaskGroup:
    return TaskGroup(name, 1, {"gpu": milli, "vcore": 100, "memory": 1 << 28})


class Harness:
    """A driver on the module's executor, the real clock, and jobs that write what they see."""

    def __init__(self, executor: RayExecutor, tmp_path: Path) -> None:
        self.driver = Driver(Scheduler(parse_config(CONFIG).partition("default")), executor)
        self.t0 = clock()
        self.script = write(tmp_path, "sees", SEES)
        self.out = tmp_path / "seen"
        self.out.mkdir()

    def now(self) -> float:
        return clock() - self.t0

    def tick_until(self, done: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = clock() + timeout
        while not done():
            assert clock() < deadline, [self.driver.why(w) for w in self.driver.workloads]
            failed = [w.reason for w in self.driver.workloads.values() if w.state == WorkloadState.FAILED]
            assert not failed, failed
            self.driver.tick(self.now())
            time.sleep(0.2)

    def submit(self, name: str, *groups: TaskGroup) -> Workload:
        entry = python(self.script, str(self.out))
        return self.driver.submit(
            WorkloadSpec(name=name, queue="root.a", task_groups=groups, entrypoint=entry), now=self.now()
        )

    def running(self, *ws: Workload) -> bool:
        return all((self.out / f"{w.id}.json").exists() and w.state == WorkloadState.RUNNING for w in ws)

    def seen(self, w: Workload) -> dict[str, object]:
        return json.loads((self.out / f"{w.id}.json").read_text())

    def finish(self) -> None:
        (self.out / "stop").touch()
        for w in list(self.driver.workloads.values()):
            if not w.terminal:
                self.driver.cancel(w.id, self.now())
        # Cancelled is terminal at once; the executor removes the reservations as the jobs stop.
        self.tick_until(lambda: not self.reservations(), timeout=60)

    @staticmethod
    def reservations() -> list[str]:
        """gpupool's placement groups that Ray still holds."""
        import ray

        return [
            t["name"]
            for t in ray.util.placement_group_table().values()
            if t["name"].startswith("gpupool.") and t["state"] != "REMOVED"
        ]


def test_four_quarters_share_one_gpu_and_see_its_index(executor: RayExecutor, tmp_path: Path):
    h = Harness(executor, tmp_path)
    driver, out, tick_until, submit, seen = h.driver, h.out, h.tick_until, h.submit, h.seen
    t0 = h.t0
    try:
        quarters = [submit(f"q{i}", share("worker")) for i in range(4)]
        tick_until(lambda: h.running(*quarters))
        ids = {w.gpu_ids["worker-0"] for w in quarters}
        assert len(ids) == 1, ids  # the core put all four on one GPU ...
        (index,) = ids.pop()
        assert {w.placement["worker-0"] for w in quarters} == {"h100-0"}
        for w in quarters:  # ... and each process sees that very index
            assert seen(w) == {"gpus": [index], "cuda": str(index)}, seen(w)
        node = driver.core.nodes["h100-0"]
        assert node.gpu_free[index] == 0 and node.gpu_free[1 - index] == 1000

        # A whole-GPU gang goes to the other GPU, never the shared one.
        gang = submit("gang", TaskGroup("trainer", 1, {"gpu": 1000, "vcore": 500, "memory": 1 << 28}),
                      TaskGroup("helper", 1, {"vcore": 500, "memory": 1 << 28}))  # fmt: skip
        tick_until(lambda: (out / f"{gang.id}.json").exists())
        assert gang.gpu_ids == {"trainer-0": (1 - index,)}
        assert seen(gang) == {"gpus": [1 - index], "cuda": str(1 - index)}

        # No GPU has room for a fifth quarter now: it waits, and why says it in plain words.
        fifth = submit("q4", share("worker"))
        for _ in range(10):
            driver.tick(clock() - t0)
            time.sleep(0.2)
        assert fifth.state == WorkloadState.PENDING
        lines = driver.why(fifth.id)
        text = "\n".join(lines)
        assert lines[0].startswith(f"{fifth.id} (q4) is pending"), lines
        assert "worker-0: no node has a GPU with 0.25 free" in text and "Traceback" not in text, text
        assert not (out / f"{fifth.id}.json").exists()

        # One quarter ends: the fifth takes its room on the shared GPU.
        driver.cancel(quarters[0].id, clock() - t0)
        tick_until(lambda: (out / f"{fifth.id}.json").exists())
        assert fifth.gpu_ids == {"worker-0": (index,)}
        assert seen(fifth) == {"gpus": [index], "cuda": str(index)}
    finally:
        h.finish()


def test_the_core_decides_the_index_when_rays_accounting_differs(executor: RayExecutor, tmp_path: Path):
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from gpupool.adapters.ray import naming

    h = Harness(executor, tmp_path)
    # Half a GPU the core does not know of: Ray's instance 0 has 0.5 left, the core sees 2 free GPUs.
    foreign = placement_group([{"GPU": 0.5}], name="foreign-half")
    assert foreign.wait(30)
    try:
        quarters = [h.submit(f"q{i}", share("worker")) for i in range(4)]
        h.tick_until(lambda: h.running(*quarters))
        assert {w.gpu_ids["worker-0"] for w in quarters} == {(0,)}  # the core: all on GPU 0
        ray_ids = sorted(
            tuple(
                ray.get(
                    ray.get_actor(
                        naming.actor_name(w.id, w.attempt), namespace=naming.NAMESPACE
                    ).launch.remote()
                )["ray_gpu_ids"]
            )
            for w in quarters
        )
        # Ray packs by its own view (best fit): two on its instance 0, two on instance 1 ...
        assert ray_ids == [(0,), (0,), (1,), (1,)], ray_ids
        for w in quarters:  # ... but every process sees the core's GPU 0.
            assert h.seen(w) == {"gpus": [0], "cuda": "0"}, h.seen(w)

        remove_placement_group(foreign)
        foreign = None
        # The core sees GPU 1 free and places a whole GPU there; Ray has half of each instance
        # taken and cannot reserve it: the start times out and the workload waits again.
        whole = h.submit("whole", TaskGroup("trainer", 1, {"gpu": 1000, "vcore": 500, "memory": 1 << 28}))
        h.tick_until(lambda: any("was not ready" in t.reason for t in whole.history), timeout=60)
        assert whole.state in (WorkloadState.PENDING, WorkloadState.ADMITTED), whole.state
        assert not (h.out / f"{whole.id}.json").exists()
    finally:
        if foreign is not None:
            remove_placement_group(foreign)
        h.finish()


def test_an_executor_for_another_cluster_is_refused(executor: RayExecutor, tmp_path: Path) -> None:
    # The process is connected to this module's cluster; another address would silently use it.
    with pytest.raises(RuntimeError, match=r"this process is connected to Ray at .*, not at 127\.0\.0\.1:1$"):
        RayExecutor("127.0.0.1:1", tmp_path / "other")
