"""Workloads: what users submit, and their lifecycle as a table of allowed transitions.

A workload is a Ray job or service made of task groups (a head, workers ...), each with a
member count and the resources, GPU types, CPU and memory of one member. The engine turns a
workload into one scheduling-core application with one ask per member; a multi-member
workload is a gang (admitted all or nothing).

A model deployment (``DeploymentSpec``) is a workload of kind ``deployment``: one elastic
task group ``replica`` of ``min_replicas`` members that may grow to ``max_replicas``, not a
gang, with its serving settings in ``WorkloadSpec.serving``.

An interactive notebook session (``NotebookSpec``) is a workload of kind ``notebook``: one
member ``session-0`` that runs a Jupyter server (the executor supplies the command), with its
session settings in ``WorkloadSpec.notebook``. Stopping and resuming a session end one workload
and start another of the same name; its files are kept by name.

This module is pure: no I/O, no clock. Times are seconds passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from gpupool.core.config import DEFAULT_GANG_TIMEOUT, DEFAULT_GRACE, Size
from gpupool.core.model import DEFAULT_USER
from gpupool.core.resources import Resources, gpu_milli, gpus_from_milli
from gpupool.core.serving import ServingPolicy


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
class ServingSpec:
    """What a model deployment serves and how it scales, beyond its replicas' shape and count.

    ``import_path`` is ``module:attribute`` of a Ray Serve application; ``deployment_name`` is
    its ingress deployment's name once known. The scaling fields are ``ServingPolicy``'s;
    ``max_ongoing_requests`` caps the requests one replica takes at once, and
    ``graceful_shutdown_timeout`` is how long a replica being removed may finish what it has.
    ``revision`` counts the deployment's versions (a rolling update makes a new one);
    ``replaces`` is the workload of the revision before, stopped once this one serves.
    """

    import_path: str
    deployment_name: str | None = None
    target_ongoing_requests: float = 2.0
    upscale_delay: float = 30.0
    downscale_delay: float = 600.0
    look_back: float = 30.0
    scale_to_zero_after: float | None = None
    max_ongoing_requests: int = 5
    graceful_shutdown_timeout: float = 20.0
    revision: int = 1
    replaces: str | None = None
    # Set only to 0: a deployment that may have no replica still starts one (its required member).
    min_replicas: int | None = None

    def policy(self, min_replicas: int, max_replicas: int) -> ServingPolicy:
        """The autoscaling policy of a deployment with these bounds."""
        return ServingPolicy(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target_ongoing_requests=self.target_ongoing_requests,
            upscale_delay=self.upscale_delay,
            downscale_delay=self.downscale_delay,
            look_back=self.look_back,
            scale_to_zero_after=self.scale_to_zero_after,
        )


REPLICA_GROUP = "replica"  # the one task group of a deployment
DEPLOYMENT_KIND = "deployment"  # ``WorkloadSpec.kind`` of a model deployment


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """A model deployment as a user asks for it: a Ray Serve app, its queue, a replica's shape,
    how many replicas, how they scale, and where its code lives.

    ``replica`` is the shape of one replica (resources, GPU types and size fallbacks), already
    resolved from ``--size`` or ``--gpus``/``--gpu-type``; its member counts are ignored.
    ``workload()`` is the elastic workload the engine schedules for it.
    """

    name: str
    queue: str
    replica: TaskGroup
    serving: ServingSpec
    min_replicas: int = 1
    max_replicas: int = 1
    size: str | None = None
    working_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: str = DEFAULT_USER
    groups: tuple[str, ...] = ()

    def policy(self) -> ServingPolicy:
        """Its autoscaling policy; raises ValueError naming the field when the bounds are wrong."""
        return self.serving.policy(self.min_replicas, self.max_replicas)

    def workload(self) -> WorkloadSpec:
        """The workload that runs it: one task group ``replica`` of ``min_replicas`` members (at
        least 1: a deployment at zero is parked whole, and wakes with one) that may grow to
        ``max_replicas`` (the elastic machinery), not a gang; each replica is its own ask,
        preempted on its own."""
        required = max(self.min_replicas, 1)
        group = TaskGroup(
            REPLICA_GROUP,
            required,
            dict(self.replica.resources),
            self.replica.gpu_types,
            self.replica.alternatives,
            max_members=self.max_replicas if self.max_replicas > required else None,
        )
        serving = self.serving
        if self.min_replicas == 0:
            serving = replace(serving, min_replicas=0)
        return WorkloadSpec(
            name=self.name,
            task_groups=(group,),
            queue=self.queue,
            user=self.user,
            groups=self.groups,
            # Not a gang (the driver makes no core gang of a deployment): replicas are placed and
            # preempted one by one; a soft gang that gives up at once, should anything read it.
            gang_style="soft",
            gang_timeout=0.0,
            working_dir=self.working_dir,
            env=dict(self.env),
            size=self.size,
            kind=DEPLOYMENT_KIND,
            serving=serving,
        )


def deployment_of(spec: WorkloadSpec) -> DeploymentSpec | None:
    """The deployment a workload of kind ``deployment`` runs (None for any other workload)."""
    if spec.kind != DEPLOYMENT_KIND or spec.serving is None or not spec.task_groups:
        return None
    group = spec.task_groups[0]
    return DeploymentSpec(
        name=spec.name,
        queue=spec.queue or "",
        replica=group,
        serving=spec.serving,
        min_replicas=spec.serving.min_replicas if spec.serving.min_replicas is not None else group.members,
        max_replicas=group.max_members if group.max_members is not None else group.members,
        size=spec.size,
        working_dir=spec.working_dir,
        env=dict(spec.env),
        user=spec.user,
        groups=spec.groups,
    )


SESSION_GROUP = "session"  # the one task group of a notebook session
NOTEBOOK_KIND = "notebook"  # ``WorkloadSpec.kind`` of an interactive notebook session
# Seconds between JupyterLab's autosaves of open documents in a session; a preemptible session's
# grace period (SESSION_GRACE) is longer, so a document edited before the preemption is saved.
SESSION_AUTOSAVE = 30
SESSION_GRACE = max(DEFAULT_GRACE, 2.0 * SESSION_AUTOSAVE)


@dataclass(frozen=True, slots=True)
class NotebookSpec:
    """What makes a workload a notebook session: its limits and scheduling class.

    ``idle_timeout`` and ``max_lifetime`` are seconds (None: no limit); ``preemptible`` says
    whether the session may be preempted (a session that is not is never a victim, and runs only
    within its queue's guarantee: ``WorkloadSpec.within_guarantee``).
    """

    idle_timeout: float | None = None
    max_lifetime: float | None = None
    preemptible: bool = False


def notebook_path(name: str) -> str:
    """Where the control plane serves the session ``name`` (its Jupyter server's ``base_url``)."""
    return f"/notebooks/{name}/"


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
    kind: str = "job"  # or "deployment" (``serving`` is then set) or "notebook" (``notebook`` set)
    serving: ServingSpec | None = None
    notebook: NotebookSpec | None = None

    @property
    def within_guarantee(self) -> bool:
        """Whether its members are placed only within their queue's guarantee: a notebook session
        that may not be preempted (``gpupool.core.within_guarantee``, docs/notebooks.md)."""
        return self.kind == NOTEBOOK_KIND and not (self.notebook is not None and self.notebook.preemptible)

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
