"""Notebook sessions in the core: a request resolved against its queue, and the idle clock's decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core.config import ChildTemplate, QueueConfig, SessionLimits
from gpupool.core.configerror import format_duration, parse_duration
from gpupool.core.queues import build_tree
from gpupool.core.sessions import (
    Activity,
    Decision,
    IdleClock,
    Keep,
    Reclaim,
    SessionPolicy,
    SessionRefusal,
    Warn,
    Withdraw,
    reclaimed_gpu_hours,
    resolve_session,
    session_limits,
)

LIMITS = SessionLimits()  # idle 30m (max 4h), lifetime 8h (max 24h), warning 5m, GPU idle below 5 %
POLICY = SessionPolicy(idle_timeout=1800.0, lifetime=28800.0, warning=300.0, gpu_threshold=5.0)


# ---- a queue's limits, and resolving a request -----------------------------------------------


def test_the_limits_of_a_queue_the_rules_will_create_come_from_its_parents_template() -> None:
    users = QueueConfig(
        name="users",
        parent=True,
        properties={"session.idle.timeout": "15m"},
        child_template=ChildTemplate(properties={"session.lifetime": "2h"}),
    )
    team = QueueConfig(name="team", properties={"session.idle.timeout.max": "1h"})
    root = QueueConfig(name="root", parent=True, properties={"session.warning": "2m"}, queues=(users, team))
    queues = build_tree(root)
    assert session_limits(queues, "root.team") == SessionLimits(idle_timeout_max=3600.0, warning=120.0)
    made = SessionLimits(idle_timeout=900.0, lifetime=7200.0, warning=120.0)
    assert session_limits(queues, "root.users.ada") == made  # not created yet
    assert session_limits(queues, "root.users.ada.nested") == made
    assert session_limits(queues, "root.newteam") == SessionLimits(warning=120.0)  # no template above
    assert session_limits(queues, "elsewhere.a") == SessionLimits()


def test_no_request_takes_the_queues_defaults() -> None:
    assert resolve_session(LIMITS, "root.a") == POLICY


@pytest.mark.parametrize(("idle", "life"), [("45m", "12h"), (2700, 43200.0), ("4h", "24h")])
def test_a_request_within_the_maxima_is_taken_as_asked(idle: float | str, life: float | str) -> None:
    policy = resolve_session(LIMITS, "root.a", idle_timeout=idle, lifetime=life)
    assert isinstance(policy, SessionPolicy)
    assert (policy.idle_timeout, policy.lifetime) == (
        {"45m": 2700.0, "4h": 14400.0}.get(str(idle), 2700.0),
        {"12h": 43200.0, "24h": 86400.0}.get(str(life), 43200.0),
    )
    assert (policy.warning, policy.gpu_threshold) == (300.0, 5.0)


def test_an_idle_timeout_above_the_queues_maximum_is_refused_with_what_to_do() -> None:
    refusal = resolve_session(LIMITS, "root.a", idle_timeout="6h")
    assert refusal == SessionRefusal(
        "idle_timeout",
        "idle_timeout 6h is more than queue root.a allows (session.idle.timeout.max 4h)",
        "ask for at most 4h, leave it out for the queue's default 30m, "
        "or use a queue with a higher session.idle.timeout.max",
    )
    assert str(refusal).startswith("refused: idle_timeout 6h is more than queue root.a allows")
    assert len(str(refusal).splitlines()) == 1


def test_a_lifetime_above_the_maximum_is_refused() -> None:
    refusal = resolve_session(LIMITS, "root.a", lifetime=86401)
    assert isinstance(refusal, SessionRefusal)
    assert refusal.field == "max_lifetime"
    assert refusal.message == "max_lifetime 24h1s is more than queue root.a allows (session.lifetime.max 24h)"


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        ({"idle_timeout": "half an hour"}, "idle_timeout", "idle_timeout 'half an hour' is not a duration"),
        ({"idle_timeout": "90"}, "idle_timeout", "idle_timeout '90' is not a duration"),
        ({"lifetime": True}, "max_lifetime", "max_lifetime True is not a duration"),
        ({"lifetime": float("nan")}, "max_lifetime", "max_lifetime nan is not a duration"),
        (
            {"idle_timeout": "5m"},
            "idle_timeout",
            "idle_timeout 5m is not longer than queue root.a's warning lead (session.warning 5m)",
        ),
        (
            {"idle_timeout": "1h", "lifetime": -60},
            "max_lifetime",
            "max_lifetime -1m is not longer than queue root.a's warning lead (session.warning 5m)",
        ),
    ],
)
def test_bad_requests_are_refused(request_: dict[str, object], field: str, message: str) -> None:
    refusal = resolve_session(LIMITS, "root.a", **request_)  # type: ignore[arg-type]
    assert isinstance(refusal, SessionRefusal)
    assert (refusal.field, refusal.message) == (field, message)


def test_a_policy_whose_warning_is_not_shorter_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="warning lead"):
        SessionPolicy(idle_timeout=300.0, lifetime=3600.0, warning=300.0, gpu_threshold=5.0)


# ---- the idle clock --------------------------------------------------------------------------


def run(clock: IdleClock, observations: list[Activity]) -> list[tuple[float, Decision]]:
    out = []
    for obs in observations:
        clock, decision = clock.step(obs)
        out.append((obs.at, decision))
        if isinstance(decision, Reclaim):
            break
    return out


def idle_every_minute(start: float, end: float, last: float | None = None) -> list[Activity]:
    return [Activity(at=float(t), last_activity=last) for t in range(int(start), int(end) + 1, 60)]


def test_an_idle_session_is_warned_then_reclaimed_at_the_timeout() -> None:
    clock = IdleClock.start(POLICY, 0.0)
    decisions = [
        (t, d) for t, d in run(clock, idle_every_minute(60, 1860, last=0.0)) if not isinstance(d, Keep)
    ]
    assert decisions == [
        (
            1500.0,
            Warn(
                "idle",
                1800.0,
                "idle for 25m (no kernel busy, no client activity; idle timeout 30m): its GPUs are reclaimed "
                "in 5m unless it is used (its files are kept; `resume` starts it again)",
            ),
        ),
        (
            1800.0,
            Reclaim("idle", 1800.0, "idle for 30m: no kernel busy, no client activity; idle timeout 30m"),
        ),
    ]


def test_keep_says_when_the_reclaim_would_come() -> None:
    clock, decision = IdleClock.start(POLICY, 0.0).step(Activity(at=600.0, last_activity=420.0))
    assert decision == Keep(idle_since=420.0, reclaim_at=2220.0)
    assert clock.idle_since == 420.0


@pytest.mark.parametrize(
    "busy",
    [
        Activity(at=1620.0, kernel_busy=True),
        Activity(at=1620.0, last_activity=1610.0),
        Activity(at=1620.0, gpu_utilisation=5.0),
    ],
    ids=["kernel busy", "client activity", "GPU at the threshold"],
)
def test_activity_after_a_warning_withdraws_it_and_restarts_the_idle_clock(busy: Activity) -> None:
    clock, warn = IdleClock.start(POLICY, 0.0).step(Activity(at=1500.0, last_activity=0.0))
    assert isinstance(warn, Warn)
    clock, decision = clock.step(busy)
    assert isinstance(decision, Withdraw)
    assert clock.idle_reclaim_at is None
    expected_since = busy.last_activity if busy.last_activity is not None else busy.at
    assert clock.idle_since == expected_since
    clock, decision = clock.step(Activity(at=1800.0, last_activity=0.0))
    assert decision == Keep(idle_since=expected_since, reclaim_at=expected_since + 1800.0)


def test_a_gpu_below_the_threshold_is_idle_and_an_unreadable_gpu_does_not_count() -> None:
    clock = IdleClock.start(POLICY, 0.0)
    quiet = [Activity(at=float(t), last_activity=0.0, gpu_utilisation=4.0) for t in range(60, 1861, 60)]
    decisions = [d for _, d in run(clock, quiet)]
    reclaim = decisions[-1]
    assert isinstance(reclaim, Reclaim)
    assert reclaim.message == (
        "idle for 30m: no kernel busy, no client activity, GPU utilisation under 5%; idle timeout 30m"
    )
    unread = [Activity(at=float(t), last_activity=0.0, gpu_utilisation=None) for t in range(60, 1861, 60)]
    assert isinstance(run(clock, unread)[-1][1], Reclaim)


def test_a_busy_gpu_keeps_the_session_even_without_kernel_or_client_activity() -> None:
    clock = IdleClock.start(POLICY, 0.0)
    busy = [Activity(at=float(t), last_activity=0.0, gpu_utilisation=80.0) for t in range(60, 7201, 60)]
    assert all(isinstance(d, Keep) for _, d in run(clock, busy))


def test_a_late_warning_moves_the_reclaim_so_the_lead_holds() -> None:
    """The first tick in an hour (the control plane was down): warn now, reclaim 5m later."""
    clock, decision = IdleClock.start(POLICY, 0.0).step(Activity(at=3600.0, last_activity=0.0))
    assert isinstance(decision, Warn)
    assert decision.reclaim_at == 3900.0
    clock, decision = clock.step(Activity(at=3899.0, last_activity=0.0))
    assert isinstance(decision, Keep)
    clock, decision = clock.step(Activity(at=3900.0, last_activity=0.0))
    assert decision == Reclaim(
        "idle", 3900.0, "idle for 1h5m: no kernel busy, no client activity; idle timeout 30m"
    )


def test_late_news_of_earlier_activity_withdraws_a_warning_that_would_now_come_too_early() -> None:
    clock, _ = IdleClock.start(POLICY, 0.0).step(Activity(at=1500.0, last_activity=0.0))
    clock, decision = clock.step(Activity(at=1560.0, last_activity=1200.0))  # before the warning
    assert isinstance(decision, Withdraw)
    clock, decision = clock.step(Activity(at=2700.0, last_activity=1200.0))
    assert decision == Warn(
        "idle",
        3000.0,
        "idle for 25m (no kernel busy, no client activity; idle timeout 30m): its GPUs are reclaimed in 5m "
        "unless it is used (its files are kept; `resume` starts it again)",
    )


def test_a_server_clock_ahead_of_ours_counts_as_now() -> None:
    _, decision = IdleClock.start(POLICY, 0.0).step(Activity(at=100.0, last_activity=500.0))
    assert decision == Keep(idle_since=100.0, reclaim_at=1900.0)


def test_the_lifetime_ends_a_busy_session_after_a_warning() -> None:
    clock = IdleClock.start(POLICY, 1000.0)
    busy = [Activity(at=float(t), kernel_busy=True) for t in range(1000, 1000 + 28800 + 1, 60)]
    decisions = [(t, d) for t, d in run(clock, busy) if not isinstance(d, Keep)]
    assert decisions == [
        (
            29500.0,
            Warn(
                "lifetime",
                29800.0,
                "max lifetime 8h ends in 5m: the session stops then "
                "(its files are kept; `resume` starts it again)",
            ),
        ),
        (29800.0, Reclaim("lifetime", 0.0, "max lifetime 8h reached (started 8h ago)")),
    ]


def test_no_idle_warning_for_a_reclaim_the_lifetime_would_beat() -> None:
    policy = SessionPolicy(idle_timeout=1800.0, lifetime=3600.0, warning=300.0, gpu_threshold=5.0)
    clock = IdleClock.start(policy, 0.0)
    obs = [Activity(at=float(t), kernel_busy=t < 2400) for t in range(0, 3601, 60)]
    decisions = [(t, type(d).__name__, d.why) for t, d in run(clock, obs) if isinstance(d, Warn | Reclaim)]
    assert decisions == [(3300.0, "Warn", "lifetime"), (3600.0, "Reclaim", "lifetime")]


def test_two_warnings_due_in_one_tick_come_one_tick_after_the_other() -> None:
    policy = SessionPolicy(idle_timeout=1800.0, lifetime=7200.0, warning=300.0, gpu_threshold=5.0)
    clock, first = IdleClock.start(policy, 0.0).step(Activity(at=6900.0, last_activity=5100.0))
    assert isinstance(first, Warn) and first.why == "lifetime"
    # The idle reclaim (at 6900 + 5m = 7200) would not come before the lifetime's: no second warning.
    clock, second = clock.step(Activity(at=6960.0, last_activity=5100.0))
    assert second == Keep(idle_since=5100.0, reclaim_at=7200.0)


def test_reclaimed_gpu_hours_count_until_resume_at_most_until_the_lifetime_end() -> None:
    assert reclaimed_gpu_hours(2, reclaimed_at=3600.0, until=3600.0 + 5400.0, ends_at=28800.0) == 3.0
    assert reclaimed_gpu_hours(2, reclaimed_at=3600.0, until=10**9, ends_at=7200.0) == 2.0
    assert reclaimed_gpu_hours(2, reclaimed_at=3600.0, until=1000.0, ends_at=7200.0) == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (59.6, "1m"), (300, "5m"), (5400, "1h30m"), (86401, "24h1s"), (-60, "-1m")],
)
def test_durations_are_written_as_go_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=-(10**7), max_value=10**7))
def test_a_written_duration_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# ---- properties ------------------------------------------------------------------------------

observation = st.tuples(
    st.floats(min_value=0.0, max_value=900.0),  # seconds since the previous observation
    st.booleans(),  # a kernel busy
    st.one_of(st.none(), st.floats(min_value=-3600.0, max_value=600.0)),  # last activity, vs now
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=100.0)),  # GPU utilisation
)
policies = st.builds(
    lambda warning, idle, life: SessionPolicy(
        idle_timeout=warning + idle, lifetime=warning + life, warning=warning, gpu_threshold=5.0
    ),
    st.floats(min_value=1.0, max_value=600.0),
    st.floats(min_value=1.0, max_value=3600.0),
    st.floats(min_value=1.0, max_value=4 * 3600.0),
)


def _replay(policy: SessionPolicy, steps: list[tuple[float, bool, float | None, float | None]]) -> list:
    """Feed the observations; returns (observation, decision, latest activity so far) per tick."""
    clock = IdleClock.start(policy, 0.0)
    now, latest, out = 0.0, 0.0, []
    for gap, busy, offset, gpu in steps:
        now += gap
        last = None if offset is None else now + offset
        obs = Activity(at=now, kernel_busy=busy, last_activity=last, gpu_utilisation=gpu)
        if busy or (gpu is not None and gpu >= policy.gpu_threshold):
            latest = now
        elif last is not None:
            latest = max(latest, min(last, now))
        clock, decision = clock.step(obs)
        out.append((obs, decision, latest))
        if isinstance(decision, Reclaim):
            break
    return out


@settings(max_examples=300, deadline=None)
@given(policies, st.lists(observation, max_size=60))
def test_never_reclaimed_for_idleness_before_the_timeout_since_its_last_activity(
    policy: SessionPolicy, steps: list
) -> None:
    for obs, decision, latest in _replay(policy, steps):
        if isinstance(decision, Reclaim) and decision.why == "idle":
            assert obs.at >= latest + policy.idle_timeout
            assert decision.idle_for == obs.at - latest


@settings(max_examples=300, deadline=None)
@given(policies, st.lists(observation, max_size=60))
def test_every_reclaim_follows_its_warning_by_at_least_the_lead(policy: SessionPolicy, steps: list) -> None:
    warned: dict[str, float] = {}
    for obs, decision, _latest in _replay(policy, steps):
        if isinstance(decision, Warn):
            assert decision.why not in warned  # warned once (until withdrawn)
            assert decision.reclaim_at >= obs.at + policy.warning
            warned[decision.why] = obs.at
        elif isinstance(decision, Withdraw):
            assert warned.pop("idle", None) is not None
        elif isinstance(decision, Reclaim):
            assert decision.why in warned
            assert obs.at >= warned[decision.why] + policy.warning
            if decision.why == "lifetime":
                assert obs.at >= policy.lifetime  # started at 0
