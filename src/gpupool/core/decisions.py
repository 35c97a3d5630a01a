"""Decisions as data: what a scheduling cycle tells the outside world to do, and why.

A cycle never acts. It returns these values; the driver (scenario runner, simulator or live
control plane) carries them out and reports back (for example ``release_allocation`` once a
preempted workload has stopped). Every decision and every pending ask carries a ``Reason``: a
stable code for programs and a sentence for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gpupool.core.resources import Resources


class Code(StrEnum):
    """Why something happened, or why an ask is still waiting."""

    PLACED = "placed"
    PREEMPTED = "preempted"
    REJECTED = "rejected"
    FAILED = "failed"
    # Reasons an ask is still pending.
    QUEUE_QUOTA = "queue-quota"  # a queue on its path would go above its max
    USER_LIMIT = "user-limit"  # a user or group limit on its path
    ABOVE_GUARANTEE = "above-guarantee"  # it may not be preempted and its queue is at its guarantee
    MAX_APPS = "max-applications"  # the queue (or user) runs as many apps as it may
    NO_NODE = "no-node"  # no schedulable node has room for it
    GANG_WAITING = "gang-waiting"  # its gang cannot be placed whole yet
    RESERVED = "reserved"  # preemption made room; waiting for the victims to stop
    PREEMPTION_WAIT = "preemption-wait"  # too young to preempt (preemption.delay)
    NO_PREEMPTION = "no-preemption"  # preemption was tried and cannot help; says why
    NOT_TRIED = "not-tried"  # not reached yet
    # Autoscaling of a model deployment (gpupool.core.serving).
    SCALE_UP = "scale-up"
    SCALE_DOWN = "scale-down"
    SCALE_HOLD = "scale-hold"  # no change: steady, a delay not over yet, or nothing to go on


@dataclass(frozen=True, slots=True)
class Reason:
    """Why: a stable ``code`` for programs, a ``message`` (and maybe a ``hint``) for people.

    ``preemption`` is why preemption cannot help, when the message says so (set by
    ``gpupool.core.preemption.cannot_help``; it plays no part in equality).
    """

    code: Code
    message: str
    hint: str = ""
    preemption: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


@dataclass(frozen=True, slots=True)
class Place:
    """Bind ask ``ask_id`` of ``app_id`` to ``node``; the allocation takes the ask's id."""

    ask_id: str
    app_id: str
    queue: str
    node: str
    resources: Resources
    gpu_type: str | None
    reason: Reason


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop allocation ``alloc_id`` so that ``for_ask`` can run; release it once it has stopped."""

    alloc_id: str
    app_id: str
    queue: str
    node: str
    for_ask: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Reject:
    """The application can never run here (placement, ACL, gang larger than its queue's max)."""

    app_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Fail:
    """The application failed (a hard gang timed out); its pending asks are dropped."""

    app_id: str
    reason: Reason


Decision = Place | Preempt | Reject | Fail


@dataclass(slots=True)
class CycleResult:
    """What one cycle decided, and the reason of every ask it looked at and left pending."""

    now: float
    decisions: list[Decision] = field(default_factory=list)
    pending: dict[str, Reason] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.decisions)

    def placed(self) -> list[Place]:
        return [d for d in self.decisions if isinstance(d, Place)]

    def preempted(self) -> list[Preempt]:
        return [d for d in self.decisions if isinstance(d, Preempt)]
