"""Workloads: what users submit, and their lifecycle as a table of allowed transitions.

A workload is a Ray job or service made of task groups (a head, workers ...), each with a
member count and the resources, GPU types, CPU and memory of one member. The engine turns a
workload into one scheduling-core application with one ask per member; a multi-member
workload is a gang (admitted all or nothing).

This module is pure: no I/O, no clock. Times are seconds passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gpupool.core.config import DEFAULT_GANG_TIMEOUT, DEFAULT_GRACE, Size
from gpupool.core.model import DEFAULT_USER
from gpupool.core.resources import Resources, gpu_milli, gpus_from_milli


class WorkloadState(StrEnum):
    """Where a workload is in its lifecycle; ``TRANSITIONS`` says which moves between states are allowed."""

    PENDING = "pending"  # waiting for the scheduler
    ADMITTED = "admitted"  # placed by the scheduler; being started on the cluster
    RUNNING = "running"  # its job runs
    PREEMPTING = "preempting"  # chosen as a victim: checkpointing, then stopping
    PREEMPTED = "preempted"  # stopped by preemption and requeued: waits to be placed again
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({WorkloadState.SUCCEEDED, WorkloadState.FAILED, WorkloadState.CANCELLED})

# One comment per edge: why a workload moves from one state to another.
TRANSITIONS: dict[WorkloadState, dict[WorkloadState, str]] = {
    WorkloadState.PENDING: {
        WorkloadState.ADMITTED: "the scheduler placed every member",
        WorkloadState.FAILED: "rejected (placement, ACL, gang above max) or a hard gang timed out",
        WorkloadState.CANCELLED: "cancelled while waiting",
    },
    WorkloadState.ADMITTED: {
        WorkloadState.RUNNING: "its job started on the cluster",
        WorkloadState.PENDING: "the cluster could not start it (node lost, start failed): requeued",
        WorkloadState.PREEMPTING: "chosen as a victim before it started",
        WorkloadState.FAILED: "its job could not be started and may not be retried",
        WorkloadState.CANCELLED: "cancelled before it started",
    },
    WorkloadState.RUNNING: {
        WorkloadState.SUCCEEDED: "its job exited 0",
        WorkloadState.FAILED: "its job failed",
        WorkloadState.PREEMPTING: "chosen as a preemption victim: asked to checkpoint",
        WorkloadState.PENDING: "a node it ran on died: requeued as a whole",
        WorkloadState.CANCELLED: "cancelled while running",
    },
    WorkloadState.PREEMPTING: {
        WorkloadState.PREEMPTED: "checkpointed (or its grace period ran out) and stopped: requeued",
        WorkloadState.SUCCEEDED: "finished before it was stopped",
        WorkloadState.FAILED: "failed while stopping",
        WorkloadState.PENDING: "a node it ran on died while it was stopping: requeued",
        WorkloadState.CANCELLED: "cancelled while stopping",
    },
    WorkloadState.PREEMPTED: {
        WorkloadState.ADMITTED: "placed again; resumes from its last checkpoint",
        WorkloadState.CANCELLED: "cancelled while requeued",
        WorkloadState.FAILED: "a hard gang timed out while requeued",
    },
    WorkloadState.SUCCEEDED: {},
    WorkloadState.FAILED: {},
    WorkloadState.CANCELLED: {},
}


class TransitionError(ValueError):
    """A state change the table does not allow."""


@dataclass(frozen=True, slots=True)
class TaskGroup:
    """``members`` identical members; each needs ``resources`` on one node of ``gpu_types``.

    ``alternatives`` are further (resources, GPU types) shapes to fall back through, in order,
    when the first does not fit: what a standard size expands to.
    """

    name: str
    members: int
    resources: Resources
    gpu_types: tuple[str, ...] = ()
    alternatives: tuple[tuple[Resources, tuple[str, ...]], ...] = ()
    max_members: int | None = None  # elastic: grows from ``members`` up to this into idle GPUs

    @classmethod
    def from_size(cls, name: str, members: int, size: Size) -> TaskGroup:
        first, *rest = size.shapes
        return cls(
            name,
            members,
            dict(first.resources),
            first.gpu_types,
            tuple((dict(s.resources), s.gpu_types) for s in rest),
        )


@dataclass(frozen=True, slots=True)
class Disruption:
    """``never``: never preempted, never moved. ``checkpoint``: asked to checkpoint, then
    stopped after at most ``grace`` seconds."""

    policy: str = "checkpoint"
    grace: float = DEFAULT_GRACE


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What a user submitted: task groups, where it asks to run, gang and disruption rules, what to run.

    ``queue`` is the queue asked for (None: the placement rules choose). ``duration`` and
    ``checkpoint_interval`` are read only by the simulator.
    """

    name: str
    task_groups: tuple[TaskGroup, ...]
    queue: str | None = None
    user: str = DEFAULT_USER
    groups: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    gang_style: str = "soft"
    gang_timeout: float = DEFAULT_GANG_TIMEOUT
    span_regions: bool = False  # members of a gang may spread over regions (at a transfer cost)
    disruption: Disruption = field(default_factory=Disruption)
    entrypoint: str | None = None
    working_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    size: str | None = None
    # Simulation only: how long it runs, and how often it checkpoints (0 = never).
    duration: float | None = None
    checkpoint_interval: float = 0.0

    def members(self) -> list[tuple[str, TaskGroup]]:
        """(member name, group) for every required member: ``head-0``, ``worker-0`` ..."""
        return [(f"{g.name}-{i}", g) for g in self.task_groups for i in range(g.members)]

    def member_count(self) -> int:
        """How many required members: ``len(members())`` without building the list."""
        return sum(g.members for g in self.task_groups)

    def has_extras(self) -> bool:
        """Whether an elastic group may grow beyond its members."""
        return any(g.max_members is not None and g.max_members > g.members for g in self.task_groups)

    def extra_members(self) -> list[tuple[str, TaskGroup]]:
        """The optional members of elastic groups, beyond ``members`` up to ``max_members``."""
        return [
            (f"{g.name}-{i}", g)
            for g in self.task_groups
            if g.max_members is not None
            for i in range(g.members, g.max_members)
        ]

    def total_gpus(self) -> int | float:
        """GPUs of all its required members (an int when whole; a share counts its part)."""
        return gpus_from_milli(sum(gpu_milli(g.resources) * g.members for g in self.task_groups))


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of a workload and why; kept in ``Workload.history`` and journalled."""

    at: float
    old: WorkloadState | None
    new: WorkloadState
    reason: str


@dataclass(slots=True)
class Workload:
    """A submitted workload as the engine tracks it: its spec, state and reason, placement, attempts, history.

    State changes go through ``move``, which checks them against ``TRANSITIONS`` and records each one.
    """

    id: str
    spec: WorkloadSpec
    submitted_at: float
    state: WorkloadState = WorkloadState.PENDING
    reason: str = "submitted"
    attempt: int = 0  # how many times it was admitted
    placement: dict[str, str] = field(default_factory=dict)  # member -> node, while admitted
    assigned: dict[str, Resources] = field(default_factory=dict)  # member -> the shape it got
    # member -> the GPU indices of its node the core gave it (a share: one index); the executor
    # shows exactly these to the member's process (CUDA_VISIBLE_DEVICES, runtime.gpu_ids()).
    gpu_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)
    history: list[Transition] = field(default_factory=list)
    started_at: float | None = None  # of the current attempt
    finished_at: float | None = None
    preempt_deadline: float | None = None
    preemptions: int = 0
    # Progress bookkeeping (the simulator's; live mode reports checkpoints here too).
    work_done: float = 0.0  # seconds of useful work kept (up to the last checkpoint)
    checkpoint: str | None = None  # where its last checkpoint lives, if any

    def member_ids(self) -> list[str]:
        return [f"{self.id}/{m}" for m, _ in self.spec.members()]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def move(self, new: WorkloadState, at: float, reason: str) -> Transition:
        """Change state by the table; raises TransitionError on an edge it does not allow."""
        if new not in TRANSITIONS[self.state]:
            raise TransitionError(
                f"workload {self.id}: {self.state.value} -> {new.value} is not allowed ({reason})"
            )
        t = Transition(at, self.state, new, reason)
        self.state = new
        self.reason = reason
        if new in TERMINAL and self.finished_at is None:
            self.finished_at = at  # cancelled or refused ones too: the journal writes it now
        self.history.append(t)
        return t


def member_of(ask_id: str) -> tuple[str, str]:
    """Split an ask/allocation id ``<workload>/<member>`` into its parts."""
    wid, _, member = ask_id.rpartition("/")
    return wid, member
