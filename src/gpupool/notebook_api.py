"""The wire models of notebook sessions: what ``POST /notebooks`` takes and what the API, the
SDK and the CLI answer with (beside ``gpupool.api``, which holds the rest and what these share)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from gpupool.api import (
    _NAME,
    MAX_GPUS_PER_MEMBER,
    TransitionOut,
    _gpu_type_name,
    _memory_quantity,
    _Strict,
    gpu_milli_of,
)

NotebookState = Literal["pending", "starting", "running", "preempting", "preempted", "stopped", "failed"]
StoppedBy = Literal["user", "idle", "lifetime"]  # who or what stopped a session
# Why a running session's GPUs are about to be taken back (``NotebookOut.reclaim_why``).
ReclaimWhy = Literal["idle", "lifetime", "preemption"]


class NotebookRequest(_Strict):
    """An interactive notebook session: a Jupyter server in ``queue`` on ``size`` or ``gpus``
    (whole, or a share of one GPU) of ``gpu_type``, with ``cpu`` and ``memory``.

    ``idle_timeout`` and ``max_lifetime`` are seconds (None: none); ``preemptible`` lets the
    scheduler take the session's GPUs back when its queue is above its guarantee.
    """

    name: str = Field(pattern=_NAME)
    queue: str = Field(min_length=1, max_length=255, description="leaf queue path, e.g. root.ml.research")
    size: str | None = Field(None, max_length=64, description="a standard size")
    gpus: int | float | None = Field(
        None,
        description="GPUs (instead of size): whole (1, 2) or a share of one GPU (0.25)",
        json_schema_extra={"minimum": 0, "maximum": MAX_GPUS_PER_MEMBER},
    )
    gpu_type: str | None = Field(None, description="the GPU type it needs (with gpus); none = any")
    cpu: float = Field(1.0, gt=0, le=1024, description="cores (with gpus)")
    memory: str = Field("4Gi", description="memory (with gpus), e.g. 16Gi")
    idle_timeout: float | None = Field(None, gt=0, le=30 * 86400, description="seconds idle before it stops")
    max_lifetime: float | None = Field(None, gt=0, le=365 * 86400, description="seconds before it stops")
    preemptible: bool = False

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, v: object) -> object:
        if v is not None:
            gpu_milli_of(v)
        return v

    @field_validator("gpu_type")
    @classmethod
    def _gpu_type(cls, v: str | None) -> str | None:
        return v if v is None else _gpu_type_name(v)

    _memory = field_validator("memory")(_memory_quantity)


class NotebookOut(BaseModel):
    """A notebook session as the API reports it.

    ``state``: ``pending`` (waits for GPUs; ``reason`` says why), ``starting`` (placed, its
    Jupyter server not answering yet), ``running`` (open ``url``), ``preempting``/``preempted``
    (its GPUs taken back; it starts again when placed), ``stopped`` (``stopped_by`` says why:
    user, idle or lifetime; its files are kept for ``resume``), ``failed``. ``id`` is the
    workload of its current run (each start or resume is a new one); ``node`` and ``gpu_ids``
    where it runs.

    A pending reclaim (a warning given, not withdrawn): ``reclaim_at`` (epoch seconds) and
    ``reclaim_why`` (``idle``: unless it is used; ``lifetime``: its max lifetime ends;
    ``preemption``: its queue's GPUs are taken back), with ``warning`` saying so in plain words.
    ``ends_at``: when a running session's max lifetime ends.
    """

    name: str
    id: str
    user: str
    state: NotebookState
    reason: str
    url: str | None = None
    queue: str | None
    gpus: int | float = 0
    gpu_types: list[str] = Field(default_factory=list)
    size: str | None = None
    resources: dict[str, int | float] = Field(default_factory=dict)
    node: str | None = None
    gpu_ids: list[int] = Field(default_factory=list)
    idle_timeout: float | None = None
    max_lifetime: float | None = None
    preemptible: bool = False
    stopped_by: StoppedBy | None = None
    reclaim_at: float | None = None
    reclaim_why: ReclaimWhy | None = None
    warning: str | None = None
    ends_at: float | None = None
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    history: list[TransitionOut] = Field(default_factory=list)
    notice: str | None = None
