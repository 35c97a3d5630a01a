"""Queue usage over time: a periodic sampler, its table, and ``GET /queues/{path}/history``.

The scheduling core only knows the present. Every ``interval`` seconds (15 by default) the sampler
records, for each queue of the tree, its guaranteed, max, allocated and pending resources as one
``queue_samples`` row; the portal draws them as a chart against guaranteed and max. Samples older
than ``retention`` (7 days by default) are deleted as new ones are written.

The sampler runs on its own thread next to the driver loop: it reads the tree through
``ControlPlane.queues()`` (which holds the plane's lock only while copying) and writes outside
the lock, in one short transaction per sample.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import JSON, Float, Index, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from gpupool.service.errors import NotFound
from gpupool.service.models import Base
from gpupool.service.plane import ControlPlane
from gpupool.service.routers.deps import PlaneDep, PrincipalDep, errors

log = logging.getLogger("gpupool.service.history")

DEFAULT_INTERVAL = 15.0
DEFAULT_RETENTION = 7 * 86400.0
DEFAULT_WINDOW = 3600.0  # what ``since`` defaults to: the last hour
MAX_POINTS = 2000


class QueueSampleRow(Base):
    """One sample of one queue (table ``queue_samples``): its quotas and usage at ``at``."""

    __tablename__ = "queue_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    queue: Mapped[str] = mapped_column(String(255))
    guaranteed: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    max: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    allocated: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    pending: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_queue_samples_queue_at", "queue", "at"),)


class QueueSampleOut(BaseModel):
    """One sample of a queue's quotas and usage; ``at`` in seconds since the epoch."""

    at: float
    guaranteed: dict[str, int] = Field(default_factory=dict)
    max: dict[str, int] = Field(default_factory=dict)
    allocated: dict[str, int] = Field(default_factory=dict)
    pending: dict[str, int] = Field(default_factory=dict)


class QueueHistoryOut(BaseModel):
    """A queue's samples between ``since`` and ``until`` (seconds since the epoch), oldest first.

    At most 2000 points: a longer span is thinned evenly, the newest sample kept.
    """

    queue: str
    since: float
    until: float
    interval: float = Field(description="seconds between samples")
    points: list[QueueSampleOut]


class HistorySampler:
    """Records every queue's quotas and usage every ``interval`` seconds, on a daemon thread."""

    def __init__(
        self,
        plane: ControlPlane,
        *,
        interval: float = DEFAULT_INTERVAL,
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        self.plane = plane
        self.interval = interval
        self.retention = retention
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpupool-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # a failed sample (database busy ...) must not end the series
                self.errors += 1
                log.exception("queue history sample failed")
            self._stop.wait(self.interval)

    def sample(self, now: float | None = None) -> int:
        """Record one sample of every queue; returns the number of rows written."""
        at = self.plane.clock() if now is None else now
        queues = self.plane.cluster.queues()
        with self.plane.db.session() as s:
            s.add_all(
                QueueSampleRow(
                    at=at,
                    queue=q.path,
                    guaranteed=q.guaranteed,
                    max=q.max,
                    allocated=q.allocated,
                    pending=q.pending,
                )
                for q in queues
            )
            s.execute(delete(QueueSampleRow).where(QueueSampleRow.at < at - self.retention))
        return len(queues)


def history(
    plane: ControlPlane, path: str, *, since: float | None, until: float | None, interval: float
) -> QueueHistoryOut:
    now = plane.clock()
    until = now if until is None else until
    since = until - DEFAULT_WINDOW if since is None else since
    query = (
        select(QueueSampleRow)
        .where(QueueSampleRow.queue == path, QueueSampleRow.at >= since, QueueSampleRow.at <= until)
        .order_by(QueueSampleRow.at)
    )
    with plane.db.session() as s:
        rows = list(s.scalars(query))
    if not rows and path not in {q.path for q in plane.cluster.queues()}:
        raise NotFound(f"no queue {path!r}", hint="list the queues with `gpupool queues` or GET /queues")
    return QueueHistoryOut(
        queue=path, since=since, until=until, interval=interval, points=[_out(r) for r in _thin(rows)]
    )


def _thin(rows: list[Any], limit: int = MAX_POINTS) -> list[Any]:
    """At most ``limit`` rows, evenly spaced, the newest always kept."""
    if len(rows) <= limit:
        return rows
    step = len(rows) / (limit - 1)
    picked = [rows[int(i * step)] for i in range(limit - 1)]
    return [*picked, rows[-1]]


def _out(row: QueueSampleRow) -> QueueSampleOut:
    return QueueSampleOut(
        at=row.at,
        guaranteed=dict(row.guaranteed or {}),
        max=dict(row.max or {}),
        allocated=dict(row.allocated or {}),
        pending=dict(row.pending or {}),
    )


router = APIRouter(tags=["cluster"])


@router.get("/queues/{path}/history", response_model=QueueHistoryOut, responses=errors(404))
def queue_history(
    path: str,
    request: Request,
    plane: PlaneDep,
    principal: PrincipalDep,
    since: Annotated[
        float | None, Query(description="epoch seconds; default: an hour ago", allow_inf_nan=False)
    ] = None,
    until: Annotated[
        float | None, Query(description="epoch seconds; default: now", allow_inf_nan=False)
    ] = None,
) -> QueueHistoryOut:
    """The queue's guaranteed, max, allocated and pending over time, oldest first (at most 2000)."""
    sampler: HistorySampler | None = getattr(request.app.state, "history", None)
    interval = sampler.interval if sampler is not None else DEFAULT_INTERVAL
    return history(plane, path, since=since, until=until, interval=interval)
