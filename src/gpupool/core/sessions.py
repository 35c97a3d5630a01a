"""Notebook sessions: their idle timeout and lifetime, and when an idle session's GPUs are reclaimed.

Two pure pieces the live path calls (docs/notebooks.md):

* ``session_limits``: the ``SessionLimits`` of a leaf queue, also of one the placement rules
  will create for the session;
* ``resolve_session``: a session's requested idle timeout and lifetime against its queue's
  ``SessionLimits`` (the ``session.*`` properties, ``Queue.sessions``), giving the
  ``SessionPolicy`` it runs under, or a ``SessionRefusal`` (what, where, what to do) to answer
  with a 422 before anything is stored;
* ``IdleClock``: fed one ``Activity`` observation per tick, it keeps when the session last did
  something and decides, as data, ``Keep``, ``Warn`` (once, with the time of the reclaim),
  ``Withdraw`` (activity after a warning) or ``Reclaim`` (idle for the timeout, or its lifetime
  reached).

A session is idle when no kernel is busy, no client did anything, and, where the GPUs'
utilisation can be read, every GPU is below the threshold. A reclaim always follows a warning
given at least ``warning`` seconds earlier: a warning given late (ticks were missed, the
control plane was down) moves the reclaim later, never earlier. Time is passed in (epoch seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from gpupool.core.config import (
    PROP_SESSION_IDLE_TIMEOUT_MAX,
    PROP_SESSION_LIFETIME_MAX,
    PROP_SESSION_WARNING,
    QueueProperties,
    SessionLimits,
    inherit_session_limits,
)
from gpupool.core.configerror import DurationError, format_duration, parse_duration
from gpupool.core.queues import Queue

__all__ = [
    "Activity",
    "Decision",
    "IdleClock",
    "Keep",
    "Reclaim",
    "SessionPolicy",
    "SessionRefusal",
    "Warn",
    "Withdraw",
    "reclaimed_gpu_hours",
    "resolve_session",
    "session_limits",
]

Why = Literal["idle", "lifetime"]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """What one session runs under: seconds, and the GPU utilisation (percent) that counts as idle."""

    idle_timeout: float
    lifetime: float
    warning: float
    gpu_threshold: float

    def __post_init__(self) -> None:
        if not 0 < self.warning < min(self.idle_timeout, self.lifetime):
            raise ValueError(
                f"the warning lead must be above 0 and shorter than the idle timeout and lifetime: {self}"
            )


@dataclass(frozen=True, slots=True)
class SessionRefusal:
    """Why a session's request cannot be met: the request field, what is wrong, what to do."""

    field: str  # the request's field: idle_timeout or max_lifetime
    message: str
    hint: str

    def __str__(self) -> str:
        return f"refused: {self.message} (Hint: {self.hint})"


def session_limits(queues: Mapping[str, Queue], path: str) -> SessionLimits:
    """The session settings of the queue at ``path`` (``Scheduler.queues``). A queue that does not
    exist yet (a placement rule will create it) gets them as it will be made: from its nearest
    existing ancestor, through that ancestor's nearest child template at each new level."""
    parts = path.split(".")
    for depth in range(len(parts), 0, -1):
        existing = queues.get(".".join(parts[:depth]))
        if existing is not None:
            break
    else:
        return SessionLimits()
    limits = existing.sessions
    template = None
    q: Queue | None = existing
    while q is not None and template is None:
        template = q.child_template
        q = q.parent
    own = template.settings if template is not None else QueueProperties()
    for _ in parts[depth:]:
        limits = inherit_session_limits(limits, own)
    return limits


def resolve_session(
    limits: SessionLimits,
    queue: str,
    idle_timeout: float | str | None = None,
    lifetime: float | str | None = None,
) -> SessionPolicy | SessionRefusal:
    """The policy a session in ``queue`` (with its ``limits``) runs under.

    ``idle_timeout`` / ``lifetime`` are what the session asked for, in seconds or as a Go
    duration (``45m``, ``2h30m``); None takes the queue's default. A value that is not a
    duration, not above the queue's warning lead, or above the queue's maximum is refused
    (the first such, idle timeout first); nothing is ever clamped.
    """
    asked = (
        (
            "idle_timeout",
            idle_timeout,
            limits.idle_timeout,
            limits.idle_timeout_max,
            PROP_SESSION_IDLE_TIMEOUT_MAX,
        ),
        ("max_lifetime", lifetime, limits.lifetime, limits.lifetime_max, PROP_SESSION_LIFETIME_MAX),
    )
    values: list[float] = []
    for name, raw, default, maximum, max_prop in asked:
        if raw is None:
            values.append(default)
            continue
        seconds = _seconds(raw)
        if seconds is None:
            return SessionRefusal(
                name,
                f"{name} {raw!r} is not a duration",
                "give a number of seconds or a duration such as 45m or 2h30m "
                f"(at most {format_duration(maximum)})",
            )
        if seconds > maximum:
            return SessionRefusal(
                name,
                f"{name} {format_duration(seconds)} is more than queue {queue} allows "
                f"({max_prop} {format_duration(maximum)})",
                f"ask for at most {format_duration(maximum)}, leave it out for the queue's default "
                f"{format_duration(default)}, or use a queue with a higher {max_prop}",
            )
        if seconds <= limits.warning:
            return SessionRefusal(
                name,
                f"{name} {format_duration(seconds)} is not longer than queue {queue}'s warning lead "
                f"({PROP_SESSION_WARNING} {format_duration(limits.warning)})",
                f"ask for more than {format_duration(limits.warning)}: a session is warned that long "
                "before its GPUs are reclaimed",
            )
        values.append(seconds)
    return SessionPolicy(
        idle_timeout=values[0], lifetime=values[1], warning=limits.warning, gpu_threshold=limits.gpu_threshold
    )


def _seconds(raw: float | str) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw) if raw == raw and raw not in (float("inf"), float("-inf")) else None
    try:
        return parse_duration(raw)
    except DurationError:
        return None


# ---- the idle clock ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Activity:
    """One observation of a running session.

    ``at``: when it was made; ``kernel_busy``: any kernel executing; ``last_activity``: the
    server's latest client or kernel activity (None: unknown); ``gpu_utilisation``: the highest
    utilisation (percent) of the session's GPUs, None when it cannot be read (no NVML).
    """

    at: float
    kernel_busy: bool = False
    last_activity: float | None = None
    gpu_utilisation: float | None = None


@dataclass(frozen=True, slots=True)
class Keep:
    """Nothing to do. ``idle_since``: when the session last did something; ``reclaim_at``: when it
    would be reclaimed if it stays idle (the idle timeout or the lifetime, the earlier)."""

    idle_since: float
    reclaim_at: float


@dataclass(frozen=True, slots=True)
class Warn:
    """Tell the user (portal, events): the session is reclaimed at ``reclaim_at`` unless it is used
    (``why == "idle"``), or then in any case (``why == "lifetime"``)."""

    why: Why
    reclaim_at: float
    message: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    """The session was used after an idle warning: the warning no longer holds."""

    message: str


@dataclass(frozen=True, slots=True)
class Reclaim:
    """Stop the session, keep its files, release its GPUs.

    ``idle_for``: seconds since it last did something."""

    why: Why
    idle_for: float
    message: str


Decision = Keep | Warn | Withdraw | Reclaim


@dataclass(frozen=True, slots=True)
class IdleClock:
    """The idle state of one running session, as plain values (a row can keep them across restarts).

    ``started_at``: when it started (or was resumed: a resume starts a new clock);
    ``idle_since``: when it last did something; ``idle_warned_at`` / ``idle_reclaim_at``: the
    outstanding idle warning, if any; ``lifetime_reclaim_at``: set once its lifetime warning is
    given. ``step`` returns the next clock and the decision of one tick.
    """

    policy: SessionPolicy
    started_at: float
    idle_since: float
    idle_warned_at: float | None = None
    idle_reclaim_at: float | None = None
    lifetime_reclaim_at: float | None = None
    gpu_read: bool = False  # the last observation had a GPU utilisation (for the messages)

    @classmethod
    def start(cls, policy: SessionPolicy, at: float) -> IdleClock:
        return cls(policy=policy, started_at=at, idle_since=at)

    @property
    def ends_at(self) -> float:
        """When the lifetime ends (a late warning may move the reclaim itself later)."""
        return self.started_at + self.policy.lifetime

    def step(self, obs: Activity) -> tuple[IdleClock, Decision]:
        """Take one observation and decide. At most one decision a tick, the most urgent; one that
        waits (e.g. a second warning) comes on the next tick."""
        p = self.policy
        now = obs.at
        busy = obs.kernel_busy or (obs.gpu_utilisation is not None and obs.gpu_utilisation >= p.gpu_threshold)
        seen = now if busy else obs.last_activity
        idle_since = self.idle_since
        if seen is not None:
            idle_since = max(idle_since, min(seen, now))  # a server clock ahead of ours counts as now
        clock = replace(self, idle_since=idle_since, gpu_read=obs.gpu_utilisation is not None)

        # 1. Reclaim: lifetime, then idle (only under a warning no activity has made stale).
        if clock.lifetime_reclaim_at is not None and now >= clock.lifetime_reclaim_at:
            return clock, Reclaim(
                "lifetime",
                now - idle_since,
                f"max lifetime {format_duration(p.lifetime)} reached "
                f"(started {format_duration(now - self.started_at)} ago)",
            )
        warned = clock.idle_reclaim_at
        # Stale: it did something after the warning (or news of earlier activity came late), so
        # the warned reclaim would now come less than the idle timeout after its last activity.
        stale = warned is not None and idle_since + p.idle_timeout > warned
        if warned is not None and not stale and now >= warned:
            idle_for = now - idle_since
            return clock, Reclaim(
                "idle", idle_for, f"idle for {format_duration(idle_for)}: {clock._idle_words()}"
            )
        # 2. Activity after an idle warning withdraws it.
        if stale:
            clock = replace(clock, idle_warned_at=None, idle_reclaim_at=None)
            return clock, Withdraw("the session was used again: it is no longer reclaimed for being idle")
        # 3. Warnings, the lifetime's first.
        if clock.lifetime_reclaim_at is None and now >= clock.ends_at - p.warning:
            at = max(clock.ends_at, now + p.warning)
            clock = replace(clock, lifetime_reclaim_at=at)
            return clock, Warn(
                "lifetime",
                at,
                f"max lifetime {format_duration(p.lifetime)} ends in {format_duration(at - now)}: "
                "the session stops then (its files are kept; `resume` starts it again)",
            )
        idle_due = idle_since + p.idle_timeout
        ends = clock.lifetime_reclaim_at if clock.lifetime_reclaim_at is not None else clock.ends_at
        at = max(idle_due, now + p.warning)
        if warned is None and now >= idle_due - p.warning and at < ends:
            clock = replace(clock, idle_warned_at=now, idle_reclaim_at=at)
            return clock, Warn(
                "idle",
                at,
                f"idle for {format_duration(now - idle_since)} ({clock._idle_words()}): its GPUs are "
                f"reclaimed in {format_duration(at - now)} unless it is used (its files are kept; "
                "`resume` starts it again)",
            )
        # Without a warning yet, the reclaim comes at the earliest a warning's lead after now.
        reclaim_at = clock.idle_reclaim_at if clock.idle_reclaim_at is not None else at
        return clock, Keep(idle_since, min(reclaim_at, ends))

    def _idle_words(self) -> str:
        gpu = f", GPU utilisation under {self.policy.gpu_threshold:g}%" if self.gpu_read else ""
        timeout = format_duration(self.policy.idle_timeout)
        return f"no kernel busy, no client activity{gpu}; idle timeout {timeout}"


def reclaimed_gpu_hours(gpus: float, reclaimed_at: float, until: float, ends_at: float) -> float:
    """The idle GPU-hours an idle reclaim gave back to the pool: ``gpus`` from the reclaim until
    the session was resumed or deleted (``until``), at most until its lifetime would have ended it."""
    return gpus * max(0.0, min(until, ends_at) - reclaimed_at) / 3600.0
