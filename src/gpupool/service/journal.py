"""The engine's Journal port on the database, and the codec between workloads and rows.

The driver calls ``transition`` before it tells the executor to act, so once a start or a
preemption has been asked of the cluster, the database already says so: a restart (kill -9
included) knows every decision that may have been acted on. Each call is one short transaction,
except inside ``DbJournal.batch()``, where one thread's calls share one (a submission's rows, or
a driver tick's, committed by ``flush`` before each call that reaches the cluster).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, bindparam, delete, insert, or_, select, update

from gpupool.core.resources import from_gpus, in_gpus
from gpupool.engine.model import (
    Disruption,
    NotebookSpec,
    ServingSpec,
    TaskGroup,
    Transition,
    Workload,
    WorkloadSpec,
    WorkloadState,
)
from gpupool.service.db import Database
from gpupool.service.models import EventRow, TokenRow, TransitionRow, WorkloadRow


def spec_to_json(spec: WorkloadSpec) -> dict[str, Any]:
    """Every field of ``spec`` as JSON (the one codec of workload specs; ``spec_from_json`` inverts it)."""
    out: dict[str, Any] = {}
    for f in fields(WorkloadSpec):
        value = getattr(spec, f.name)
        if f.name == "task_groups":
            value = [_group_to_json(g) for g in value]
        elif f.name == "disruption":
            value = {d.name: getattr(value, d.name) for d in fields(Disruption)}
        elif f.name == "serving":
            value = None if value is None else {s.name: getattr(value, s.name) for s in fields(ServingSpec)}
        elif f.name == "notebook":
            value = None if value is None else {n.name: getattr(value, n.name) for n in fields(NotebookSpec)}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def _group_to_json(g: TaskGroup) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(TaskGroup):
        value = getattr(g, f.name)
        if f.name == "resources":
            value = in_gpus(value)  # stored with GPUs in GPUs, as before the core counted milli
        elif f.name == "gpu_types":
            value = list(value)
        elif f.name == "alternatives":
            value = [{"resources": in_gpus(r), "gpu_types": list(t)} for r, t in value]
        out[f.name] = value
    return out


def spec_from_json(raw: dict[str, Any]) -> WorkloadSpec:
    """The spec ``spec_to_json`` wrote; a field missing (a row from an older version) takes its default."""
    defaults = WorkloadSpec(name="", task_groups=())
    disruption = {**asdict(defaults.disruption), **raw.get("disruption", {})}

    def opt_float(key: str) -> float | None:
        value = raw.get(key, getattr(defaults, key))
        return None if value is None else float(value)

    return WorkloadSpec(
        name=raw["name"],
        task_groups=tuple(
            TaskGroup(
                g["name"],
                int(g["members"]),
                from_gpus(g["resources"]),
                tuple(g.get("gpu_types", ())),
                tuple(
                    (from_gpus(a["resources"]), tuple(a.get("gpu_types", ())))
                    for a in g.get("alternatives", ())
                ),
                None if g.get("max_members") is None else int(g["max_members"]),
            )
            for g in raw["task_groups"]
        ),
        queue=raw.get("queue"),
        user=raw.get("user", defaults.user),
        groups=tuple(raw.get("groups", ())),
        tags=dict(raw.get("tags", {})),
        priority=int(raw.get("priority", defaults.priority)),
        gang_style=raw.get("gang_style", defaults.gang_style),
        gang_timeout=float(raw.get("gang_timeout", defaults.gang_timeout)),
        span_regions=bool(raw.get("span_regions", defaults.span_regions)),
        disruption=Disruption(str(disruption["policy"]), float(disruption["grace"])),
        entrypoint=raw.get("entrypoint"),
        working_dir=raw.get("working_dir"),
        env=dict(raw.get("env", {})),
        idempotency_key=raw.get("idempotency_key"),
        size=raw.get("size"),
        duration=opt_float("duration"),
        checkpoint_interval=float(raw.get("checkpoint_interval", defaults.checkpoint_interval)),
        kind=str(raw.get("kind", defaults.kind)),
        serving=_serving_from_json(raw.get("serving")),
        notebook=_notebook_from_json(raw.get("notebook")),
    )


def _notebook_from_json(raw: dict[str, Any] | None) -> NotebookSpec | None:
    if raw is None:
        return None
    known = {f.name for f in fields(NotebookSpec)}
    return NotebookSpec(**{k: v for k, v in raw.items() if k in known})


def _serving_from_json(raw: dict[str, Any] | None) -> ServingSpec | None:
    if raw is None:
        return None
    known = {f.name for f in fields(ServingSpec)}
    return ServingSpec(**{k: v for k, v in raw.items() if k in known})


def seq_of(workload_id: str) -> int:
    """``w-000042`` -> 42 (ids are made by the control plane; anything else counts as 0)."""
    _, _, digits = workload_id.rpartition("-")
    return int(digits) if digits.isdigit() else 0


def workload_from_row(row: WorkloadRow) -> Workload:
    """The engine's view of a stored workload (without its history, which stays in the DB)."""
    return Workload(
        id=row.id,
        spec=spec_from_json(row.spec),
        submitted_at=row.submitted_at,
        state=WorkloadState(row.state),
        reason=row.reason,
        attempt=row.attempt,
        placement=dict(row.placement or {}),
        assigned={m: from_gpus(r) for m, r in (row.assigned or {}).items() if m != GPU_IDS_KEY},
        gpu_ids=_gpu_ids_from(row.assigned),
        started_at=row.started_at,
        finished_at=row.finished_at,
        preemptions=row.preemptions,
        checkpoint=row.checkpoint,
    )


# The GPU indices of each member ride in the ``assigned`` JSON column under this key (member
# names always end in ``-<n>``, so it cannot clash); rows written before it decode to no GPU
# indices, which recovery reads as "unknown, pick afresh".
GPU_IDS_KEY = "gpu_ids"


def _assigned_json(w: Workload) -> dict[str, Any]:
    out: dict[str, Any] = {m: in_gpus(r) for m, r in w.assigned.items()}
    if w.gpu_ids:
        out[GPU_IDS_KEY] = {m: list(ids) for m, ids in w.gpu_ids.items()}
    return out


def _gpu_ids_from(assigned: dict[str, Any] | None) -> dict[str, tuple[int, ...]]:
    raw = (assigned or {}).get(GPU_IDS_KEY) or {}
    return {str(m): tuple(int(i) for i in ids) for m, ids in raw.items()}


def _state_values(w: Workload) -> dict[str, Any]:
    """The columns of a workload row that follow its state (everything but the spec)."""
    return {
        "state": w.state.value,
        "reason": w.reason,
        "attempt": w.attempt,
        "placement": dict(w.placement),
        "assigned": _assigned_json(w),
        "started_at": w.started_at,
        "finished_at": w.finished_at,
        "preemptions": w.preemptions,
        "checkpoint": w.checkpoint,
    }


_WORKLOADS = cast(Table, WorkloadRow.__table__)
_STATE_COLUMNS = (
    "state",
    "reason",
    "attempt",
    "placement",
    "assigned",
    "started_at",
    "finished_at",
    "preemptions",
    "checkpoint",
)
# Statements built once: executed with a dict of values, they compile once and are cached, where
# a statement built per call (``.values(...)``) costs more than the database's own work.
_INSERT_WORKLOAD = insert(_WORKLOADS)
_UPDATE_STATE = (
    update(_WORKLOADS)
    .where(_WORKLOADS.c.id == bindparam("wid"))
    .values({c: bindparam(c) for c in _STATE_COLUMNS})
)
_UPDATE_STATE_QUEUE = _UPDATE_STATE.values(queue=bindparam("queue"))
_SET_QUEUE = (
    update(_WORKLOADS)
    .where(_WORKLOADS.c.id == bindparam("wid"))
    .where(or_(_WORKLOADS.c.queue.is_(None), _WORKLOADS.c.queue != bindparam("queue")))
    .values(queue=bindparam("queue"))
)
_INSERT_TRANSITION = insert(cast(Table, TransitionRow.__table__))
_INSERT_EVENT = insert(cast(Table, EventRow.__table__))


class DbJournal:
    """Journal port: every submission, transition and event becomes rows, committed at once.

    ``queue_of`` resolves a workload's leaf queue from the scheduling core when it is known
    (the driver journals a submission before the core has placed it in a queue).

    Writes are plain SQL statements (no ORM unit of work: they run on every request and every
    transition). Inside ``batch()`` the writes of the calling thread share one transaction,
    committed when the batch ends: a submission's row, its event and its queue are one commit.
    Work that acts outside the database inside a batch calls ``flush`` first, so that what it
    acts on is committed (the control plane's driver ticks do, before each executor call).
    """

    def __init__(self, db: Database, queue_of: Callable[[str], str | None] | None = None) -> None:
        self.db = db
        self.queue_of = queue_of or (lambda _wid: None)
        self._local = threading.local()

    @contextmanager
    def batch(self, on_error: Literal["rollback", "commit"] = "rollback") -> Iterator[None]:
        """Gather this thread's writes into one transaction (nested batches join the outer one).

        On an exception the batch's writes are rolled back, or with ``on_error="commit"``
        committed (a driver tick that failed half-way keeps the transitions it made in memory).
        """
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        batch = _Batch(self.db)
        self._local.batch = batch
        try:
            yield
        except BaseException:
            if on_error == "commit":
                batch.commit_or_rollback()
            raise
        else:
            batch.commit()
        finally:
            self._local.batch = None
            batch.close()

    def flush(self) -> None:
        """Commit what this thread's batch wrote so far (nothing to do outside a batch)."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            batch.commit()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            yield batch.connection()
            return
        with self.db.engine.begin() as conn:
            yield conn

    def submitted(self, workload: Workload) -> None:
        values = {
            "id": workload.id,
            "seq": seq_of(workload.id),
            "name": workload.spec.name,
            "user": workload.spec.user,
            "queue": workload.spec.queue,
            "spec": spec_to_json(workload.spec),
            "submitted_at": workload.submitted_at,
            "idempotency_key": workload.spec.idempotency_key,
            **_state_values(workload),
        }
        with self._write() as conn:
            conn.execute(_INSERT_WORKLOAD, values)

    def transition(self, workload: Workload, transition: Transition) -> None:
        values = {"wid": workload.id, **_state_values(workload)}
        queue = self.queue_of(workload.id)
        if queue:
            values["queue"] = queue
        with self._write() as conn:
            updated = conn.execute(_UPDATE_STATE_QUEUE if queue else _UPDATE_STATE, values)
            if updated.rowcount == 0:  # never happens for workloads the plane submitted
                raise LookupError(f"workload {workload.id} is not in the database")
            conn.execute(
                _INSERT_TRANSITION,
                {
                    "workload_id": workload.id,
                    "at": transition.at,
                    "old": transition.old.value if transition.old is not None else None,
                    "new": transition.new.value,
                    "reason": transition.reason,
                },
            )

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None:
        with self._write() as conn:
            conn.execute(
                _INSERT_EVENT, {"workload_id": workload_id, "at": at, "kind": kind, "message": message}
            )

    def event_messages(self, workload_id: str, kind: str) -> list[str]:
        """The messages of a workload's events of ``kind``, oldest first (this batch's too)."""
        events = cast(Table, EventRow.__table__)
        q = select(events.c.message).where(events.c.workload_id == workload_id, events.c.kind == kind)
        with self._write() as conn:
            return [str(m) for m in conn.execute(q.order_by(events.c.id)).scalars()]

    def delete_tokens(self, hashes: set[str]) -> None:
        """Delete the API tokens with these SHA-256 hashes (in this batch, if one is open)."""
        tokens = cast(Table, TokenRow.__table__)
        with self._write() as conn:
            conn.execute(delete(tokens).where(tokens.c.token_hash.in_(sorted(hashes))))

    def set_queue(self, workload_id: str, queue: str) -> None:
        with self._write() as conn:
            conn.execute(_SET_QUEUE, {"wid": workload_id, "queue": queue})

    def sync(self, workload: Workload) -> None:
        """Store bookkeeping that changed without a transition (checkpoint, work done)."""
        with self._write() as conn:
            conn.execute(_UPDATE_STATE, {"wid": workload.id, **_state_values(workload)})

    def active(self) -> list[WorkloadRow]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(WorkloadRow)
                    .where(WorkloadRow.state.not_in(["succeeded", "failed", "cancelled"]))
                    .order_by(WorkloadRow.seq)
                )
            )


@dataclass
class _Batch:
    """One thread's batch: a connection taken on its first write, a transaction begun by it."""

    db: Database
    conn: Connection | None = None

    def connection(self) -> Connection:
        if self.conn is None:
            self.conn = self.db.engine.connect()
        return self.conn  # the next statement begins a transaction if none is open

    def commit(self) -> None:
        if self.conn is not None and self.conn.in_transaction():
            self.conn.commit()

    def commit_or_rollback(self) -> None:
        if self.conn is None:
            return
        try:
            self.commit()
        except Exception:
            self.conn.rollback()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()  # rolls back what was not committed
            self.conn = None
