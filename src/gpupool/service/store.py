"""The control plane's queries of stored workloads: plain SQL statements, built once.

Each statement is compiled once and cached by SQLAlchemy (they run on every API read), and
answers are plain rows with the columns of ``WorkloadRow``. Writes are the journal's
(``service.journal``); this module only reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, or_, select

from gpupool.service.db import Database
from gpupool.service.models import EventRow, TransitionRow, WorkloadRow

Stored = Any  # a row of plain SQL, read by column name (``row.id``, ``row.state``)

_ROW = WorkloadRow.__table__
_TRANSITIONS = TransitionRow.__table__
_EVENTS = EventRow.__table__

_SELECT_ROW = select(_ROW).where(_ROW.c.id == bindparam("wid"))
_SELECT_BY_KEY = select(_ROW).where(_ROW.c.idempotency_key == bindparam("key"))
_SELECT_HISTORY = (
    select(_TRANSITIONS.c.at, _TRANSITIONS.c.old, _TRANSITIONS.c.new, _TRANSITIONS.c.reason)
    .where(_TRANSITIONS.c.workload_id == bindparam("wid"))
    .order_by(_TRANSITIONS.c.id)
)
_SELECT_EVENTS = (
    select(_EVENTS.c.at, _EVENTS.c.kind, _EVENTS.c.message, _EVENTS.c.workload_id)
    .where(_EVENTS.c.workload_id == bindparam("wid"))
    .order_by(_EVENTS.c.id)
)
_COUNT_STATES = select(_ROW.c.state, func.count()).group_by(_ROW.c.state)
_MAX_SEQ = select(func.max(_ROW.c.seq))


class WorkloadStore:
    """Reads of the workloads table and of a workload's transitions and events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def row(self, workload_id: str) -> Stored | None:
        with self.db.engine.connect() as conn:
            return conn.execute(_SELECT_ROW, {"wid": workload_id}).first()

    def row_and_history(self, workload_id: str) -> tuple[Stored | None, Sequence[Stored]]:
        """A workload's row and its transitions (oldest first), on one connection."""
        with self.db.engine.connect() as conn:
            row = conn.execute(_SELECT_ROW, {"wid": workload_id}).first()
            if row is None:
                return None, []
            return row, conn.execute(_SELECT_HISTORY, {"wid": workload_id}).all()

    def history(self, workload_id: str) -> Sequence[Stored]:
        with self.db.engine.connect() as conn:
            return conn.execute(_SELECT_HISTORY, {"wid": workload_id}).all()

    def by_key(self, key: str) -> Stored | None:
        """The workload stored with this idempotency key."""
        with self.db.engine.connect() as conn:
            return conn.execute(_SELECT_BY_KEY, {"key": key}).first()

    def events(self, workload_id: str) -> Sequence[Stored]:
        with self.db.engine.connect() as conn:
            return conn.execute(_SELECT_EVENTS, {"wid": workload_id}).all()

    def rows(
        self,
        *,
        user_or_queues: tuple[str, list[str]] | None = None,
        states: list[str] | None = None,
        queue: str | None = None,
        user: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        limit: int = 200,
    ) -> Sequence[Stored]:
        """Workloads newest first; ``user_or_queues`` keeps a user's own and those in the queues named;
        ``kind`` keeps those whose spec is of that kind (``deployment``; a job's spec may not say)."""
        q = select(_ROW).order_by(_ROW.c.seq.desc()).limit(limit)
        if user_or_queues is not None:
            owner, queues = user_or_queues
            q = q.where(or_(_ROW.c.user == owner, _ROW.c.queue.in_(queues)))
        if states:
            q = q.where(_ROW.c.state.in_(states))
        if queue:
            q = q.where(_ROW.c.queue == queue)
        if user:
            q = q.where(_ROW.c.user == user)
        if name:
            q = q.where(_ROW.c.name == name)
        if kind:
            q = q.where(_ROW.c.spec["kind"].as_string() == kind)
        with self.db.engine.connect() as conn:
            return conn.execute(q).all()

    def stopped_runs(self, kind: str, reason_prefix: str) -> Sequence[Stored]:
        """The finished runs of ``kind`` whose reason starts with ``reason_prefix``, oldest first,
        each with ``next_submitted_at``: when the next run of the same name was submitted (None if
        none was). Only those runs are read (the index by name finds the next run)."""
        later = _ROW.alias("later")
        next_run = (
            select(func.min(later.c.submitted_at))
            .where(later.c.name == _ROW.c.name, later.c.seq > _ROW.c.seq)
            .where(later.c.spec["kind"].as_string() == kind)
            .scalar_subquery()
        )
        q = (
            select(_ROW, next_run.label("next_submitted_at"))
            .where(_ROW.c.spec["kind"].as_string() == kind)
            .where(_ROW.c.reason.startswith(reason_prefix, autoescape=True))
            .where(_ROW.c.finished_at.is_not(None))
            .order_by(_ROW.c.seq)
        )
        with self.db.engine.connect() as conn:
            return conn.execute(q).all()

    def state_counts(self) -> Counter[str]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(_COUNT_STATES).all()
        return Counter({state: int(n) for state, n in rows})

    def max_seq(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(_MAX_SEQ).scalar() or 0)
