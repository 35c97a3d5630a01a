"""Fit: where one ask can go, and why not. Shapes, GPU types, regions and the reasons asks wait.

Functions here read a ``State`` and change nothing in it (they write only asks' reasons and the
cycle's no-fit memo): the best node for one shape of an ask within its queues' max and its user
and group limits, and for an ask that may not be preempted within its queue's guarantee
(``find_place``, ``gpupool.core.within_guarantee``), the sentence that says why there is none,
and the region rule for gangs (members share one region, ``gpupool/region``, unless the workload allows
``span_regions``). Placing several asks at once (a gang) is a what-if edit and lives in
``gpupool.core.snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gpupool.core.capacity import REGION_LABEL
from gpupool.core.decisions import Code, Reason
from gpupool.core.model import App, Ask, Node
from gpupool.core.queues import Queue
from gpupool.core.resources import (
    GPU_MILLI,
    TYPED_GPU_PREFIX,
    Resources,
    fits,
    format_gpus,
    format_resources,
    gpu_milli,
    typed,
    within_max,
)
from gpupool.core.state import State
from gpupool.core.within_guarantee import GuaranteeGap, leaf_gap

# A gang that does not fit in the region its first choice gave is tried in at most this many
# other regions (those with the most schedulable nodes first).
MAX_REGION_RETRIES = 8

# Which failures preemption may cure.
PREEMPTABLE = frozenset({Code.QUEUE_QUOTA, Code.NO_NODE, Code.GANG_WAITING})

# Memo of shapes that fit no node on the committed state in this cycle: (shape, types[, region]).
NoFit = dict[tuple[object, ...], Reason]

_PLACED = Reason(Code.PLACED, "placed")
ABOVE_GUARANTEE_HINT = (
    "it starts when its queue's own work leaves room within the guarantee; work that may be "
    "preempted (a session started with --preemptible) may borrow idle GPUs above it"
)
_NO_FIT = Reason(Code.NO_NODE, "")

# Reasons are immutable and the same few sentences recur on thousands of asks each cycle: one
# object per distinct reason (bounded: cleared when full), not one per ask and cycle, which
# would feed the garbage collector's full passes.
_REASONS: dict[tuple[Code, str, str, str], Reason] = {}
_REASONS_MAX = 4096


def shared_reason(code: Code, message: str, hint: str = "", preemption: str = "") -> Reason:
    """``Reason(code, message, hint, preemption)``, shared with every equal one made before."""
    key = (code, message, hint, preemption)
    known = _REASONS.get(key)
    if known is None:
        if len(_REASONS) >= _REASONS_MAX:
            _REASONS.clear()
        known = _REASONS[key] = Reason(code, message, hint, preemption)
    return known


def type_options(state: State, ask: Ask, gpu_types: tuple[str, ...] | None = None) -> list[list[str | None]]:
    """Node GPU types to try, in order of preference; each entry is one round."""
    types = ask.gpu_types if gpu_types is None else gpu_types
    if types:
        return [[t] for t in types]
    return [list(state.index.types())]


def quota_blocker(leaf: Queue, counted: Resources) -> Queue | None:
    """The first queue up from ``leaf`` whose max ``counted`` more would exceed."""
    for q in leaf.ancestors():
        if q.max is not None and not within_max(q.allocated, counted, q.max):
            return q
    return None


def quota_blockers(leaf: Queue, res: Resources, gpu_types: list[str | None], gpus: int) -> list[Queue | None]:
    """For each GPU type, ``quota_blocker(leaf, typed(res, gpu_type, gpus))``, in one walk up
    the tree that checks the untyped resources once per queue (the allocation phase asks this
    for every ask it tries)."""
    n = len(gpu_types)
    out: list[Queue | None] = [None] * n
    keys = [TYPED_GPU_PREFIX + t if t and gpus else None for t in gpu_types]
    plain = [(k, v) for k, v in res.items() if v > 0 and k not in keys]
    # Typed keys of these types in ``res`` itself (rare): ``typed`` replaces only its own type's.
    own = [(k, v) for k, v in res.items() if v > 0 and k in keys]
    left = n
    for q in leaf.ancestors():
        cap = q.max
        if not cap:
            continue
        used = q.allocated
        over = False
        for k, v in plain:
            c = cap.get(k)
            if c is not None and used.get(k, 0) + v > c:
                over = True
                break
        for i in range(n):
            if out[i] is not None:
                continue
            blocked = over
            key = keys[i]
            if not blocked and key is not None:
                c = cap.get(key)
                blocked = c is not None and used.get(key, 0) + gpus > c
            if not blocked:
                for k, v in own:
                    if k != key and (c := cap.get(k)) is not None and used.get(k, 0) + v > c:
                        blocked = True
                        break
            if blocked:
                out[i] = q
                left -= 1
        if not left:
            break
    return out


def fits_node(ask: Ask, node: Node, res: Resources | None = None) -> bool:
    """Whether ``res`` (the ask's resources by default) fits what ``node`` has free for it: in
    total, and on its GPUs (a share on one GPU with room, whole GPUs on fully free ones)."""
    need = ask.resources if res is None else res
    if not fits(need, node.avail_for(ask.id) if node.held else node.avail):
        return False
    if not node.shares:
        return True  # every GPU fully free or fully taken: the total says it all
    milli = gpu_milli(need)
    return not milli or node.gpus_fit(milli, ask.id if node.held else None)


def in_region(node: Node, region: str) -> bool:
    """A node of ``region``, or of no region (static nodes go with any)."""
    return node.labels.get(REGION_LABEL, region) == region


def within(region: str | None, fits: Callable[[Node], bool]) -> Callable[[Node], bool]:
    """``fits`` limited to the nodes of ``region`` (or of none); ``fits`` itself without one."""
    if region is None:
        return fits
    return lambda n: in_region(n, region) and fits(n)


def regions_of_nodes(nodes: Iterable[Node]) -> list[str]:
    """The regions of ``nodes``, in order of first appearance."""
    out: list[str] = []
    for node in nodes:
        region = node.labels.get(REGION_LABEL)
        if region is not None and region not in out:
            out.append(region)
    return out


def find_place(
    state: State,
    nofit: NoFit,
    memoise: bool,
    ask: Ask,
    leaf: Queue,
    prefer_reserved: bool = False,
    shape: int = 0,
    region: str | None = None,
) -> tuple[Node | None, Reason]:
    """Best node for shape ``shape`` of ``ask`` within quota and limits (and, for an ask made
    ``within_guarantee``, its leaf's guarantee), or why there is none.

    With ``region``, only nodes of that region or of none (no region label) are used. A shape
    that fits no node is remembered in ``nofit`` when ``memoise`` (on the committed state only:
    a failure that follows what-if placements of other gang members may succeed once they are
    undone).
    """
    app = ask.app
    res, gpu_types = ask.shapes[shape]
    blocked = state.limits.blocking(state.app_limits.get(app.id, ()), res)
    if blocked is not None:
        return None, shared_reason(Code.USER_LIMIT, f"{blocked} leaves no room for {format_resources(res)}")
    gpus = gpu_milli(res)
    guarded = ask.within_guarantee
    if prefer_reserved and ask.reserved_node is not None:
        node = state.nodes.get(ask.reserved_node)
        type_ok = node is not None and (not gpu_types or node.gpu_type in gpu_types)
        if region is not None and node is not None and not in_region(node, region):
            type_ok = False
        if node is not None and type_ok and node.schedulable and fits_node(ask, node, res):
            counted = typed(res, node.gpu_type)
            if quota_blocker(leaf, counted) is None and (not guarded or leaf_gap(leaf, counted) is None):
                return node, _PLACED
    quota_block: tuple[Queue, Resources] | None = None
    guarantee_block: GuaranteeGap | None = None
    no_node_types: list[str | None] = []
    for types in type_options(state, ask, gpu_types):
        allowed: list[str | None] = []
        for t, q in zip(types, quota_blockers(leaf, res, types, gpus), strict=True):
            if q is not None:
                if quota_block is None:
                    quota_block = (q, typed(res, t, gpus))
            elif guarded and (gap := leaf_gap(leaf, typed(res, t, gpus))) is not None:
                if guarantee_block is None:
                    guarantee_block = gap
            else:
                allowed.append(t)
        if not allowed:
            continue
        if ask.required_node is not None:
            node = state.nodes.get(ask.required_node)
            ok = (
                node is not None
                and node.schedulable
                and node.gpu_type in allowed
                and (region is None or in_region(node, region))
                and fits_node(ask, node, res)
            )
            if ok:
                return node, _PLACED
            no_node_types.extend(allowed)
            continue
        # The ask keeps each shape's ordered key (``Ask.shape``): ``ordered_key(res)``.
        key: tuple[object, ...] = (ask.shape[0][shape][0], tuple(allowed))
        if key in nofit:  # no fit anywhere: no fit in one region either
            no_node_types.extend(allowed)
            continue
        if region is not None:
            key = (*key, region)
            if key in nofit:
                no_node_types.extend(allowed)
                continue
        node = state.index.best(gpus, allowed, within(region, lambda n: fits_node(ask, n, res)), res)
        if node is not None:
            return node, _PLACED
        if memoise:
            nofit[key] = _NO_FIT
        no_node_types.extend(allowed)
    if not no_node_types and guarantee_block is not None:
        return None, shared_reason(Code.ABOVE_GUARANTEE, guarantee_block.message(), ABOVE_GUARANTEE_HINT)
    if not no_node_types and quota_block is not None:
        q, counted = quota_block
        return None, shared_reason(
            Code.QUEUE_QUOTA,
            f"queue {q.path} is at its max: {format_resources(q.max or {})} with "
            f"{format_resources(_on(q.allocated, counted))} in use; the ask needs "
            f"{format_resources(counted)}",
            "wait for running work in that queue to finish, or ask an admin to raise its max",
        )
    return None, no_node_reason(state, ask, no_node_types, res, gpu_types)


def no_node_reason(
    state: State, ask: Ask, types: list[str | None], res: Resources, gpu_types: tuple[str, ...]
) -> Reason:
    """Why no node takes ``res`` of ``ask``: the required node, the most fully free GPUs on one
    node (whole GPUs), or the most free on one GPU (a share)."""
    gpus = gpu_milli(res)
    if ask.required_node is not None:
        return shared_reason(
            Code.NO_NODE,
            f"required node {ask.required_node} has no room for {format_resources(res)}",
        )
    named = [t for t in types if t]
    type_text = f" of type {'/'.join(named)}" if gpu_types and named else ""
    if 0 < gpus < GPU_MILLI:
        level = state.index.max_level(types) if types else 0
        return shared_reason(
            Code.NO_NODE,
            f"no node has a GPU with {format_gpus(gpus)} free{type_text} with room for "
            f"{format_resources(res)} (the most free on one GPU is {format_gpus(min(level, GPU_MILLI))})",
            "wait for GPUs to free up, allow more GPU types, or ask for a smaller share",
        )
    if gpus:
        level = state.index.max_level(types) if types else 0
        most = level // GPU_MILLI  # fully free GPUs on the best node (a level below 1000: none)
        gpus //= GPU_MILLI  # whole GPUs: a multiple of 1000 (check_gpu_ask)
        return shared_reason(
            Code.NO_NODE,
            f"no node has {gpus} free GPU(s){type_text} with room for {format_resources(res)} "
            f"(the most free on one node is {most})",
            "wait for GPUs to free up, allow more GPU types, or ask for fewer GPUs per member",
        )
    return shared_reason(
        Code.NO_NODE,
        f"no schedulable node has room for {format_resources(res)}",
        "wait for running work to finish, or ask for less",
    )


def set_failure(asks: list[Ask], first: tuple[Ask, Reason], rounds: int) -> None:
    """Give every ask the reason of the first failure, said for all its shapes and its gang."""
    ask, reason = first
    if rounds > 1:
        reason = shared_reason(
            reason.code,
            f"{reason.message}; its {rounds - 1} other shape(s) did not fit either",
            reason.hint,
        )
    if len(asks) > 1:
        reason = shared_reason(
            Code.GANG_WAITING if reason.code in (Code.NO_NODE, Code.QUEUE_QUOTA) else reason.code,
            f"gang of {len(asks)} waits: member {ask.id} cannot be placed ({reason.message}); "
            "nothing is held while it waits",
            reason.hint,
        )
    for a in asks:
        a.reason = reason


def region_rule(app: App) -> tuple[str, ...] | None:
    """Whether ``app``'s members must share a region: None if not (no gang, ``span_regions``,
    or its running members already spread over regions), else the region its running
    members use (``()`` while none runs on a node with a region)."""
    gang = app.gang
    if gang is None or gang.span_regions:
        return None
    homes: set[str] = set()
    for alloc in app.allocations.values():
        region = alloc.node.labels.get(REGION_LABEL)
        if region is not None:
            homes.add(region)
    if len(homes) > 1:
        return None
    return tuple(homes)


def other_regions(regions: dict[str, int], tried: str | None) -> list[str]:
    """Regions to try a gang in after ``tried``: those with the most schedulable nodes first,
    at most ``MAX_REGION_RETRIES`` (placement and preemption alike)."""
    others = sorted(regions, key=lambda r: (-regions[r], r))
    return [r for r in others if r != tried][:MAX_REGION_RETRIES]


def region_reason(asks: list[Ask], home: str | None) -> Reason:
    """Why members that would fit across regions wait: they must share one."""
    hint = "wait for room in one region, or submit with span_regions to let the members spread over regions"
    n = len(asks)
    if home is not None:
        what = asks[0].id if n == 1 else f"{n} more members"
        return Reason(
            Code.NO_NODE if n == 1 else Code.GANG_WAITING,
            f"its gang runs in region {home}, which has no room for {what}; the members must "
            "share a region (allow span_regions to spread them)",
            hint,
        )
    return Reason(
        Code.GANG_WAITING,
        f"gang of {n} waits: its members must share a region and no region has room for all {n}; "
        "allow span_regions to spread them; nothing is held while it waits",
        hint,
    )


def _on(used: Resources, counted: Resources) -> Resources:
    return {k: used.get(k, 0) for k in counted}
