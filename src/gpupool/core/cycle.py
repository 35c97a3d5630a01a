"""The scheduling cycle: one function per phase, in the order ``docs/scheduling.md`` numbers them.

1. Gang timeouts: a waiting gang past its timeout falls back to one-by-one (``soft``) or fails
   (``hard``).
2. Reserved asks first: asks for which preemption made room are placed as soon as it is free.
3. Allocation: descend the queue tree in fair-share order to the neediest leaf, take its next
   application (``fifo`` or ``fair``, priority first) and place its next ask on the best node
   (gangs all at once, in one region unless they allow ``span_regions``), then descend
   again. A queue, application or ask that cannot place anything is skipped for the rest of
   the cycle, so each cycle costs about one pass over the pending asks plus a short descent
   per allocation.
4. Preemption: for asks that failed for want of quota or room, in the order they were tried,
   look for victims (``gpupool.core.preemption``; for a gang that must stay in one region,
   victims in one region). Victims are decisions; the room they leave is held for the ask,
   which phase 2 places once the victims are released.
5. Elastic growth: extra members of running elastic workloads take the GPUs left idle.

Placements are tried on the ``Snapshot`` and committed when they hold; nothing here reads a
clock, does I/O or draws random numbers.
"""

from __future__ import annotations

import heapq

from gpupool.core import fit
from gpupool.core.decisions import Code, CycleResult, Fail, Place, Preempt, Reason
from gpupool.core.fit import PREEMPTABLE
from gpupool.core.model import Allocation, App, AppState, Ask
from gpupool.core.preemption import PreemptionPlan, Preemptor, cannot_help, regions_of
from gpupool.core.queues import Queue
from gpupool.core.resources import total
from gpupool.core.snapshot import Snapshot
from gpupool.core.state import State

MAX_PREEMPTION_ATTEMPTS_PER_LEAF = 10

# A gang's ask order (as ``State.ordered_asks`` keeps it), its pending count, the members to place,
# their shapes and the gang as phase 4's unit.
_GangAsks = tuple[list[Ask], int, list[Ask], tuple[object, ...], tuple[App, list[Ask]]]


class Cycle:
    """Runs scheduling cycles over one partition's state, and keeps what they learn in between."""

    def __init__(self, state: State, snap: Snapshot) -> None:
        self.state = state
        self.snap = snap
        self.count = 0
        # Within the allocation phase usage only grows: a shape that failed in a leaf (for a
        # user) fails again. By (leaf, user if limited), then by the asks' shapes.
        self._shape_failed: dict[tuple[str, str], dict[object, Reason]] = {}
        self._run_limits: dict[str, bool] = {}
        self._quiet: dict[str, tuple[int, int, list[tuple[App, list[Ask]]]]] = {}
        # Fair share and pending share of the queues phase 3 compared, by queue path: usage
        # and pending change only when a placement is committed (trials are undone or
        # committed before the next descent), which drops the entries of the queues it touched.
        self._shares: dict[str, tuple[float, float]] = {}
        # Phase 4's unit of one failed ask, kept per ask from cycle to cycle (by ask id) rather
        # than built anew each time it fails: what a cycle leaves behind is what makes the
        # garbage collector's full passes run.
        self._units: dict[str, tuple[App, list[Ask]]] = {}
        self._entries: dict[str, tuple[object, ...]] = {}  # fifo heap entries, by app id
        self._gangs: dict[str, _GangAsks] = {}  # a gang's members to place, by app id (_gang_asks)

    def config_changed(self) -> None:
        """The queues' settings changed: what limits running applications must be looked at again."""
        self._run_limits.clear()

    def run(self, now: float) -> CycleResult:
        """Run one scheduling cycle at time ``now`` (seconds) and return its decisions."""
        self.count += 1
        self.snap.new_cycle()
        result = CycleResult(now)
        tried: dict[str, Ask] = {}
        self.phase_1_gang_timeouts(now, result)
        self.phase_2_reserved(now, result, tried)
        failed: list[tuple[App, list[Ask]]] = []
        self.phase_3_allocate(now, result, tried, failed)
        self.phase_4_preempt(now, result, failed)
        self.phase_5_grow(now, result, tried)
        asks = self.state.asks
        result.pending.update(
            {ask_id: ask.reason for ask_id, ask in tried.items() if ask_id in asks and ask.reason is not None}
        )
        if len(self._units) > 2 * len(self.state.asks) + 1024:
            asks = self.state.asks
            self._units = {k: u for k, u in self._units.items() if asks.get(k) is u[1][0]}
        if len(self._entries) > 2 * len(self.state.apps) + 1024:
            apps = self.state.apps
            self._entries = {k: e for k, e in self._entries.items() if apps.get(k) is e[-1]}
        if len(self._gangs) > 2 * len(self.state.apps) + 1024:
            apps = self.state.apps
            self._gangs = {k: g for k, g in self._gangs.items() if apps.get(k) is g[4][0]}
        return result

    def _unit(self, app: App, ask: Ask) -> tuple[App, list[Ask]]:
        """``(app, [ask])`` for phase 4, the same object each cycle the ask fails (never edited)."""
        unit = self._units.get(ask.id)
        if unit is None or unit[0] is not app or unit[1][0] is not ask:
            unit = (app, [ask])
            self._units[ask.id] = unit
        return unit

    # 1. gang timeouts --------------------------------------------------------------------

    def phase_1_gang_timeouts(self, now: float, result: CycleResult) -> None:
        """A gang waiting past its timeout falls back to one-by-one (soft) or fails (hard)."""
        for app in list(self.state.waiting_gangs.values()):
            assert app.gang is not None
            if not app.asks or app.allocations:
                self.state.waiting_gangs.pop(app.id, None)
                continue
            required = app.required_asks()
            if not required:
                continue
            # From the earliest pending ask: its submission, or its requeue after a preemption.
            deadline = min(a.created for a in required) + app.gang.timeout
            if now < deadline:
                continue
            self.state.waiting_gangs.pop(app.id, None)
            if app.gang.style == "hard":
                reason = Reason(
                    Code.FAILED,
                    f"hard gang could not be placed whole within its timeout of {app.gang.timeout:g}s",
                    "ask for fewer or smaller members, or use a soft gang",
                )
                for ask in list(app.asks.values()):
                    self.state.remove_ask(ask.id)
                app.reason = reason
                app.state = AppState.FAILED
                self.state.set_running(app, False)
                result.decisions.append(Fail(app.id, reason))
            else:
                app.gang_released = True
                self.state.ask_order.pop(app.id, None)
                if app.queue is not None:
                    app.queue.version += 1

    # 2. reserved asks --------------------------------------------------------------------

    def phase_2_reserved(self, now: float, result: CycleResult, tried: dict[str, Ask]) -> None:
        """Asks holding room that preemption (or compaction) made are placed there first."""
        by_app: dict[str, list[Ask]] = {}
        for ask in self.state.reserved.values():
            by_app.setdefault(ask.app.id, []).append(ask)
        for app_id in sorted(by_app, key=lambda a: self.state.apps[a].seq):
            asks = sorted(by_app[app_id], key=Ask.sort_key)
            app = self.state.apps[app_id]
            leaf = app.queue
            assert leaf is not None
            for ask in asks:
                tried[ask.id] = ask
            placements = self.snap.place_all(app, asks, leaf, prefer_reserved=True)
            if placements is not None:
                for ask in asks:
                    self.state.drop_reservation(ask)
                self._commit(placements, result, "placed on the room its preemption made")
                continue
            stopping = [v for ask in asks for v in ask.victims if v in self.state.allocations]
            if stopping:
                for ask in asks:
                    ask.reason = Reason(
                        Code.RESERVED,
                        f"preemption made room on {ask.reserved_node}; waiting for "
                        f"{len(stopping)} preempted allocation(s) to stop",
                    )
                continue
            # The victims are gone and it still does not fit: let it compete (and preempt) again.
            for ask in asks:
                self.state.drop_reservation(ask)

    # 3. allocation ----------------------------------------------------------------------

    def phase_3_allocate(
        self, now: float, result: CycleResult, tried: dict[str, Ask], failed: list[tuple[App, list[Ask]]]
    ) -> None:
        """Descend to the neediest leaf, place its next application's next ask (or gang), repeat.

        Asks that failed for want of quota or room are appended to ``failed``, for phase 4.
        """
        exhausted: set[str] = set()
        heaps: dict[str, list[tuple[object, ...]]] = {}
        self._shape_failed = {}
        self._shares = {}
        # A leaf that placed nothing last time, with nothing freed and nothing new since, would
        # place nothing again: skip it (its asks keep their reasons) but let its failures try
        # preemption, which time alone can make possible.
        for path, (epoch, version, units) in list(self._quiet.items()):
            leaf = self.state.queues.get(path)
            if leaf is None or epoch != self.state.epoch or version != leaf.version:
                del self._quiet[path]
                continue
            exhausted.add(path)
            failed.extend(units)
        placed_in: set[str] = set()
        while True:
            leaf = self._next_leaf(self.state.root, exhausted)
            if leaf is None:
                return
            before = len(failed)
            if self._allocate_leaf(leaf, heaps, now, result, tried, failed):
                placed_in.add(leaf.path)
            else:
                exhausted.add(leaf.path)
                if leaf.path not in placed_in:
                    self._quiet[leaf.path] = (self.state.epoch, leaf.version, failed[before:])

    def _next_leaf(self, q: Queue, exhausted: set[str]) -> Queue | None:
        if q.pending_asks <= 0 or q.path in exhausted:
            return None
        if q.is_leaf:
            return q
        candidates = [c for c in q.children.values() if c.pending_asks > 0 and c.path not in exhausted]
        if len(candidates) > 1:
            if q.sort_priority:
                candidates.sort(key=self._priority_first)
            else:
                candidates.sort(key=self._fair_first)
        for child in candidates:
            leaf = self._next_leaf(child, exhausted)
            if leaf is not None:
                return leaf
        exhausted.add(q.path)
        return None

    def _queue_shares(self, q: Queue) -> tuple[float, float]:
        known = self._shares.get(q.path)
        if known is None:
            capacity = self.state.capacity
            known = (q.fair_share(capacity), q.pending_share(capacity))
            self._shares[q.path] = known
        return known

    def _priority_first(self, q: Queue) -> tuple[int, float, float, str]:
        fair, pending = self._queue_shares(q)
        return (-q.priority(), fair, -pending, q.name)

    def _fair_first(self, q: Queue) -> tuple[float, int, float, str]:
        fair, pending = self._queue_shares(q)
        return (fair, -q.priority(), -pending, q.name)

    def _app_entry(self, leaf: Queue, app: App) -> tuple[object, ...]:
        """The app's place in its leaf's heap: its sort key, then its sequence number (unique,
        so the app itself is never compared), then the app."""
        if leaf.sort_policy == "fair":
            prio = -app.max_priority()
            shares = self._app_shares(leaf, app)
            if leaf.sort_priority:
                return (prio, shares, app.submission_time(), app.seq, app)
            return (shares, prio, app.submission_time(), app.seq, app)
        return self._fifo_entry(app, leaf.sort_priority)

    def _fifo_entry(self, app: App, by_priority: bool) -> tuple[object, ...]:
        """``_app_entry`` in a fifo leaf: one flat tuple per app, the same (never edited) tuple
        while its key stays the same (the cycle's garbage is what makes the collector's full
        passes run). Runs for every pending application each cycle."""
        top = app.top_priority
        prio = -(top if top is not None else app.max_priority())
        first, second = (prio, app.submitted) if by_priority else (app.submitted, prio)
        kept = self._entries.get(app.id)
        if kept is None or kept[-1] is not app or len(kept) != 4 or kept[0] != first or kept[1] != second:
            kept = self._entries[app.id] = (first, second, app.seq, app)
        return kept

    def _app_shares(self, leaf: Queue, app: App) -> tuple[float, ...]:
        """DRF share vector of the app over its queue's guarantee, largest share first."""
        used = total(a.counted for a in app.allocations.values())
        guaranteed = leaf.guaranteed or {}
        shares = []
        for t, v in used.items():
            if v <= 0:
                continue
            g = guaranteed.get(t)
            shares.append(v / g if g else float(v))
        return tuple(sorted(shares, reverse=True))

    def _allocate_leaf(
        self,
        leaf: Queue,
        heaps: dict[str, list[tuple[object, ...]]],
        now: float,
        result: CycleResult,
        tried: dict[str, Ask],
        failed: list[tuple[App, list[Ask]]],
    ) -> bool:
        heap = heaps.get(leaf.path)
        if heap is None:
            heap = self._leaf_heap(leaf)
            heaps[leaf.path] = heap
        app_limits = self.state.app_limits
        path = leaf.path
        count = self.count
        units = self._units
        limited = self._run_limited(leaf)
        # The shapes that failed in this leaf this cycle, for applications without user or group
        # limits (one dict per leaf and user: the key is then the shape's number alone).
        anyone = self._failed_in(path, "")
        heappop = heapq.heappop
        while heap:
            app = heap[0][-1]
            assert isinstance(app, App)
            asks = app.asks
            if len(asks) == 1 and (app.gang is None or app.gang_released) and (app.running or not limited):
                # Fast path: a one-ask app whose shape already failed in this leaf this cycle.
                ask = next(iter(asks.values()))
                if ask.elastic:
                    heappop(heap)  # extra members grow in phase 5, into what is left
                    continue
                if ask.reserved_node is None:
                    sid = ask.shape_id
                    if sid < 0:
                        sid = self.state.shape_id(ask)
                    known = (
                        self._failed_in(path, app.user) if app_limits and app_limits.get(app.id) else anyone
                    ).get(sid)
                    if known is not None:
                        ask.reason = known
                        ask.failed_cycle = count
                        tried[ask.id] = ask
                        if known.code in PREEMPTABLE:
                            unit = units.get(ask.id)
                            if unit is None or unit[0] is not app or unit[1][0] is not ask:
                                unit = units[ask.id] = (app, [ask])
                            failed.append(unit)
                        heappop(heap)
                        continue
            if self._allocate_app(app, leaf, now, result, tried, failed):
                if app.asks:
                    heapq.heapreplace(heap, self._app_entry(leaf, app))
                else:
                    heapq.heappop(heap)
                return True
            heapq.heappop(heap)
        return False

    def _leaf_heap(self, leaf: Queue) -> list[tuple[object, ...]]:
        """The leaf's applications with pending asks, as a heap in their sort order."""
        apps = self.state.apps_in(leaf).values()
        if leaf.sort_policy == "fair":
            heap = [self._app_entry(leaf, app) for app in apps if app.asks]
        else:
            entry, by_priority = self._fifo_entry, leaf.sort_priority
            heap = [entry(app, by_priority) for app in apps if app.asks]
        heapq.heapify(heap)
        return heap

    def _failed_in(self, path: str, who: str) -> dict[object, Reason]:
        """What failed this cycle in leaf ``path`` for ``who`` (a user, or "" if unlimited), by
        the asks' shapes: within the allocation phase usage only grows, so it fails again."""
        key = (path, who)
        known = self._shape_failed.get(key)
        if known is None:
            known = self._shape_failed[key] = {}
        return known

    def _gang_asks(self, app: App) -> tuple[list[Ask], tuple[object, ...], tuple[App, list[Ask]]]:
        """A gang's members to place now (pending, not holding room, not elastic extras), their
        shapes, and ``(app, members)`` for phase 4; kept while the gang's asks stay the same."""
        order = self.state.ordered_asks(app)
        kept = self._gangs.get(app.id)
        if kept is not None and kept[0] is order and kept[1] == len(app.asks):
            asks = kept[2]
            if all(a.reserved_node is None for a in asks):
                return asks, kept[3], kept[4]
        pending = app.asks
        asks = [a for a in order if a.id in pending and a.reserved_node is None and not a.elastic]
        shapes = tuple(self.state.shape_id(a) for a in asks)
        unit = (app, asks)
        self._gangs[app.id] = (order, len(pending), asks, shapes, unit)
        return asks, shapes, unit

    def _allocate_app(
        self,
        app: App,
        leaf: Queue,
        now: float,
        result: CycleResult,
        tried: dict[str, Ask],
        failed: list[tuple[App, list[Ask]]],
    ) -> bool:
        if not app.asks:
            return False
        limits = self.state.app_limits.get(app.id)
        if not app.running and (limits or self._run_limited(leaf)):
            blocked = self._run_blocker(app, leaf)
            if blocked is not None:
                for ask in app.asks.values():
                    ask.reason = blocked
                    tried[ask.id] = ask
                return False
        shape_failed = self._failed_in(leaf.path, app.user if limits else "")
        count = self.count
        if app.is_gang():
            asks, shapes, unit = self._gang_asks(app)
            if not asks:
                return False
            for a in asks:
                if a.failed_cycle == count:
                    return False
            for a in asks:
                tried[a.id] = a
            # Gangs bound to one region fail differently from gangs that may span regions.
            rule = fit.region_rule(app) if self.state.regions else None
            key = (shapes, rule)
            known = shape_failed.get(key)
            if known is None:
                placements = self.snap.place_all(app, asks, leaf)
                if placements is not None:
                    self._commit(placements, result, f"gang of {len(asks)} placed whole")
                    return True
                shape_failed[key] = asks[0].reason or Reason(Code.GANG_WAITING, "gang waits")
            for a in asks:
                a.failed_cycle = count
                if known is not None:
                    a.reason = known
            if asks[0].reason is not None and asks[0].reason.code in PREEMPTABLE:
                failed.append(unit)
            return False
        for ask in self.state.ordered_asks(app):
            if ask.id not in app.asks or ask.failed_cycle == count or ask.reserved_node is not None:
                continue
            if ask.elastic:
                continue  # extra members grow in phase 5, into what is left
            tried[ask.id] = ask
            one: object = self.state.shape_id(ask)
            if app.gang is not None and self.state.regions:
                rule = fit.region_rule(app)
                if rule:  # a member that must join its gang's region: not the same failure
                    one = (one, rule, "member")
            known = shape_failed.get(one)
            if known is None:
                placements = self.snap.place_all(app, [ask], leaf)
                if placements is not None:
                    self._commit(placements, result, "placed")
                    return True
                if ask.reason is not None:
                    shape_failed[one] = ask.reason
            else:
                ask.reason = known
            ask.failed_cycle = count
            if ask.reason is not None and ask.reason.code in PREEMPTABLE:
                failed.append(self._unit(app, ask))
        return False

    def _run_limited(self, leaf: Queue) -> bool:
        """Whether anything on the leaf's path limits running applications (cached)."""
        known = self._run_limits.get(leaf.path)
        if known is None:
            known = any(
                q.max_applications is not None or any(lim.max_applications is not None for lim in q.limits)
                for q in leaf.ancestors()
            )
            self._run_limits[leaf.path] = known
        return known

    def _run_blocker(self, app: App, leaf: Queue) -> Reason | None:
        for q in leaf.ancestors():
            if q.max_applications is not None and q.running_apps >= q.max_applications:
                return fit.shared_reason(
                    Code.MAX_APPS,
                    f"{q.path} already runs {q.running_apps} application(s), its maxapplications",
                    "wait for one to finish, or raise maxapplications",
                )
        blocked = self.state.limits.blocking_run(self.state.app_limits.get(app.id, ()))
        if blocked is not None:
            return fit.shared_reason(Code.MAX_APPS, blocked, "wait for one of your applications to finish")
        return None

    def _commit(self, placements: list[Allocation], result: CycleResult, why: str) -> None:
        shares = self._shares
        for alloc in placements:
            alloc.start = result.now
            app = alloc.app
            if shares:
                for q in alloc.queue.ancestors():
                    shares.pop(q.path, None)
            self.snap.commit(alloc)
            self.state.waiting_gangs.pop(app.id, None)
            self.state.set_running(app, True)
            result.decisions.append(
                Place(
                    alloc.id,
                    app.id,
                    alloc.queue.path,
                    alloc.node.name,
                    dict(alloc.resources),
                    alloc.node.gpu_type,
                    Reason(Code.PLACED, f"{why} on {alloc.node.name}"),
                )
            )

    # 4. preemption ---------------------------------------------------------------------

    def phase_4_preempt(self, now: float, result: CycleResult, failed: list[tuple[App, list[Ask]]]) -> None:
        """Victims for the asks phase 3 could not place, in the order they were tried."""
        if not failed:
            return
        if not self.state.preemption_enabled and not self.state.elastic:
            # Say so on each waiting ask, cheaply: one annotated reason per distinct reason.
            noted: dict[int, Reason] = {}
            for _, asks in failed:
                for ask in asks:
                    r = ask.reason
                    if r is None or r.preemption:
                        continue
                    if id(r) not in noted:
                        noted[id(r)] = cannot_help(r, "preemption is disabled in this partition")
                    ask.reason = noted[id(r)]
            return
        preemptor = Preemptor(self.snap, now)
        attempts: dict[str, int] = {}
        for app, asks in failed:
            leaf = app.queue
            assert leaf is not None
            if attempts.get(leaf.path, 0) >= MAX_PREEMPTION_ATTEMPTS_PER_LEAF:
                continue
            if any(a.id not in self.state.asks or a.reserved_node is not None for a in asks):
                continue
            # Extra members of elastic workloads are given back first, whatever their queue
            # (in one region for a gang that must stay in one).
            plan = preemptor.reclaim(app, asks, leaf)
            if plan is not None and not self._plan_in_one_region(app, plan):
                plan = None
            if plan is None:
                attempts[leaf.path] = attempts.get(leaf.path, 0) + 1
                plan = preemptor.attempt(app, asks, leaf)
                if plan is not None and not self._plan_in_one_region(app, plan):
                    plan = None
                    for ask in asks:
                        r = ask.reason or Reason(Code.GANG_WAITING, "gang waits")
                        ask.reason = cannot_help(
                            r, "the room it would make spans regions and the members must share one"
                        )
            if plan is not None:
                self._apply_preemption(plan, result)

    def _plan_in_one_region(self, app: App, plan: PreemptionPlan) -> bool:
        """Whether a preemption plan keeps a gang's members in one region (when they must be).

        Preemption itself looks for room in one region for such a gang; this is the safety net:
        a plan that would spread a gang bound to one region is not applied (its room could
        never be used together).
        """
        if not self.state.regions:
            return True
        rule = fit.region_rule(app)
        if rule is None:
            return True
        return len(set(rule).union(regions_of(plan))) <= 1

    def _apply_preemption(self, plan: PreemptionPlan, result: CycleResult) -> None:
        for alloc in plan.victims:
            alloc.preempted = True
            alloc.node.victims_version += 1
            alloc.queue.add_preempting(alloc.counted)
            result.decisions.append(
                Preempt(
                    alloc.id, alloc.app.id, alloc.queue.path, alloc.node.name, plan.asks[0].id, plan.reason
                )
            )
        victim_ids = tuple(v.id for v in plan.victims)
        for ask, node in plan.targets:
            ask.victims = victim_ids
            self.state.hold(
                ask, node, f"preempting {len(victim_ids)} allocation(s) to make room on {node.name}"
            )

    # 5. elastic growth -----------------------------------------------------------------

    def phase_5_grow(self, now: float, result: CycleResult, tried: dict[str, Ask]) -> None:
        """Extra members of running elastic workloads take idle GPUs, the neediest queue first."""
        extras: list[tuple[tuple[object, ...], Ask]] = []
        for ask in self.state.elastic_asks.values():
            app = ask.app
            if ask.reserved_node is not None or not app.allocations:
                continue
            if any(not a.elastic for a in app.asks.values()):
                continue  # its required members first
            assert app.queue is not None
            extras.append(((app.queue.fair_share(self.state.capacity), app.seq, ask.sort_key()), ask))
        extras.sort(key=lambda e: e[0])
        for _, ask in extras:
            if ask.id not in self.state.asks:
                continue
            app = ask.app
            assert app.queue is not None
            placements = self.snap.place_all(app, [ask], app.queue)
            if placements is not None:
                self._commit(placements, result, "elastic member grew into idle GPUs")
            else:
                tried[ask.id] = ask
                why = ask.reason.message if ask.reason else "no room"
                ask.reason = Reason(
                    ask.reason.code if ask.reason else Code.NO_NODE,
                    f"elastic extra member: runs only on idle GPUs ({why})",
                )
