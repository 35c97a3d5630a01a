"""The autoscaling loop of model deployments: load in, replica asks added and withdrawn.

The driver owns one ``Scaling`` and calls ``Scaling.tick(now)`` every tick. For each admitted or
running deployment it reads the load from the executor (``RunsDeployments.serving_load``), feeds
it to the pure rule of ``core.serving`` (``observe``/``decide``) and turns the answer into
*demand-driven extras*: a deployment's min replicas are its required members, as before; an
extra replica (``replica-<k>`` for k >= min) is asked for only while the rule wants it, and is
given back when the rule no longer does. Placing an extra within the queue's quota stays the
scheduler's job; an extra is an ordinary ask (not an elastic one): wanted by load, it may take
room back from other queues while its own is below its guarantee, and above it only borrows.

Removing a placed replica never drops requests: the driver takes it out of the workload's
placement and tells the executor (``resize``), which stops sending it requests and reports
``MemberStopped`` once its requests in flight are done; only then is its allocation released
(until then it is marked preempting in the core, so it is not picked as a victim twice and its
room is not given away under it). A replica the scheduler preempts (a competing ask taking
back borrowed room) goes the same way, on its own: the deployment goes on serving with the
others, and a min replica taken so is asked for again once it has stopped (it waits for room).

A rolling update is a new workload of the same name (``ServingSpec.revision`` + 1, ``replaces``
naming the one before): it is scheduled and started like any deployment, its replicas join the
same front, and once it runs (``started``) the revision before is cancelled, so its replicas
drain while the new ones already take requests. Meanwhile the revision before goes down to its
min replicas, so that the new one has room in the queue (a deployment at its queue's max with its
extras would otherwise leave the update waiting for ever). If the new revision cannot be placed or fails to
start, the one before goes on serving.

Each deployment keeps its scaling record: the decisions that changed the count, with their
reason, and a series of load samples (one per ``SAMPLE_EVERY`` seconds) for the portal.

Going to zero (``scale_to_zero_after``, or ``min_replicas`` 0): a deployment's required
members cannot be withdrawn while it runs, so at zero the deployment is *parked* whole: it is
stopped like a preempted workload (every replica drains) but not queued again; it waits as
``preempted`` with no ask, its front up and holding requests. The first request seen waiting there
wakes it: it is queued again (its required replica, at least one) and the held request is
answered once a replica runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from gpupool.core.decisions import Code, Reason
from gpupool.core.scheduler import Scheduler, SchedulerError
from gpupool.core.serving import LoadSample, ScaleState, ServingPolicy, decide, observe
from gpupool.engine.model import DEPLOYMENT_KIND, TaskGroup, Workload, WorkloadState
from gpupool.engine.ports import Executor, Journal, MemberStopped, Resizable, ServingLoad, can_run_deployments

SAMPLE_EVERY = 1.0  # seconds between two points of a deployment's series
SERIES_POINTS = 3600  # points kept per deployment (an hour at one a second)
DECISIONS_KEPT = 200


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """A change of a deployment's wanted replica count, and why (the rule's words)."""

    at: float
    old: int
    new: int
    reason: str


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One sample of a deployment: replicas placed and ready, wanted, its load and answers."""

    at: float
    replicas: int
    ready: int
    desired: int
    in_flight: float
    queued: float
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(slots=True)
class Track:
    """What the loop keeps of one deployment: the rule's state, the count it wants and why,
    replicas being drained, and its record."""

    policy: ServingPolicy
    desired: int
    required: int  # its required members (min replicas, at least 1)
    reason: str = "starting at min_replicas"
    parked: bool = False  # scaled to zero: stopped and not queued until a request comes
    state: ScaleState = field(default_factory=ScaleState)
    draining: set[str] = field(default_factory=set)
    decisions: deque[ScaleDecision] = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))
    series: deque[SeriesPoint] = field(default_factory=lambda: deque(maxlen=SERIES_POINTS))
    last: ServingLoad | None = None


def policy_of(w: Workload) -> ServingPolicy:
    """The rule's policy for a deployment: its bounds and settings."""
    group = w.spec.task_groups[0]
    serving = w.spec.serving
    assert serving is not None
    low = serving.min_replicas if serving.min_replicas is not None else group.members
    high = group.max_members if group.max_members is not None else group.members
    return serving.policy(low, high)


class DriverSide(Protocol):
    """What the loop uses of the driver (``engine.driver.Driver``), which owns it."""

    workloads: dict[str, Workload]
    core: Scheduler
    executor: Executor
    journal: Journal

    def add_extra(
        self, w: Workload, member: str, group: TaskGroup, now: float, elastic: bool = True
    ) -> None: ...

    def cancel(self, workload_id: str, now: float, reason: str = "cancelled") -> Workload: ...

    def resize(self, w: Workload, now: float) -> None: ...

    def park(self, w: Workload, now: float, reason: str) -> None: ...

    def wake(self, w: Workload, now: float, reason: str) -> None: ...


class Scaling:
    """The loop over a driver's deployments (see the module docstring)."""

    def __init__(self, driver: DriverSide) -> None:
        self.driver = driver
        self.tracks: dict[str, Track] = {}  # deployment workload id -> its track

    # ------------------------------------------------------------------ lifecycle

    def track(self, w: Workload) -> Track | None:
        """The track of a deployment (made on first use); None for any other workload."""
        if w.spec.kind != DEPLOYMENT_KIND or w.spec.serving is None:
            return None
        t = self.tracks.get(w.id)
        if t is None:
            required = w.spec.member_count()
            placed_extras = sum(1 for m in w.placement if m in self._extras(w))
            t = Track(policy_of(w), desired=required + placed_extras, required=required)
            self.tracks[w.id] = t
        return t

    def requeued(self, w: Workload) -> None:
        """The deployment waits again as a whole (preempted, lost a node): back to min."""
        t = self.track(w)
        if t is not None:
            t.desired = t.required
            t.parked = False
            t.draining.clear()
            t.state = ScaleState()

    def parked(self, w: Workload) -> bool:
        t = self.tracks.get(w.id)
        return t is not None and t.parked

    def ended(self, workload_id: str) -> None:
        self.tracks.pop(workload_id, None)

    def started(self, w: Workload, now: float) -> None:
        """A deployment runs: the revision it replaces, if still live, is stopped (it drains)."""
        serving = w.spec.serving
        if w.spec.kind != DEPLOYMENT_KIND or serving is None or serving.replaces is None:
            return
        old = self.driver.workloads.get(serving.replaces)
        if old is not None and not old.terminal:
            self.driver.cancel(old.id, now, f"replaced by revision {serving.revision} ({w.id})")

    # ------------------------------------------------------------------ the loop

    def tick(self, now: float) -> None:
        d = self.driver
        if not self.tracks or not can_run_deployments(d.executor):
            return
        being_replaced = {
            w.spec.serving.replaces: w
            for wid in self.tracks
            if (w := d.workloads.get(wid)) is not None and not w.terminal and w.spec.serving is not None
        }
        for wid in sorted(self.tracks):
            w = d.workloads.get(wid)
            if w is None or w.terminal:
                self.tracks.pop(wid, None)
                continue
            t = self.tracks[wid]
            # Load counts once it serves (idle time while its replicas start is not idleness),
            # and while it is parked (a request waiting there wakes it).
            if w.state != WorkloadState.RUNNING and not (t.parked and w.state == WorkloadState.PREEMPTED):
                continue
            load = d.executor.serving_load(w)  # type: ignore[attr-defined]
            if load is not None:
                t.last = load
                observe(t.policy, t.state, LoadSample(now, load.in_flight, load.queued, load.ready))
            new, reason = decide(t.policy, t.state, now, t.desired)
            successor = being_replaced.get(wid)
            if successor is not None and new > t.required:
                # Its extras make room for the revision replacing it (surge within the queue).
                new = t.required
                reason = Reason(
                    Code.SCALE_DOWN,
                    f"down to its min replicas ({t.required}): revision {successor.spec.serving.revision} "  # type: ignore[union-attr]
                    f"({successor.id}) replaces it",
                )
            t.reason = reason.message
            if new != t.desired:
                t.decisions.append(ScaleDecision(now, t.desired, new, reason.message))
                d.journal.event(w.id, now, "scaled", reason.message)
                t.desired = new
            if load is not None:
                self._record(w, t, load, now)
            if t.parked:
                if t.desired > 0:
                    self._wake(w, t, now, reason.message)
            elif t.desired == 0:
                t.parked = True
                d.park(w, now, reason.message)
            else:
                try:
                    self.apply(w, t, now)
                except SchedulerError as exc:  # one deployment's trouble must not stop every tick
                    t.reason = f"replicas not adjusted: {exc}"
                    d.journal.event(w.id, now, "scaling-error", t.reason)

    def _wake(self, w: Workload, t: Track, now: float, why: str) -> None:
        """A request waits at a parked deployment's front: queue it again (its required replicas
        first; the extras the rule wants once it runs)."""
        want = t.desired
        self.driver.wake(w, now, why)  # back in the queue: ``requeued`` resets the track
        t.desired = max(want, t.required)

    def _record(self, w: Workload, t: Track, load: ServingLoad, now: float) -> None:
        if t.series and now - t.series[-1].at < SAMPLE_EVERY:
            return
        t.series.append(
            SeriesPoint(
                now,
                replicas=len(w.placement),
                ready=load.ready,
                desired=t.desired,
                in_flight=load.in_flight,
                queued=load.queued,
                requests=load.requests,
                errors=load.errors,
                p50_ms=load.p50_ms,
                p99_ms=load.p99_ms,
            )
        )

    def apply(self, w: Workload, t: Track, now: float) -> None:
        """Ask for the extras the wanted count needs; withdraw or drain those it does not."""
        d = self.driver
        extras = self._extras(w)
        want = max(0, t.desired - t.required)
        # In order: placed (not draining) first, then asked; a draining member is neither.
        placed = [m for m in extras if m in w.placement]
        asked = [m for m in extras if f"{w.id}/{m}" in d.core.asks]
        active = len(placed) + len(asked)
        if active < want:
            held = d.core.allocations
            free = [
                m
                for m in extras
                if m not in w.placement
                and m not in t.draining
                and m not in asked
                and f"{w.id}/{m}" not in held
            ]
            for member in free[: want - active]:
                # Demand, not opportunism: an extra the load wants is an ordinary ask, so a
                # deployment below its queue's guarantee takes room back from batch above theirs
                # (YuniKorn's preemption rules); above its guarantee it only borrows idle room.
                d.add_extra(w, member, extras[member], now, elastic=False)
            return
        surplus = active - want
        for member in reversed(asked):
            if surplus == 0:
                return
            d.core.remove_ask(f"{w.id}/{member}")
            surplus -= 1
        for member in reversed(placed):
            if surplus == 0:
                return
            self.drain(w, member, now, "scaled down")
            surplus -= 1

    def drain(self, w: Workload, member: str, now: float, why: str) -> None:
        """Take a placed extra out of the running deployment: the executor stops sending it
        requests and reports ``MemberStopped`` when it is done; its room is freed then."""
        d = self.driver
        t = self.track(w)
        assert t is not None
        alloc_id = f"{w.id}/{member}"
        if alloc_id in d.core.allocations:
            d.core.mark_preempting(alloc_id)
            t.draining.add(member)
        w.placement.pop(member, None)
        w.assigned.pop(member, None)
        w.gpu_ids.pop(member, None)
        d.journal.event(w.id, now, "replica-draining", f"replica {member} drains: {why}")
        if isinstance(d.executor, Resizable):
            d.resize(w, now)
        else:  # nothing to drain on: it is stopped as far as anyone can tell
            self.stopped(w, MemberStopped(w.id, w.attempt, member), now)

    def stopped(self, w: Workload, obs: MemberStopped, now: float) -> None:
        """A drained replica stopped: free its room."""
        t = self.tracks.get(w.id)
        if t is None or obs.member not in t.draining:
            return
        t.draining.discard(obs.member)
        d = self.driver
        alloc_id = f"{w.id}/{obs.member}"
        if alloc_id in d.core.allocations:
            d.core.release(alloc_id)
        d.journal.event(w.id, now, "replica-stopped", f"replica {obs.member} stopped")
        required = dict(w.spec.members())
        if obs.member in required and w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING):
            # A min replica the scheduler took back: wanted all the same, it waits for room again.
            d.add_extra(w, obs.member, required[obs.member], now, elastic=False)

    @staticmethod
    def _extras(w: Workload) -> dict[str, TaskGroup]:
        return dict(w.spec.extra_members())
