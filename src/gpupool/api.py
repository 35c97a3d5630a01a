"""The wire contract of the control plane: pydantic request and response models.

Shared by the service (``gpupool.service``), the SDK (``gpupool.client``) and the CLI, so the
three agree on every field. Nothing here imports the server. Quantities on the wire are in the
scheduling core's units: ``vcore`` in milli-cores, ``memory`` in bytes; GPUs in GPUs, whole
(``2``) or a share of one (``0.25``, kept exactly as 250 milli-GPU).

Error bodies (every 4xx/5xx of the API) are ``ErrorBody``: a stable ``code``, a sentence, the
offending fields (``body.task_groups.0.gpus``) and a hint on what to do.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gpupool.core.config import DEFAULT_GANG_TIMEOUT, DEFAULT_GRACE
from gpupool.core.resources import GPU_MILLI, QuantityError, parse_quantity

__all__ = [
    "AttemptOut",
    "DeployRequest",
    "DeploymentOut",
    "DisruptionIn",
    "ErrorBody",
    "EventOut",
    "FieldError",
    "LogsOut",
    "NodeOut",
    "PoolOut",
    "QueueOut",
    "ReplicaOut",
    "SubmitRequest",
    "TaskGroupIn",
    "TransitionOut",
    "WhoAmI",
    "WhyOut",
    "WorkloadOut",
    "WorkloadState",
]

WorkloadState = Literal[
    "pending", "admitted", "running", "preempting", "preempted", "succeeded", "failed", "cancelled"
]
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
LIST_MAX = 5000  # the largest page of GET /workloads (?limit=)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_GROUP_NAME = r"^[a-z0-9][a-z0-9-]{0,31}$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT32 = 2**31 - 1
# The most members (counting elastic ones up to max_members) one submission may have, over all
# its task groups: bigger requests are refused (docs/service.md, "Limits").
MAX_MEMBERS_PER_SUBMISSION = 1024
MAX_GPUS_PER_MEMBER = 64


# Bounds of the free-form maps of a submission: a tag or an environment that large is a mistake.
MAX_TAGS = 32
MAX_TAG_KEY = 63
MAX_TAG_VALUE = 256
MAX_ENV = 128
MAX_ENV_NAME = 256
MAX_ENV_VALUE = 32768

TagKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_KEY)]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE)]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENV_NAME)]
EnvValue = Annotated[str, StringConstraints(max_length=MAX_ENV_VALUE)]


def _memory_quantity(v: str) -> str:
    """A memory quantity (``16Gi``), checked by the core's parser; its words if it is not one."""
    try:
        parse_quantity("memory", v)
    except QuantityError as exc:
        raise ValueError(str(exc)) from None
    return v


def _gpu_type_name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", v):
        raise ValueError(f"{v!r} is not a GPU type name (letters, digits, . _ -)")
    return v


class _Strict(BaseModel):
    """Unknown fields are refused and types are strict: ``"2"`` or ``true`` is not a number."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TaskGroupIn(_Strict):
    """``members`` identical members, each needing ``gpus`` of one of ``gpu_types`` on one node."""

    name: str = Field("worker", pattern=_GROUP_NAME, description="head, worker ...")
    members: int = Field(1, ge=1, le=4096)
    gpus: int | float = Field(
        0,
        description="GPUs per member: whole GPUs (1..64) or a share of one GPU (0 < gpus < 1, e.g. 0.25)",
        json_schema_extra={"minimum": 0, "maximum": MAX_GPUS_PER_MEMBER},
    )
    gpu_types: list[str] = Field(default_factory=list, description="allowed GPU types; empty = any")
    cpu: float = Field(1.0, gt=0, le=1024, description="cores per member")
    memory: str = Field("4Gi", description="memory per member, e.g. 16Gi")
    max_members: int | None = Field(None, ge=1, le=4096, description="elastic: grow up to this many")

    _memory = field_validator("memory")(_memory_quantity)

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, v: object) -> object:
        # Checked before the int|float union sees it, so that a refusal is one error naming
        # ``gpus`` itself (not one per union member).
        gpu_milli_of(v)
        return v

    @field_validator("gpu_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        for t in v:
            _gpu_type_name(t)
        return v

    @model_validator(mode="after")
    def _elastic(self) -> TaskGroupIn:
        if self.max_members is not None and self.max_members < self.members:
            raise ValueError(f"max_members ({self.max_members}) must be at least members ({self.members})")
        return self

    def resources(self) -> dict[str, int]:
        """Per-member resources in the core's units."""
        out = {"vcore": round(self.cpu * 1000), "memory": parse_quantity("memory", self.memory)}
        if self.gpus:
            out["gpu"] = gpu_milli_of(self.gpus)  # in the core's milli-GPU (a share: 1..999)
        return out


def gpu_milli_of(gpus: object) -> int:
    """GPUs per member as given on the wire (``2``, ``0.25``) in the core's milli-GPU, exactly.

    Raises ValueError with a one-line message saying what is wrong and what to give instead:
    a share finer than 0.001 GPU, or more than one GPU that is not whole (``1.5``)."""
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus != gpus:
        raise ValueError(
            f"Input should be a valid integer (whole GPUs: 1, 2 ...) or a share of one GPU"
            f" (a number below 1: 0.25), got {gpus!r}"
        )
    if gpus < 0:
        raise ValueError(f"GPUs per member must be greater than or equal to 0, got {gpus!r}")
    if gpus > MAX_GPUS_PER_MEMBER:
        raise ValueError(
            f"GPUs per member must be less than or equal to {MAX_GPUS_PER_MEMBER}, got {gpus!r};"
            " split the work over more members"
        )
    if isinstance(gpus, int) or gpus.is_integer():
        return int(gpus) * GPU_MILLI
    if gpus > 1:
        raise ValueError(
            f"{gpus!r} GPUs per member is more than one GPU but not whole: a member gets either a"
            f" share of one GPU (0.001 to 0.999) or whole GPUs; ask {int(gpus)} or {int(gpus) + 1}"
        )
    try:
        return parse_quantity("gpu", gpus)  # exact milli-GPU, or refused
    except QuantityError:
        raise ValueError(
            f"{gpus!r} is finer than a thousandth of a GPU; give a share in steps of 0.001"
            f" (e.g. {max(int(gpus * GPU_MILLI), 1) / GPU_MILLI:g})"
        ) from None


class DisruptionIn(_Strict):
    """``never``: never preempted. ``checkpoint``: asked to checkpoint, stopped after ``grace`` seconds."""

    policy: Literal["never", "checkpoint"] = "checkpoint"
    grace: float = Field(DEFAULT_GRACE, ge=0, le=86400)


class SubmitRequest(_Strict):
    """A workload to run. Give either a standard ``size`` or explicit ``task_groups``."""

    # The rule "exactly one of size or task_groups" (a null one counts as not given), stated in
    # the schema too, so that clients and schema-driven tools know it.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["size"], "properties": {"size": {"type": "string"}}},
                {"required": ["task_groups"], "properties": {"task_groups": {"type": "array"}}},
            ]
        }
    )

    name: str = Field(pattern=_NAME)
    queue: str | None = Field(None, max_length=255, description="leaf queue path, e.g. root.research.vision")
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict, max_length=MAX_TAGS, description="placement tags (tag rules)"
    )
    size: str | None = Field(None, max_length=64, description="a standard size from the config: small ...")
    task_groups: list[TaskGroupIn] | None = Field(None, min_length=1, max_length=16)
    priority: int = Field(0, ge=-_INT32, le=_INT32)
    gang: bool = Field(True, description="admit all members at once (multi-member workloads)")
    gang_style: Literal["soft", "hard"] = "soft"
    gang_timeout: float = Field(DEFAULT_GANG_TIMEOUT, ge=0, le=7 * 86400)
    span_regions: bool = Field(
        False, description="let the members of a gang spread over several regions (default: one region)"
    )
    disruption: DisruptionIn = Field(default_factory=DisruptionIn.model_construct)
    entrypoint: str = Field(min_length=1, max_length=16384, description="the command to run")
    working_dir: str | None = Field(None, max_length=4096)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=MAX_ENV)
    idempotency_key: str | None = Field(None, min_length=1, max_length=128)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for k, value in v.items():
            if not _ENV_NAME.match(k):
                raise ValueError(f"{k!r} is not an environment variable name")
            if "\x00" in value:
                raise ValueError(
                    f"the value of {k} contains a NUL byte, which no process environment can hold"
                )
        return v

    @field_validator("entrypoint", "working_dir")
    @classmethod
    def _runnable(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and "\x00" in v:
            raise ValueError(f"{info.field_name} contains a NUL byte, which no command line or path can hold")
        if info.field_name == "working_dir" and v is not None and not v.startswith("/"):
            raise ValueError(f"working_dir must be an absolute path on the cluster's nodes, got {v!r}")
        return v

    @model_validator(mode="after")
    def _size_or_groups(self) -> SubmitRequest:
        if (self.size is None) == (self.task_groups is None):
            raise ValueError("give exactly one of `size` (a standard size) or `task_groups`")
        if self.task_groups:
            names = [g.name for g in self.task_groups]
            if len(set(names)) != len(names):
                raise ValueError(f"task group names must be unique, got {names}")
            members = sum(max(g.members, g.max_members or 0) for g in self.task_groups)
            if members > MAX_MEMBERS_PER_SUBMISSION:
                raise ValueError(
                    f"{members} members in all (max_members counted) is more than the"
                    f" {MAX_MEMBERS_PER_SUBMISSION} one submission may have; split the job"
                    " or give each member more GPUs"
                )
        return self


# ``module:attribute`` of a Ray Serve application: dotted Python names on both sides.
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
MAX_REPLICAS = 256  # the most replicas one deployment may have


class DeployRequest(_Strict):
    """A model deployment: a Ray Serve application (``import_path``) served by replicas in ``queue``.

    One replica's shape is a standard ``size`` or ``gpus`` (whole, or a share of one GPU: 0.25)
    of ``gpu_type``, with ``cpu`` and ``memory``. Between ``min_replicas`` and ``max_replicas``
    (default: ``min_replicas``) replicas; the scaling settings are Ray Serve's autoscaling ones,
    in seconds.
    """

    name: str = Field(pattern=_NAME)
    import_path: str = Field(max_length=1024, description="module:attribute of a Ray Serve application")
    queue: str = Field(min_length=1, max_length=255, description="leaf queue path, e.g. root.ml.serving")
    size: str | None = Field(None, max_length=64, description="a standard size for one replica")
    gpus: int | float | None = Field(
        None,
        description="GPUs per replica (instead of size): whole (1, 2) or a share of one GPU (0.25)",
        json_schema_extra={"minimum": 0, "maximum": MAX_GPUS_PER_MEMBER},
    )
    gpu_type: str | None = Field(None, description="the GPU type a replica needs (with gpus); none = any")
    cpu: float = Field(1.0, gt=0, le=1024, description="cores per replica (with gpus)")
    memory: str = Field("4Gi", description="memory per replica (with gpus), e.g. 16Gi")
    min_replicas: int = Field(1, ge=0, le=MAX_REPLICAS)
    max_replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS, description="default: min_replicas")
    target_ongoing_requests: float = Field(2.0, gt=0, le=1e6, description="ongoing requests per replica")
    upscale_delay: float = Field(30.0, ge=0, le=86400)
    downscale_delay: float = Field(600.0, ge=0, le=86400)
    look_back: float = Field(30.0, gt=0, le=3600, description="seconds of load averaged")
    scale_to_zero_after: float | None = Field(
        None, ge=0, le=30 * 86400, description="go to 0 replicas after this long without a request"
    )
    max_ongoing_requests: int = Field(5, ge=1, le=100_000, description="requests one replica takes at once")
    working_dir: str | None = Field(None, max_length=4096)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=MAX_ENV)

    @field_validator("import_path")
    @classmethod
    def _import_path(cls, v: str) -> str:
        if not _IMPORT_PATH.match(v):
            raise ValueError(f"expected module:attribute of a Ray Serve app (app.main:app), got {v!r}")
        return v

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, v: object) -> object:
        if v is not None:
            gpu_milli_of(v)
        return v

    @field_validator("gpu_type")
    @classmethod
    def _gpu_type(cls, v: str | None) -> str | None:
        return v if v is None else _gpu_type_name(v)

    _memory = field_validator("memory")(_memory_quantity)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return SubmitRequest._env(v)

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, v: str | None) -> str | None:
        if v is not None and ("\x00" in v or not v.startswith("/")):
            raise ValueError(f"working_dir must be an absolute path on the cluster's nodes, got {v!r}")
        return v


class ReplicaOut(BaseModel):
    """One replica of a deployment: ``placed`` on ``node`` with those GPU indices, ``waiting``
    (``why`` says for what), or ``draining`` (taking no new request, finishing those it has; its
    GPUs are freed when it stops). ``extra``: above ``min_replicas``, given back first."""

    member: str
    state: Literal["placed", "waiting", "draining"]
    node: str | None = None
    gpu_ids: list[int] = Field(default_factory=list)
    extra: bool = False
    why: str | None = None


class ServingStatsOut(BaseModel):
    """A deployment's load and answers as its HTTP entry counts them: requests in flight and
    queued now, requests and errors since it started, p50/p99 latency (ms) over recent ones."""

    in_flight: float = 0
    queued: float = 0
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None


class ScaleDecisionOut(BaseModel):
    """A change of the wanted replica count (``at``: seconds since the epoch) and why."""

    at: float
    old: int
    new: int
    reason: str


class SeriesPointOut(BaseModel):
    """One sample of a deployment (about one a second): replicas placed, ready and wanted, its
    load, and its cumulative requests and errors with the latency of recent requests."""

    at: float
    replicas: int
    ready: int
    desired: int
    in_flight: float
    queued: float
    requests: int
    errors: int
    p50_ms: float | None = None
    p99_ms: float | None = None


class DeploymentSeriesOut(BaseModel):
    """A deployment's samples since ``since`` (oldest first), for charts; ``gpus`` per replica."""

    name: str
    id: str
    gpus: int | float
    points: list[SeriesPointOut] = Field(default_factory=list)


class DeploymentOut(BaseModel):
    """A model deployment as the API reports it: its spec, its workload's state, its replicas.

    ``desired`` is how many replicas the autoscaling loop wants now and ``scale_reason`` why (the
    rule's last words), ``running`` how many hold their GPUs on a node while it runs, ``ready``
    how many take requests. ``url`` is where it answers requests (None until it serves).
    ``gpus`` is per replica (a share is a fraction). ``decisions`` are the latest changes of the
    wanted count, newest last.
    """

    id: str
    name: str
    user: str
    queue: str | None
    state: WorkloadState
    reason: str
    import_path: str
    size: str | None = None
    gpus: int | float = 0
    gpu_types: list[str] = Field(default_factory=list)
    resources: dict[str, int | float] = Field(default_factory=dict)  # per replica, as TaskGroupOut
    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    upscale_delay: float
    downscale_delay: float
    look_back: float
    scale_to_zero_after: float | None = None
    max_ongoing_requests: int = 5
    working_dir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    revision: int = 1
    replaces: str | None = None  # the revision before, during a rolling update
    desired: int = 0
    running: int = 0
    ready: int = 0
    scale_reason: str | None = None
    stats: ServingStatsOut | None = None
    decisions: list[ScaleDecisionOut] = Field(default_factory=list)
    replicas: list[ReplicaOut] = Field(default_factory=list)
    # When replicas wait: how many and what holds them, in one line ("2 of 4 replicas wait: ...").
    held: str | None = None
    url: str | None = None
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    history: list[TransitionOut] = Field(default_factory=list)
    notice: str | None = None


class TransitionOut(BaseModel):
    """One state change of a workload and why; ``at`` in seconds since the epoch."""

    at: float
    old: str | None
    new: str
    reason: str


class TaskGroupOut(BaseModel):
    """A workload's task group: ``members`` members, each asking ``resources`` on a node of ``gpu_types``."""

    name: str
    members: int
    resources: dict[str, int | float]  # GPU quantities in GPUs, the others in the core's units
    gpu_types: list[str] = Field(default_factory=list)


class WorkloadOut(BaseModel):
    """A workload as the API reports it: what was submitted, its state and why, where it runs, its history.

    Times are seconds since the epoch. ``queue`` is the leaf the placement rules chose (the queue it
    named if it never got one); ``placement`` maps each member to its node while it is admitted;
    ``attempt`` counts its admissions.
    """

    id: str
    name: str
    user: str
    queue: str | None
    state: WorkloadState
    reason: str
    priority: int = 0
    size: str | None = None
    task_groups: list[TaskGroupOut] = Field(default_factory=list)
    gpus: int | float = 0  # GPUs of its required members (a share counts its part)
    gang_style: str = "soft"
    gang_timeout: float = DEFAULT_GANG_TIMEOUT
    span_regions: bool = False
    disruption: DisruptionIn = Field(default_factory=DisruptionIn.model_construct)
    entrypoint: str | None = None
    working_dir: str | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=MAX_ENV)
    tags: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = None
    attempt: int = 0
    placement: dict[str, str] = Field(default_factory=dict)
    # member -> the GPU indices of its node the scheduler gave it while it is placed (a share:
    # one index, shared with others); what its process sees in CUDA_VISIBLE_DEVICES.
    gpu_ids: dict[str, list[int]] = Field(default_factory=dict)
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    preemptions: int = 0
    checkpoint: str | None = None
    history: list[TransitionOut] = Field(default_factory=list)
    notice: str | None = Field(
        default=None,
        description="on a submission's response: where it went and why, when that is not the queue "
        "it named (a placement rule of the config sent it elsewhere)",
    )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class EventOut(BaseModel):
    """One entry of a workload's event log: an event, or a state change (``kind`` is ``state:<new>``)."""

    at: float
    kind: str
    message: str
    workload_id: str | None = None


class WhyOut(BaseModel):
    """Why a workload is in its state and what would change it, as lines of text (``gpupool why``)."""

    id: str
    state: WorkloadState
    lines: list[str]


class LogsOut(BaseModel):
    """The log of a workload's job as the cluster returns it, or a note saying why it is unavailable."""

    id: str
    text: str


class QueueOut(BaseModel):
    """One queue of the tree as ``GET /queues`` lists it: its configured quotas and ACLs, and its usage now.

    ``allocated`` and ``pending`` are sums over the queue's subtree; resources at 0 are left out.
    ``serving`` and ``batch`` split ``allocated``: the replicas of model deployments, and the rest.
    """

    path: str
    parent: str | None
    leaf: bool
    # GPU quantities in GPUs (a share is a fraction), the others in the core's units.
    guaranteed: dict[str, int | float] = Field(default_factory=dict)
    max: dict[str, int | float] = Field(default_factory=dict)
    allocated: dict[str, int | float] = Field(default_factory=dict)
    # ``allocated`` split by workload kind: held by model deployments' replicas, and by the rest.
    serving: dict[str, int | float] = Field(default_factory=dict)
    batch: dict[str, int | float] = Field(default_factory=dict)
    pending: dict[str, int | float] = Field(default_factory=dict)
    running_apps: int = 0
    submit_acl: str = ""
    admin_acl: str = ""


class NodeOut(BaseModel):
    """A node as ``GET /nodes`` lists it (booting pool nodes and lost ones too): capacity, use, state."""

    name: str
    gpu_type: str | None
    schedulable: bool
    capacity: dict[str, int | float]  # GPU quantities in GPUs
    allocated: dict[str, int | float]
    # Per GPU index (the index jobs see in CUDA_VISIBLE_DEVICES): the part of it taken, by
    # allocations or room held for a waiting workload (1 whole, 0.25 a quarter shared, 0 free).
    gpu_use: list[int | float] = Field(default_factory=list)
    pool: str | None = None  # the node pool that launched it; None for a static node
    # booting: launched, not taking work yet; draining: cordoned (compaction empties it);
    # terminating: being scaled down; lost: died or left without being scaled down (until it
    # comes back, then ready again).
    state: Literal["booting", "ready", "draining", "terminating", "lost"] = "ready"
    lost_at: float | None = None  # when it was lost (seconds since the epoch)
    lost_reason: str | None = None  # why, as Ray told it


class AttemptOut(BaseModel):
    """One launch attempt of a node pool: ``outcome`` is launching, booted, stockout, boot-failure,
    or adopted (a node taken back after a control-plane restart)."""

    at: float
    pool: str
    instance_type: str
    region: str
    node: str
    outcome: str
    for_workloads: list[str]
    message: str = ""


class PoolOut(BaseModel):
    """A node pool: its bounds, warm headroom, nodes by state and recent launch attempts."""

    name: str
    min: int
    max: int
    headroom_nodes: int
    headroom_gpus: int
    headroom_window: float = 0.0  # > 0: the GPUs asked in this many seconds size the headroom
    headroom_max_nodes: int = 0
    headroom_now: int = 0  # warm nodes the pool keeps at this moment
    headroom_gpus_now: float = 0.0  # free GPUs it keeps at this moment (headroom counted in GPUs)
    idle_timeout: float
    instance_types: list[str]
    nodes: dict[str, int]  # state -> count
    blocked: list[str]  # offers (instance type in region) skipped after a failure, for now
    attempts: list[AttemptOut]  # the most recent last


class WhoAmI(BaseModel):
    """Who the caller's token stands for (``GET /whoami``): its user, groups and whether it is an admin."""

    user: str
    groups: list[str]
    admin: bool


class FieldError(BaseModel):
    """One offending field of a refused request: its dotted location (``body.task_groups.0.gpus``) and why."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer of the API: a stable ``code``, a sentence, the fields and a hint."""

    code: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)
    hint: str = ""
