"""The driver: one "observe -> decide -> act" loop, shared by live mode and the simulator.

``Driver.tick(now)`` polls the executor for what happened (jobs started, finished, stopped
after preemption, nodes lost or added), updates the scheduling core and the workloads, runs
scheduling cycles, and carries out the decisions: start admitted workloads, ask victims to
checkpoint and stop, fail rejected ones. Every transition goes to the journal before the
executor is told to act. A workload the executor cannot run at all (a model deployment, when it
does not declare ``RunsDeployments``) fails at submission or restore, never handed to it.

Workloads map onto the core one to one: a workload is an application, each member an ask
(``<workload>/<member>``), and a multi-member workload a gang. Preemption stops a workload as
a whole: when the core picks one member as a victim, the whole job checkpoints and stops, and
all its members are requeued together.

The driver holds no clock and does no I/O of its own: time comes in as ``now``; the executor
and the journal are the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.core.decisions import CycleResult, Fail, Place, Preempt, Reject
from gpupool.core.model import Allocation, GangSpec, NodeSpec
from gpupool.core.resources import Resources
from gpupool.core.scheduler import Scheduler, SchedulerError
from gpupool.engine.autoscaler import (
    Action,
    Autoscaler,
    Cordon,
    HoldFor,
    JoinNode,
    Launch,
    MoveWorkload,
    Note,
    PoolView,
    RemoveNode,
    Terminate,
)
from gpupool.engine.deployments import Scaling
from gpupool.engine.model import (
    DEPLOYMENT_KIND,
    TERMINAL,
    TaskGroup,
    Workload,
    WorkloadSpec,
    WorkloadState,
    member_of,
)
from gpupool.engine.ports import (
    Adoptable,
    Executor,
    Finished,
    Journal,
    MemberStopped,
    MemoryJournal,
    NodeDown,
    NodeUp,
    Observation,
    Resizable,
    Started,
    StartFailed,
    Stopped,
    cannot_run,
)

MAX_CYCLES_PER_TICK = 4
_SERVING = (WorkloadState.ADMITTED, WorkloadState.RUNNING)  # a deployment's replicas come and go

# A job that could not start is retried after a back-off that doubles each time (from
# START_BACKOFF up to START_BACKOFF_MAX seconds); after START_ATTEMPTS attempts in a row that
# could not start, the workload fails with the last cause.
START_ATTEMPTS = 5
START_BACKOFF = 2.0
START_BACKOFF_MAX = 60.0


def start_backoff(failures: int) -> float:
    """Seconds to wait before the next start after ``failures`` starts in a row failed."""
    return float(min(START_BACKOFF * 2 ** (failures - 1), START_BACKOFF_MAX))


@dataclass(frozen=True, slots=True)
class LostNode:
    """A node that died or left the cluster without being scaled down: shown until it returns."""

    spec: NodeSpec
    at: float
    reason: str


@dataclass(slots=True)
class TickReport:
    """What one tick did: the scheduling cycles it ran and the workloads admitted, asked to
    stop and finished."""

    now: float
    cycles: list[CycleResult] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)
    preempting: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


class Driver:
    """The observe -> decide -> act loop over one scheduler, executor, journal and (optional)
    autoscaler; see the module docstring."""

    def __init__(
        self,
        scheduler: Scheduler,
        executor: Executor,
        journal: Journal | None = None,
        autoscaler: Autoscaler | None = None,
    ) -> None:
        self.core = scheduler
        self.executor = executor
        self.autoscaler = autoscaler
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self.workloads: dict[str, Workload] = {}
        self._by_key: dict[str, str] = {}
        self._seq = 0
        self._partial: dict[str, dict[str, str]] = {}  # workload -> member -> node, until all placed
        self.preemptions = 0
        self._start_failures: dict[str, int] = {}  # workload -> starts in a row that failed
        self._retry_at: dict[str, float] = {}  # workload -> when it may be queued again
        self.lost: dict[str, LostNode] = {}  # nodes lost (not scaled down), until they come back
        self.scaling = Scaling(self)  # model deployments' autoscaling loop

    # ------------------------------------------------------------------ submissions

    def next_id(self) -> str:
        self._seq += 1
        return f"w-{self._seq:06d}"

    def submit(self, spec: WorkloadSpec, now: float, workload_id: str | None = None) -> Workload:
        """Accept a workload; with an idempotency key already seen, return the first one."""
        if spec.idempotency_key and spec.idempotency_key in self._by_key:
            return self.workloads[self._by_key[spec.idempotency_key]]
        wid = workload_id or self.next_id()
        if wid in self.workloads:
            raise SchedulerError(f"workload {wid!r} already exists")
        w = Workload(wid, spec, submitted_at=now)
        self.workloads[wid] = w
        if spec.idempotency_key:
            self._by_key[spec.idempotency_key] = wid
        self.journal.submitted(w)
        self.journal.event(wid, now, "submitted", f"{spec.name} submitted by {spec.user}")
        unrunnable = self._unrunnable(spec)
        if unrunnable is not None:
            self._move(w, WorkloadState.FAILED, now, unrunnable)
            return w
        rejected = self.core.submit(
            wid, queue=spec.queue, user=spec.user, groups=spec.groups, tags=spec.tags, gang=_gang(spec)
        )
        if rejected is not None:
            self._move(w, WorkloadState.FAILED, now, f"rejected: {rejected.reason}")
            return w
        self._enqueue(w, now)
        if self.autoscaler is not None:
            app = self.core.apps.get(w.id)
            self.autoscaler.arrived(w, app.queue if app is not None else None, now)
        return w

    def _enqueue(self, w: Workload, now: float) -> None:
        spec = w.spec
        members = spec.members()
        for i, (member, group) in enumerate(members):
            rejected = self.core.add_ask(
                w.id,
                f"{w.id}/{member}",
                group.resources,
                created=now,
                priority=spec.priority,
                gpu_types=group.gpu_types,
                alternatives=group.alternatives,
                disruptible=spec.disruption.policy != "never",
                originator=i == 0 and len(members) > 1 and spec.kind != DEPLOYMENT_KIND,  # a job's head
                check_gang_max=i == len(members) - 1,  # once, for the whole gang: linear
                within_guarantee=spec.within_guarantee,
            )
            if rejected is not None:
                self._drop_from_core(w)
                self._move(w, WorkloadState.FAILED, now, f"rejected: {rejected.reason}")
                return
        if spec.kind == DEPLOYMENT_KIND:
            self.scaling.requeued(w)  # its extras are asked on demand, from min replicas up
            return
        for member, group in spec.extra_members():
            self.add_extra(w, member, group, now)

    def add_extra(self, w: Workload, member: str, group: TaskGroup, now: float, elastic: bool = True) -> None:
        """Ask for one member of a running workload (an elastic extra, or a deployment's replica)."""
        self.core.add_ask(
            w.id,
            f"{w.id}/{member}",
            group.resources,
            created=now,
            priority=w.spec.priority,
            gpu_types=group.gpu_types,
            alternatives=group.alternatives,
            disruptible=w.spec.disruption.policy != "never",
            elastic=elastic,
            within_guarantee=w.spec.within_guarantee,
        )

    def restore(self, w: Workload, now: float, *, queue: str | None = None, adopt: bool = True) -> str:
        """Put a workload loaded from the journal back, as it was (recovery after a restart).

        Waiting workloads are submitted again under their own ids. Admitted, running and
        preempting ones go back onto their recorded nodes in the core (no quota checks, as on
        recovery) and, with ``adopt``, the executor re-attaches to their job; if the job or its
        nodes are gone, the workload is requeued, never run twice. Returns what happened.
        """
        spec = w.spec
        self.workloads[w.id] = w
        if spec.idempotency_key:
            self._by_key[spec.idempotency_key] = w.id
        if w.terminal:
            return "kept"
        unrunnable = self._unrunnable(spec)
        if unrunnable is not None:  # never adopted nor started: nothing of it runs here
            self._move(w, WorkloadState.FAILED, now, unrunnable)
            return "failed"
        if w.state in (WorkloadState.PENDING, WorkloadState.PREEMPTED):
            return self._resubmit(w, now)
        self.core.submit(
            w.id,
            queue=queue or spec.queue,
            user=spec.user,
            groups=spec.groups,
            tags=spec.tags,
            gang=_gang(spec),
            forced=True,
        )
        members = spec.members()
        groups = dict(members + spec.extra_members())
        placed = all(m in w.placement for m, _ in members) and all(
            n in self.core.nodes for n in w.placement.values()
        )
        if placed:
            for member, node in w.placement.items():
                alloc = self._restore_member(w, member, node, groups[member].resources, members, now)
                if alloc.gpu_ids:
                    w.gpu_ids[member] = tuple(alloc.gpu_ids)
                if w.state == WorkloadState.PREEMPTING:
                    self.core.mark_preempting(alloc.id)
            if spec.kind == DEPLOYMENT_KIND:
                self.scaling.track(w)  # wants what it has; the loop asks for more on demand
            for member, group in spec.extra_members():
                if member not in w.placement and spec.kind != DEPLOYMENT_KIND:
                    self.add_extra(w, member, group, now)
        if not adopt:
            return "restored"
        alive = bool(self.executor.adopt(w)) if isinstance(self.executor, Adoptable) else False
        if placed and alive:
            if w.state == WorkloadState.PREEMPTING:
                # The executor does not know a stop was asked: ask again (idempotent).
                self.executor.preempt(w, spec.disruption.grace, now)
            return "adopted"
        if alive:  # its nodes are gone but parts of it still run: stop them before requeuing
            self.executor.cancel(w, now)
        self._release_all(w)
        self._drop_from_core(w)
        self._move(
            w, WorkloadState.PENDING, now, "its job was not found after a control-plane restart; requeued"
        )
        return self._resubmit(w, now)

    def _unrunnable(self, spec: WorkloadSpec) -> str | None:
        """Why the executor cannot run this workload at all (None if it can): a deployment
        needs one that declares ``RunsDeployments``, or it would hold GPUs and run nothing."""
        why = cannot_run(spec.kind, self.executor)
        return None if why is None else f"not started: {why}"

    def _restore_member(
        self,
        w: Workload,
        member: str,
        node: str,
        shape: Resources,
        members: list[tuple[str, TaskGroup]],
        now: float,
    ) -> Allocation:
        """Put one placed member back in the core on the GPUs it was given (its process sees
        those); if the core refuses them (the node lost GPUs, or they would be overbooked), the
        GPUs are picked afresh and an event says so."""

        def put(gpu_ids: tuple[int, ...] | None) -> Allocation:
            return self.core.restore(
                f"{w.id}/{member}",
                w.id,
                node,
                w.assigned.get(member) or shape,  # the shape it was given
                start=w.started_at or w.submitted_at,
                priority=w.spec.priority,
                originator=member == members[0][0] and len(members) > 1 and w.spec.kind != DEPLOYMENT_KIND,
                disruptible=w.spec.disruption.policy != "never",
                elastic=member not in dict(members),
                gpu_ids=gpu_ids,
            )

        recorded = w.gpu_ids.get(member)
        if recorded is not None:
            try:
                return put(recorded)
            except SchedulerError as err:
                message = f"GPUs {list(recorded)} of {member} not kept after a restart: {err}"
                self.journal.event(w.id, now, "gpus-changed", message)
        return put(None)

    def _resubmit(self, w: Workload, now: float) -> str:
        spec = w.spec
        if w.id in self.core.apps:
            self._drop_from_core(w)
        rejected = self.core.submit(
            w.id, queue=spec.queue, user=spec.user, groups=spec.groups, tags=spec.tags, gang=_gang(spec)
        )
        if rejected is not None:
            self._move(w, WorkloadState.FAILED, now, f"rejected after a restart: {rejected.reason}")
            return "failed"
        self._enqueue(w, now)
        return "requeued"

    def cancel(self, workload_id: str, now: float, reason: str = "cancelled") -> Workload:
        w = self.workloads[workload_id]
        if w.terminal:
            return w
        was_running = w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING, WorkloadState.PREEMPTING)
        self._move(w, WorkloadState.CANCELLED, now, reason)
        if was_running:
            self.executor.cancel(w, now)  # its allocations are released once it has stopped
        else:
            # Members of a soft gang placed one by one hold room before it is admitted.
            self._partial.pop(w.id, None)
            self._release_all(w)
            self._drop_from_core(w)
            if w.spec.kind == DEPLOYMENT_KIND and not self._unrunnable(w.spec):
                self.executor.cancel(w, now)  # its front (its URL) outlives its replicas: it goes too
        return w

    def park(self, w: Workload, now: float, reason: str) -> None:
        """A deployment scaled to zero stops and waits unqueued until ``wake`` (``Scaling``)."""
        if w.state in _SERVING:
            w.preempt_deadline = now + w.spec.disruption.grace
            self._move(w, WorkloadState.PREEMPTING, now, reason)
            self.executor.preempt(w, w.spec.disruption.grace, now)

    def wake(self, w: Workload, now: float, reason: str) -> None:
        self.journal.event(w.id, now, "woken", reason)
        self._enqueue(w, now)

    # ------------------------------------------------------------------ the loop

    def tick(self, now: float) -> TickReport:
        report = TickReport(now)
        for obs in self.executor.poll(now):
            self.observe(obs, now, report)
        for wid, at in sorted(self._retry_at.items()):
            if at <= now:
                del self._retry_at[wid]
                w = self.workloads.get(wid)
                if w is not None and w.state == WorkloadState.PENDING:
                    self._enqueue(w, now)
        if self.autoscaler is not None:
            self.carry_out(self.autoscaler.observe(now), now)
        self.scaling.tick(now)
        for _ in range(MAX_CYCLES_PER_TICK):
            result = self.core.schedule(now)
            report.cycles.append(result)
            self._act(result, now, report)
            if not result.placed():
                break
        if self.autoscaler is not None:
            view = self.pool_view(now)
            self.carry_out(self.autoscaler.drain(view), now)
            self.carry_out(self.autoscaler.plan(view), now)
        return report

    def adopt_pool_nodes(self, now: float) -> list[str]:
        """Take back the pool nodes the provider still runs (after a control-plane restart):
        once, before the first tick and before workloads are restored. Returns their names."""
        if self.autoscaler is None:
            return []
        reply = self.autoscaler.adopt(self.pool_view(now))
        self.carry_out(reply.actions, now)
        return reply.adopted

    def pool_view(self, now: float) -> PoolView:
        """The autoscaler's request: the scheduler's nodes, asks and applications (read only,
        and live: a second request in the same tick sees what the first reply changed)."""
        return PoolView(now, self.core.nodes, self.core.asks, self.core.apps, self._movable)

    def _movable(self) -> set[str]:
        """Running workloads compaction may move (not ``never`` disruptible)."""
        return {
            w.id
            for w in self.workloads.values()
            if w.state == WorkloadState.RUNNING and w.spec.disruption.policy != "never"
        }

    def carry_out(self, actions: list[Action], now: float) -> None:
        """Do what the autoscaler replied, in order."""
        for a in actions:
            if isinstance(a, Note):
                self.journal.event(a.workload, now, a.kind, a.message)
            elif isinstance(a, Cordon):
                self.core.set_schedulable(a.node, a.schedulable)
            elif isinstance(a, MoveWorkload):
                self.move(a.workload, now, a.reason)
            elif isinstance(a, Launch):
                assert self.autoscaler is not None
                self.autoscaler.provider.launch(a.pool, a.itype, a.name, now)
            elif isinstance(a, Terminate):
                assert self.autoscaler is not None
                self.autoscaler.provider.terminate(a.name, now)
            elif isinstance(a, JoinNode):
                self.observe_node_up(a.spec, now)
            elif isinstance(a, RemoveNode):
                self.observe_node_gone(a.name, now)
            elif isinstance(a, HoldFor):
                self.core.reserve_for(a.app, a.node)

    def move(self, workload_id: str, now: float, reason: str) -> None:
        """Checkpoint, stop and requeue a running workload so that it is placed elsewhere."""
        w = self.workloads.get(workload_id)
        if w is not None and w.state == WorkloadState.RUNNING:
            self._preempt(w, now, reason, TickReport(now))

    def observe_node_up(self, spec: NodeSpec, now: float) -> None:
        self.observe(NodeUp(spec), now)

    def observe_node_gone(self, name: str, now: float) -> None:
        self._node_down(NodeDown(name, "scaled down"), now, lost=False)

    def _act(self, result: CycleResult, now: float, report: TickReport) -> None:
        for d in result.decisions:
            if isinstance(d, Place):
                wid, member = member_of(d.ask_id)
                w = self.workloads.get(wid)
                if w is None:
                    continue
                alloc = self.core.allocations.get(d.ask_id)
                if alloc is not None and alloc.gpu_ids:
                    w.gpu_ids[member] = tuple(alloc.gpu_ids)
                else:
                    w.gpu_ids.pop(member, None)
                serving = w.spec.kind == DEPLOYMENT_KIND and w.state in _SERVING
                if serving or (w.spec.has_extras() and member in self._extras(w)):
                    self._grow(w, member, d.node, dict(d.resources), now)  # a replica placed again, too
                    continue
                placed = self._partial.setdefault(wid, {})
                placed[member] = d.node
                w.assigned[member] = dict(d.resources)
                if len(placed) == w.spec.member_count():
                    self._admit(w, now, report)
            elif isinstance(d, Preempt):
                wid, member = member_of(d.alloc_id)
                w = self.workloads.get(wid)
                if w is not None and w.state in _SERVING and w.spec.kind == DEPLOYMENT_KIND:
                    self.scaling.drain(w, member, now, str(d.reason))  # each replica on its own
                elif w is not None and w.spec.has_extras() and member in self._extras(w):
                    self._shrink(w, member, d.alloc_id, now, str(d.reason))
                elif w is not None:
                    self._preempt(w, now, str(d.reason), report)
            elif isinstance(d, Reject | Fail):
                w = self.workloads.get(d.app_id)
                if w is not None and not w.terminal:
                    self._drop_from_core(w)
                    self._move(w, WorkloadState.FAILED, now, str(d.reason))

    @staticmethod
    def _extras(w: Workload) -> dict[str, TaskGroup]:
        return dict(w.spec.extra_members())

    def _grow(self, w: Workload, member: str, node: str, resources: dict[str, int], now: float) -> None:
        """An elastic workload's extra member got idle GPUs: the running job grows."""
        w.placement[member] = node
        w.assigned[member] = resources
        self.journal.event(w.id, now, "grew", f"extra member {member} on {node}")
        self.resize(w, now)

    def resize(self, w: Workload, now: float) -> None:
        """Tell the executor a running elastic workload's placement changed (if it can resize)."""
        if isinstance(self.executor, Resizable) and w.state in (
            WorkloadState.ADMITTED,
            WorkloadState.RUNNING,
        ):
            self.executor.resize(w, now)

    def _shrink(self, w: Workload, member: str, alloc_id: str, now: float, reason: str) -> None:
        """Give an extra member back at once (the job keeps running smaller) and wait again."""
        if alloc_id in self.core.allocations:
            self.core.release(alloc_id)
        w.placement.pop(member, None)
        w.assigned.pop(member, None)
        w.gpu_ids.pop(member, None)
        self.journal.event(w.id, now, "shrank", f"extra member {member} given back: {reason}")
        self.resize(w, now)
        if not w.terminal and w.id in self.core.apps:
            self.add_extra(w, member, self._extras(w)[member], now)

    def _admit(self, w: Workload, now: float, report: TickReport) -> None:
        w.placement = dict(sorted(self._partial.pop(w.id).items()))
        w.assigned = {m: r for m, r in w.assigned.items() if m in w.placement}
        w.gpu_ids = {m: ids for m, ids in w.gpu_ids.items() if m in w.placement}
        w.attempt += 1
        nodes = sorted(set(w.placement.values()))
        self._move(w, WorkloadState.ADMITTED, now, f"placed on {', '.join(nodes)} (attempt {w.attempt})")
        report.admitted.append(w.id)
        self.executor.start(w, now)

    def _preempt(self, w: Workload, now: float, reason: str, report: TickReport) -> None:
        if w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING):
            grace = w.spec.disruption.grace
            w.preempt_deadline = now + grace
            self._move(w, WorkloadState.PREEMPTING, now, reason)
            report.preempting.append(w.id)
            self.preemptions += 1
            self.executor.preempt(w, grace, now)
        elif w.state in (WorkloadState.PENDING, WorkloadState.PREEMPTED):
            # Members placed one by one (a soft gang after its timeout) but not started yet:
            # give their room back at once and wait again.
            self._partial.pop(w.id, None)
            self._release_all(w)
            self._drop_from_core(w, keep_app=True)
            self._enqueue(w, now)
            self.journal.event(w.id, now, "preempted", reason)

    # ------------------------------------------------------------------ observations

    def observe(self, obs: Observation, now: float, report: TickReport | None = None) -> None:
        if isinstance(obs, NodeUp):
            self.lost.pop(obs.node.name, None)
            if obs.node.name in self.core.nodes:
                self.core.set_schedulable(obs.node.name, True)
            else:
                self.core.add_node(obs.node)
            self.journal.event(None, now, "node-up", f"node {obs.node.name} joined")
            return
        if isinstance(obs, NodeDown):
            self._node_down(obs, now)
            return
        w = self.workloads.get(obs.workload_id)
        if w is None or obs.attempt != w.attempt:
            return  # about an attempt that is over
        if isinstance(obs, Started):
            self._start_failures.pop(w.id, None)
            if w.state == WorkloadState.ADMITTED:
                w.started_at = now
                self._move(w, WorkloadState.RUNNING, now, "its job started")
                self.scaling.started(w, now)
        elif isinstance(obs, Finished):
            self._finish(w, obs, now)
            if report is not None:
                report.finished.append(w.id)
        elif isinstance(obs, Stopped):
            self._stopped(w, obs, now)
        elif isinstance(obs, MemberStopped):
            self.scaling.stopped(w, obs, now)
        elif isinstance(obs, StartFailed):
            self._release_all(w)
            if w.state == WorkloadState.CANCELLED:
                self._drop_from_core(w)
            elif obs.retry and w.state == WorkloadState.ADMITTED:
                failures = self._start_failures.get(w.id, 0) + 1
                self._start_failures[w.id] = failures
                if failures >= START_ATTEMPTS:
                    self._start_failures.pop(w.id, None)
                    self._drop_from_core(w)
                    self._move(
                        w, WorkloadState.FAILED, now, f"could not start ({failures} attempts): {obs.message}"
                    )
                    return
                delay = start_backoff(failures)
                self._move(
                    w,
                    WorkloadState.PENDING,
                    now,
                    f"could not start: {obs.message}; retried in {delay:g}s"
                    f" (attempt {failures} of {START_ATTEMPTS})",
                )
                self._retry_at[w.id] = now + delay
            elif not w.terminal:
                self._start_failures.pop(w.id, None)
                self._drop_from_core(w)
                self._move(w, WorkloadState.FAILED, now, f"could not start: {obs.message}")

    def _finish(self, w: Workload, obs: Finished, now: float) -> None:
        self._release_all(w)
        self._drop_from_core(w)
        if w.state == WorkloadState.CANCELLED:
            return  # finished when it was cancelled (its finished_at is journaled)
        w.finished_at = now
        if obs.ok:
            self._move(w, WorkloadState.SUCCEEDED, now, obs.message or "its job exited 0")
        else:
            self._move(w, WorkloadState.FAILED, now, obs.message or "its job failed")

    def _stopped(self, w: Workload, obs: Stopped, now: float) -> None:
        self._release_all(w)
        if obs.checkpoint is not None:
            w.checkpoint = obs.checkpoint
        if obs.work_done is not None:
            w.work_done = obs.work_done
        if w.state == WorkloadState.PREEMPTING and self.scaling.parked(w):
            w.preempt_deadline = None
            self._move(w, WorkloadState.PREEMPTED, now, "scaled to zero; the next request starts a replica")
        elif w.state == WorkloadState.PREEMPTING:
            w.preemptions += 1
            w.preempt_deadline = None
            kept = f"; resumes from checkpoint {w.checkpoint}" if w.checkpoint else ""
            self._move(w, WorkloadState.PREEMPTED, now, f"stopped for preemption and requeued{kept}")
            self._enqueue(w, now)
        elif w.state == WorkloadState.CANCELLED:
            self._drop_from_core(w)

    def _node_down(self, obs: NodeDown, now: float, lost: bool = True) -> None:
        node = self.core.nodes.get(obs.name)
        if node is None:
            return
        if lost:
            spec = NodeSpec(node.name, dict(node.capacity), dict(node.labels))
            self.lost[obs.name] = LostNode(spec, now, obs.message or "its node died")
        hit_allocs = self.core.remove_node(obs.name)
        self.journal.event(None, now, "node-down", f"node {obs.name} left: {obs.message}".rstrip(": "))
        hit = sorted({member_of(a.id)[0] for a in hit_allocs})
        for wid in hit:
            w = self.workloads.get(wid)
            if w is None:
                continue
            self._partial.pop(wid, None)
            self._release_all(w)
            if w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING, WorkloadState.PREEMPTING):
                self.executor.cancel(w, now)  # stop the members that still run elsewhere
                self._move(w, WorkloadState.PENDING, now, f"node {obs.name} was lost; requeued as a whole")
                self._drop_from_core(w, keep_app=True)
                self._enqueue(w, now)
            elif w.state == WorkloadState.CANCELLED:
                self._drop_from_core(w)
            else:
                self._drop_from_core(w, keep_app=True)
                self._enqueue(w, now)

    # ------------------------------------------------------------------ queries

    def why(self, workload_id: str) -> list[str]:
        """Plain-word reasons: the workload's state, and each waiting member's reason."""
        w = self.workloads[workload_id]
        lines = [f"{w.id} ({w.spec.name}) is {w.state.value}: {w.reason}"]
        if w.state in (WorkloadState.PENDING, WorkloadState.PREEMPTED) or w.spec.kind == DEPLOYMENT_KIND:
            seen: dict[str, list[str]] = {}  # a running deployment's replicas may wait too
            serving = w.spec.extra_members() if w.spec.kind == DEPLOYMENT_KIND else []
            for ask_id in w.member_ids() + [f"{w.id}/{m}" for m, _ in serving]:
                if ask_id in self.core.asks:
                    seen.setdefault(str(self.core.explain(ask_id)), []).append(member_of(ask_id)[1])
            for text, members in seen.items():
                lines.append(f"{', '.join(members)}: {text}")
            if self.autoscaler is not None:
                for a in self.autoscaler.history(w.id)[-6:]:
                    detail = f": {a.message}" if a.message else ""
                    what = f"{a.instance_type} in {a.region} for pool {a.pool}"
                    lines.append(f"at {a.at:g}s: launch {what} -> {a.outcome}{detail}")
                unmet = self.autoscaler.last_plan.unmet.get(w.id) if self.autoscaler.last_plan else None
                if unmet:
                    lines.append(f"no node can be added for it: {unmet}")
        return lines

    # ------------------------------------------------------------------ bookkeeping

    def _move(self, w: Workload, new: WorkloadState, now: float, reason: str) -> None:
        t = w.move(new, now, reason)
        self.journal.transition(w, t)

    def _release_all(self, w: Workload) -> None:
        app = self.core.apps.get(w.id)
        if app is None:
            return
        for alloc_id in list(app.allocations):
            self.core.release(alloc_id)

    def _drop_from_core(self, w: Workload, keep_app: bool = False) -> None:
        """Withdraw its pending asks (and, unless ``keep_app``, forget it in the core)."""
        app = self.core.apps.get(w.id)
        if app is None:
            return
        for ask_id in list(app.asks):
            self.core.remove_ask(ask_id)
        if not keep_app and not app.allocations:
            self.core.remove_app(w.id)

    def active(self) -> list[Workload]:
        return [w for w in self.workloads.values() if w.state not in TERMINAL]


def _gang(spec: WorkloadSpec) -> GangSpec | None:
    """A multi-member workload is a gang; a deployment's replicas are not (each on its own)."""
    if len(spec.members()) <= 1 or spec.kind == DEPLOYMENT_KIND:
        return None
    return GangSpec(spec.gang_style, spec.gang_timeout, spec.span_regions)
