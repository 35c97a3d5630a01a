"""The snapshot: what-if edits on a partition's state, each handing back its undo.

A cycle tries placements before it commits them (a gang is placed whole or not at all), and
preemption tries victims and placements to find a plan. Both edit the live ``State`` through
a ``Snapshot``, as Kueue's scheduler does on its cache snapshot: every edit returns an
``Undo`` that puts the state back exactly as it was, and a trial placement that is kept is
``commit``-ted. The snapshot also answers the questions fit and preemption ask of the state
(``find_place``, free GPUs, regions ...), so that they never reach into its internals.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from gpupool.core import fit
from gpupool.core.capacity import REGION_LABEL
from gpupool.core.decisions import Code, Reason
from gpupool.core.model import Allocation, App, Ask, Node
from gpupool.core.nodes import NodeIndex
from gpupool.core.queues import Queue
from gpupool.core.resources import GPU_MILLI, Resources, gpu_milli, sub_into, typed
from gpupool.core.state import State

Undo = Callable[[], None]


class Snapshot:
    """What-if access to a ``State``: reads for fit and preemption, edits that return an undo."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._trial: dict[str, Ask] = {}  # placements tried and not committed yet, by allocation id
        self.nofit: fit.NoFit = {}

    def new_cycle(self) -> None:
        """Forget what did not fit: room may have appeared since the last cycle."""
        self.nofit = {}

    # ------------------------------------------------------------------ reads

    @property
    def nodes(self) -> dict[str, Node]:
        return self._state.nodes

    @property
    def allocations(self) -> dict[str, Allocation]:
        return self._state.allocations

    @property
    def elastic(self) -> dict[str, Allocation]:
        return self._state.elastic

    def apps_in(self, leaf: Queue) -> dict[str, App]:
        """The applications in a leaf queue, by id."""
        return self._state.apps_in(leaf)

    @property
    def index(self) -> NodeIndex:
        return self._state.index

    @property
    def preemption_enabled(self) -> bool:
        return self._state.preemption_enabled

    @property
    def has_regions(self) -> bool:
        """Whether any schedulable node carries a region label."""
        return bool(self._state.regions)

    def limit_blocking(self, app: App, res: Resources) -> str | None:
        """The user or group limit that ``res`` more for ``app`` would break, as text."""
        state = self._state
        return state.limits.blocking(state.app_limits.get(app.id, ()), res)

    def held_under(self, q: Queue, excluding: Collection[str] = ()) -> Resources:
        """Room held on nodes (after preemption) for pending asks of the leaves under ``q``, but
        not for the asks in ``excluding``, counted as their allocations would be."""
        state = self._state
        out = dict(state.held_by_queue.get(q.path, {}))
        for ask_id in excluding:
            held = state.held.get(ask_id)
            if held is not None and held[0].is_under(q):
                sub_into(out, held[1])
        return out

    def type_options(self, ask: Ask, gpu_types: tuple[str, ...] | None = None) -> list[list[str | None]]:
        return fit.type_options(self._state, ask, gpu_types)

    def quota_blocker(self, leaf: Queue, counted: Resources) -> Queue | None:
        return fit.quota_blocker(leaf, counted)

    def fits_node(self, ask: Ask, node: Node, res: Resources | None = None) -> bool:
        return fit.fits_node(ask, node, res)

    def region_rule(self, app: App) -> tuple[str, ...] | None:
        return fit.region_rule(app)

    def other_regions(self, tried: str | None) -> list[str]:
        return fit.other_regions(self._state.regions, tried)

    def find_place(
        self,
        ask: Ask,
        leaf: Queue,
        prefer_reserved: bool = False,
        shape: int = 0,
        region: str | None = None,
    ) -> tuple[Node | None, Reason]:
        """``fit.find_place`` on the current (possibly what-if) state."""
        return fit.find_place(
            self._state, self.nofit, not self._trial, ask, leaf, prefer_reserved, shape, region
        )

    # ------------------------------------------------------------------ edits

    def assign(self, ask: Ask, node: Node, res: Resources | None = None) -> tuple[Allocation, Undo]:
        """Place ``ask`` on ``node`` (in ``res``, one of its shapes) as a trial."""
        state = self._state
        app = ask.app
        assert app.queue is not None
        used = ask.resources if res is None else res
        milli = gpu_milli(used)
        gpu_ids = node.pick(milli, ask.id) if milli else ()
        scored = state.index.scored
        if scored is not None and gpu_ids and milli < GPU_MILLI and ask.id not in node.held_gpus:
            gpu = scored.share_gpu(node, used)  # the GPU the node policy chose for the share
            if gpu is not None:
                gpu_ids = (gpu,)
        if gpu_ids is None:  # callers check the fit first; this is only a safety net
            gpu_ids = node.place_gpus(milli)
        alloc = Allocation(
            ask.id,
            app,
            app.queue,
            node,
            used,
            typed(used, node.gpu_type),
            start=0.0,
            seq=ask.seq,
            priority=ask.priority,
            preemptible=ask.preemptible,
            originator=ask.originator,
            disruptible=ask.disruptible,
            elastic=ask.elastic,
            required_node=ask.required_node,
            gpu_ids=gpu_ids,
        )
        del state.asks[ask.id]
        del app.asks[ask.id]
        state.elastic_asks.pop(ask.id, None)
        app.top_priority = None
        app.queue.remove_pending(ask.resources, ask.priority)
        state.attach(alloc)
        self._trial[alloc.id] = ask
        return alloc, lambda: self._unassign(alloc)

    def _unassign(self, alloc: Allocation) -> None:
        """Undo ``assign``: the ask goes back exactly as it was."""
        state = self._state
        state.detach(alloc)
        ask = self._trial.pop(alloc.id)
        app = ask.app
        state.asks[ask.id] = ask
        app.asks[ask.id] = ask
        if ask.elastic:
            state.elastic_asks[ask.id] = ask
        app.top_priority = None
        assert app.queue is not None
        app.queue.add_pending(ask.resources, ask.priority)

    def commit(self, alloc: Allocation) -> None:
        """Keep a trial placement: it is no longer what-if."""
        self._trial.pop(alloc.id, None)

    def remove(self, alloc: Allocation) -> Undo:
        """Take a running allocation away as a trial (a victim that would stop)."""
        state = self._state
        state.detach(alloc)
        return lambda: state.attach(alloc)

    # ------------------------------------------------------------------ several asks at once

    def place_all(
        self, app: App, asks: list[Ask], leaf: Queue, prefer_reserved: bool = False
    ) -> list[Allocation] | None:
        """Place every ask or none (trials, undone on failure); sets each ask's reason on failure.

        Asks with alternative shapes (standard sizes) fall back through them in order; the
        members of a gang fall back together, so a gang never mixes shapes. The members of a
        gang that does not allow ``span_regions`` share one region (``_place_in_region``).
        """
        rounds = max(len(a.shapes) for a in asks)
        if self._state.regions:
            rule = fit.region_rule(app)
            if rule is not None and (rule or len(asks) > 1):
                return self._place_in_region(asks, leaf, prefer_reserved, rounds, rule)
        first: tuple[Ask, Reason] | None = None
        for i in range(rounds):
            placed, failed, _ = self._place_round(asks, leaf, prefer_reserved, i)
            if placed is not None:
                return [alloc for alloc, _ in placed]
            if first is None:
                first = failed
        assert first is not None
        fit.set_failure(asks, first, rounds)
        return None

    def _place_round(
        self,
        asks: list[Ask],
        leaf: Queue,
        prefer_reserved: bool,
        i: int,
        region: str | None = None,
        bind: bool = False,
    ) -> tuple[list[tuple[Allocation, Undo]] | None, tuple[Ask, Reason] | None, str | None]:
        """Place every ask in its shape ``i`` (trials), or undo and say which failed and why.

        Only nodes of ``region`` (or of none) are used; with ``bind``, the region of the first
        labelled node a member takes binds the members after it. Returns the placements with
        their undos, the failure and the region in force at the end.
        """
        placed: list[tuple[Allocation, Undo]] = []
        for ask in asks:
            shape = min(i, len(ask.shapes) - 1)
            node, reason = self.find_place(ask, leaf, prefer_reserved, shape, region)
            if node is None:
                for _, undo in reversed(placed):
                    undo()
                return None, (ask, reason), region
            placed.append(self.assign(ask, node, ask.shapes[shape][0]))
            if bind and region is None:
                region = node.labels.get(REGION_LABEL)
        return placed, None, region

    def _place_in_region(
        self,
        asks: list[Ask],
        leaf: Queue,
        prefer_reserved: bool,
        rounds: int,
        home: tuple[str, ...],
    ) -> list[Allocation] | None:
        """``place_all`` for members that must share one region.

        Members already running fix the region. Otherwise the first member's best node picks
        it (nodes without a region go with any); if the gang does not fit there, it is tried
        whole in each other region, those with the most schedulable nodes first, at most
        ``fit.MAX_REGION_RETRIES`` of them. Each shape is tried in every region before the next.
        """
        state = self._state
        first: tuple[Ask, Reason] | None = None  # the first failure the region rule did not cause
        restricted = False  # some shape failed for want of room in one region, maybe
        for i in range(rounds):
            if home:
                placed, failed, bound = self._place_round(asks, leaf, prefer_reserved, i, home[0])
            else:
                placed, failed, bound = self._place_round(asks, leaf, prefer_reserved, i, None, True)
            if placed is not None:
                return [alloc for alloc, _ in placed]
            assert failed is not None
            # Not for want of room (quota, limits), or the pass never got bound to a region and
            # nothing on a node without one could have been placed otherwise: as without the rule.
            unbound = bound is None and (
                failed[0] is asks[0] or len(state.index) == sum(state.regions.values())
            )
            if failed[1].code != Code.NO_NODE or unbound:
                if first is None:
                    first = failed
                continue
            restricted = True
            if home:
                continue
            for region in self.other_regions(bound):
                placed, _, _ = self._place_round(asks, leaf, prefer_reserved, i, region)
                if placed is not None:
                    return [alloc for alloc, _ in placed]
        if restricted:
            # No region has room: say whether spreading over regions would have helped.
            first = None
            for i in range(rounds):
                placed, failed, _ = self._place_round(asks, leaf, prefer_reserved, i)
                if placed is not None:
                    for _, undo in reversed(placed):
                        undo()
                    reason = fit.region_reason(asks, home[0] if home else None)
                    for a in asks:
                        a.reason = reason
                    return None
                if first is None:
                    first = failed
        assert first is not None
        fit.set_failure(asks, first, rounds)
        return None
