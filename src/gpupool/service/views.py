"""Workloads and queues on the wire: the mapping from rows and core objects to ``gpupool.api`` models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpupool.api import DisruptionIn, QueueOut, TaskGroupOut, TransitionOut, WorkloadOut
from gpupool.core.queues import Queue
from gpupool.core.resources import in_gpus
from gpupool.engine.model import Workload, WorkloadSpec
from gpupool.service.journal import spec_from_json


def history_out(rows: Iterable[Any]) -> list[TransitionOut]:
    """Stored transitions (rows with ``at``, ``old``, ``new``, ``reason``) on the wire."""
    return [TransitionOut(at=t.at, old=t.old, new=t.new, reason=t.reason) for t in rows]


def row_out(row: Any, history: list[TransitionOut]) -> WorkloadOut:
    """A stored workload row (ORM or plain SQL: the same column names) on the wire."""
    return wire(
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


def workload_out(w: Workload, queue: str | None) -> WorkloadOut:
    """A workload in memory on the wire: what ``row_out`` gives once its rows are committed."""
    return wire(
        w.id,
        w.spec,
        queue=queue,
        state=w.state.value,
        reason=w.reason,
        attempt=w.attempt,
        placement=dict(w.placement),
        gpu_ids={m: list(ids) for m, ids in sorted(w.gpu_ids.items())},
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


def wire(wid: str, spec: WorkloadSpec, **state: Any) -> WorkloadOut:
    return WorkloadOut(
        id=wid,
        name=spec.name,
        user=spec.user,
        priority=spec.priority,
        size=spec.size,
        task_groups=[
            TaskGroupOut(
                name=g.name, members=g.members, resources=in_gpus(g.resources), gpu_types=list(g.gpu_types)
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


def queue_out(q: Queue, serving: Mapping[str, int] | None = None) -> QueueOut:
    """A queue on the wire; ``serving`` is the part of its allocation held by deployments."""
    serving = serving or {}
    batch = {k: v - serving.get(k, 0) for k, v in q.allocated.items()}
    return QueueOut(
        path=q.path,
        parent=q.parent.path if q.parent is not None else None,
        leaf=q.is_leaf,
        guaranteed=in_gpus(q.guaranteed or {}),
        max=in_gpus(q.max or {}),
        allocated=in_gpus({k: v for k, v in q.allocated.items() if v}),
        serving=in_gpus({k: v for k, v in serving.items() if v}),
        batch=in_gpus({k: v for k, v in batch.items() if v}),
        pending=in_gpus({k: v for k, v in q.pending.items() if v}),
        running_apps=q.running_apps,
        submit_acl=q.submit_acl.describe(),
        admin_acl=q.admin_acl.describe(),
    )
