"""The autoscaling rule of model deployments (gpupool.core.serving): each rule, each delay,
the clamp, going to zero and waking from it; and a property: the count stays within
[min, max], or is 0 only when the policy allows going to zero."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core.decisions import Code
from gpupool.core.serving import (
    REPLICA_SLACK,
    LoadSample,
    ScaleState,
    ServingPolicy,
    decide,
    mean_load,
    observe,
)


def feed(
    policy: ServingPolicy, state: ScaleState, at: float, ongoing: float, ready: int = 1, queued: float = 0
) -> None:
    observe(policy, state, LoadSample(at=at, in_flight=ongoing, queued=queued, ready=ready))


def steady(
    policy: ServingPolicy, ongoing: float, until: float, every: float = 1.0, ready: int = 1
) -> ScaleState:
    """A state fed ``ongoing`` every ``every`` seconds from 0 to ``until``."""
    state = ScaleState()
    t = 0.0
    while t <= until:
        feed(policy, state, t, ongoing, ready=ready)
        t += every
    return state


def test_desired_is_mean_load_over_target_rounded_up() -> None:
    p = ServingPolicy(min_replicas=1, max_replicas=10, target_ongoing_requests=2, upscale_delay=0)
    state = steady(p, ongoing=7, until=40)
    n, reason = decide(p, state, 40, current=1)
    assert n == 4  # ceil(7 / 2)
    assert reason.code is Code.SCALE_UP
    assert "from 1 to 4" in reason.message and "7.00 ongoing" in reason.message


def test_a_whole_ratio_is_not_rounded_up() -> None:
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=2, upscale_delay=0)
    state = steady(p, ongoing=4, until=40, every=0.1)
    assert decide(p, state, 40, current=1)[0] == 2


def test_load_a_hair_above_a_whole_count_does_not_keep_one_more_replica() -> None:
    # 6.1 ongoing at a target of 2 is 3.05 replicas' worth: three serve it (Serve's bare ceil
    # keeps a fourth for 0.05 of a replica).
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=2, upscale_delay=0, downscale_delay=10)
    state = steady(p, ongoing=6.1, until=40)
    assert decide(p, state, 40, current=4)[0] == 4  # the wish to go down starts
    feed(p, state, 50, 6.1)
    n, reason = decide(p, state, 50, current=4)
    assert (n, reason.code) == (3, Code.SCALE_DOWN)
    assert decide(p, steady(p, ongoing=6.1, until=40), 40, current=3)[0] == 3


def test_load_beyond_the_slack_asks_for_one_more_replica() -> None:
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=2, upscale_delay=0)
    above = 2 * (3 + REPLICA_SLACK) + 0.01
    assert decide(p, steady(p, ongoing=above, until=40), 40, current=3)[0] == 4
    assert decide(p, steady(p, ongoing=0.1, until=40), 40, current=1)[0] == 1  # never below 1


def test_mean_weighs_each_sample_by_how_long_it_held_within_the_look_back() -> None:
    p = ServingPolicy(look_back=30)
    state = ScaleState()
    feed(p, state, 0, 100)  # stands for the time before 0: outside [10, 40]
    feed(p, state, 10, 0)  # stands for (0, 10]: outside too
    feed(p, state, 30, 2)  # (10, 30]
    assert mean_load(state, 40, 30) == pytest.approx((2 * 20 + 2 * 10) / 30)  # and (30, 40]
    feed(p, state, 40, 5)
    assert mean_load(state, 40, 30) == pytest.approx((2 * 20 + 5 * 10) / 30)
    assert mean_load(state, 40, 5) == pytest.approx(5)
    assert mean_load(ScaleState(), 40, 30) is None


def test_old_samples_leave_the_window_but_the_one_holding_at_its_start_stays() -> None:
    p = ServingPolicy(look_back=10)
    state = ScaleState()
    for t in range(0, 31, 5):
        feed(p, state, t, t)
    assert [s.at for s in state.window] == [20, 25, 30]
    feed(p, state, 29, 1)  # out of order: ignored
    assert state.window[-1].at == 30


def test_up_only_after_the_wish_lasted_upscale_delay() -> None:
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=1, upscale_delay=30, look_back=5)
    state = ScaleState()
    for t in range(0, 30):
        feed(p, state, t, 5)
        n, reason = decide(p, state, t, current=1)
        assert n == 1, t
        assert reason.code is Code.SCALE_HOLD
    assert "up after 30s" in reason.message and "wants 5" in reason.message


def test_upscale_fires_at_the_delay() -> None:
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=1, upscale_delay=30, look_back=5)
    state = ScaleState()
    for t in range(0, 30):
        feed(p, state, t, 5)
        assert decide(p, state, t, current=1)[0] == 1
    feed(p, state, 30, 5)
    n, reason = decide(p, state, 30, current=1)
    assert (n, reason.code) == (5, Code.SCALE_UP)
    assert state.wanted_up_since is None


def test_a_dip_restarts_the_upscale_timer() -> None:
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=1, upscale_delay=10, look_back=1)
    state = ScaleState()
    for t in range(0, 8):
        feed(p, state, t, 4)
        decide(p, state, t, current=2)
    feed(p, state, 8, 2)  # exactly the current count: the wish goes away
    assert decide(p, state, 8, current=2)[1].message.startswith("steady at 2")
    for t in range(9, 18):
        feed(p, state, t, 4)
        assert decide(p, state, t, current=2)[0] == 2, t
    feed(p, state, 19, 4)
    assert decide(p, state, 19, current=2)[0] == 4


def test_down_only_after_downscale_delay() -> None:
    p = ServingPolicy(
        min_replicas=1, max_replicas=10, target_ongoing_requests=1, downscale_delay=600, look_back=5
    )
    state = ScaleState()
    for t in range(0, 600, 10):
        feed(p, state, t, 2)
        n, reason = decide(p, state, t, current=6)
        assert n == 6
    assert reason.code is Code.SCALE_HOLD and "down after 600s" in reason.message
    feed(p, state, 600, 2)
    n, reason = decide(p, state, 600, current=6)
    assert (n, reason.code) == (2, Code.SCALE_DOWN)
    assert "from 6 to 2" in reason.message


def test_a_rise_cancels_the_downscale_timer() -> None:
    p = ServingPolicy(
        max_replicas=10, target_ongoing_requests=1, upscale_delay=100, downscale_delay=20, look_back=1
    )
    state = ScaleState()
    feed(p, state, 0, 1)
    decide(p, state, 0, current=3)
    assert state.wanted_down_since == 0
    feed(p, state, 10, 5)
    decide(p, state, 10, current=3)
    assert state.wanted_down_since is None and state.wanted_up_since == 10
    feed(p, state, 15, 1)
    decide(p, state, 15, current=3)
    feed(p, state, 25, 1)
    assert decide(p, state, 25, current=3)[0] == 3  # the fall's wish began at 15, not 0
    feed(p, state, 35, 1)
    assert decide(p, state, 35, current=3)[0] == 1


def test_no_load_goes_down_to_min_not_to_zero() -> None:
    p = ServingPolicy(min_replicas=2, max_replicas=5, downscale_delay=0)
    state = steady(p, ongoing=0, until=100)
    n, reason = decide(p, state, 100, current=5)
    assert n == 2
    assert "kept at min_replicas 2" in reason.message


def test_clamped_at_max_and_says_so() -> None:
    p = ServingPolicy(min_replicas=1, max_replicas=3, target_ongoing_requests=1, upscale_delay=0)
    state = steady(p, ongoing=50, until=40)
    n, reason = decide(p, state, 40, current=1)
    assert n == 3
    assert "load wants 50, capped at max_replicas 3" in reason.message
    assert decide(p, state, 41, current=3)[1].code is Code.SCALE_HOLD


def test_outside_the_bounds_goes_back_at_once() -> None:
    p = ServingPolicy(min_replicas=2, max_replicas=4, upscale_delay=1000, downscale_delay=1000)
    state = steady(p, ongoing=4, until=10)
    assert decide(p, state, 10, current=1)[0] == 2
    n, reason = decide(p, state, 10, current=7)
    assert (n, reason.code) == (4, Code.SCALE_DOWN)
    assert "max_replicas 4" in reason.message


def test_holds_while_no_replica_is_ready() -> None:
    p = ServingPolicy(max_replicas=10, target_ongoing_requests=1, upscale_delay=0)
    state = steady(p, ongoing=8, until=10, ready=0)
    n, reason = decide(p, state, 10, current=2)
    assert (n, reason.code) == (2, Code.SCALE_HOLD)
    assert "no replica is ready" in reason.message
    assert decide(p, ScaleState(), 10, current=2)[1].message == "holding at 2: no load sample yet"


def test_scale_to_zero_after_idle_from_any_count() -> None:
    p = ServingPolicy(min_replicas=1, max_replicas=4, scale_to_zero_after=60, downscale_delay=600)
    state = ScaleState()
    feed(p, state, 0, 3)
    feed(p, state, 10, 0)
    assert decide(p, state, 69, current=3)[0] == 3
    n, reason = decide(p, state, 70, current=3)
    assert (n, reason.code) == (0, Code.SCALE_DOWN)
    assert "no request for 60s" in reason.message
    n, reason = decide(p, state, 80, current=0)
    assert (n, reason.code) == (0, Code.SCALE_HOLD)


def test_any_request_restarts_the_idle_clock() -> None:
    p = ServingPolicy(scale_to_zero_after=60)
    state = ScaleState()
    feed(p, state, 0, 0)
    feed(p, state, 50, 1)
    feed(p, state, 51, 0)
    assert state.idle_since == 51
    assert decide(p, state, 110, current=1)[0] == 1
    assert decide(p, state, 111, current=1)[0] == 0


def test_without_scale_to_zero_it_never_goes_to_zero() -> None:
    p = ServingPolicy(min_replicas=1, max_replicas=3, downscale_delay=0)
    state = steady(p, ongoing=0, until=10_000, every=100)
    assert decide(p, state, 10_000, current=1)[0] == 1


def test_min_zero_goes_to_zero_after_downscale_delay() -> None:
    p = ServingPolicy(min_replicas=0, max_replicas=3, downscale_delay=100)
    state = steady(p, ongoing=0, until=99)
    assert decide(p, state, 99, current=1)[0] == 1
    assert decide(p, state, 100, current=1)[0] == 0


def test_waiting_requests_wake_from_zero_at_once() -> None:
    p = ServingPolicy(
        min_replicas=2, max_replicas=8, target_ongoing_requests=2, upscale_delay=300, scale_to_zero_after=60
    )
    state = ScaleState()
    feed(p, state, 0, 0, ready=0)
    assert decide(p, state, 0, current=0)[0] == 0
    feed(p, state, 100, 0, ready=0, queued=1)
    n, reason = decide(p, state, 100, current=0)
    assert (n, reason.code) == (2, Code.SCALE_UP)  # at least min_replicas
    assert "from 0 to 2" in reason.message and "1 requests waiting" in reason.message


def test_waking_asks_for_the_load_it_sees() -> None:
    p = ServingPolicy(min_replicas=0, max_replicas=8, target_ongoing_requests=1, look_back=10)
    state = ScaleState()
    feed(p, state, 0, 0, ready=0, queued=6)
    assert decide(p, state, 0, current=0)[0] == 6


def test_below_min_at_zero_without_zero_allowed_goes_to_min() -> None:
    p = ServingPolicy(min_replicas=2, max_replicas=3)
    n, reason = decide(p, ScaleState(), 0, current=0)
    assert (n, reason.code) == (2, Code.SCALE_UP)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"min_replicas": -1}, "min_replicas must be 0 or more"),
        ({"max_replicas": 0}, "max_replicas must be 1 or more"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas (3) is above max_replicas (2)"),
        ({"target_ongoing_requests": 0}, "target_ongoing_requests must be above 0"),
        ({"upscale_delay": -1}, "upscale_delay must be 0 seconds or more"),
        ({"downscale_delay": float("nan")}, "downscale_delay must be 0 seconds or more"),
        ({"look_back": 0}, "look_back must be above 0"),
        ({"scale_to_zero_after": -5}, "scale_to_zero_after must be 0 seconds or more"),
    ],
)
def test_a_bad_policy_names_its_field(kwargs: dict[str, float], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ServingPolicy(**kwargs)  # type: ignore[arg-type]


policies = st.builds(
    ServingPolicy,
    min_replicas=st.integers(0, 4),
    max_replicas=st.integers(4, 8),
    target_ongoing_requests=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
    upscale_delay=st.sampled_from([0.0, 3.0, 30.0]),
    downscale_delay=st.sampled_from([0.0, 5.0, 600.0]),
    look_back=st.sampled_from([1.0, 10.0, 30.0]),
    scale_to_zero_after=st.sampled_from([None, 0.0, 20.0]),
)
steps = st.lists(
    st.tuples(st.integers(0, 10), st.integers(0, 40), st.integers(0, 10), st.integers(0, 8)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(policies, steps, st.integers(0, 12))
def test_the_count_stays_in_bounds_or_zero_only_when_allowed(
    p: ServingPolicy, trace: list[tuple[int, int, int, int]], start: int
) -> None:
    state = ScaleState()
    now = 0.0
    current = start
    for gap, in_flight, queued, ready in trace:
        now += gap
        observe(p, state, LoadSample(now, in_flight, queued, min(ready, current)))
        current, reason = decide(p, state, now, current)
        assert reason.message
        if current == 0:
            assert p.zero_allowed, reason
        else:
            assert p.min_replicas <= current <= p.max_replicas, reason
        if p.zero_allowed and current == 0 and in_flight + queued > 0:
            pytest.fail(f"requests waiting at 0 replicas stay unanswered: {reason}")
