"""A model deployment as the engine sees it: a workload of kind ``deployment`` with one elastic
task group ``replica`` (min replicas required, up to max as extras), not a gang, scheduled by the
existing elastic machinery; and never handed to an executor that does not declare
``RunsDeployments``."""

from __future__ import annotations

import copy

import pytest

from gpupool.config import parse_config
from gpupool.core.model import NodeSpec
from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.engine.model import (
    REPLICA_GROUP,
    DeploymentSpec,
    ServingSpec,
    TaskGroup,
    Workload,
    WorkloadState,
    deployment_of,
)
from gpupool.engine.ports import Adoptable, MemberStopped, RunsDeployments, ServingLoad, can_run_deployments

from .test_engine import CONFIG, ResizingExecutor, spec


class ServingExecutor(ResizingExecutor, RunsDeployments):
    """The resizing step executor, declaring that it runs deployments (their replicas are jobs):
    reports the load set in ``load`` (ongoing requests, all ready), and a replica taken out of a
    placement as stopped at the next poll, or only when ``stop(member)`` is called with
    ``hold_drains``."""

    def __init__(self, hold_drains: bool = False) -> None:
        super().__init__()
        self.load = 0.0
        self.hold_drains = hold_drains
        self.members: dict[str, set[str]] = {}
        self.draining: dict[str, tuple[str, int]] = {}  # member -> (workload, attempt)
        self.hold_starts = False  # True: a start is reported only by ``release_starts``
        self.held: list[Workload] = []

    def start(self, workload, now):
        self.members[workload.id] = set(workload.placement)
        if self.hold_starts:
            self.held = [*self.held, workload]
            return
        super().start(workload, now)

    def release_starts(self, now):
        held, self.held = self.held, []
        for workload in held:
            super().start(workload, now)

    def resize(self, workload, now):
        super().resize(workload, now)
        placed = set(workload.placement)
        for member in sorted(self.members.get(workload.id, set()) - placed):
            self.draining[member] = (workload.id, workload.attempt)
        self.members[workload.id] = placed
        if not self.hold_drains:
            for member in list(self.draining):
                self.stop(member)

    def stop(self, member):
        wid, attempt = self.draining.pop(member)
        self.outbox.append(MemberStopped(wid, attempt, member))

    def serving_load(self, workload):
        ready = len(self.members.get(workload.id, ()))
        return ServingLoad(in_flight=self.load, queued=0, ready=ready)


class AdoptingExecutor(ResizingExecutor, Adoptable):
    """An executor that does not run deployments but re-attaches to anything it is asked to:
    records what it was asked to adopt."""

    def __init__(self) -> None:
        super().__init__()
        self.adopted: list[str] = []

    def adopt(self, workload: Workload) -> bool:
        self.adopted.append(workload.id)
        return True


def driver(ex: ResizingExecutor) -> Driver:
    sched = Scheduler(parse_config(CONFIG).partition("default"))
    for i in range(2):
        sched.add_node(NodeSpec(f"n{i}", {"gpu": 8000, "vcore": 64000}))
    return Driver(sched, ex)


def deployment(min_replicas: int = 2, max_replicas: int = 4, gpus: int = 1000) -> DeploymentSpec:
    return DeploymentSpec(
        name="chat",
        queue="root.a",
        replica=TaskGroup("ignored", 7, {"gpu": gpus, "vcore": 1000}, ("T4",), (({"gpu": gpus}, ("L4",)),)),
        serving=ServingSpec("app.main:app", target_ongoing_requests=3, scale_to_zero_after=600),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        working_dir="/srv/app",
        env={"MODEL": "tiny"},
        user="ana",
        groups=("team-a",),
    )


def test_a_deployment_is_an_elastic_workload_of_replicas_not_a_gang() -> None:
    d = deployment()
    w = d.workload()
    assert w.kind == "deployment" and w.serving == d.serving
    (group,) = w.task_groups
    assert group.name == REPLICA_GROUP == "replica"
    assert (group.members, group.max_members) == (2, 4)
    assert group.resources == {"gpu": 1000, "vcore": 1000}
    assert group.gpu_types == ("T4",) and group.alternatives == (({"gpu": 1000}, ("L4",)),)
    assert (w.gang_style, w.gang_timeout) == ("soft", 0.0)  # replicas start one by one
    assert w.entrypoint is None and w.working_dir == "/srv/app" and w.env == {"MODEL": "tiny"}
    assert (w.queue, w.user, w.groups) == ("root.a", "ana", ("team-a",))
    assert [m for m, _ in w.members()] == ["replica-0", "replica-1"]
    assert [m for m, _ in w.extra_members()] == ["replica-2", "replica-3"]


def test_deployment_of_gives_back_what_was_deployed() -> None:
    d = deployment()
    back = deployment_of(d.workload())
    assert back is not None
    assert (back.name, back.queue, back.min_replicas, back.max_replicas) == ("chat", "root.a", 2, 4)
    assert back.serving == d.serving and back.replica.resources == d.replica.resources
    assert deployment_of(spec("root.a", 1)) is None
    fixed = deployment_of(deployment(min_replicas=3, max_replicas=3).workload())
    assert fixed is not None and (fixed.min_replicas, fixed.max_replicas) == (3, 3)
    assert deployment(3, 3).workload().task_groups[0].max_members is None


def test_the_policy_carries_the_bounds_and_refuses_bad_ones() -> None:
    p = deployment().policy()
    assert (p.min_replicas, p.max_replicas, p.target_ongoing_requests, p.scale_to_zero_after) == (
        2,
        4,
        3,
        600,
    )
    with pytest.raises(ValueError, match=r"min_replicas \(5\) is above max_replicas \(4\)"):
        deployment(min_replicas=5).policy()


def test_replicas_above_the_guarantee_are_given_back_one_by_one_and_the_deployment_runs_on() -> None:
    ex = ServingExecutor()
    d = driver(ex)
    serving = ServingSpec("m:app", target_ongoing_requests=1, upscale_delay=0)
    dep = DeploymentSpec("chat", "root.a", TaskGroup("r", 1, {"gpu": 4000}), serving, 1, 4)
    w = d.submit(dep.workload(), now=0)
    d.tick(0)
    d.tick(1)
    assert w.state == WorkloadState.RUNNING and sorted(w.placement) == ["replica-0"]
    ex.load = 10.0  # wants 10 replicas: capped at max 4, grown into idle GPUs
    d.tick(2)
    d.tick(2)
    assert sorted(w.placement) == ["replica-0", "replica-1", "replica-2", "replica-3"]
    # Another team's job within its guarantee takes 8 GPUs: two extras go back, the min replica stays.
    other = d.submit(spec("root.b", 8), now=2)
    d.tick(2)
    d.tick(40)  # after root.b's preemption delay
    d.tick(41)
    d.tick(42)
    assert other.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING)
    assert w.state == WorkloadState.RUNNING and w.attempt == 1  # two replicas went, each alone
    assert len(w.placement) == 2
    d.cancel(w.id, now=43)
    d.tick(43)
    assert w.state == WorkloadState.CANCELLED
    assert not [a for a in d.core.allocations if a.startswith(f"{w.id}/")]


def test_running_deployments_is_declared_never_assumed() -> None:
    class Forwarding:  # as the control plane wraps its executor (``_JournalFirst``)
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    class NotNow(ServingExecutor):
        def runs_deployments(self) -> bool:
            return False

    assert can_run_deployments(ServingExecutor()) and can_run_deployments(Forwarding(ServingExecutor()))
    for ex in (object(), ResizingExecutor(), Forwarding(ResizingExecutor()), NotNow()):
        assert not can_run_deployments(ex), ex


NO_RUNNER = "not started: model deployments need an executor that runs Ray Serve"


def test_an_executor_that_does_not_run_deployments_is_never_handed_one() -> None:
    ex = ResizingExecutor()  # runs jobs, declares no RunsDeployments
    d = driver(ex)
    dep = DeploymentSpec("chat", "root.a", TaskGroup("r", 1, {"gpu": 1000}), ServingSpec("m:app"), 1, 2)
    w = d.submit(dep.workload(), now=0)
    job = d.submit(spec("root.a", 1), now=0)
    for t in range(3):
        d.tick(float(t))
    assert w.state == WorkloadState.FAILED and w.reason.startswith(NO_RUNNER), w.reason
    assert "docs/serving.md" in w.reason and w.finished_at == 0
    assert w.id not in ex.running and not ex.resized and w.attempt == 0
    assert w.id not in d.core.apps and not [a for a in d.core.allocations if a.startswith(f"{w.id}/")]
    assert job.state == WorkloadState.RUNNING  # a job still runs


def test_a_deployment_restored_from_a_journal_fails_rather_than_being_adopted_or_started() -> None:
    # Written by a control plane whose executor ran deployments: one running, one still waiting.
    first = driver(ServingExecutor())
    dep = DeploymentSpec("chat", "root.a", TaskGroup("r", 1, {"gpu": 8000}), ServingSpec("m:app"), 1, 1)
    running = first.submit(dep.workload(), now=0)
    first.tick(0)
    first.tick(1)
    big = DeploymentSpec("big", "root.a", TaskGroup("r", 1, {"gpu": 8000}), ServingSpec("m:app"), 2, 2)
    waiting = first.submit(big.workload(), now=1)
    first.tick(2)
    assert (running.state, waiting.state) == (WorkloadState.RUNNING, WorkloadState.PENDING)
    # Restored by one whose executor does not run deployments (and would adopt anything).
    ex = AdoptingExecutor()
    d = driver(ex)
    assert d.restore(copy.deepcopy(running), 5) == "failed"
    assert d.restore(copy.deepcopy(waiting), 5) == "failed"
    for t in range(5, 8):
        d.tick(float(t))
    for wid in (running.id, waiting.id):
        w = d.workloads[wid]
        assert w.state == WorkloadState.FAILED and w.reason.startswith(NO_RUNNER), w.reason
        assert w.history[-1].new == WorkloadState.FAILED
    assert not ex.adopted and not ex.running and not ex.resized
    assert not d.core.allocations and not d.core.apps
