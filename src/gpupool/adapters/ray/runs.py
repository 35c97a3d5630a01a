"""One attempt of one workload on Ray, as ``RayExecutor`` follows it from start to exit: its
placement group and supervisor actor, the phase it is in, and the Ray references it waits on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Run:
    """One attempt of one workload, as the executor follows it."""

    workload_id: str
    attempt: int
    nodes: tuple[str, ...]
    pg: Any
    actor: Any
    has_entrypoint: bool
    phase: str = "starting"  # starting | running | checkpointing | stopping | lost
    start_deadline: float | None = None
    launch_ref: Any = None
    exit_ref: Any = None
    ckpt_ref: Any = None
    stop_ref: Any = None
    preempt_deadline: float | None = None
    stop_deadline: float | None = None
    checkpoint: str | None = None
    requested: bool = False  # a checkpoint was requested for this attempt
    lost_since: float | None = None
    shared_fs: bool = True  # the supervisor's log file is visible here too
    bundles: list[dict[str, float]] = field(default_factory=list)
    placement: list[tuple[str, str]] = field(default_factory=list)  # the gang's (member, node)
    extras: dict[str, tuple[Any, str]] = field(default_factory=dict)  # member -> (pg, node)
    failure: str | None = None  # set when stopped for escaping its reservation
    refs: list[Any] = field(default_factory=list)

    def pending(self) -> list[Any]:
        return [r for r in (self.launch_ref, self.exit_ref, self.ckpt_ref, self.stop_ref) if r is not None]
