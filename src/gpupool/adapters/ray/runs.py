"""One attempt of one workload on Ray, as ``RayExecutor`` follows it from start to exit: its
placement group and supervisor actor, the phase it is in, and the Ray references it waits on;
and its logs, read back (``read_logs``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupool.adapters.ray import naming


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


def read_logs(ray: Any, data_dir: Path, workload_id: str, run: Run | None) -> str:
    """A job's entrypoint output, every attempt in order (headed ``--- attempt N ---`` if several):
    from the files under ``data_dir``, else (the current attempt, on another machine) from its
    supervisor."""
    root = data_dir / "jobs" / workload_id
    attempts = sorted(
        int(p.name.removeprefix("attempt-")) for p in root.glob("attempt-*") if p.name[8:].isdigit()
    )
    if run is not None and run.attempt not in attempts:
        attempts.append(run.attempt)
    parts: list[tuple[int, str]] = []
    for attempt in attempts:
        path = naming.log_path(data_dir, workload_id, attempt)
        text = ""
        if path.exists():
            text = path.read_text(errors="replace")
        elif run is not None and run.attempt == attempt:
            with contextlib.suppress(Exception):
                text = str(ray.get(run.actor.logs.remote(), timeout=5))
        parts.append((attempt, text))
    if len(parts) == 1:
        return parts[0][1]
    return "".join(f"--- attempt {a} ---\n{text}" for a, text in parts)
