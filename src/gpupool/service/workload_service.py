"""The workload use cases of the control plane: submit, read, list, events, cancel, why, logs.

``WorkloadService`` checks what the caller may do (the queues' ACLs), refuses a submission that
could never run here before anything is stored, and answers with ``gpupool.api`` models. What
touches the driver holds the plane's lock; reads of stored workloads go to the database
(``service.store``) without it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gpupool.api import EventOut, LogsOut, SubmitRequest, WhyOut, WorkloadOut
from gpupool.core.admission import gang_over_max, never_fits
from gpupool.core.config import Size
from gpupool.core.decisions import Code, Reason
from gpupool.core.placement_rules import IMPLICIT_FALLBACK, Request, may_administer, may_submit
from gpupool.core.queues import Queue
from gpupool.core.resources import total
from gpupool.engine.model import Disruption, TaskGroup, Workload, WorkloadSpec, WorkloadState
from gpupool.service.cluster_service import ClusterService
from gpupool.service.errors import Conflict, Forbidden, Invalid, NotFound
from gpupool.service.security import Principal, administers, may_see
from gpupool.service.store import WorkloadStore
from gpupool.service.views import history_out, row_out, workload_out

if TYPE_CHECKING:
    from gpupool.service.context import Plane

_WAITING = (WorkloadState.PENDING, WorkloadState.PREEMPTED)

# What would let a waiting workload start, by the core's reason code.
_ADVICE: dict[Code, str] = {
    Code.QUEUE_QUOTA: "it starts when its queue's usage drops below the max (other workloads there "
    "finish), or when an admin raises that max; a smaller size fits sooner",
    Code.USER_LIMIT: "it starts when your (or your group's) other workloads in that queue finish",
    Code.ABOVE_GUARANTEE: "it may not be preempted, so it runs only within its queue's guarantee: it "
    "starts when the queue's own work leaves room within it; a session started with --preemptible "
    "may borrow idle GPUs above the guarantee",
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
    Code.ABOVE_GUARANTEE: "its queue is at its guarantee, and it may not be preempted",
    Code.MAX_APPS: "its queue runs as many applications as it may",
    Code.NO_NODE: "no node has room for it now",
    Code.GANG_WAITING: "the cluster has no room for the whole gang at once",
    Code.RESERVED: "room is being made for it (preempted workloads are stopping)",
    Code.PREEMPTION_WAIT: "too young to preempt yet (preemption.delay)",
    Code.NO_PREEMPTION: "it waits for running workloads to finish",
    Code.NOT_TRIED: "submitted; the scheduler has not looked at it yet",
}


class WorkloadService:
    """Submissions and everything asked of one workload, for the API and the portal."""

    def __init__(self, plane: Plane, store: WorkloadStore, cluster: ClusterService) -> None:
        self.plane = plane
        self.store = store
        self.cluster = cluster

    def submit(self, principal: Principal, req: SubmitRequest) -> tuple[WorkloadOut, bool]:
        """Accept a workload; returns it and whether it is new (False: same idempotency key)."""
        answer = self.try_submit(principal, req, wait=True)
        assert answer is not None
        return answer

    def try_submit(
        self, principal: Principal, req: SubmitRequest, *, wait: bool = False
    ) -> tuple[WorkloadOut, bool] | None:
        """As ``submit``; without ``wait``, None at once when the lock is taken (a tick runs)."""
        if not self.plane.lock.acquire(blocking=wait):
            return None
        try:
            answer = self._submit(principal, req)
        finally:
            self.plane.lock.release()
        self.plane.wake()
        return answer

    def _submit(self, principal: Principal, req: SubmitRequest) -> tuple[WorkloadOut, bool]:
        if req.idempotency_key:
            existing = self.store.by_key(req.idempotency_key)
            if existing is not None:
                if existing.user != principal.user:
                    raise Conflict(
                        f"idempotency key {req.idempotency_key!r} belongs to another user's workload",
                        fields=[("body.idempotency_key", "already used by another user")],
                        hint="use a key unique to you, e.g. prefixed with your user name",
                    )
                return row_out(existing, history_out(self.store.history(existing.id))), False
        spec = self._spec(principal, req)
        notice = self.check_submit(principal, spec)
        w, queue = self.store_new(spec, notice)
        out = workload_out(w, queue or w.spec.queue)
        out.notice = notice
        return out, True

    def store_new(self, spec: WorkloadSpec, notice: str | None) -> tuple[Workload, str | None]:
        """Hand a checked spec to the driver and store it (call with the lock held); returns the
        workload and the leaf queue it went to. Nothing is kept if the journal write fails."""
        now = self.plane.clock()
        wid = self.plane.next_id()
        try:
            # The row, its event and its queue: one commit, before the answer.
            with self.plane.journal.batch():
                w = self.plane.driver.submit(spec, now, workload_id=wid)
                queue = self.plane.queue_of(w.id)
                if queue:
                    self.plane.journal.set_queue(w.id, queue)
                if notice:
                    self.plane.journal.event(w.id, now, "placed", notice)
        except Exception:
            self._forget(wid)
            raise
        return w, queue

    def _forget(self, wid: str) -> None:
        """Undo a submission whose journal write failed (nothing of it was committed)."""
        w = self.plane.driver.workloads.pop(wid, None)
        if w is None:
            return
        if w.spec.idempotency_key:
            self.plane.driver._by_key.pop(w.spec.idempotency_key, None)
        self.plane.driver._drop_from_core(w)

    def _spec(self, principal: Principal, req: SubmitRequest) -> WorkloadSpec:
        if req.size is not None:
            groups: tuple[TaskGroup, ...] = (self.sized_group(req.size),)
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

    def sized_group(self, size: str) -> TaskGroup:
        """One member of a standard size: its shapes in order, those of GPU types absent from
        the cluster left out (unless none is left); the core falls back through them."""
        sizes = self.cluster.sizes()
        chosen = sizes.get(size)
        if chosen is None:
            raise Invalid(
                f"unknown size {size!r}",
                fields=[("body.size", f"unknown size {size!r}; known sizes: {', '.join(sorted(sizes))}")],
                hint="pick one of the sizes listed, or give explicit task_groups",
            )
        present = {n.gpu_type for n in self.plane.driver.core.nodes.values() if n.gpu_type}
        usable = tuple(s for s in chosen.shapes if not s.gpu_types or present.intersection(s.gpu_types))
        return TaskGroup.from_size("main", 1, Size(chosen.name, usable or chosen.shapes, chosen.description))

    def check_submit(self, principal: Principal, spec: WorkloadSpec, group_field: str = "") -> str | None:
        """Refuse, before anything is stored, a submission that could never run here: a queue
        that does not exist or that the user may not submit to (unless a placement rule of the
        config sends it elsewhere), a gang above its queue's max, a member no node could hold
        (named ``group_field`` when given). Returns where it went and why when that is not the
        queue it named (None otherwise)."""
        path, notice = self.route(principal, spec)
        members = spec.members()
        if len(members) > 1:
            leaf = self.bounding_queue(path)
            if leaf is not None:
                need = total(group.resources for _, group in members)
                too_big = gang_over_max(leaf, need)
                if too_big is not None:
                    raise Invalid(
                        f"refused: {too_big.message}",
                        fields=[("body.task_groups", too_big.message)],
                        hint=too_big.hint,
                    )
        hosts = self.cluster.hosts()
        for i, group in enumerate(spec.task_groups):
            never = never_fits(((group.resources, group.gpu_types), *group.alternatives), hosts)
            if never is not None:
                field = "body.size" if spec.size is not None else group_field or f"body.task_groups.{i}"
                raise Invalid(
                    f"refused: {never}",
                    fields=[(field, never)],
                    hint="ask for a shape that one node can hold (fewer GPUs per member, more members), "
                    "or a GPU type that exists; `gpupool nodes` lists the nodes",
                )
        return notice

    def route(self, principal: Principal, spec: WorkloadSpec) -> tuple[str, str | None]:
        """The leaf queue the placement rules give ``spec``, and a notice when that is not the
        queue it named; refuses (403/422) a queue that does not exist or takes no submission
        from the principal, unless a rule of the config sends it elsewhere."""
        path, _create, why = self.plane.driver.core.placer.place(
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
        return path, notice

    def bounding_queue(self, path: str) -> Queue | None:
        """The queue at ``path``, or its nearest existing ancestor: a queue the rules will
        create is bounded by the max of its existing ancestors."""
        core = self.plane.driver.core
        parts = path.split(".")
        paths = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
        return next((q for p in paths if (q := core.queues.get(p)) is not None), None)

    def _refuse_queue(self, principal: Principal, queue: str | None, why: str) -> None:
        core = self.plane.driver.core
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
        q = self.plane.driver.core.queues.get(path)
        if q is None:
            return "does not exist"
        if not q.is_leaf:
            return "is a parent queue"
        if not may_submit(q, principal.user, principal.groups):
            return f"does not take submissions from {principal.user}"
        return "was not used by the placement rules"

    def _visible(self, principal: Principal, workload_id: str, row: Any) -> Any:
        if row is None or not may_see(principal, row.user, self.plane.queue(row.queue)):
            # Someone else's workload is reported as missing: ids are not secrets, but contents are.
            raise NotFound(f"no workload {workload_id!r}", hint="list yours with `gpupool list`")
        return row

    def _row(self, principal: Principal, workload_id: str) -> Any:
        """The stored row of a workload the principal may see."""
        return self._visible(principal, workload_id, self.store.row(workload_id))

    def get(self, principal: Principal, workload_id: str) -> WorkloadOut:
        row, history = self.store.row_and_history(workload_id)
        out = row_out(self._visible(principal, workload_id, row), history_out(history))
        with self.plane.lock:  # the GPU indices live in the driver (the core gives them anew)
            w = self.plane.driver.workloads.get(workload_id)
            if w is not None and out.placement:
                out.gpu_ids = {m: list(ids) for m, ids in sorted(w.gpu_ids.items()) if m in out.placement}
        return out

    def list_visible(
        self,
        principal: Principal,
        *,
        state: str | None = None,
        queue: str | None = None,
        user: str | None = None,
        limit: int = 200,
    ) -> list[WorkloadOut]:
        """Workloads the principal may see (its own, and those of queues it administers)."""
        rows = self.list_rows(
            principal, states=state.split(",") if state else None, queue=queue, user=user, limit=limit
        )
        return [row_out(r, []) for r in rows]

    def list_rows(
        self,
        principal: Principal,
        *,
        states: list[str] | None = None,
        queue: str | None = None,
        user: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        limit: int = 200,
    ) -> Sequence[Any]:
        """The stored rows of the workloads the principal may see, newest first."""
        mine = None
        if not principal.admin:
            with self.plane.lock:  # the driver thread may add dynamic queues meanwhile
                administered = [
                    path
                    for path, node in self.plane.driver.core.queues.items()
                    if may_administer(node, principal.user, principal.groups)
                ]
            mine = (principal.user, administered)
        return self.store.rows(
            user_or_queues=mine, states=states, queue=queue, user=user, name=name, kind=kind, limit=limit
        )

    def events(self, principal: Principal, workload_id: str) -> list[EventOut]:
        """Its events and transitions, oldest first."""
        self._row(principal, workload_id)
        events = [
            EventOut(at=e.at, kind=e.kind, message=e.message, workload_id=e.workload_id)
            for e in self.store.events(workload_id)
        ]
        transitions = [
            EventOut(
                at=t.at,
                kind=f"state:{t.new}",
                message=f"{t.old} -> {t.new}: {t.reason}",
                workload_id=workload_id,
            )
            for t in self.store.history(workload_id)
        ]
        return sorted(events + transitions, key=lambda e: e.at)

    def state_counts(self) -> Counter[str]:
        """Stored workloads by state."""
        return self.store.state_counts()

    # ------------------------------------------------------------------ actions

    def cancel(self, principal: Principal, workload_id: str) -> WorkloadOut:
        row = self._row(principal, workload_id)
        if row.user != principal.user and not administers(principal, self.plane.queue(row.queue)):
            raise Forbidden(
                f"{principal.user} may not cancel {workload_id}: it belongs to {row.user}",
                hint="only its owner and admins of its queue may cancel it",
            )
        with self.plane.lock:
            if workload_id in self.plane.driver.workloads:
                self.plane.driver.cancel(
                    workload_id, self.plane.clock(), reason=f"cancelled by {principal.user}"
                )
        self.plane.wake()
        return self.get(principal, workload_id)

    def why(self, principal: Principal, workload_id: str) -> WhyOut:
        row = self._row(principal, workload_id)
        with self.plane.lock:
            w = self.plane.driver.workloads.get(workload_id)
            if w is None:
                return WhyOut(
                    id=row.id, state=row.state, lines=[f"{row.id} ({row.name}) is {row.state}: {row.reason}"]
                )
            lines = self.plane.driver.why(workload_id)
            codes: list[Reason] = []
            if w.state in _WAITING:
                for ask_id in w.member_ids():
                    if ask_id in self.plane.driver.core.asks:
                        codes.append(self.plane.driver.core.explain(ask_id))
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
            text = self.plane.executor.logs(workload_id)
        except Exception as exc:  # the cluster's trouble is reported, not raised
            text = f"(logs unavailable: {exc})"
        return LogsOut(id=workload_id, text=text)


def _full_path(queue: str) -> str:
    """A queue name as the ``provided`` rule reads it: lower-case, under root."""
    name = queue.lower()
    return name if name == "root" or name.startswith("root.") else f"root.{name}"
