"""The autoscaling rule of a model deployment: load samples in, a desired replica count out.

Pure and deterministic: the driver feeds ``LoadSample`` values (taken from the gpupool front,
stamped with the driver's ``now``) into a ``ScaleState`` with ``observe`` and asks ``decide``
for the count the deployment should have, with a ``Reason`` in plain words. Placing that
count within the queue's quota is the scheduler's job, not this module's.

The rule is Ray Serve 2.60's default (``replica_queue_length_autoscaling_policy`` with its
delay logic and bounds), made deterministic:

- desired = ceil(mean ongoing requests over ``look_back`` / ``target_ongoing_requests``),
  where ongoing = in flight at the replicas + queued at the front, and the mean weighs each
  sample by the time it stands for;
- a rise takes effect once the wish to rise has lasted ``upscale_delay``; a fall once the wish
  to fall has lasted ``downscale_delay``; the timer restarts when the wish changes direction
  or goes away (Serve keeps one timestamp per direction the same way);
- from 0 replicas, requests waiting wake the deployment at once (Serve's cold-start path);
- while replicas are wanted but none is ready yet, the count is held (Serve does the same:
  with no running replica its policy returns the current target);
- the result is clamped to [``min_replicas``, ``max_replicas``].

Where it differs from Serve, on purpose:

- Going to 0 is its own rule. With ``scale_to_zero_after`` set (or ``min_replicas`` 0), the
  deployment goes to 0 from any count once no request has been in flight or queued for that
  long (``downscale_delay`` when only ``min_replicas`` is 0). Serve goes to 0 only from 1, once
  the look-back mean has been 0 for ``downscale_to_zero_delay_s``, which makes the real idle
  time the delay plus the look-back. ``min_replicas`` stays the floor while there is load.
- Waking from 0 asks for ceil(mean / target) replicas (at least 1, at least ``min_replicas``)
  where Serve asks for 1 and grows after ``upscale_delay``.
- Load worth less than ``REPLICA_SLACK`` of a replica above a whole count does not ask for one
  more replica: desired = ceil(mean / target - ``REPLICA_SLACK``). Serve takes the bare ceil,
  so a load that sits on a whole count (6.1 requests at a target of 2) keeps a fourth replica
  for 0.05 of a replica's worth, and the count flaps on noise around it. The front also counts
  a request from the moment it sends it until the answer is back, a few milliseconds more per
  request than Serve's handles count; the slack absorbs that too.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from gpupool.core.decisions import Code, Reason

# Float sums of weighted samples can land a hair above a whole ratio (4.000000001 / 2); the
# ratio is rounded to this many places before ``ceil`` so 2.0000000001 stays 2.
_RATIO_PLACES = 9
# Same tolerance as Serve's for comparing elapsed time against a delay.
_EPS = 1e-6
# Load above a whole count of replicas, in replicas' worth, that does not ask for one more.
REPLICA_SLACK = 0.1


@dataclass(frozen=True, slots=True)
class ServingPolicy:
    """How a deployment scales: its bounds, its target load per replica, and its delays (s).

    The names and defaults are Ray Serve's ``AutoscalingConfig`` ones, in seconds.
    """

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0
    upscale_delay: float = 30.0
    downscale_delay: float = 600.0
    look_back: float = 30.0
    scale_to_zero_after: float | None = None

    def __post_init__(self) -> None:
        problem = policy_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def zero_allowed(self) -> bool:
        """Whether the deployment may go down to no replica when idle."""
        return self.scale_to_zero_after is not None or self.min_replicas == 0

    @property
    def idle_delay(self) -> float:
        """How long without any request before the deployment goes to 0 (when it may)."""
        return self.scale_to_zero_after if self.scale_to_zero_after is not None else self.downscale_delay


def policy_problem(p: ServingPolicy) -> str:
    """What is wrong with ``p``, one line naming the field; empty when nothing is."""
    if p.min_replicas < 0:
        return f"min_replicas must be 0 or more, not {p.min_replicas}"
    if p.max_replicas < 1:
        return f"max_replicas must be 1 or more, not {p.max_replicas}"
    if p.min_replicas > p.max_replicas:
        return f"min_replicas ({p.min_replicas}) is above max_replicas ({p.max_replicas})"
    if not p.target_ongoing_requests > 0 or math.isinf(p.target_ongoing_requests):
        return f"target_ongoing_requests must be above 0, not {p.target_ongoing_requests}"
    for name in ("upscale_delay", "downscale_delay"):
        value = getattr(p, name)
        if not value >= 0 or math.isinf(value):
            return f"{name} must be 0 seconds or more, not {value}"
    if not p.look_back > 0 or math.isinf(p.look_back):
        return f"look_back must be above 0 seconds, not {p.look_back}"
    if p.scale_to_zero_after is not None and (
        not p.scale_to_zero_after >= 0 or math.isinf(p.scale_to_zero_after)
    ):
        return f"scale_to_zero_after must be 0 seconds or more, not {p.scale_to_zero_after}"
    return ""


@dataclass(frozen=True, slots=True)
class LoadSample:
    """The load of one deployment at ``at`` (the driver's clock), as the front counted it.

    ``in_flight`` is requests being answered by replicas, ``queued`` requests waiting at the
    front (no ready replica, or every one at its cap), ``ready`` the replicas taking requests.
    """

    at: float
    in_flight: float
    queued: float
    ready: int

    @property
    def ongoing(self) -> float:
        """Requests in flight plus queued: what Serve calls the total number of requests."""
        return self.in_flight + self.queued


@dataclass(slots=True)
class ScaleState:
    """What the rule remembers about one deployment between decisions.

    ``window`` holds the samples of the last look-back (plus the one before it, which still
    held when the window opened); ``wanted_up_since`` / ``wanted_down_since`` are when the
    current wish to rise / fall began; ``idle_since`` is when the load last dropped to 0
    (None while there is load or before the first sample).
    """

    window: deque[LoadSample] = field(default_factory=deque)
    wanted_up_since: float | None = None
    wanted_down_since: float | None = None
    idle_since: float | None = None


def observe(policy: ServingPolicy, state: ScaleState, sample: LoadSample) -> None:
    """Add ``sample`` to ``state``; samples older than the look-back are dropped.

    Samples must come in time order; one older than the newest kept is ignored.
    """
    window = state.window
    if window and sample.at < window[-1].at:
        return
    window.append(sample)
    if sample.ongoing > 0:
        state.idle_since = None
    elif state.idle_since is None:
        state.idle_since = sample.at
    start = sample.at - policy.look_back
    # Keep the newest sample at or before the window's start: it held when the window opened.
    while len(window) >= 2 and window[1].at <= start:
        window.popleft()


def mean_load(state: ScaleState, now: float, look_back: float) -> float | None:
    """Time-weighted mean of ongoing requests over ``[now - look_back, now]``.

    Each sample stands for the time since the one before it, and the newest also for the time
    since it was taken, so a sample taken at ``now`` counts at once. The mean starts at the
    first sample when that is younger than the look-back. None without any sample.
    """
    samples = [s for s in state.window if s.at <= now]
    if not samples:
        return None
    start = max(samples[0].at, now - look_back)
    span = now - start
    if span <= 0:
        return samples[-1].ongoing
    total = 0.0
    for i in range(1, len(samples)):
        s = samples[i]
        begin = max(samples[i - 1].at, start)
        if s.at > begin:
            total += s.ongoing * (s.at - begin)
    last = samples[-1]
    total += last.ongoing * (now - max(last.at, start))
    return total / span


def _wanted(policy: ServingPolicy, mean: float) -> int:
    return max(0, math.ceil(round(mean / policy.target_ongoing_requests - REPLICA_SLACK, _RATIO_PLACES)))


def _clamp(policy: ServingPolicy, n: int) -> int:
    return max(policy.min_replicas, min(policy.max_replicas, n))


def _reset(state: ScaleState) -> None:
    state.wanted_up_since = None
    state.wanted_down_since = None


def _secs(value: float) -> str:
    return f"{value:g}s"


def _load_words(policy: ServingPolicy, mean: float) -> str:
    return (
        f"mean {mean:.2f} ongoing requests over the last {_secs(policy.look_back)} "
        f"at a target of {policy.target_ongoing_requests:g} per replica"
    )


def decide(policy: ServingPolicy, state: ScaleState, now: float, current: int) -> tuple[int, Reason]:
    """The replica count the deployment should have now, and why.

    ``current`` is the count it has been asked to have (running or starting). The delay
    timers in ``state`` move; nothing else does. The answer is within
    [``min_replicas``, ``max_replicas``], or 0 when the policy allows going to zero.
    """
    last = state.window[-1] if state.window and state.window[-1].at <= now else None
    mean = mean_load(state, now, policy.look_back)

    # Idle long enough: to zero, from any count.
    if (
        policy.zero_allowed
        and current > 0
        and state.idle_since is not None
        and now - state.idle_since + _EPS >= policy.idle_delay
    ):
        _reset(state)
        idle = now - state.idle_since
        return 0, Reason(
            Code.SCALE_DOWN,
            f"scale to 0: no request for {_secs(idle)} (goes to zero after {_secs(policy.idle_delay)} idle)",
        )

    # At zero, waiting requests wake the deployment at once.
    if current == 0 and last is not None and last.ongoing > 0 and policy.zero_allowed:
        _reset(state)
        want = _clamp(policy, max(1, _wanted(policy, mean or last.ongoing)))
        return want, Reason(
            Code.SCALE_UP,
            f"scale from 0 to {want}: {last.ongoing:g} requests waiting (no delay from zero)",
        )

    if current < policy.min_replicas and not (current == 0 and policy.zero_allowed):
        _reset(state)
        return policy.min_replicas, Reason(
            Code.SCALE_UP, f"scale up to min_replicas {policy.min_replicas} from {current}"
        )
    if current > policy.max_replicas:
        _reset(state)
        return policy.max_replicas, Reason(
            Code.SCALE_DOWN, f"scale down to max_replicas {policy.max_replicas} from {current}"
        )
    if current == 0:
        _reset(state)
        return 0, Reason(Code.SCALE_HOLD, "at 0 replicas: no request waiting")
    if last is None or mean is None:
        return current, Reason(Code.SCALE_HOLD, f"holding at {current}: no load sample yet")
    if last.ready == 0:
        return current, Reason(Code.SCALE_HOLD, f"holding at {current}: no replica is ready yet")

    raw = _wanted(policy, mean)
    want = _clamp(policy, max(1, raw))
    bound = ""
    if raw > want:
        bound = f"; load wants {raw}, capped at max_replicas {policy.max_replicas}"
    elif max(1, raw) < want:
        bound = f"; load wants {max(1, raw)}, kept at min_replicas {policy.min_replicas}"
    words = _load_words(policy, mean) + bound

    if want > current:
        state.wanted_down_since = None
        if state.wanted_up_since is None:
            state.wanted_up_since = now
        waited = now - state.wanted_up_since
        if waited + _EPS >= policy.upscale_delay:
            _reset(state)
            return want, Reason(Code.SCALE_UP, f"scale up from {current} to {want}: {words}")
        return current, Reason(
            Code.SCALE_HOLD,
            f"holding at {current}, wants {want}: {words}; up after {_secs(policy.upscale_delay)} "
            f"(waited {_secs(waited)})",
        )
    if want < current:
        state.wanted_up_since = None
        if state.wanted_down_since is None:
            state.wanted_down_since = now
        waited = now - state.wanted_down_since
        if waited + _EPS >= policy.downscale_delay:
            _reset(state)
            return want, Reason(Code.SCALE_DOWN, f"scale down from {current} to {want}: {words}")
        return current, Reason(
            Code.SCALE_HOLD,
            f"holding at {current}, wants {want}: {words}; down after {_secs(policy.downscale_delay)} "
            f"(waited {_secs(waited)})",
        )
    _reset(state)
    return current, Reason(Code.SCALE_HOLD, f"steady at {current}: {words}")
