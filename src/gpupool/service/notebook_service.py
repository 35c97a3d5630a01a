"""The notebook-session use cases of the control plane: start, list, read, stop, resume, open.

A session is stored as a workload of kind ``notebook`` (``engine.model.NotebookSpec``): one
member ``session-0`` whose command, a Jupyter server, the executor supplies (``RunsNotebooks``).
A session is known by its name: each start or resume is a new workload of that name, and the
newest is the session. Names are unique: a name in use (running or stopped) is refused at start
(409; a stopped one is resumed). Stopping cancels the workload with a reason that says who or
what stopped it (``stop``: the user, or the control plane for ``idle`` or ``lifetime``); the
executor keeps the session's files by name, so a resume finds them.

``start`` and ``resume`` check a request before anything is stored, exactly as a submission is
checked (``WorkloadService.route`` and ``check_submit``: the queue, its ACL, a shape no node
could hold), then, for a session that is not preemptible, that it could ever run within its
queue's guarantee (``core.within_guarantee``: a queue that guarantees none of its GPUs, or an
ask alone above the guarantee, is refused), and hand the workload to the driver through
``WorkloadService.store_new``.

``target`` is what the proxy asks before it forwards a request: the session's Jupyter server,
if the caller may open it (its owner, anyone with submit access on its queue, its admins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gpupool.api import LIST_MAX, gpu_milli_of
from gpupool.core.configerror import format_duration
from gpupool.core.placement_rules import may_submit
from gpupool.core.resources import gpu_milli, gpus_from_milli, in_gpus, parse_quantity
from gpupool.core.sessions import SessionRefusal, reclaimed_gpu_hours, resolve_session, session_limits
from gpupool.core.within_guarantee import guarantee_at, is_gpu_key, never_within
from gpupool.engine.model import (
    NOTEBOOK_KIND,
    SESSION_AUTOSAVE,
    SESSION_GRACE,
    SESSION_GROUP,
    TERMINAL,
    Disruption,
    NotebookSpec,
    TaskGroup,
    Transition,
    Workload,
    WorkloadSpec,
    WorkloadState,
    notebook_path,
)
from gpupool.engine.ports import NO_NOTEBOOK_RUNNER, NotebookEndpoint, can_run_notebooks
from gpupool.notebook_api import NotebookOut, NotebookRequest, NotebookState, ReclaimWhy, StoppedBy
from gpupool.service.errors import Conflict, Forbidden, Invalid, NotFound, Unsupported
from gpupool.service.journal import spec_from_json
from gpupool.service.security import Principal, administers, hash_token
from gpupool.service.store import Stored, WorkloadStore
from gpupool.service.views import history_out
from gpupool.service.workload_service import WorkloadService

if TYPE_CHECKING:
    from gpupool.service.context import Plane

KIND = NOTEBOOK_KIND
MEMBER = f"{SESSION_GROUP}-0"
TOKEN_EVENT = "session-token"  # an event of a run: the hash of the GPUPOOL_TOKEN minted for it
# Why a session stopped, as the start of its stored reason; ``stopped_by`` reads it back.
STOPPED_BY: dict[StoppedBy, str] = {
    "user": "stopped by ",
    "idle": "stopped (idle): ",
    "lifetime": "stopped (max lifetime): ",
}
# The request field that asked for a resource a guarantee may name (GPUs: ``body.gpus``).
_FIELD_OF = {"vcore": "body.cpu", "cpu": "body.cpu", "memory": "body.memory"}
_STATES: dict[WorkloadState, NotebookState] = {
    WorkloadState.PENDING: "pending",
    WorkloadState.ADMITTED: "starting",
    WorkloadState.RUNNING: "running",  # "starting" until its server answers
    WorkloadState.PREEMPTING: "preempting",
    WorkloadState.PREEMPTED: "preempted",
    WorkloadState.CANCELLED: "stopped",
    WorkloadState.SUCCEEDED: "stopped",  # its server exited by itself
    WorkloadState.FAILED: "failed",
}


@dataclasses.dataclass(frozen=True, slots=True)
class PendingReclaim:
    """A warning given to a running session and not withdrawn: why, when, and the words shown."""

    why: ReclaimWhy
    at: float
    message: str


class NotebookService:
    """Notebook sessions for the API, the CLI and the proxy.

    ``warnings``: the pending reclaim of each running session, by workload id (the reaper sets
    and clears them; ``_out`` shows them).
    """

    def __init__(
        self,
        plane: Plane,
        store: WorkloadStore,
        workloads: WorkloadService,
        mint_token: Callable[[str, tuple[str, ...]], str],
    ) -> None:
        self.plane = plane
        self.store = store
        self.workloads = workloads
        self.mint_token = mint_token
        self.warnings: dict[str, PendingReclaim] = {}
        self._terms: dict[str, tuple[float, float | None, str]] = {}

    # ------------------------------------------------------------------ start, resume

    def start(self, principal: Principal, req: NotebookRequest) -> NotebookOut:
        """Start a session; 409 if the name is taken, 422/403 for bad input, 501 if the executor
        cannot run notebooks. Nothing is stored when it is refused."""
        self._runner()
        with self.plane.lock:
            newest = self._newest_row(req.name)
            if newest is not None:
                stopped = _STATES[WorkloadState(newest.state)] in ("stopped", "failed")
                raise Conflict(
                    f"name: notebook {req.name!r} exists ({'stopped' if stopped else 'running'}, "
                    f"owned by {newest.user})",
                    fields=[("body.name", "a notebook of this name exists")],
                    hint=f"resume it with `gpupool notebook resume {req.name}`"
                    if stopped
                    else f"open it with `gpupool notebook open {req.name}`, or choose another name",
                )
            spec = self._spec(principal, req)
            spec = self._with_limits(principal, spec)
            notice = self.workloads.check_submit(principal, spec, group_field="body.gpus")
            self._check_guarantee(principal, spec)
            w, queue = self.workloads.store_new(spec, notice)
            out = self._out(w, queue or spec.queue)
        self.plane.wake()
        out.notice = notice
        return out

    def resume(self, principal: Principal, name: str) -> NotebookOut:
        """Start a stopped session again: same queue, shape and settings, same files."""
        self._runner()
        with self.plane.lock:
            row = self._visible_row(principal, name)
            if not _ended(row.state):
                raise Conflict(
                    f"notebook {name!r} is {self._state_of_row(row)}, not stopped",
                    hint=f"open it with `gpupool notebook open {name}`",
                )
            self._may_change(principal, row, "resume")
            old = spec_from_json(row.spec)
            spec = self._with_limits(principal, dataclasses.replace(old, queue=row.queue or old.queue))
            notice = self.workloads.check_submit(principal, spec, group_field="body.gpus")
            self._check_guarantee(principal, spec)
            w, queue = self.workloads.store_new(spec, notice)
            out = self._out(w, queue or spec.queue)
        self.plane.wake()
        out.notice = notice
        return out

    def _with_limits(self, principal: Principal, spec: WorkloadSpec) -> WorkloadSpec:
        """``spec`` with the idle timeout and lifetime it runs under: as asked, else its queue's
        defaults (``session.*`` properties); one above the queue's maximum (or not longer than
        its warning lead) is refused with a 422 naming the field (call with the lock)."""
        path, _notice = self.workloads.route(principal, spec)
        nb = spec.notebook or NotebookSpec()
        limits = session_limits(self.plane.driver.core.queues, path)
        policy = resolve_session(limits, path, nb.idle_timeout, nb.max_lifetime)
        if isinstance(policy, SessionRefusal):
            message = f"refused: {policy.message}"
            raise Invalid(message, fields=[(f"body.{policy.field}", policy.message)], hint=policy.hint)
        resolved = dataclasses.replace(nb, idle_timeout=policy.idle_timeout, max_lifetime=policy.lifetime)
        return dataclasses.replace(spec, notebook=resolved)

    def _check_guarantee(self, principal: Principal, spec: WorkloadSpec) -> None:
        """Refuse (422, naming the field) a session that is not preemptible and could never run
        within its queue's guarantee: the queue guarantees none of the GPUs it could use, or it
        alone is above the guarantee (call with the lock). One that only has to wait for room
        within the guarantee is taken and waits with that reason."""
        if not spec.within_guarantee:
            return
        path, _notice = self.workloads.route(principal, spec)
        core = self.plane.driver.core
        guaranteed = guarantee_at(core.queues, path)
        group = spec.task_groups[0]
        shapes = ((group.resources, group.gpu_types), *group.alternatives)
        cluster_types = tuple(sorted({n.gpu_type for n in core.nodes.values()}, key=lambda t: t or ""))
        gap = never_within(path, guaranteed, shapes, cluster_types)
        if gap is None:
            return
        if gap.guaranteed is None:
            field = "body.queue"
            hint = (
                "start it with --preemptible to borrow idle GPUs above the guarantee, or use a queue "
                "that guarantees GPUs"
            )
        else:
            key = gap.resource
            if spec.size is not None:
                field = "body.size"
            else:
                field = "body.gpus" if is_gpu_key(key) else _FIELD_OF.get(key, "body.gpus")
            hint = "ask for less, or start it with --preemptible to borrow idle GPUs above the guarantee"
        words = gap.message()
        raise Invalid(f"refused: {words}", fields=[(field, words)], hint=hint)

    def _runner(self) -> None:
        if not can_run_notebooks(self.plane.executor):
            raise Unsupported(NO_NOTEBOOK_RUNNER)

    def _spec(self, principal: Principal, req: NotebookRequest) -> WorkloadSpec:
        if (req.size is None) == (req.gpus is None):
            raise Invalid(
                "give exactly one of size or gpus for a notebook",
                fields=[("body.gpus", "give exactly one of `size` (a standard size) or `gpus`")],
                hint="--size S, or --gpus G [--gpu-type T]",
            )
        if req.size is not None and req.gpu_type is not None:
            raise Invalid(
                "gpu_type goes with gpus, not with a size (a size names its GPU types)",
                fields=[("body.gpu_type", "give gpu_type only with gpus")],
            )
        if req.size is not None:
            group = dataclasses.replace(self.workloads.sized_group(req.size), name=SESSION_GROUP)
        else:
            resources = {"vcore": round(req.cpu * 1000), "memory": parse_quantity("memory", req.memory)}
            milli = gpu_milli_of(req.gpus)
            if milli:
                resources["gpu"] = milli
            group = TaskGroup(SESSION_GROUP, 1, resources, (req.gpu_type,) if req.gpu_type else ())
        return WorkloadSpec(
            name=req.name,
            task_groups=(group,),
            queue=req.queue,
            user=principal.user,
            groups=principal.groups,
            size=req.size,
            # Preemptible or not, a session is an ordinary ask: YuniKorn's rules never take it
            # while its queue is within its guarantee. One that is not preemptible is never a
            # victim at all (as a `never` job), and so runs only within its queue's guarantee
            # (``WorkloadSpec.within_guarantee``). A preemptible one's grace lets JupyterLab autosave.
            disruption=Disruption("checkpoint" if req.preemptible else "never", SESSION_GRACE),
            kind=KIND,
            notebook=NotebookSpec(
                idle_timeout=req.idle_timeout, max_lifetime=req.max_lifetime, preemptible=req.preemptible
            ),
        )

    # ------------------------------------------------------------------ stop

    def stop(self, principal: Principal, name: str) -> NotebookOut:
        """Stop the session for its user: its server and kernels stop, its GPUs are freed, its
        files stay."""
        with self.plane.lock:
            row = self._visible_row(principal, name)
            self._may_change(principal, row, "stop")
            w = self._live(name)
            if w is None:
                raise Conflict(
                    f"notebook {name!r} is {self._state_of_row(row)}, not running",
                    hint=f"resume it with `gpupool notebook resume {name}`",
                )
            self.stop_session(w, "user", principal.user)
        self.plane.wake()
        return self.get(principal, name)

    def stop_session(self, w: Workload, by: StoppedBy, why: str) -> None:
        """Stop a live session and record why (call with the plane's lock): ``by`` is ``user``
        (``why``: who), ``idle`` or ``lifetime`` (``why``: the control plane's words, e.g. "no
        activity for 30m"). Its files are kept; ``resume`` starts it again."""
        if by not in STOPPED_BY:
            raise ValueError(f"by: one of {', '.join(STOPPED_BY)}, got {by!r}")
        self.plane.driver.cancel(w.id, self.plane.clock(), reason=STOPPED_BY[by] + why)

    # ------------------------------------------------------------------ read

    def listed(self, principal: Principal) -> list[NotebookOut]:
        """The sessions the principal may see (its own, those in queues it administers), newest
        first, one per name."""
        rows = self.workloads.list_rows(principal, kind=KIND, limit=LIST_MAX)
        seen: set[str] = set()
        out = []
        for row in rows:
            if row.name in seen:
                continue
            seen.add(row.name)
            out.append(self._read(row, with_history=False))
        return out

    def get(self, principal: Principal, name: str, *, with_history: bool = True) -> NotebookOut:
        with self.plane.lock:
            row = self._visible_row(principal, name)
        return self._read(row, with_history=with_history)

    def reclaimed_gpu_hours(self, now: float) -> dict[str, float]:
        """The idle GPU-hours given back by idle reclaims so far, by queue
        (``core.sessions.reclaimed_gpu_hours``: from each idle stop until the session's resume, or
        ``now``, at most until its lifetime would have ended it). Read from the database, so a
        control-plane restart keeps them."""
        total: dict[str, float] = {}
        for row in self.store.stopped_runs(KIND, STOPPED_BY["idle"]):
            if row.started_at is None:
                continue
            gpus, lifetime, queue = self._reclaim_terms(row)
            if lifetime is None:
                continue
            until = row.next_submitted_at if row.next_submitted_at is not None else now
            hours = reclaimed_gpu_hours(gpus, row.finished_at, until, row.started_at + lifetime)
            total[queue] = total.get(queue, 0.0) + hours
        return total

    def _reclaim_terms(self, row: Stored) -> tuple[float, float | None, str]:
        """A stored run's GPUs, max lifetime and queue (a run's spec never changes: read once)."""
        terms = self._terms.get(row.id)
        if terms is None:
            spec = spec_from_json(row.spec)
            nb = spec.notebook
            gpus = gpus_from_milli(gpu_milli(spec.task_groups[0].resources))
            terms = (gpus, nb.max_lifetime if nb is not None else None, row.queue or spec.queue or "")
            self._terms[row.id] = terms
        return terms

    def target(self, principal: Principal, name: str) -> NotebookEndpoint:
        """The session's Jupyter server for the proxy, while it runs or is being preempted (its
        grace period); 404 (no such session), 403 (the caller may not open it), 409 (not running
        or not answering yet)."""
        with self.plane.lock:
            row = self._newest_row(name)
            if row is None:
                raise NotFound(f"no notebook {name!r}", hint="list them with `gpupool notebooks`")
            if not self._may_open(principal, row):
                raise Forbidden(
                    f"{principal.user} may not open notebook {name}: it belongs to {row.user} in "
                    f"{row.queue}, and {principal.user} has no submit access there",
                    hint="ask an admin of the queue to add you (or one of your groups) to its submitacl",
                )
            w = self._live(name)
            endpoint = self._endpoint(w) if w is not None else None
            if endpoint is None:
                state = self._state_of_row(row) if w is None else self._state(w)
                raise Conflict(
                    f"notebook {name!r} is {state}: its Jupyter server is not answering",
                    hint=f"see `gpupool notebook status {name}`; resume a stopped one with "
                    f"`gpupool notebook resume {name}`",
                )
            return endpoint

    def session_env(self, w: Workload) -> dict[str, str]:
        """What a session's processes get to reach the control plane as its owner (the SDK reads
        these): the API's URL and a token of the owner's, minted for this start (its hash is an
        event of the run, so that ``on_transition`` revokes it when the run ends, also after a
        control-plane restart)."""
        token = self.mint_token(w.spec.user, w.spec.groups)
        self.plane.journal.event(
            w.id, self.plane.clock(), TOKEN_EVENT, f"GPUPOOL_TOKEN minted (sha256 {hash_token(token)})"
        )
        return {"GPUPOOL_URL": self.plane.settings.url(), "GPUPOOL_TOKEN": token}

    def on_transition(self, w: Workload, t: Transition) -> None:
        """A session's server stopped (stopped, failed, preempted): the tokens minted for its run
        no longer work (a resume, or the next attempt, mints a new one)."""
        if t.new == WorkloadState.PREEMPTING:
            grace = w.spec.disruption.grace
            message = (
                f"preempted ({t.reason}): its server stops in {format_duration(grace)}; open documents "
                f"are autosaved every {format_duration(SESSION_AUTOSAVE)} before then (its files are "
                "kept, and it starts again when its queue gets GPUs)"
            )
            self.warnings[w.id] = PendingReclaim("preemption", t.at + grace, message)
            self.plane.journal.event(w.id, t.at, "reclaim-warning", message)
            return
        if t.new not in TERMINAL and t.new != WorkloadState.PREEMPTED:
            return
        self.warnings.pop(w.id, None)
        minted = self.plane.journal.event_messages(w.id, TOKEN_EVENT)
        self.plane.revoke_tokens({m.rsplit(" ", 1)[-1].rstrip(")") for m in minted})

    # ------------------------------------------------------------------ internals

    def _newest_row(self, name: str) -> Any:
        rows = self.store.rows(name=name, kind=KIND, limit=1)
        return rows[0] if rows else None

    def _visible_row(self, principal: Principal, name: str) -> Any:
        row = self._newest_row(name)
        if row is None or not self._may_open(principal, row):
            raise NotFound(f"no notebook {name!r}", hint="list them with `gpupool notebooks`")
        return row

    def _may_open(self, principal: Principal, row: Any) -> bool:
        queue = self.plane.queue(row.queue)
        return (
            row.user == principal.user
            or administers(principal, queue)
            or (queue is not None and may_submit(queue, principal.user, principal.groups))
        )

    def _may_change(self, principal: Principal, row: Any, what: str) -> None:
        if row.user != principal.user and not administers(principal, self.plane.queue(row.queue)):
            raise Forbidden(
                f"{principal.user} may not {what} notebook {row.name}: it belongs to {row.user}",
                hint=f"only its owner and admins of its queue may {what} it",
            )

    def _live(self, name: str) -> Workload | None:
        found = [
            w
            for w in self.plane.driver.workloads.values()
            if w.spec.kind == KIND and w.spec.name == name and not w.terminal
        ]
        return max(found, key=lambda w: (w.submitted_at, w.id)) if found else None

    def _endpoint(self, w: Workload) -> NotebookEndpoint | None:
        # A session being preempted answers through its grace period: the open tabs' autosave
        # must reach its server (that is what the grace is for).
        if w.state not in (WorkloadState.RUNNING, WorkloadState.PREEMPTING):
            return None
        return self.plane.executor.notebook_endpoint(w)  # type: ignore[attr-defined]

    def _state(self, w: Workload) -> NotebookState:
        state = _STATES[w.state]
        if state == "running" and self._endpoint(w) is None:
            return "starting"
        return state

    def _state_of_row(self, row: Any) -> NotebookState:
        return _STATES[WorkloadState(row.state)]

    def _read(self, row: Any, *, with_history: bool) -> NotebookOut:
        with self.plane.lock:
            w = self.plane.driver.workloads.get(row.id)
            if w is not None and not w.terminal:
                out = self._out(w, row.queue)
            else:
                spec = spec_from_json(row.spec)
                out = _spec_out(
                    row.id, spec, row.queue, self._state_of_row(row), row.reason, row.submitted_at
                )
                out.started_at, out.finished_at = row.started_at, row.finished_at
        if with_history:
            out.history = history_out(self.store.history(row.id))
        return out

    def _out(self, w: Workload, queue: str | None) -> NotebookOut:
        """A session in memory on the wire (call with the lock held)."""
        state = self._state(w)
        out = _spec_out(w.id, w.spec, queue, state, w.reason, w.submitted_at)
        out.started_at, out.finished_at = w.started_at, w.finished_at
        if w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING, WorkloadState.PREEMPTING):
            out.node = w.placement.get(MEMBER)
            out.gpu_ids = list(w.gpu_ids.get(MEMBER, ()))
        if state == "running":
            out.url = self.plane.settings.url() + notebook_path(w.spec.name) + "lab"
            nb = w.spec.notebook
            if w.started_at is not None and nb is not None and nb.max_lifetime is not None:
                out.ends_at = w.started_at + nb.max_lifetime
        if state in ("running", "preempting"):
            pending = self.warnings.get(w.id)
            if pending is not None:
                out.reclaim_at, out.reclaim_why, out.warning = pending.at, pending.why, pending.message
        elif state == "pending":
            ask = f"{w.id}/{MEMBER}"
            if ask in self.plane.driver.core.asks:
                out.reason = f"waiting: {self.plane.driver.core.explain(ask)}"
        return out


def _ended(state: str) -> bool:
    return WorkloadState(state) in (WorkloadState.CANCELLED, WorkloadState.SUCCEEDED, WorkloadState.FAILED)


def _stopped_by(state: str, reason: str) -> StoppedBy | None:
    if state != "stopped":
        return None
    for by, prefix in STOPPED_BY.items():
        if reason.startswith(prefix):
            return by
    return None


def _spec_out(
    wid: str, spec: WorkloadSpec, queue: str | None, state: NotebookState, reason: str, at: float
) -> NotebookOut:
    group = spec.task_groups[0]
    nb = spec.notebook or NotebookSpec()
    return NotebookOut(
        name=spec.name,
        id=wid,
        user=spec.user,
        state=state,
        reason=reason,
        queue=queue or spec.queue,
        gpus=gpus_from_milli(gpu_milli(group.resources)),
        gpu_types=list(group.gpu_types),
        size=spec.size,
        resources=in_gpus(group.resources),
        idle_timeout=nb.idle_timeout,
        max_lifetime=nb.max_lifetime,
        preemptible=nb.preemptible,
        stopped_by=_stopped_by(state, reason),
        submitted_at=at,
    )
