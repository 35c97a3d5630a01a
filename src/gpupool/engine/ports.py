"""The engine's ports: what it needs from the cluster and from whoever keeps its records.

The driver (``gpupool.engine.driver``) talks only to these protocols. The simulator plugs in a
simulated executor; the live control plane plugs in the Ray executor and a database-backed
journal. Semantics every implementation keeps:

* Executor calls return fast and never raise for the cluster's own failures: what happened is
  reported later by ``poll`` as observations (errors as data).
* ``start``, ``preempt`` and ``cancel`` are idempotent: calling one twice for the same attempt
  does nothing more.
* The journal is written before the executor acts: the driver records a transition, then
  calls the executor, so a restart never loses a decision it already acted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gpupool.core.model import NodeSpec
from gpupool.engine.model import Transition, Workload


@dataclass(frozen=True, slots=True)
class Started:
    """The workload's job runs (all members on their reserved nodes)."""

    workload_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The workload's job ended on its own: ``ok`` or failed with ``message``."""

    workload_id: str
    attempt: int
    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class Stopped:
    """A preempted (or cancelled) workload stopped and its reservation is free."""

    workload_id: str
    attempt: int
    checkpoint: str | None = None  # where the checkpoint it wrote lives, if it wrote one
    work_done: float | None = None  # seconds of work kept by that checkpoint (simulation)


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The job could not be started; ``retry`` says whether to requeue it."""

    workload_id: str
    attempt: int
    message: str
    retry: bool = True


@dataclass(frozen=True, slots=True)
class NodeUp:
    node: NodeSpec


@dataclass(frozen=True, slots=True)
class NodeDown:
    """A node died or left: its workloads are requeued, it takes no more work."""

    name: str
    message: str = ""


Observation = Started | Finished | Stopped | StartFailed | NodeUp | NodeDown


class Executor(Protocol):
    """Runs admitted workloads on a cluster (Ray, or the simulated one)."""

    def start(self, workload: Workload, now: float) -> None:
        """Start ``workload`` on ``workload.placement`` (member -> node), attempt ``workload.attempt``."""

    def preempt(self, workload: Workload, grace: float, now: float) -> None:
        """Ask it to checkpoint; stop it by ``now + grace`` at the latest; report ``Stopped``."""

    def cancel(self, workload: Workload, now: float) -> None:
        """Stop it now; report ``Stopped``."""

    def poll(self, now: float) -> list[Observation]:
        """What happened since the last poll."""


class Journal(Protocol):
    """Records submissions and transitions (the database in live mode; a list in simulation)."""

    def submitted(self, workload: Workload) -> None: ...

    def transition(self, workload: Workload, transition: Transition) -> None: ...

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None: ...


@dataclass(slots=True)
class MemoryJournal:
    """A journal in memory: the simulator's, and the tests'."""

    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    events: list[tuple[str | None, float, str, str]] = field(default_factory=list)
    keep_events: bool = True

    def submitted(self, workload: Workload) -> None:
        return None

    def transition(self, workload: Workload, transition: Transition) -> None:
        self.transitions.append((workload.id, transition))

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None:
        if self.keep_events:
            self.events.append((workload_id, at, kind, message))
