"""The scheduling core's state objects: nodes, applications, asks and allocations.

These are mutable, slotted records owned by ``gpupool.core.state.State``: only the
scheduler changes them, so that every index it keeps (queue usage, node order, sorted asks)
stays consistent. Code outside the core reads them and talks to the scheduler's methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from gpupool.core.config import DEFAULT_GANG_TIMEOUT
from gpupool.core.decisions import Reason
from gpupool.core.resources import GPU_MILLI, GPU_TYPE_LABEL, Resources, add, add_into, gpu_milli, sub_into

if TYPE_CHECKING:
    from gpupool.core.queues import Queue

DEFAULT_USER = "anonymous"  # who submits an application that names no user


class AppState(StrEnum):
    """Lifecycle of an application, YuniKorn's names where they exist.

    Allowed transitions (``APP_TRANSITIONS``), one comment per edge:
    """

    WAITING = "waiting"  # accepted into its queue, nothing allocated yet
    RUNNING = "running"  # has (or had) allocations and is not finished
    COMPLETED = "completed"  # ran, and has neither asks nor allocations left
    REJECTED = "rejected"  # never accepted: placement, ACL, gang above its queue's max
    FAILED = "failed"  # hard gang timeout


APP_TRANSITIONS: dict[AppState, frozenset[AppState]] = {
    AppState.WAITING: frozenset(
        {
            AppState.RUNNING,  # first allocation placed (or restored)
            AppState.FAILED,  # hard gang timed out before it could be placed
            AppState.REJECTED,  # a gang turned out larger than its queue's max
            AppState.COMPLETED,  # every ask was withdrawn before anything ran
        }
    ),
    AppState.RUNNING: frozenset(
        {
            AppState.COMPLETED,  # last allocation released and no ask left
            AppState.FAILED,  # hard gang timed out with members still pending
        }
    ),
    AppState.COMPLETED: frozenset({AppState.RUNNING}),  # new asks arrived after completion
    AppState.REJECTED: frozenset(),
    AppState.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class GangSpec:
    """All-or-nothing admission of an application's pending asks.

    ``style`` is ``soft`` (after ``timeout`` seconds, fall back to placing asks one by one) or
    ``hard`` (after the timeout, the application fails). The timeout counts from the
    application's submission: the creation time of its earliest ask.

    The members of a gang stay in one region (the ``gpupool/region`` label of pool nodes)
    unless ``span_regions`` allows them to spread over several.
    """

    style: str = "soft"
    timeout: float = DEFAULT_GANG_TIMEOUT
    span_regions: bool = False


def per_gpu(milli: int) -> int:
    """Milli-GPU an ask of ``milli`` takes on each GPU it holds: a share all on one GPU, whole
    GPUs 1000 each."""
    return milli if milli < GPU_MILLI else GPU_MILLI


def pick_gpus(free: list[int], milli: int) -> tuple[int, ...] | None:
    """The GPUs an ask of ``milli`` goes to, given each GPU's free milli, or None if none fit.

    A share goes to one GPU with enough free: the tightest such GPU, the lowest index on ties
    (as the FGD simulator does), so partly used GPUs fill up before fresh ones are broken.
    Whole GPUs go to fully free GPUs, the lowest indices first."""
    if milli <= 0:
        return ()
    if milli < GPU_MILLI:
        best = -1
        for i, f in enumerate(free):
            if f >= milli and (best < 0 or f < free[best]):
                best = i
        return (best,) if best >= 0 else None
    n = milli // GPU_MILLI
    out = tuple(i for i, f in enumerate(free) if f >= GPU_MILLI)
    return out[:n] if len(out) >= n else None


class Node:
    """A schedulable machine. ``avail`` = capacity - allocated - held, kept up to date.

    Its GPUs are numbered 0..n-1; ``gpu_free`` holds the free milli-GPU of each (what
    allocations and held room leave), so that the GPU entries of ``avail`` are their sum.
    ``gpu_level`` sums them up for the node index: 1000 x the fully free GPUs when there are
    any, else the most free on one GPU (never above the node's free total); an ask of ``m``
    milli-GPU fits the GPUs iff ``gpu_level >= m`` (whole GPUs need that many fully free GPUs, a
    share one GPU with room).
    """

    __slots__ = (
        "allocated",
        "allocations",
        "avail",
        "capacity",
        "gpu_free",
        "gpu_free_total",
        "gpu_level",
        "gpu_type",
        "held",
        "held_gpus",
        "index_key",
        "labels",
        "name",
        "schedulable",
        "shares",
        "victims_version",
    )

    def __init__(
        self, name: str, capacity: Resources, labels: dict[str, str] | None = None, schedulable: bool = True
    ) -> None:
        self.name = name
        self.capacity: Resources = dict(capacity)
        self.labels: dict[str, str] = dict(labels or {})
        self.gpu_type: str | None = self.labels.get(GPU_TYPE_LABEL)
        self.schedulable = schedulable
        self.allocated: Resources = {}
        self.avail: Resources = dict(capacity)
        self.held: dict[str, Resources] = {}  # ask id -> resources kept for it after preemption
        self.held_gpus: dict[str, tuple[int, ...]] = {}  # ask id -> the GPUs of that room
        self.allocations: dict[str, Allocation] = {}
        self.index_key: tuple[object, ...] | None = None
        # Whole devices: a node's GPU capacity is a multiple of 1000 (Scheduler.add_node checks).
        self.gpu_free: list[int] = [GPU_MILLI] * (gpu_milli(self.capacity) // GPU_MILLI)
        self.gpu_level = 0
        self.gpu_free_total = 0  # sum of gpu_free: the node's free milli-GPU
        self.shares = 0  # allocations and held rooms that are a share of one GPU
        # Bumped when its allocations change or one of them is marked preempted: what the victim
        # search found on the node still holds while it stays the same.
        self.victims_version = 0
        self._relevel()

    def _relevel(self) -> None:
        fully = 0
        most = 0
        total = 0
        for f in self.gpu_free:
            total += f
            if f >= GPU_MILLI:
                fully += 1
            elif f > most:
                most = f
        # Room held for an ask whose victims still run counts them twice (as allocated and as
        # held), so a GPU may stand below zero; until they stop, the node offers no more than
        # its free total, as before GPUs were tracked one by one.
        self.gpu_level = max(0, min(fully * GPU_MILLI if fully else most, total))
        self.gpu_free_total = total

    def avail_for(self, ask_id: str) -> Resources:
        """Room for ``ask_id``: what is available plus what is held for that very ask."""
        hold = self.held.get(ask_id)
        return add(self.avail, hold) if hold else self.avail

    def free_gpu_milli(self) -> int:
        """Free milli-GPU on the node, all its GPUs together (shares included)."""
        return gpu_milli(self.avail)

    def fully_free_gpus(self) -> int:
        """GPUs with nothing on them (whole devices)."""
        return sum(1 for f in self.gpu_free if f >= GPU_MILLI)

    def gpus_fit(self, milli: int, ask_id: str | None = None) -> bool:
        """Whether an ask of ``milli`` fits the GPUs (counting room held for ``ask_id``)."""
        if milli <= 0:
            return True
        if ask_id is not None and ask_id in self.held_gpus:
            return self.pick(milli, ask_id) is not None
        return self.gpu_level >= milli

    def pick(self, milli: int, ask_id: str | None = None) -> tuple[int, ...] | None:
        """The GPUs an ask of ``milli`` would take here (``pick_gpus``); the room held for
        ``ask_id`` counts as free, and its own held GPUs are preferred when they suffice."""
        held = self.held_gpus.get(ask_id, ()) if ask_id is not None else ()
        if not held:
            return pick_gpus(self.gpu_free, milli)
        free = self.gpu_free_for(ask_id)
        own = pick_gpus([free[i] for i in held], milli)
        if own is not None:
            return tuple(held[j] for j in own)
        return pick_gpus(free, milli)

    def gpu_free_for(self, ask_id: str | None) -> list[int]:
        """Free milli-GPU of each GPU, the room held for ``ask_id`` counted as free (a copy)."""
        free = list(self.gpu_free)
        held = self.held_gpus.get(ask_id, ()) if ask_id is not None else ()
        if held and ask_id is not None:
            per = per_gpu(gpu_milli(self.held[ask_id]))
            for i in held:
                free[i] += per
        return free

    def place_gpus(self, milli: int) -> tuple[int, ...]:
        """GPUs for work restored as it runs (no fit check): the normal choice when it fits,
        else the GPUs with the most free (lowest index on ties), which may go below zero."""
        chosen = pick_gpus(self.gpu_free, milli)
        if chosen is not None or milli <= 0 or not self.gpu_free:
            return chosen or ()
        n = 1 if milli < GPU_MILLI else min(len(self.gpu_free), milli // GPU_MILLI)
        order = sorted(range(len(self.gpu_free)), key=lambda i: (-self.gpu_free[i], i))
        return tuple(sorted(order[:n]))

    def _gpus_by(self, milli: int, gpu_ids: tuple[int, ...], sign: int) -> None:
        if not gpu_ids:
            return
        per = per_gpu(milli)
        if per < GPU_MILLI:
            self.shares -= sign
        for i in gpu_ids:
            self.gpu_free[i] += sign * per
        # What the GPUs listed cannot hold (only when restored work overflows the node).
        rest = milli - per * len(gpu_ids)
        if rest:
            self.gpu_free[gpu_ids[-1]] += sign * rest
        self._relevel()

    def take(self, res: Resources, gpu_ids: tuple[int, ...] = ()) -> None:
        add_into(self.allocated, res)
        sub_into(self.avail, res)
        self._gpus_by(gpu_milli(res), gpu_ids, -1)

    def give(self, res: Resources, gpu_ids: tuple[int, ...] = ()) -> None:
        sub_into(self.allocated, res)
        add_into(self.avail, res)
        self._gpus_by(gpu_milli(res), gpu_ids, 1)

    def hold(self, ask_id: str, res: Resources, gpu_ids: tuple[int, ...] = ()) -> None:
        self.unhold(ask_id)
        self.held[ask_id] = dict(res)
        sub_into(self.avail, res)
        if gpu_ids:
            self.held_gpus[ask_id] = gpu_ids
            self._gpus_by(gpu_milli(res), gpu_ids, -1)

    def unhold(self, ask_id: str) -> None:
        res = self.held.pop(ask_id, None)
        gpu_ids = self.held_gpus.pop(ask_id, ())
        if res:
            add_into(self.avail, res)
            self._gpus_by(gpu_milli(res), gpu_ids, 1)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, avail={self.avail})"


class Ask:
    """A request for one placement (one gang member, one task)."""

    __slots__ = (
        "app",
        "created",
        "disruptible",
        "elastic",
        "failed_cycle",
        "gpu_types",
        "id",
        "last_preempt_check",
        "originator",
        "preempt_others",
        "preemptible",
        "priority",
        "reason",
        "required_node",
        "reserved_node",
        "resources",
        "seq",
        "shape",
        "shape_id",
        "shapes",
        "victims",
        "within_guarantee",
    )

    def __init__(
        self,
        id: str,
        app: App,
        resources: Resources,
        *,
        created: float,
        seq: int,
        priority: int = 0,
        gpu_types: tuple[str, ...] = (),
        preempt_others: bool = True,
        required_node: str | None = None,
        preemptible: bool = True,
        originator: bool = False,
        disruptible: bool = True,
        alternatives: tuple[tuple[Resources, tuple[str, ...]], ...] = (),
        elastic: bool = False,
        within_guarantee: bool = False,
    ) -> None:
        self.id = id
        self.app = app
        self.resources: Resources = dict(resources)
        # Placed only while its leaf stays within its guarantee (``gpupool.core.within_guarantee``).
        self.within_guarantee = within_guarantee
        self.disruptible = disruptible
        self.elastic = elastic  # an optional extra member: grows into idle GPUs, given back first
        self.created = created
        self.seq = seq
        self.priority = priority
        self.gpu_types = tuple(gpu_types)
        self.preempt_others = preempt_others
        self.required_node = required_node
        self.preemptible = preemptible
        self.originator = originator
        self.reason: Reason | None = None
        self.last_preempt_check: float | None = None
        self.victims: tuple[str, ...] = ()  # allocations preempted for this ask, still stopping
        self.reserved_node: str | None = None
        self.failed_cycle = -1
        # Shapes to try in order: its own, then the alternatives of its standard size.
        self.shapes: tuple[tuple[Resources, tuple[str, ...]], ...] = (
            (self.resources, self.gpu_types),
            *alternatives,
        )
        # What placement depends on, for per-cycle memos of failures.
        self.shape = (
            tuple((tuple(sorted((k, v) for k, v in r.items() if v)), t) for r, t in self.shapes),
            required_node,
            within_guarantee,
        )
        self.shape_id = -1  # its number among the partition's shapes (``State.shape_id``)

    def sort_key(self) -> tuple[int, float, int]:
        return (-self.priority, self.created, self.seq)

    def __repr__(self) -> str:
        return f"Ask({self.id!r}, app={self.app.id!r}, {self.resources})"


class Allocation:
    """A placed ask (or a restored one): resources bound to a node, and the node's GPUs it holds
    (``gpu_ids``: one GPU for a share, that many fully free GPUs for whole GPUs)."""

    __slots__ = (
        "app",
        "counted",
        "disruptible",
        "elastic",
        "gpu_ids",
        "gpu_type",
        "id",
        "node",
        "originator",
        "preempted",
        "preemptible",
        "priority",
        "queue",
        "required_node",
        "resources",
        "seq",
        "start",
    )

    def __init__(
        self,
        id: str,
        app: App,
        queue: Queue,
        node: Node,
        resources: Resources,
        counted: Resources,
        *,
        start: float,
        seq: int,
        priority: int = 0,
        preemptible: bool = True,
        originator: bool = False,
        disruptible: bool = True,
        elastic: bool = False,
        required_node: str | None = None,
        gpu_ids: tuple[int, ...] = (),
    ) -> None:
        self.id = id
        self.app = app
        self.queue = queue
        self.gpu_ids = gpu_ids
        self.required_node = required_node  # placed by a required-node ask: never a victim
        self.disruptible = disruptible  # False: never a victim (a `never` workload)
        self.elastic = elastic  # an elastic workload's extra member: the first to be given back
        self.node = node
        self.resources: Resources = dict(resources)
        self.counted: Resources = counted  # resources + gpu/<type>: what quota sees
        self.gpu_type = node.gpu_type
        self.start = start
        self.seq = seq
        self.priority = priority
        self.preemptible = preemptible
        self.originator = originator
        self.preempted = False

    def __repr__(self) -> str:
        return f"Allocation({self.id!r}, node={self.node.name!r}, {self.resources})"


class App:
    """An application (a workload) in its leaf queue: its pending asks, its allocations, its state."""

    __slots__ = (
        "allocations",
        "asks",
        "gang",
        "gang_released",
        "groups",
        "id",
        "queue",
        "reason",
        "running",
        "seq",
        "state",
        "submitted",
        "tags",
        "top_priority",
        "user",
    )

    def __init__(
        self,
        id: str,
        *,
        user: str,
        groups: tuple[str, ...],
        tags: dict[str, str],
        gang: GangSpec | None,
        seq: int,
    ) -> None:
        self.id = id
        self.user = user
        self.groups = tuple(groups)
        self.tags = dict(tags)
        self.gang = gang
        self.gang_released = False  # soft gang timed out: asks are placed one by one
        self.seq = seq
        self.queue: Queue | None = None
        self.state = AppState.WAITING
        self.reason: Reason | None = None
        self.asks: dict[str, Ask] = {}  # pending asks
        self.allocations: dict[str, Allocation] = {}
        self.running = False  # counts against maxapplications
        self.submitted = float("inf")  # earliest creation time of any ask or allocation
        self.top_priority: int | None = None  # highest pending ask priority; None = recompute

    def submission_time(self) -> float:
        """The earliest creation time of any of its asks or allocations (YuniKorn's FIFO key)."""
        return self.submitted

    def max_priority(self) -> int:
        if self.top_priority is None:
            self.top_priority = max((a.priority for a in self.asks.values()), default=0)
        return self.top_priority

    def required_asks(self) -> list[Ask]:
        return [a for a in self.asks.values() if not a.elastic]

    def is_gang(self) -> bool:
        return self.gang is not None and not self.gang_released

    def __repr__(self) -> str:
        return f"App({self.id!r}, state={self.state.value})"


@dataclass(slots=True)
class NodeSpec:
    """A node as the driver registers it."""

    name: str
    capacity: Resources
    labels: dict[str, str] = field(default_factory=dict)
    schedulable: bool = True
