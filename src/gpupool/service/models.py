"""ORM tables (SQLAlchemy 2): workloads, their transitions and events, API tokens, pool nodes.

A workload row holds the submitted spec (JSON) and its current state; every state change is
also a ``transitions`` row with its reason, written before the executor acts on it. The schema
is created and upgraded only by the alembic migrations in ``migrations/``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The declarative base of gpupool's tables; the alembic migrations target its metadata."""

    pass


class WorkloadRow(Base):
    """A workload as stored (table ``workloads``): its submitted spec as JSON, its state and placement."""

    __tablename__ = "workloads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(255))
    user: Mapped[str] = mapped_column(String(255), index=True)
    queue: Mapped[str | None] = mapped_column(String(255), index=True)  # resolved leaf once known
    state: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    placement: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # member -> shape, and under "gpu_ids" member -> GPU indices (service/journal.py)
    assigned: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    submitted_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)

    __table_args__ = (Index("ix_workloads_name_seq", "name", "seq"),)


class TransitionRow(Base):
    """One state change of a workload (table ``transitions``), written before the executor acts on it."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    old: Mapped[str | None] = mapped_column(String(32), nullable=True)
    new: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_transitions_workload", "workload_id", "id"),)


class EventRow(Base):
    """Something that happened to a workload, or to the cluster (table ``events``)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_events_workload", "workload_id", "id"),)


class TokenRow(Base):
    """An API token (table ``tokens``): the user and groups it stands for, stored only as its SHA-256."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class PoolNodeRow(Base):
    """A node a node provider launched and has not terminated (``service.poolnodes``)."""

    __tablename__ = "pool_nodes"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    pool: Mapped[str] = mapped_column(String(255))
    instance_type: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))  # booting | ready | terminating
    launched_at: Mapped[float] = mapped_column(Float)
