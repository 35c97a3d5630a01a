"""The driver loop against a small real executor that starts and stops jobs when told."""

from __future__ import annotations

import copy
import itertools

from gpupool.config import parse_config
from gpupool.core.model import NodeSpec
from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.engine.model import Disruption, TaskGroup, WorkloadSpec, WorkloadState
from gpupool.engine.ports import Executor, Finished, NodeDown, Observation, Resizable, Started, Stopped


class StepExecutor(Executor):
    """Starts every job at once; stops preempted ones at their deadline; finishes on request."""

    def __init__(self) -> None:
        self.outbox: list[Observation] = []
        self.running: dict[str, int] = {}
        self.stopping: dict[str, tuple[int, float]] = {}
        self.cancelled: list[str] = []

    def start(self, workload, now):
        self.running[workload.id] = workload.attempt
        self.outbox.append(Started(workload.id, workload.attempt))

    def preempt(self, workload, grace, now):
        self.stopping[workload.id] = (workload.attempt, now + grace)

    def cancel(self, workload, now):
        self.cancelled.append(workload.id)
        self.outbox.append(Stopped(workload.id, workload.attempt))

    def finish(self, wid, ok=True):
        self.outbox.append(Finished(wid, self.running.pop(wid), ok))

    def poll(self, now):
        for wid, (attempt, deadline) in list(self.stopping.items()):
            if now >= deadline:
                del self.stopping[wid]
                self.running.pop(wid, None)
                self.outbox.append(Stopped(wid, attempt, checkpoint=f"/ckpt/{wid}"))
        out, self.outbox = self.outbox, []
        return out


class ResizingExecutor(StepExecutor, Resizable):
    """The step executor, declaring that running jobs can grow and shrink: records each resize."""

    def __init__(self) -> None:
        super().__init__()
        self.resized: list[tuple[str, list[str]]] = []

    def resize(self, workload, now):
        self.resized.append((workload.id, sorted(workload.placement)))


CONFIG = {
    "partitions": [
        {
            "name": "default",
            "queues": [
                {
                    "name": "root",
                    "submitacl": "*",
                    "queues": [
                        {"name": "a", "resources": {"guaranteed": {"gpu": 8}, "max": {"gpu": 16}}},
                        {"name": "b", "resources": {"guaranteed": {"gpu": 8}, "max": {"gpu": 16}}},
                    ],
                }
            ],
        }
    ]
}


def make(nodes: int = 2) -> tuple[Driver, StepExecutor]:
    sched = Scheduler(parse_config(CONFIG).partition("default"))
    for i in range(nodes):
        sched.add_node(NodeSpec(f"n{i}", {"gpu": 8000, "vcore": 64000}))
    ex = StepExecutor()
    return Driver(sched, ex), ex


def spec(queue: str, gpus: int, members: int = 1, **kw) -> WorkloadSpec:
    return WorkloadSpec(
        name=f"{queue}-job",
        queue=queue,
        task_groups=(TaskGroup("worker", members, {"gpu": gpus * 1000}),),
        **kw,
    )


def test_submit_admit_run_finish():
    d, ex = make()
    w = d.submit(spec("root.a", 4, members=2), now=0)
    d.tick(0)
    assert w.state == WorkloadState.ADMITTED and len(w.placement) == 2
    d.tick(1)
    assert w.state == WorkloadState.RUNNING
    ex.finish(w.id)
    d.tick(2)
    assert w.state == WorkloadState.SUCCEEDED
    assert w.id not in d.core.apps and not d.core.allocations
    assert [t.new.value for t in w.history] == ["admitted", "running", "succeeded"]


def test_preempted_workload_checkpoints_requeues_and_resumes():
    d, ex = make()
    hog = d.submit(spec("root.a", 8, members=2, disruption=Disruption("checkpoint", grace=10)), now=0)
    d.tick(0)
    d.tick(1)
    assert hog.state == WorkloadState.RUNNING
    fair = d.submit(spec("root.b", 8), now=1)
    d.tick(40)  # older than preemption.delay: root.b is below its guarantee
    assert hog.state == WorkloadState.PREEMPTING
    d.tick(45)
    assert hog.state == WorkloadState.PREEMPTING  # still inside its grace period
    d.tick(50)
    assert hog.state == WorkloadState.PREEMPTED and hog.checkpoint == f"/ckpt/{hog.id}"
    assert fair.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING)
    ex.finish(fair.id)
    d.tick(60)
    d.tick(61)
    assert hog.state == WorkloadState.RUNNING and hog.attempt == 2 and hog.preemptions == 1


def test_never_workload_is_not_a_victim():
    d, _ = make()
    hog = d.submit(spec("root.a", 8, members=2, disruption=Disruption("never")), now=0)
    d.tick(0)
    fair = d.submit(spec("root.b", 8), now=1)
    d.tick(40)
    d.tick(100)
    assert hog.state == WorkloadState.RUNNING
    assert fair.state == WorkloadState.PENDING
    assert any("preemption cannot help" in line for line in d.why(fair.id))


def test_node_failure_requeues_the_whole_gang():
    d, ex = make(nodes=3)
    w = d.submit(spec("root.a", 8, members=2), now=0)
    d.tick(0)
    d.tick(1)
    lost = next(iter(w.placement.values()))
    ex.outbox.append(NodeDown(lost, "killed"))
    d.tick(2)
    assert lost not in d.core.nodes
    assert w.id in ex.cancelled
    assert w.state in (WorkloadState.PENDING, WorkloadState.ADMITTED)
    d.tick(3)
    assert w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING)
    assert lost not in w.placement.values() and w.attempt == 2


def test_idempotency_key_and_rejection_and_cancel():
    d, _ = make()
    first = d.submit(spec("root.a", 1, idempotency_key="k1"), now=0)
    again = d.submit(spec("root.a", 1, idempotency_key="k1"), now=0)
    assert first is again and len(d.workloads) == 1
    bad = d.submit(spec("root.nope", 1), now=0)
    assert bad.state == WorkloadState.FAILED and "no placement rule" in bad.reason
    big = d.submit(spec("root.a", 8, members=3), now=0)  # 24 GPUs > max 16
    assert big.state == WorkloadState.FAILED and "max" in big.reason
    waiting = d.submit(spec("root.a", 16, members=1), now=0)  # no node has 16 GPUs
    d.tick(0)
    assert waiting.state == WorkloadState.PENDING
    d.cancel(waiting.id, now=1)
    assert waiting.state == WorkloadState.CANCELLED and waiting.id not in d.core.apps


def test_standard_size_falls_back_through_its_shapes_and_a_gang_falls_back_together():
    from gpupool.core.config import Shape, Size

    sched = Scheduler(parse_config(CONFIG).partition("default"))
    sched.add_node(NodeSpec("h", {"gpu": 8000, "vcore": 64000}, {"gpu-type": "H100"}))
    sched.add_node(NodeSpec("a", {"gpu": 8000, "vcore": 64000}, {"gpu-type": "A100"}))
    ex = StepExecutor()
    d = Driver(sched, ex)
    large = Size("large", (Shape({"gpu": 4000}, ("H100",)), Shape({"gpu": 8000}, ("A100",))))
    first = d.submit(WorkloadSpec("one", (TaskGroup.from_size("w", 1, large),), queue="root.a"), now=0)
    d.tick(0)
    assert first.placement == {"w-0": "h"} and first.assigned["w-0"] == {"gpu": 4000}
    gang = d.submit(WorkloadSpec("two", (TaskGroup.from_size("w", 2, large),), queue="root.b"), now=1)
    d.tick(1)
    # 4 H100 GPUs are left: one member would fit there, but a gang never mixes shapes, and two
    # 8-GPU A100 members need two A100 nodes: it waits, saying what it tried.
    assert gang.state == WorkloadState.PENDING
    assert any("other shape(s) did not fit either" in line for line in d.why(gang.id))
    sched.add_node(NodeSpec("a2", {"gpu": 8000, "vcore": 64000}, {"gpu-type": "A100"}))
    d.tick(2)
    assert gang.state == WorkloadState.ADMITTED
    assert sorted(gang.placement.values()) == ["a", "a2"]
    assert all(r == {"gpu": 8000} for r in gang.assigned.values())


def test_elastic_workload_grows_into_idle_gpus_and_gives_extras_back_first():
    sched = Scheduler(parse_config(CONFIG).partition("default"))
    for i in range(2):
        sched.add_node(NodeSpec(f"n{i}", {"gpu": 8000, "vcore": 64000}))
    ex = ResizingExecutor()
    d = Driver(sched, ex)
    group = TaskGroup("worker", 1, {"gpu": 4000}, max_members=4)
    elastic = d.submit(WorkloadSpec("elastic", (group,), queue="root.a"), now=0)
    d.tick(0)
    d.tick(1)
    assert elastic.state == WorkloadState.RUNNING
    assert len(elastic.placement) == 4  # 1 required + 3 extras on the 16 idle GPUs
    assert ex.resized and len(ex.resized[-1][1]) == 4
    # Another team's job needs 8 GPUs: extras are given back before anything else, at once,
    # with no preemption delay and without touching the required member.
    other = d.submit(spec("root.b", 8), now=2)
    d.tick(2)
    d.tick(3)
    assert other.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING)
    assert elastic.state == WorkloadState.RUNNING and elastic.attempt == 1
    assert "worker-0" in elastic.placement and len(elastic.placement) == 2
    assert any("given back" in e[3] for e in d.journal.events if e[0] == elastic.id)
    # When the other job finishes, the elastic workload grows again.
    ex.finish(other.id)
    d.tick(4)
    d.tick(5)
    assert len(elastic.placement) == 4


def test_a_job_that_cannot_start_is_retried_with_back_off_then_fails():
    from gpupool.engine.driver import START_ATTEMPTS, start_backoff
    from gpupool.engine.ports import StartFailed

    d, ex = make()
    starts: list[float] = []

    def refuse(workload, now):
        starts.append(now)
        ex.outbox.append(StartFailed(workload.id, workload.attempt, "its working_dir /nope does not exist"))

    ex.start = refuse
    w = d.submit(spec("root.a", 4), now=0)
    t = 0.0
    while not w.terminal and t < 1000:
        d.tick(t)
        t += 0.5
    assert w.state == WorkloadState.FAILED
    assert len(starts) == START_ATTEMPTS == w.attempt  # bounded: not one start per tick
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= start_backoff(i + 1) for i, gap in enumerate(gaps))  # backs off, doubling
    assert w.reason == f"could not start ({START_ATTEMPTS} attempts): its working_dir /nope does not exist"
    assert not d.core.apps and not d.core.allocations


def test_a_start_that_succeeds_resets_the_count_of_failed_starts():
    from gpupool.engine.ports import StartFailed

    d, ex = make()
    real_start = ex.start
    failing = {"left": 2}

    def flaky(workload, now):
        if failing["left"]:
            failing["left"] -= 1
            ex.outbox.append(StartFailed(workload.id, workload.attempt, "reservation not ready"))
        else:
            real_start(workload, now)

    ex.start = flaky
    w = d.submit(spec("root.a", 4), now=0)
    for t in range(0, 30):
        d.tick(float(t))
    assert w.state == WorkloadState.RUNNING and w.attempt == 3
    assert "retried in 2s (attempt 1 of 5)" in w.history[1].reason
    assert "retried in 4s (attempt 2 of 5)" in w.history[3].reason


def test_restore_puts_a_share_back_on_its_recorded_gpu_or_says_why_not():
    d, _ = make(nodes=1)
    big = d.submit(spec("root.a", 7), now=0)
    share = d.submit(
        WorkloadSpec(name="s", queue="root.b", task_groups=(TaskGroup("worker", 1, {"gpu": 250}),)), now=0
    )
    d.tick(0)
    assert big.gpu_ids == {"worker-0": (0, 1, 2, 3, 4, 5, 6)}
    assert share.gpu_ids == {"worker-0": (7,)}
    # A new control plane where the big job is gone: picked afresh the share would get GPU 0.
    d2, _ = make(nodes=1)
    assert d2.restore(copy.deepcopy(share), 5, adopt=False) == "restored"
    assert d2.core.allocations[f"{share.id}/worker-0"].gpu_ids == (7,)
    assert d2.workloads[share.id].gpu_ids == {"worker-0": (7,)}
    assert d2.core.nodes["n0"].gpu_free == [1000] * 7 + [750]
    # Recorded GPUs the node no longer has: picked afresh, and an event says so.
    gone = copy.deepcopy(share)
    gone.gpu_ids = {"worker-0": (9,)}
    d3, _ = make(nodes=1)
    d3.restore(gone, 5, adopt=False)
    assert d3.workloads[share.id].gpu_ids == {"worker-0": (0,)}
    [event] = [e for e in d3.journal.events if e[2] == "gpus-changed"]
    assert "GPUs [9] of worker-0 not kept after a restart" in event[3] and "(0..7)" in event[3]
