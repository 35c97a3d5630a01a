"""``gpupool bench serve``'s figures and schedule: GPU-seconds, scale-up time, percentiles, the
replicas the peak needs, the arrivals of each phase, the bounds of the options; and the demo
model's simulated work time (``GPUPOOL_DEMO_WORK_MS``)."""

from __future__ import annotations

import pytest

from gpupool.bench.api import BenchError
from gpupool.bench.serve import LoadResult, Record, ServeLoad, figures, gpu_seconds, per_second, scale_up_s


def test_gpu_seconds_integrates_replicas_as_a_step_function() -> None:
    samples = [(0.0, 1), (10.0, 3), (20.0, 1)]
    assert gpu_seconds(samples, 1.0, end=30.0) == pytest.approx(10 + 30 + 10)
    assert gpu_seconds(samples, 0.5, end=30.0) == pytest.approx(25)
    assert gpu_seconds(samples, 2.0, end=15.0) == pytest.approx(2 * (10 + 15))
    # The first sample stands for the time before it; nothing is counted without a sample.
    assert gpu_seconds([(2.0, 2)], 1.0, end=10.0) == pytest.approx(20)
    assert gpu_seconds([], 1.0, end=10.0) == 0.0
    # Unordered samples are taken in time order.
    assert gpu_seconds([(10.0, 3), (0.0, 1)], 1.0, end=20.0) == pytest.approx(10 + 30)


def test_scale_up_is_timed_from_the_peaks_start_to_enough_replicas() -> None:
    samples = [(0.0, 1), (20.0, 1), (25.5, 2), (31.0, 3), (40.0, 4)]
    assert scale_up_s(samples, peak_start=20.0, needed=3) == 11.0
    assert scale_up_s(samples, peak_start=20.0, needed=2) == 5.5
    assert scale_up_s(samples, peak_start=20.0, needed=5) is None
    assert scale_up_s([(0.0, 3), (21.0, 3)], peak_start=20.0, needed=3) == 0.0  # had them already
    assert scale_up_s([(0.0, 4), (19.0, 1), (22.0, 3)], peak_start=20.0, needed=3) == 2.0


def test_the_replicas_the_peak_needs_follow_littles_law_within_min_and_max() -> None:
    assert ServeLoad().needed_replicas == 3  # 6 requests/s x 1 s / 2 per replica
    assert ServeLoad(peak_rate=30.0, work_ms=200.0).needed_replicas == 3
    assert ServeLoad(peak_rate=7.0).needed_replicas == 4  # ceil(3.5)
    assert ServeLoad(peak_rate=100.0).needed_replicas == 4  # the max
    assert ServeLoad(peak_rate=1.0, min_replicas=2).needed_replicas == 2  # the min
    assert ServeLoad(peak_rate=4.0, target_ongoing_requests=1.0).needed_replicas == 4


def test_figures_of_a_run() -> None:
    load = ServeLoad(low_seconds=10, peak_seconds=10, tail_seconds=10)
    records = [Record(float(i), (i + 1) / 100, 200) for i in range(30)]  # 10 ms .. 300 ms
    records[5] = Record(5.0, 9.0, 503, "busy")
    records[6] = Record(6.0, 30.0, 0, "HttpError: no answer within 30 s")
    result = LoadResult(records=records, samples=[(0.0, 1), (10.0, 3), (20.0, 1)], elapsed=30.0)
    out = figures(result, load)
    assert out["requests"] == 30 and out["errors"] == 2
    assert out["errors_by_kind"] == {"503": 1, "HttpError": 1} and out["first_error"] == "503 busy"
    # Percentiles of the 28 answered requests (nearest rank): the errors' latencies are left out.
    ok = sorted((i + 1) * 10.0 for i in range(30) if i not in (5, 6))
    assert out["p50_ms"] == ok[13] and out["p99_ms"] == ok[27] == out["max_ms"]
    assert out["gpu_seconds"] == 50.0 and out["peak_replicas"] == 3
    assert out["scale_up_s"] == 0.0 and out["needed_replicas"] == 3
    assert set(out["phases"]) == {"1-low", "2-peak", "3-low"}
    assert out["phases"]["2-peak"]["p99_ms"] == 200.0
    assert out["sent_per_s"] == [1] * 30 and out["timeline"] == [[0.0, 1], [10.0, 3], [20.0, 1]]


def test_per_second_counts_by_whole_seconds() -> None:
    assert per_second([0.1, 0.9, 1.0, 2.5, 7.0], end=3.0) == [2, 1, 1]
    assert per_second([], end=0.0) == [0]


def test_uniform_arrivals_follow_each_phases_rate() -> None:
    load = ServeLoad(
        low_rate=2, peak_rate=5, low_seconds=3, peak_seconds=2, tail_seconds=1, arrivals="uniform"
    )
    due = load.schedule()
    assert len(due) == 6 + 10 + 2 == load.expected_requests
    assert sum(1 for t in due if 3 <= t < 5) == 10 and due[6] == 3.0 and due[-1] == 5.5


def test_poisson_arrivals_are_seeded_and_stay_in_their_phases() -> None:
    load = ServeLoad(low_seconds=20, peak_seconds=60, tail_seconds=40)
    due = load.schedule()
    assert due == load.schedule() and due != ServeLoad(seed=2).schedule()
    assert due == sorted(due) and due[0] > 0 and due[-1] < load.seconds
    peak = [t for t in due if 20 <= t < 80]
    low = [t for t in due if t < 20 or t >= 80]
    assert len(peak) > 3 * len(low)  # 360 expected at the peak, 60 in the low phases


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"peak_rate": 0}, "--peak-rate"),
        ({"low_rate": 501}, "--low-rate"),
        ({"peak_seconds": 0}, "--peak-seconds"),
        ({"tail_seconds": -1}, "--tail-seconds"),
        ({"peak_seconds": 1801}, "at most 1800"),
        ({"peak_rate": 500, "peak_seconds": 500}, "requests"),
        ({"arrivals": "bursty"}, "--arrivals"),
        ({"work_ms": -1}, "--work-ms"),
        ({"gpus": 0}, "--gpus"),
        ({"min_replicas": 0}, "--min-replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "--max-replicas"),
        ({"target_ongoing_requests": 0}, "--target-ongoing-requests"),
        ({"max_ongoing_requests": 0}, "--max-ongoing-requests"),
        ({"upscale_delay": -1}, "--upscale-delay"),
        ({"look_back": 0}, "--look-back"),
        ({"max_in_flight": 0}, "--max-in-flight"),
        ({"timeout": 0}, "--timeout"),
    ],
)
def test_options_out_of_bounds_are_named(change: dict[str, object], names: str) -> None:
    with pytest.raises(BenchError, match=names):
        ServeLoad(**change).check()  # type: ignore[arg-type]


def test_the_demo_models_work_time_comes_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpupool.serving_demo import WORK_ENV, work_seconds

    monkeypatch.delenv(WORK_ENV, raising=False)
    assert work_seconds() == 0.0
    monkeypatch.setenv(WORK_ENV, "250")
    assert work_seconds() == 0.25
    for bad in ("soon", "-1", "1e9"):
        monkeypatch.setenv(WORK_ENV, bad)
        with pytest.raises(ValueError, match=WORK_ENV):
            work_seconds()
