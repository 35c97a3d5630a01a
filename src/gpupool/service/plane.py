"""The control plane's use cases: submit, read, cancel, explain, reload; recovery; the driver thread.

One ``ControlPlane`` owns one engine ``Driver`` (scheduling core + executor + journal). Every
call that touches the driver holds ``lock``, and so does every driver tick, which runs on a
background thread every ``tick_interval`` seconds or as soon as a submission wakes it. Reads of
stored workloads go to the database without the lock (the journal writes before anything acts,
so the database is never behind a decision).

Recovery (``start``): the driver is rebuilt from the database. Pending and preempted workloads are
submitted again under their own ids; admitted, running and preempting ones are put back on the
nodes they hold (``Scheduler.submit(forced=True)`` + ``Scheduler.restore``) and re-attached with
``executor.adopt``; one the executor no longer knows is requeued. A workload is never started
twice at once: the executor is asked to start only what the core admits, and a restored
workload is admitted already.

A configuration reload updates the core in place.

Node pools: given a node provider (``gpupool up`` gives its local Ray cluster's) and a config with
``nodepools:``, the plane makes one ``Autoscaler`` that every driver it builds uses, so the pools
grow and shrink live; a reload takes the new pools. ``nodes()`` and ``pools()`` show its state.
On recovery the autoscaler first adopts the pool nodes the provider still runs
(``Autoscaler.adopt``), before the workloads are restored, so work that ran on a pool node goes
back onto it and the node keeps counting against its pool's max and scales down when idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Row, bindparam, func, or_, select

from gpupool.api import (
    AttemptOut,
    DisruptionIn,
    EventOut,
    LogsOut,
    NodeOut,
    PoolOut,
    QueueOut,
    SubmitRequest,
    TaskGroupOut,
    TransitionOut,
    WhyOut,
    WorkloadOut,
)
from gpupool.configfile import load_config
from gpupool.core.admission import Host, gang_over_max, never_fits
from gpupool.core.capacity import POOL_LABEL, headroom_target
from gpupool.core.config import Config, InstanceType, Size
from gpupool.core.configparse import DEFAULT_SIZES, ConfigError
from gpupool.core.decisions import Code, Reason
from gpupool.core.model import NodeSpec
from gpupool.core.placement import IMPLICIT_FALLBACK, Request, may_administer, may_submit
from gpupool.core.queues import Queue
from gpupool.core.resources import GPU_TYPE_LABEL, total
from gpupool.core.scheduler import Scheduler
from gpupool.engine.autoscaler import Autoscaler, NodeProvider, ProviderEvent, ProviderNode
from gpupool.engine.driver import Driver
from gpupool.engine.model import (
    Disruption,
    TaskGroup,
    Transition,
    Workload,
    WorkloadSpec,
    WorkloadState,
)
from gpupool.engine.ports import Executor, Observation
from gpupool.service.clock import wall_clock
from gpupool.service.db import Database
from gpupool.service.journal import DbJournal, spec_from_json, workload_from_row
from gpupool.service.models import EventRow, TransitionRow, WorkloadRow
from gpupool.service.security import Principal, administers, authenticate, may_see
from gpupool.service.settings import ServiceSettings

log = logging.getLogger("gpupool.service")

DEFAULT_CONFIG = Path(__file__).parent / "default_queues.yaml"
TICK_GAP = 0.2  # seconds: the least time between the starts of two ticks (at most the tick interval)
TICK_PAUSE = 0.02  # seconds: the least time between the end of a tick and the start of the next
TOKEN_CACHE = 4096  # principals of tokens seen, kept in memory (tokens never change once made)
_LIVE = (WorkloadState.ADMITTED, WorkloadState.RUNNING, WorkloadState.PREEMPTING)
_WAITING = (WorkloadState.PENDING, WorkloadState.PREEMPTED)

# What would let a waiting workload start, by the core's reason code.
_ADVICE: dict[Code, str] = {
    Code.QUEUE_QUOTA: "it starts when its queue's usage drops below the max (other workloads there "
    "finish), or when an admin raises that max; a smaller size fits sooner",
    Code.USER_LIMIT: "it starts when your (or your group's) other workloads in that queue finish",
    Code.MAX_APPS: "it starts when another application in that queue finishes",
    Code.NO_NODE: "it starts when a node with enough free GPUs of an allowed type frees up; allowing "
    "more GPU types or asking for fewer GPUs per member widens the choice",
    Code.GANG_WAITING: "all members must fit at once; it starts when the cluster has room for the whole "
    "gang (a soft gang falls back to one by one after its timeout)",
    Code.RESERVED: "preemption made room for it: it starts as soon as the preempted workloads stop",
    Code.PREEMPTION_WAIT: "it is younger than its queue's preemption.delay; preemption is tried after that",
    Code.NO_PREEMPTION: "preemption cannot help; it waits for running workloads to finish",
    Code.NOT_TRIED: "the scheduler has not looked at it yet; ask again in a second",
}


# The headline of a waiting workload, by the reason code of its first waiting member: its
# stored reason is only the last transition's ("submitted", "preempted by ...").
_WAITS: dict[Code, str] = {
    Code.QUEUE_QUOTA: "its queue (or a parent) is at its max",
    Code.USER_LIMIT: "a user or group limit of its queue is reached",
    Code.MAX_APPS: "its queue runs as many applications as it may",
    Code.NO_NODE: "no node has room for it now",
    Code.GANG_WAITING: "the cluster has no room for the whole gang at once",
    Code.RESERVED: "room is being made for it (preempted workloads are stopping)",
    Code.PREEMPTION_WAIT: "too young to preempt yet (preemption.delay)",
    Code.NO_PREEMPTION: "it waits for running workloads to finish",
    Code.NOT_TRIED: "submitted; the scheduler has not looked at it yet",
}


class ServiceExecutor(Executor, Protocol):
    """What the control plane needs of a cluster: the engine's Executor port plus these."""

    def logs(self, workload_id: str) -> str:
        """The job's output so far (may be called from any thread, without the plane's lock)."""

    def adopt(self, workload: Workload) -> bool:
        """Re-attach a workload that was admitted before a restart; False if its job is gone."""

    def nodes(self) -> list[NodeSpec]:
        """The cluster's nodes now (the driver then follows NodeUp / NodeDown observations)."""

    def close(self) -> None: ...


class ServiceError(Exception):
    """An error the API turns into an ``ErrorBody`` with this status."""

    status = 400
    code = "bad-request"

    def __init__(self, message: str, *, fields: Iterable[tuple[str, str]] = (), hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fields = list(fields)
        self.hint = hint


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not-found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Invalid(ServiceError):
    status = 422
    code = "invalid"


def load_queue_config(path: Path | None) -> Config:
    """The configuration file, or the packaged default. Raises ConfigError."""
    return load_config(path or DEFAULT_CONFIG)


class ControlPlane:
    def __init__(
        self,
        settings: ServiceSettings,
        config: Config,
        db: Database,
        executor: ServiceExecutor,
        *,
        clock: Callable[[], float] = wall_clock,
        on_transition: Callable[[Workload, Transition, str | None], None] | None = None,
        provider: NodeProvider | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.db = db
        self.executor = executor
        self.provider = provider
        self.journal = DbJournal(db, queue_of=self._queue_of)
        self.autoscaler: Autoscaler | None = None
        self._sync_pools(config)
        self.clock = clock
        self.lock = threading.RLock()
        self._on_transition = on_transition
        self.driver = self._new_driver(config)
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_errors = 0
        self.recovered: dict[str, str] = {}  # workload -> what recovery did with it
        # Token -> its principal: a token is stored once and never altered, so a hit is final.
        self._principals: dict[str, Principal] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover from the database, then run the driver loop on a background thread."""
        with self.lock:
            self._recover(self.clock())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpupool-driver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def checkpoint_running(self, timeout: float) -> dict[str, str]:
        """Before the cluster goes away with the control plane (a graceful stop of ``gpupool up``
        on its own local cluster): ask every running workload that may be disrupted to
        checkpoint and stop, and tick until each has stopped (within its grace) or ``timeout``
        seconds have passed. Each is then stored as preempted with its checkpoint, so the next
        start resumes it from there. Nothing starts meanwhile: the nodes are cordoned and the
        autoscaler paused. Call it after ``stop``. Returns the workloads asked and their state.
        """
        with self.lock:
            driver = self.driver
            now = self.clock()
            for name in list(driver.core.nodes):
                driver.core.set_schedulable(name, False)
            driver.autoscaler = None
            asked = [
                w
                for w in driver.workloads.values()
                if w.state == WorkloadState.RUNNING and w.spec.disruption.policy != "never"
            ]
            for w in asked:
                driver.move(w.id, now, "the control plane is stopping: checkpoint and requeue")
        deadline = time.monotonic() + timeout
        while any(w.state == WorkloadState.PREEMPTING for w in asked) and time.monotonic() < deadline:
            time.sleep(0.2)
            self.tick()
        if asked:
            log.info("checkpointed before stopping: %s", Counter(w.state.value for w in asked))
        return {w.id: w.state.value for w in asked}

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.tick_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            began = time.monotonic()
            self.tick()
            # A burst of submissions shares the next tick instead of one tick each: every tick
            # walks all waiting work under the lock, which API calls then wait for. Ticks begin
            # at least TICK_GAP (or the tick interval, if shorter) apart, so a decision still
            # comes within that of a submission; and the API has the lock for at least
            # TICK_PAUSE between two ticks.
            gap = min(TICK_GAP, self.settings.tick_interval)
            self._stop.wait(max(TICK_PAUSE, gap - (time.monotonic() - began)))

    def tick(self) -> None:
        try:
            # One transaction for the tick's writes, committed before each executor call
            # (``_JournalFirst``) and at the end, instead of one per transition.
            with self.lock, self.journal.batch(on_error="commit"):
                self.driver.tick(self.clock())
        except Exception:  # the loop must outlive one bad tick; the error is logged and counted
            self.tick_errors += 1
            log.exception("driver tick failed")

    # ------------------------------------------------------------------ building the driver

    def _new_driver(self, config: Config) -> Driver:
        core = Scheduler(config.partition(self.settings.partition))
        executor = _JournalFirst(self.executor, self.journal)
        return Driver(core, executor, _Observed(self.journal, self), autoscaler=self.autoscaler)

    def _sync_pools(self, config: Config) -> None:
        """The autoscaler follows the configured node pools and compaction settings (none
        without a provider)."""
        if self.provider is None or not config.nodepools:
            if self.autoscaler is not None:
                self.autoscaler.pools = ()  # keeps its nodes until they idle out; launches nothing
                self.autoscaler.compaction_budget = 0
            return
        if self.autoscaler is None:
            self.autoscaler = Autoscaler(config.nodepools, _ProviderJournalFirst(self.provider, self.journal))
        else:
            self.autoscaler.pools = config.nodepools
        self.autoscaler.compaction_budget = config.compaction_budget
        self.autoscaler.compaction_interval = config.compaction_interval

    def _queue_of(self, workload_id: str) -> str | None:
        core = self.driver.core
        return core.queue_of(workload_id) if workload_id in core.apps else None

    def _recover(self, now: float) -> None:
        # Before the first tick: the autoscaler has launched nothing yet, so the executor's
        # nodes and the pool nodes the provider still runs (adopted below; the executor does not
        # list pool nodes: they are the autoscaler's) are all the nodes there are.
        driver = self._new_driver(self.config)
        self.driver = driver
        for node in self.executor.nodes():
            if node.name not in driver.core.nodes:
                driver.core.add_node(node)
        if driver.autoscaler is not None:
            # The pool nodes launched before the restart still run: take them back from the
            # provider first, so that work restored onto them finds its node in the core.
            adopted = driver.autoscaler.adopt(driver, now)
            if adopted:
                log.info("adopted %d pool nodes: %s", len(adopted), ", ".join(adopted))
        with self.db.session() as s:
            self._seq = int(s.scalar(select(func.max(WorkloadRow.seq))) or 0)
        for row in self.journal.active():
            w = workload_from_row(row)
            self.recovered[w.id] = self._restore(driver, w, row.queue, now, adopt=True)
        reap = getattr(self.executor, "reap_orphans", None)
        if reap is not None:  # jobs of workloads the database no longer calls live
            reap(keep={w.id for w in driver.workloads.values() if not w.terminal})
        if self.recovered:
            log.info("recovered %d workloads: %s", len(self.recovered), Counter(self.recovered.values()))

    def _restore(self, driver: Driver, w: Workload, queue: str | None, now: float, *, adopt: bool) -> str:
        """Put ``w`` back into ``driver`` as it was; returns what happened, for the log."""
        return driver.restore(w, now, queue=queue, adopt=adopt)

    # ------------------------------------------------------------------ submissions

    def submit(self, principal: Principal, req: SubmitRequest) -> tuple[WorkloadOut, bool]:
        """Accept a workload; returns it and whether it is new (False: same idempotency key)."""
        with self.lock:
            if req.idempotency_key:
                existing = self._by_key(req.idempotency_key)
                if existing is not None:
                    if existing.user != principal.user:
                        raise Conflict(
                            f"idempotency key {req.idempotency_key!r} belongs to another user's workload",
                            fields=[("body.idempotency_key", "already used by another user")],
                            hint="use a key unique to you, e.g. prefixed with your user name",
                        )
                    return self._out(existing, history=True), False
            spec = self._spec(principal, req)
            notice = self._check_submit(principal, spec)
            now = self.clock()
            self._seq += 1
            wid = f"w-{self._seq:06d}"
            try:
                # The row, its event and its queue: one commit, before the answer.
                with self.journal.batch():
                    w = self.driver.submit(spec, now, workload_id=wid)
                    queue = self._queue_of(w.id)
                    if queue:
                        self.journal.set_queue(w.id, queue)
                    if notice:
                        self.journal.event(w.id, now, "placed", notice)
            except Exception:
                self._forget(wid)
                raise
            out = _workload_out(w, queue or w.spec.queue)
        self.wake()
        out.notice = notice
        return out, True

    def _forget(self, wid: str) -> None:
        """Undo a submission whose journal write failed (nothing of it was committed)."""
        w = self.driver.workloads.pop(wid, None)
        if w is None:
            return
        if w.spec.idempotency_key:
            self.driver._by_key.pop(w.spec.idempotency_key, None)
        self.driver._drop_from_core(w)

    def _spec(self, principal: Principal, req: SubmitRequest) -> WorkloadSpec:
        if req.size is not None:
            groups: tuple[TaskGroup, ...] = (self._sized_group(req.size),)
        else:
            assert req.task_groups is not None
            groups = tuple(
                TaskGroup(g.name, g.members, g.resources(), tuple(g.gpu_types), max_members=g.max_members)
                for g in req.task_groups
            )
        many = sum(g.members for g in groups) > 1
        return WorkloadSpec(
            name=req.name,
            task_groups=groups,
            queue=req.queue,
            user=principal.user,
            groups=principal.groups,
            tags=dict(req.tags),
            priority=req.priority,
            gang_style=req.gang_style if (req.gang or not many) else "soft",
            # A non-gang multi-member workload is a soft gang that gives up waiting at once.
            gang_timeout=req.gang_timeout if (req.gang or not many) else 0.0,
            span_regions=req.span_regions,
            disruption=Disruption(req.disruption.policy, req.disruption.grace),
            entrypoint=req.entrypoint,
            working_dir=req.working_dir,
            env=dict(req.env),
            idempotency_key=req.idempotency_key,
            size=req.size,
        )

    def sizes(self) -> dict[str, Size]:
        return self.config.sizes or DEFAULT_SIZES

    def _sized_group(self, size: str) -> TaskGroup:
        """One member of a standard size: its shapes in order, those of GPU types absent from
        the cluster left out (unless none is left); the core falls back through them."""
        sizes = self.sizes()
        chosen = sizes.get(size)
        if chosen is None:
            raise Invalid(
                f"unknown size {size!r}",
                fields=[("body.size", f"unknown size {size!r}; known sizes: {', '.join(sorted(sizes))}")],
                hint="pick one of the sizes listed, or give explicit task_groups",
            )
        present = {n.gpu_type for n in self.driver.core.nodes.values() if n.gpu_type}
        usable = tuple(s for s in chosen.shapes if not s.gpu_types or present.intersection(s.gpu_types))
        return TaskGroup.from_size("main", 1, Size(chosen.name, usable or chosen.shapes, chosen.description))

    def _check_submit(self, principal: Principal, spec: WorkloadSpec) -> str | None:
        """Refuse, before anything is stored, a submission that could never run here: a queue
        that does not exist or that the user may not submit to (unless a placement rule of the
        config sends it elsewhere), a gang above its queue's max, a member no node could hold.
        Returns where it went and why when that is not the queue it named (None otherwise)."""
        core = self.driver.core
        path, _create, why = core.placer.place(
            Request(user=principal.user, groups=principal.groups, queue=spec.queue, tags=spec.tags)
        )
        named = _full_path(spec.queue) if spec.queue else None
        if path is None or (named is not None and why == IMPLICIT_FALLBACK and path != named):
            # YuniKorn would put a named queue's refused submission in root.default; here it is
            # refused, unless a rule of the config redirects it (docs/scheduling.md).
            self._refuse_queue(principal, spec.queue, why)
        assert path is not None
        notice = None
        if named is not None and path != named:
            notice = f"{spec.queue} {self._not_usable(principal, named)}: placed in {path} ({why})"
        elif named is None and why == IMPLICIT_FALLBACK:
            notice = f"no queue named and {why}"
        members = spec.members()
        if len(members) > 1:
            # A queue the rules will create is bounded by the max of its existing ancestors.
            parts = path.split(".")
            paths = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
            leaf = next((q for p in paths if (q := core.queues.get(p)) is not None), None)
            if leaf is not None:
                need = total(group.resources for _, group in members)
                too_big = gang_over_max(leaf, need)
                if too_big is not None:
                    raise Invalid(
                        f"refused: {too_big.message}",
                        fields=[("body.task_groups", too_big.message)],
                        hint=too_big.hint,
                    )
        hosts = self._hosts()
        for i, group in enumerate(spec.task_groups):
            never = never_fits(((group.resources, group.gpu_types), *group.alternatives), hosts)
            if never is not None:
                field = "body.size" if spec.size is not None else f"body.task_groups.{i}"
                raise Invalid(
                    f"refused: {never}",
                    fields=[(field, never)],
                    hint="ask for a shape that one node can hold (fewer GPUs per member, more members), "
                    "or a GPU type that exists; `gpupool nodes` lists the nodes",
                )
        return notice

    def _refuse_queue(self, principal: Principal, queue: str | None, why: str) -> None:
        core = self.driver.core
        named = _full_path(queue) if queue else None
        target = core.queues.get(named) if named else None
        if queue and (target is None or not target.is_leaf):
            leaves = sorted(q.path for q in core.queues.values() if q.is_leaf and not q.dynamic)
            what = f"no queue {queue!r}" if target is None else f"{target.path} is a parent queue"
            raise Invalid(
                what,
                fields=[("body.queue", f"{what}; leaf queues: {', '.join(leaves)}")],
                hint="give the full path of a leaf queue (see `gpupool queues`)",
            )
        message = f"{principal.user} may not submit here: {why}"
        if target is not None:
            why = (
                f"its submitacl allows {target.submit_acl.describe()}; submit or admin access on it "
                "or a parent queue is needed"
            )
            message = f"{principal.user} may not submit to {target.path}: {why}"
        raise Forbidden(
            message,
            fields=[("body.queue", why)],
            hint="ask an admin of the queue to add you (or one of your groups) to its submitacl",
        )

    def _not_usable(self, principal: Principal, path: str) -> str:
        q = self.driver.core.queues.get(path)
        if q is None:
            return "does not exist"
        if not q.is_leaf:
            return "is a parent queue"
        if not may_submit(q, principal.user, principal.groups):
            return f"does not take submissions from {principal.user}"
        return "was not used by the placement rules"

    def gpu_types(self) -> list[str]:
        """The GPU types of the cluster's nodes and of what its node pools can launch."""
        with self.lock:
            return sorted({h.gpu_type for h in self._hosts() if h.gpu_type})

    def _hosts(self) -> list[Host]:
        """Every node of the cluster, and every machine a configured node pool can launch."""
        core = self.driver.core
        hosts = [Host(dict(n.capacity), n.gpu_type, f"node {n.name}") for n in core.nodes.values()]
        for pool in self.config.nodepools:
            for t in pool.instance_types:
                hosts.append(Host(t.capacity(), t.gpu_type, f"pool {pool.name}: {t.name}"))
        return hosts

    def _by_key(self, key: str) -> Row[Any] | None:
        """The stored workload with this idempotency key (plain SQL: this runs on every submission)."""
        with self.db.engine.connect() as conn:
            return conn.execute(_SELECT_BY_KEY, {"key": key}).first()

    # ------------------------------------------------------------------ reads

    def _queue(self, path: str | None) -> Queue | None:
        return self.driver.core.queues.get(path) if path else None

    def _row(self, principal: Principal, workload_id: str, conn: Connection | None = None) -> Row[Any]:
        """The stored row of a workload the principal may see (plain SQL: this runs on every read)."""
        if conn is None:
            with self.db.engine.connect() as c:
                row = c.execute(_SELECT_ROW, {"wid": workload_id}).first()
        else:
            row = conn.execute(_SELECT_ROW, {"wid": workload_id}).first()
        if row is None or not may_see(principal, row.user, self._queue(row.queue)):
            # Someone else's workload is reported as missing: ids are not secrets, but contents are.
            raise NotFound(f"no workload {workload_id!r}", hint="list yours with `gpupool list`")
        return row

    def get(self, principal: Principal, workload_id: str) -> WorkloadOut:
        with self.db.engine.connect() as conn:
            row = self._row(principal, workload_id, conn)
            history = _history(conn, workload_id)
        return _row_out(row, history)

    def list(
        self,
        principal: Principal,
        *,
        state: str | None = None,
        queue: str | None = None,
        user: str | None = None,
        limit: int = 200,
    ) -> list[WorkloadOut]:
        q = select(_ROW).order_by(WorkloadRow.seq.desc()).limit(limit)
        if not principal.admin:
            with self.lock:  # the driver thread may add dynamic queues meanwhile
                administered = [
                    path
                    for path, node in self.driver.core.queues.items()
                    if may_administer(node, principal.user, principal.groups)
                ]
            q = q.where(or_(WorkloadRow.user == principal.user, WorkloadRow.queue.in_(administered)))
        if state:
            q = q.where(WorkloadRow.state.in_(state.split(",")))
        if queue:
            q = q.where(WorkloadRow.queue == queue)
        if user:
            q = q.where(WorkloadRow.user == user)
        with self.db.engine.connect() as conn:
            rows = list(conn.execute(q))
        return [_row_out(r, []) for r in rows]

    def events(self, principal: Principal, workload_id: str) -> list[EventOut]:
        self._row(principal, workload_id)
        with self.db.session() as s:
            events = [
                EventOut(at=e.at, kind=e.kind, message=e.message, workload_id=e.workload_id)
                for e in s.scalars(
                    select(EventRow).where(EventRow.workload_id == workload_id).order_by(EventRow.id)
                )
            ]
            transitions = [
                EventOut(
                    at=t.at,
                    kind=f"state:{t.new}",
                    message=f"{t.old} -> {t.new}: {t.reason}",
                    workload_id=workload_id,
                )
                for t in s.scalars(
                    select(TransitionRow)
                    .where(TransitionRow.workload_id == workload_id)
                    .order_by(TransitionRow.id)
                )
            ]
        return sorted(events + transitions, key=lambda e: e.at)

    def _out(self, row: Any, *, history: bool) -> WorkloadOut:
        if not history:
            return _row_out(row, [])
        with self.db.engine.connect() as conn:
            return _row_out(row, _history(conn, row.id))

    # ------------------------------------------------------------------ actions

    def cancel(self, principal: Principal, workload_id: str) -> WorkloadOut:
        row = self._row(principal, workload_id)
        if row.user != principal.user and not administers(principal, self._queue(row.queue)):
            raise Forbidden(
                f"{principal.user} may not cancel {workload_id}: it belongs to {row.user}",
                hint="only its owner and admins of its queue may cancel it",
            )
        with self.lock:
            if workload_id in self.driver.workloads:
                self.driver.cancel(workload_id, self.clock(), reason=f"cancelled by {principal.user}")
        self.wake()
        return self.get(principal, workload_id)

    def why(self, principal: Principal, workload_id: str) -> WhyOut:
        row = self._row(principal, workload_id)
        with self.lock:
            w = self.driver.workloads.get(workload_id)
            if w is None:
                return WhyOut(
                    id=row.id, state=row.state, lines=[f"{row.id} ({row.name}) is {row.state}: {row.reason}"]
                )  # type: ignore[arg-type]
            lines = self.driver.why(workload_id)
            codes: list[Reason] = []
            if w.state in _WAITING:
                for ask_id in w.member_ids():
                    if ask_id in self.driver.core.asks:
                        codes.append(self.driver.core.explain(ask_id))
            state = w.state.value
            if codes and codes[0].code in _WAITS:
                again = " (requeued)" if w.state == WorkloadState.PREEMPTED else ""
                lines[0] = f"{w.id} ({w.spec.name}) is {state}{again}: {_WAITS[codes[0].code]}"
        advice = list(dict.fromkeys(_ADVICE[r.code] for r in codes if r.code in _ADVICE))
        if advice:
            lines.append("What would change it:")
            lines.extend(f"  - {a}" for a in advice)
        return WhyOut(id=workload_id, state=state, lines=lines)  # type: ignore[arg-type]

    def logs(self, principal: Principal, workload_id: str) -> LogsOut:
        self._row(principal, workload_id)
        try:
            text = self.executor.logs(workload_id)
        except Exception as exc:  # the cluster's trouble is reported, not raised
            text = f"(logs unavailable: {exc})"
        return LogsOut(id=workload_id, text=text)

    # ------------------------------------------------------------------ cluster views

    def queues(self) -> list[QueueOut]:
        with self.lock:
            return [_queue_out(q) for q in self.driver.core.root.walk()]

    def nodes(self) -> list[NodeOut]:
        """The scheduler's nodes, and pool nodes still booting, by name."""
        with self.lock:
            autoscaler = self.driver.autoscaler
            pool_nodes = autoscaler.nodes if autoscaler is not None else {}
            draining = autoscaler.draining if autoscaler is not None else {}
            out = []
            for n in self.driver.core.nodes.values():
                pn = pool_nodes.get(n.name)
                state = "ready"
                if pn is not None and pn.state == "terminating":
                    state = "terminating"
                elif not n.schedulable or n.name in draining:
                    state = "draining"
                out.append(
                    NodeOut(
                        name=n.name,
                        gpu_type=n.gpu_type or n.labels.get(GPU_TYPE_LABEL),
                        schedulable=n.schedulable,
                        capacity=dict(n.capacity),
                        allocated={k: v for k, v in n.allocated.items() if v},
                        pool=pn.pool if pn is not None else n.labels.get(POOL_LABEL),
                        state=state,  # type: ignore[arg-type]
                    )
                )
            for lost in self.driver.lost.values():
                if lost.spec.name not in self.driver.core.nodes:
                    out.append(
                        NodeOut(
                            name=lost.spec.name,
                            gpu_type=lost.spec.labels.get(GPU_TYPE_LABEL),
                            schedulable=False,
                            capacity=dict(lost.spec.capacity),
                            allocated={},
                            pool=lost.spec.labels.get(POOL_LABEL),
                            state="lost",
                            lost_at=lost.at,
                            lost_reason=lost.reason,
                        )
                    )
            for pn in pool_nodes.values():
                if pn.state == "booting" and pn.name not in self.driver.core.nodes:
                    out.append(
                        NodeOut(
                            name=pn.name,
                            gpu_type=pn.instance_type.gpu_type,
                            schedulable=False,
                            capacity=dict(pn.instance_type.capacity()),
                            allocated={},
                            pool=pn.pool,
                            state="booting",
                        )
                    )
        return sorted(out, key=lambda n: n.name)

    def pools(self, attempts: int = 20) -> list[PoolOut]:
        """The configured node pools with their nodes by state and their last ``attempts`` launches."""
        with self.lock:
            autoscaler = self.driver.autoscaler
            now = self.clock()
            out = []
            for pool in self.config.nodepools:
                counts: Counter[str] = Counter()
                history: list[AttemptOut] = []
                blocked: list[str] = []
                if autoscaler is not None:
                    counts.update(
                        "draining" if n.state == "ready" and n.name in autoscaler.draining else n.state
                        for n in autoscaler.nodes.values()
                        if n.pool == pool.name
                    )
                    blocked = sorted(
                        f"{itype} in {region}"
                        for (p, itype, region), until in autoscaler.blocked.items()
                        if p == pool.name and until > now
                    )
                    history = [
                        AttemptOut(
                            at=a.at,
                            pool=a.pool,
                            instance_type=a.instance_type,
                            region=a.region,
                            node=a.node,
                            outcome=a.outcome,
                            for_workloads=list(a.for_workloads),
                            message=a.message,
                        )
                        for a in autoscaler.attempts
                        if a.pool == pool.name
                    ][-attempts:]
                out.append(
                    PoolOut(
                        name=pool.name,
                        min=pool.min,
                        max=pool.max,
                        headroom_nodes=pool.headroom_nodes,
                        headroom_gpus=pool.headroom_gpus,
                        headroom_window=pool.headroom_window,
                        headroom_max_nodes=pool.headroom_max_nodes,
                        headroom_now=headroom_target(
                            pool,
                            autoscaler.arrivals if autoscaler is not None else (),
                            now,
                            autoscaler.peaks(now) if autoscaler is not None else None,
                        ),
                        idle_timeout=pool.idle_timeout,
                        instance_types=[f"{t.name} in {t.region}" for t in pool.instance_types],
                        nodes={state: n for state, n in counts.items() if n},
                        blocked=blocked,
                        attempts=history,
                    )
                )
        return out

    def state_counts(self) -> Counter[str]:
        with self.db.session() as s:
            rows = s.execute(select(WorkloadRow.state, func.count()).group_by(WorkloadRow.state)).all()
        return Counter({state: int(n) for state, n in rows})

    def reload(self, principal: Principal) -> list[QueueOut]:
        if not administers(principal, self.driver.core.root):
            raise Forbidden(
                f"{principal.user} may not reload the configuration",
                hint="reloading needs admin access on root (its adminacl)",
            )
        try:
            config = load_queue_config(self.settings.config_path)
        except ConfigError as exc:
            raise Invalid(
                f"the configuration is invalid; nothing was changed ({len(exc.issues)} problem(s))",
                fields=[
                    (i.path or exc.source, i.message + (f" (line {i.line})" if i.line else ""))
                    for i in exc.issues
                ],
                hint="run `gpupool config check FILE`, fix it, and reload again",
            ) from None
        with self.lock:
            now = self.clock()
            # The core takes the new configuration in place: nothing running, waiting or
            # reserved is lost, and queues no longer configured stay while they hold work.
            changes = self.driver.core.update_config(config.partition(self.settings.partition))
            self.config = config
            self._sync_pools(config)
            self.driver.autoscaler = self.autoscaler
            summary = "; ".join(changes) if changes else "no structural change"
            self.journal.event(
                None, now, "config-reloaded", f"configuration reloaded by {principal.user}: {summary}"
            )
        self.wake()
        return self.queues()

    def known_principal(self, token: str | None) -> Principal | None:
        """The principal of a token already authenticated (no I/O); None if not seen yet."""
        return self._principals.get(token) if token else None

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized(
                "missing API token", hint="send `Authorization: Bearer <token>`; see `gpupool token create`"
            )
        cached = self._principals.get(token)
        if cached is not None:
            return cached
        principal = authenticate(self.db, token)
        if principal is not None:
            if len(self._principals) >= TOKEN_CACHE:
                self._principals.clear()
            self._principals[token] = principal
        if principal is None:
            raise Unauthorized(
                "unknown API token", hint="check GPUPOOL_TOKEN or create one with `gpupool token create`"
            )
        return principal


class _JournalFirst:
    """The executor as the driver sees it: every call first commits the journal writes the
    calling thread has batched (a driver tick's), so nothing reaches the cluster before the
    transitions it acts on are stored. Optional hooks (``adopt``, ``resize``) stay optional."""

    def __init__(self, executor: ServiceExecutor, journal: DbJournal) -> None:
        self._executor = executor
        self._journal = journal

    def start(self, workload: Workload, now: float) -> None:
        self._journal.flush()
        self._executor.start(workload, now)

    def preempt(self, workload: Workload, grace: float, now: float) -> None:
        self._journal.flush()
        self._executor.preempt(workload, grace, now)

    def cancel(self, workload: Workload, now: float) -> None:
        self._journal.flush()
        self._executor.cancel(workload, now)

    def poll(self, now: float) -> list[Observation]:
        self._journal.flush()
        return self._executor.poll(now)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._executor, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._journal.flush()
            return attr(*args, **kwargs)

        return call


class _ProviderJournalFirst:
    """The node provider as the autoscaler sees it: as ``_JournalFirst``, the batched journal
    writes are committed before each call (the provider's own store writes to the database too)."""

    def __init__(self, provider: NodeProvider, journal: DbJournal) -> None:
        self._provider = provider
        self._journal = journal

    def launch(self, pool: str, itype: InstanceType, name: str, now: float) -> None:
        self._journal.flush()
        self._provider.launch(pool, itype, name, now)

    def terminate(self, name: str, now: float) -> None:
        self._journal.flush()
        self._provider.terminate(name, now)

    def poll(self, now: float) -> list[ProviderEvent]:
        self._journal.flush()
        return self._provider.poll(now)

    def next_time(self) -> float | None:
        return self._provider.next_time()

    def inventory(self) -> list[ProviderNode]:
        self._journal.flush()
        return self._provider.inventory()


class _Observed:
    """The journal the driver writes to: the database, then the plane's observers (metrics)."""

    def __init__(self, journal: DbJournal, plane: ControlPlane) -> None:
        self.journal = journal
        self.plane = plane

    def submitted(self, workload: Workload) -> None:
        self.journal.submitted(workload)

    def transition(self, workload: Workload, transition: Transition) -> None:
        self.journal.transition(workload, transition)
        hook = self.plane._on_transition
        if hook is not None:
            try:
                hook(workload, transition, self.plane._queue_of(workload.id))
            except Exception:
                log.exception("transition observer failed")

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None:
        self.journal.event(workload_id, at, kind, message)


def _full_path(queue: str) -> str:
    """A queue name as the ``provided`` rule reads it: lower-case, under root."""
    name = queue.lower()
    return name if name == "root" or name.startswith("root.") else f"root.{name}"


_ROW = WorkloadRow.__table__
_TRANSITIONS = TransitionRow.__table__


# Built once, executed with a dict: compiled once and cached (these run on every read).
_SELECT_ROW = select(_ROW).where(_ROW.c.id == bindparam("wid"))
_SELECT_BY_KEY = select(_ROW).where(_ROW.c.idempotency_key == bindparam("key"))
_SELECT_HISTORY = (
    select(_TRANSITIONS.c.at, _TRANSITIONS.c.old, _TRANSITIONS.c.new, _TRANSITIONS.c.reason)
    .where(_TRANSITIONS.c.workload_id == bindparam("wid"))
    .order_by(_TRANSITIONS.c.id)
)


def _history(conn: Connection, workload_id: str) -> list[TransitionOut]:
    return [
        TransitionOut(at=t.at, old=t.old, new=t.new, reason=t.reason)
        for t in conn.execute(_SELECT_HISTORY, {"wid": workload_id})
    ]


def _row_out(row: Any, history: list[TransitionOut]) -> WorkloadOut:
    """A stored workload row (ORM or plain SQL: the same column names) on the wire."""
    return _wire(
        row.id,
        spec_from_json(row.spec),
        queue=row.queue,
        state=row.state,
        reason=row.reason,
        attempt=row.attempt,
        placement=dict(row.placement or {}),
        submitted_at=row.submitted_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        preemptions=row.preemptions,
        checkpoint=row.checkpoint,
        history=history,
    )


def _workload_out(w: Workload, queue: str | None) -> WorkloadOut:
    """A workload in memory on the wire: what ``_row_out`` gives once its rows are committed."""
    return _wire(
        w.id,
        w.spec,
        queue=queue,
        state=w.state.value,
        reason=w.reason,
        attempt=w.attempt,
        placement=dict(w.placement),
        submitted_at=w.submitted_at,
        started_at=w.started_at,
        finished_at=w.finished_at,
        preemptions=w.preemptions,
        checkpoint=w.checkpoint,
        history=[
            TransitionOut(at=t.at, old=t.old.value if t.old else None, new=t.new.value, reason=t.reason)
            for t in w.history
        ],
    )


def _wire(wid: str, spec: WorkloadSpec, **state: Any) -> WorkloadOut:
    return WorkloadOut(
        id=wid,
        name=spec.name,
        user=spec.user,
        priority=spec.priority,
        size=spec.size,
        task_groups=[
            TaskGroupOut(
                name=g.name, members=g.members, resources=dict(g.resources), gpu_types=list(g.gpu_types)
            )
            for g in spec.task_groups
        ],
        gpus=spec.total_gpus(),
        gang_style=spec.gang_style,
        gang_timeout=spec.gang_timeout,
        span_regions=spec.span_regions,
        disruption=DisruptionIn(policy=spec.disruption.policy, grace=spec.disruption.grace),  # type: ignore[arg-type]
        entrypoint=spec.entrypoint,
        working_dir=spec.working_dir,
        env=dict(spec.env),
        tags=dict(spec.tags),
        idempotency_key=spec.idempotency_key,
        **state,
    )


def _queue_out(q: Queue) -> QueueOut:
    return QueueOut(
        path=q.path,
        parent=q.parent.path if q.parent is not None else None,
        leaf=q.is_leaf,
        guaranteed=dict(q.guaranteed or {}),
        max=dict(q.max or {}),
        allocated={k: v for k, v in q.allocated.items() if v},
        pending={k: v for k, v in q.pending.items() if v},
        running_apps=q.running_apps,
        submit_acl=q.submit_acl.describe(),
        admin_acl=q.admin_acl.describe(),
    )


__all__ = [
    "DEFAULT_CONFIG",
    "Conflict",
    "ControlPlane",
    "Forbidden",
    "Invalid",
    "NotFound",
    "ServiceError",
    "ServiceExecutor",
    "Unauthorized",
    "load_queue_config",
]
