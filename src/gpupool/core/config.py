"""The queue configuration as data: Apache YuniKorn's ``queues.yaml`` schema plus gpupool's additions.

These frozen dataclasses are what the scheduling core consumes. They are built and validated by
``gpupool.config.parse_config`` from a plain mapping (the YAML is read at the edge, in
``gpupool.configfile``). Names of properties are lower-cased; resource quantities are already in
the core's integer units (see ``gpupool.core.resources``). The properties the core acts on are
parsed once, when a ``QueueConfig`` or ``ChildTemplate`` is built, into a typed
``QueueProperties`` (``settings``); a value the core could not act on is a ``ConfigError``.

gpupool's additions to the YuniKorn schema:

* per-GPU-type quota: ``gpu/<TYPE>`` in ``resources.guaranteed`` / ``resources.max`` counts the
  ``gpu`` of allocations on nodes whose ``gpu-type`` label is ``<TYPE>``;
* a catalog of standard sizes (top-level ``sizes:``): name -> ordered list of shapes to fall back
  through when the first is unavailable;
* the ``session.*`` queue properties: how long a notebook session may stay idle and live, and how
  early it is warned before its GPUs are reclaimed (``SessionLimits``, docs/notebooks.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gpupool.core.configerror import ConfigError, ConfigIssue, DurationError, format_duration, parse_duration
from gpupool.core.resources import GPU_MILLI, Resources

# Queue properties the core understands (YuniKorn names).
PROP_APP_SORT_POLICY = "application.sort.policy"
PROP_APP_SORT_PRIORITY = "application.sort.priority"
PROP_PRIORITY_POLICY = "priority.policy"
PROP_PRIORITY_OFFSET = "priority.offset"
PROP_PREEMPTION_POLICY = "preemption.policy"
PROP_PREEMPTION_DELAY = "preemption.delay"
# gpupool's properties for notebook sessions (inherited from the parent queue, as the above).
PROP_SESSION_IDLE_TIMEOUT = "session.idle.timeout"
PROP_SESSION_IDLE_TIMEOUT_MAX = "session.idle.timeout.max"
PROP_SESSION_LIFETIME = "session.lifetime"
PROP_SESSION_LIFETIME_MAX = "session.lifetime.max"
PROP_SESSION_WARNING = "session.warning"
PROP_SESSION_GPU_THRESHOLD = "session.idle.gpu.threshold"

DEFAULT_PREEMPTION_DELAY = 30.0
DEFAULT_GANG_TIMEOUT = 900.0  # seconds a gang waits for all its members (YuniKorn's default)
DEFAULT_GRACE = 60.0  # seconds a preempted workload gets to checkpoint before it is stopped
DEFAULT_PARTITION = "default"  # the partition a configuration's unnamed (or only) partition is
DEFAULT_COMPACTION_INTERVAL = 300.0  # seconds between compaction rounds of the node pools
# Notebook sessions (docs/notebooks.md says why these values).
DEFAULT_SESSION_IDLE_TIMEOUT = 1800.0  # 30m idle, then the GPUs are reclaimed
DEFAULT_SESSION_IDLE_TIMEOUT_MAX = 4 * 3600.0  # the longest idle timeout a session may ask for
DEFAULT_SESSION_LIFETIME = 8 * 3600.0  # a working day, then the session ends (files kept)
DEFAULT_SESSION_LIFETIME_MAX = 24 * 3600.0  # the longest lifetime a session may ask for
DEFAULT_SESSION_WARNING = 300.0  # the warning comes 5m before a reclaim
DEFAULT_SESSION_GPU_THRESHOLD = 5.0  # GPU utilisation (percent) below which a GPU counts as idle


@dataclass(frozen=True, slots=True)
class BurstHeadroom:
    """The burst-sized headroom policy (see ``NodePool`` and ``docs/elastic.md``): what a pool
    keeps warm when its ``headroom:`` gives a ``window`` and leaves these keys out, and what
    ``gpupool sim replay --autoscale`` gives its gpupool configuration by default."""

    window: float  # seconds of arrivals that size the rate part
    max_nodes: int  # the rate part's cap, in nodes (GPUs' worth with ``fit``)
    fit: bool  # count in GPUs: free GPUs of ready nodes are warm room
    memory: float  # seconds a queue's burst peak is remembered (0 = no series part)
    series: float  # share of each remembered peak kept warm
    series_min: int  # GPUs a peak must reach to count
    series_window: float  # seconds a queue's arrivals are summed over for its peak (0 = window)


# Chosen on the whole Philly trace (docs/elastic.md, "How the defaults were chosen").
DEFAULT_BURST_HEADROOM = BurstHeadroom(
    window=900.0,
    max_nodes=4,
    fit=True,
    memory=28_800.0,
    series=0.2,
    series_min=64,
    series_window=240.0,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_SORT_POLICIES = {"fifo": "fifo", "fair": "fair", "stateaware": "fifo"}
_ENUM_PROPERTIES = {
    PROP_APP_SORT_PRIORITY: ("enabled", "disabled"),
    PROP_PRIORITY_POLICY: ("default", "fence"),
    PROP_PREEMPTION_POLICY: ("default", "fence", "disabled"),
}


class PropertyError(ValueError):
    """A queue property value the core cannot act on: ``message`` and a ``hint``."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class QueueProperties:
    """The queue properties the core acts on, typed. None: not set on this queue (inherited or default)."""

    sort_policy: str | None = None  # fifo | fair
    sort_priority: bool | None = None
    priority_policy: str | None = None  # default | fence
    priority_offset: int | None = None
    preemption_policy: str | None = None  # default | fence | disabled
    preemption_delay: float | None = None  # seconds
    session_idle_timeout: float | None = None  # seconds
    session_idle_timeout_max: float | None = None
    session_lifetime: float | None = None
    session_lifetime_max: float | None = None
    session_warning: float | None = None
    session_gpu_threshold: float | None = None  # percent


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """A queue's settings for notebook sessions, resolved (own, else the parent's, else the default).

    Durations in seconds. A session may ask for its own idle timeout and lifetime up to the
    maxima (``gpupool.core.sessions.resolve_session``); ``warning`` is how long before a reclaim
    it is warned; a GPU whose utilisation (percent) is below ``gpu_threshold`` counts as idle.
    """

    idle_timeout: float = DEFAULT_SESSION_IDLE_TIMEOUT
    idle_timeout_max: float = DEFAULT_SESSION_IDLE_TIMEOUT_MAX
    lifetime: float = DEFAULT_SESSION_LIFETIME
    lifetime_max: float = DEFAULT_SESSION_LIFETIME_MAX
    warning: float = DEFAULT_SESSION_WARNING
    gpu_threshold: float = DEFAULT_SESSION_GPU_THRESHOLD


# SessionLimits field <- QueueProperties field <- property name
SESSION_PROPERTIES = {
    "idle_timeout": ("session_idle_timeout", PROP_SESSION_IDLE_TIMEOUT),
    "idle_timeout_max": ("session_idle_timeout_max", PROP_SESSION_IDLE_TIMEOUT_MAX),
    "lifetime": ("session_lifetime", PROP_SESSION_LIFETIME),
    "lifetime_max": ("session_lifetime_max", PROP_SESSION_LIFETIME_MAX),
    "warning": ("session_warning", PROP_SESSION_WARNING),
    "gpu_threshold": ("session_gpu_threshold", PROP_SESSION_GPU_THRESHOLD),
}


def inherit_session_limits(up: SessionLimits | None, own: QueueProperties) -> SessionLimits:
    """A queue's session settings: each its own when set, else its parent's (``up``), else the default."""
    base = up if up is not None else SessionLimits()
    values = {
        name: getattr(own, typed) if getattr(own, typed) is not None else getattr(base, name)
        for name, (typed, _prop) in SESSION_PROPERTIES.items()
    }
    return SessionLimits(**values)


def session_limit_issues(limits: SessionLimits, own: QueueProperties) -> list[tuple[str, str, str]]:
    """What is inconsistent in ``limits`` because of a session property set on this queue
    (``own``): a default above its maximum, a warning not shorter than what it warns of.

    Returns (property name, message, hint) per problem, named after the property this queue set
    (a problem the queue only inherits was reported at the queue that made it).
    """
    out: list[tuple[str, str, str]] = []

    def is_own(name: str) -> bool:
        return getattr(own, SESSION_PROPERTIES[name][0]) is not None

    def said(name: str) -> str:
        """``session.lifetime 8h``, and where the value comes from when not from this queue."""
        text = f"{SESSION_PROPERTIES[name][1]} {format_duration(getattr(limits, name))}"
        return text if is_own(name) else f"{text} (inherited, or the default)"

    pairs = (
        ("idle_timeout", "idle_timeout_max", "at most"),
        ("lifetime", "lifetime_max", "at most"),
        ("warning", "idle_timeout", "shorter than"),
        ("warning", "lifetime", "shorter than"),
    )
    for low, high, relation in pairs:
        lo, hi = getattr(limits, low), getattr(limits, high)
        if not (is_own(low) or is_own(high)) or (lo <= hi if relation == "at most" else lo < hi):
            continue
        key = SESSION_PROPERTIES[low if is_own(low) else high][1]
        low_prop, high_prop = SESSION_PROPERTIES[low][1], SESSION_PROPERTIES[high][1]
        if relation == "at most":
            message = f"{said(low)} is more than {said(high)}"
            hint = f"make {low_prop} at most {format_duration(hi)} or raise {high_prop}"
        else:
            message = f"{said(low)} is not shorter than {said(high)}"
            hint = f"a session is warned that long before its GPUs are reclaimed: make {low_prop} shorter"
        out.append((key, message, hint))
    return out


def check_property(key: str, text: str) -> tuple[str, object]:
    """A property value as the config keeps it (normalised text) and as the core uses it (typed).

    ``key`` is lower-cased. Properties the core does not know keep their text and type as it.
    Raises PropertyError.
    """
    value = text.strip()
    if key == PROP_APP_SORT_POLICY:
        policy = _SORT_POLICIES.get(value.lower())
        if policy is None:
            raise PropertyError(f"unknown application sort policy `{text}`", "use `fifo` or `fair`")
        return policy, policy
    if key in _ENUM_PROPERTIES:
        allowed = _ENUM_PROPERTIES[key]
        if value.lower() not in allowed:
            raise PropertyError(f"unknown {key} `{text}`", "use one of: " + ", ".join(allowed))
        if key == PROP_APP_SORT_PRIORITY:
            return value.lower(), value.lower() != "disabled"
        return value.lower(), value.lower()
    if key == PROP_PRIORITY_OFFSET:
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            raise PropertyError(
                f"priority.offset `{text}` is not a whole number", 'write e.g. priority.offset: "10"'
            )
        if not INT32_MIN <= int(value) <= INT32_MAX:
            raise PropertyError(f"priority.offset {value} is out of range", f"use {INT32_MIN} .. {INT32_MAX}")
        return str(int(value)), int(value)
    if key == PROP_PREEMPTION_DELAY:
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise PropertyError(f"invalid preemption.delay: {exc}") from None
        if seconds <= 0:
            raise PropertyError(
                f"preemption.delay must be more than 0, got `{text}`", "e.g. 30s (the default)"
            )
        return value, seconds
    if key in _SESSION_DURATIONS:
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise PropertyError(f"invalid {key}: {exc}") from None
        if seconds <= 0:
            raise PropertyError(f"{key} must be more than 0, got `{text}`", f"e.g. {_SESSION_DURATIONS[key]}")
        return value, seconds
    if key == PROP_SESSION_GPU_THRESHOLD:
        number = value.removesuffix("%").strip()
        if not re.fullmatch(r"[0-9]+(?:\.[0-9]*)?", number) or not 0 < float(number) <= 100:
            raise PropertyError(
                f"{key} `{text}` is not a percentage above 0 and at most 100",
                f'e.g. {key}: "{DEFAULT_SESSION_GPU_THRESHOLD:g}%" (a GPU busier than that is in use)',
            )
        return f"{float(number):g}%", float(number)
    return text, text


# Each session duration property and its default, as an example in messages.
_SESSION_DURATIONS = {
    PROP_SESSION_IDLE_TIMEOUT: format_duration(DEFAULT_SESSION_IDLE_TIMEOUT),
    PROP_SESSION_IDLE_TIMEOUT_MAX: format_duration(DEFAULT_SESSION_IDLE_TIMEOUT_MAX),
    PROP_SESSION_LIFETIME: format_duration(DEFAULT_SESSION_LIFETIME),
    PROP_SESSION_LIFETIME_MAX: format_duration(DEFAULT_SESSION_LIFETIME_MAX),
    PROP_SESSION_WARNING: format_duration(DEFAULT_SESSION_WARNING),
}

_TYPED = {
    PROP_APP_SORT_POLICY: "sort_policy",
    PROP_APP_SORT_PRIORITY: "sort_priority",
    PROP_PRIORITY_POLICY: "priority_policy",
    PROP_PRIORITY_OFFSET: "priority_offset",
    PROP_PREEMPTION_POLICY: "preemption_policy",
    PROP_PREEMPTION_DELAY: "preemption_delay",
    **{prop: typed for typed, prop in SESSION_PROPERTIES.values()},
}


def typed_properties(properties: Mapping[str, str], owner: str) -> QueueProperties:
    """The typed settings of a property map; raises ConfigError (one line per bad value)."""
    typed: dict[str, object] = {}
    issues: list[ConfigIssue] = []
    for key, text in properties.items():
        name = _TYPED.get(key)
        if name is None:
            continue
        try:
            typed[name] = check_property(key, str(text))[1]
        except PropertyError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            issues.append(ConfigIssue(owner, f"{exc.message}{hint}"))
    if issues:
        raise ConfigError(issues)
    return QueueProperties(**typed)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Filter:
    """A placement rule filter: ``allow`` or ``deny`` for users / groups (names or one regexp)."""

    type: str = "allow"
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlacementRule:
    """One placement rule: ``provided``, ``user``, ``fixed`` or ``tag`` (lower-cased)."""

    name: str
    value: str = ""
    create: bool = False
    parent: PlacementRule | None = None
    filter: Filter | None = None


@dataclass(frozen=True, slots=True)
class Limit:
    """A user / group limit entry, enforced per user and per group at its queue."""

    description: str = ""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    max_resources: Resources | None = None
    max_applications: int | None = None


@dataclass(frozen=True, slots=True)
class ChildTemplate:
    """Settings for queues created under this parent by placement rules."""

    max_applications: int | None = None
    properties: dict[str, str] = field(default_factory=dict)
    guaranteed: Resources | None = None
    max: Resources | None = None
    settings: QueueProperties = field(init=False, repr=False, compare=False, default=QueueProperties())

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", typed_properties(self.properties, "the child template"))


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One configured queue and its children; ``settings`` are its properties, typed."""

    name: str
    parent: bool = False
    guaranteed: Resources | None = None
    max: Resources | None = None
    properties: dict[str, str] = field(default_factory=dict)
    submit_acl: str | None = None
    admin_acl: str | None = None
    max_applications: int | None = None
    limits: tuple[Limit, ...] = ()
    child_template: ChildTemplate | None = None
    queues: tuple[QueueConfig, ...] = ()
    settings: QueueProperties = field(init=False, repr=False, compare=False, default=QueueProperties())

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", typed_properties(self.properties, f"queue {self.name}"))


DEFAULT_NODE_SORT_POLICY = "gpupool"
NODE_SORT_POLICIES = ("gpupool", "fgd", "bestfit", "dotprod", "gpupacking", "binpacking", "fair")


@dataclass(frozen=True, slots=True)
class NodeSortPolicy:
    """How nodes are chosen: ``gpupool`` (the default: gpupool's scoring policy, docs/packing.md),
    ``fgd``, ``bestfit``, ``dotprod``, ``gpupacking`` (scored per ask, core/scored.py), or
    YuniKorn's ``binpacking`` (most used first) and ``fair`` (least used first).

    ``resource_weights`` is None when the config gives none: the core then uses gpupool's
    defaults, in which every GPU resource weighs more than all other resources together. The
    scored policies break ties by the weighted binpacking order.
    """

    type: str = DEFAULT_NODE_SORT_POLICY
    resource_weights: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class PartitionConfig:
    """One entry of ``partitions:``: a queue tree and the rules that hold across it.

    ``limits`` are the root queue's (YuniKorn's partition limits). ``quota_preemption_enabled`` is
    read and shown by the CLI, but the core does not act on it.
    """

    name: str
    root: QueueConfig
    placement_rules: tuple[PlacementRule, ...] = ()
    limits: tuple[Limit, ...] = ()
    node_sort_policy: NodeSortPolicy = field(default_factory=NodeSortPolicy)
    preemption_enabled: bool = True
    quota_preemption_enabled: bool = False


@dataclass(frozen=True, slots=True)
class Shape:
    """One concrete resource shape of a standard size: resources per member and allowed GPU types."""

    resources: Resources
    gpu_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Size:
    """A standard size: an ordered list of shapes, the first preferred."""

    name: str
    shapes: tuple[Shape, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class InstanceType:
    """A kind of machine a node pool can launch, in one region."""

    name: str
    gpu_type: str | None
    gpus: int
    vcore: int  # milli-cores
    memory: int  # bytes
    region: str = "local"
    hourly_cost: float = 0.0
    boot_time: float = 60.0  # seconds from launch until it takes work

    def capacity(self) -> Resources:
        out: Resources = {"vcore": self.vcore, "memory": self.memory}
        if self.gpus:
            out["gpu"] = self.gpus * GPU_MILLI  # whole devices, in the core's milli-GPU
        return out


@dataclass(frozen=True, slots=True)
class NodePool:
    """gpupool addition: a group of nodes that grows and shrinks between ``min`` and ``max``.

    ``instance_types`` are tried in order of preference (then by cost) when it grows;
    ``headroom_nodes`` / ``headroom_gpus`` are kept warm and idle so bursts start at once;
    idle nodes beyond those go after ``idle_timeout`` seconds.

    Burst-sized headroom (``headroom_window`` > 0): the pool keeps warm as many nodes as the
    GPUs asked by the workloads that arrived in the last ``headroom_window`` seconds would fill,
    at least ``headroom_nodes`` and at most ``headroom_max_nodes``. Arrivals come in runs (in
    Philly the arrivals of one 5-minute bin and the next correlate at 0.8), so recent arrivals
    predict the next ones, and when arrivals stop the warm nodes go. With ``headroom_fit`` it is
    counted in GPUs, and series headroom adds a share of each queue's recent burst peak; a
    config pool's ``headroom: {window, maxNodes}`` gets ``DEFAULT_BURST_HEADROOM`` for the rest.
    """

    name: str
    instance_types: tuple[InstanceType, ...]
    min: int = 0
    max: int = 10
    headroom_nodes: int = 0
    headroom_gpus: int = 0
    idle_timeout: float = 300.0
    headroom_window: float = 0.0  # seconds of arrivals that size the headroom; 0 = fixed headroom
    headroom_max_nodes: int = 0  # cap of the burst-sized headroom
    # Series headroom (``capacity.series_headroom_gpus``): between bursts, keep warm this share of
    # the burst peak of each queue that reached at least ``headroom_series_min`` GPUs within one
    # ``headroom_series_window`` in the last ``headroom_memory`` seconds (0 = off).
    headroom_memory: float = 0.0
    headroom_series: float = 0.0
    headroom_series_min: int = 0
    # The window a queue's burst peak is summed over (0 = ``headroom_window``).
    headroom_series_window: float = 0.0
    # The rate part in GPUs: free GPUs of ready nodes count, not only whole idle nodes.
    headroom_fit: bool = False
    transfer_cost: float = 0.0  # $/h for each node a spanning workload uses outside its region


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration, parsed: its partitions, standard sizes, node pools and compaction settings."""

    partitions: tuple[PartitionConfig, ...]
    sizes: dict[str, Size] = field(default_factory=dict)
    nodepools: tuple[NodePool, ...] = ()
    # Compaction of the node pools: every ``compaction_interval`` seconds, move at most
    # ``compaction_budget`` checkpointable workloads to free whole nodes (0 = off).
    compaction_budget: int = 0
    compaction_interval: float = DEFAULT_COMPACTION_INTERVAL

    def partition(self, name: str = DEFAULT_PARTITION) -> PartitionConfig:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(name)
