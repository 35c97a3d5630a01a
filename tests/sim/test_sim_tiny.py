"""The simulator on tiny traces whose figures are worked out by hand, determinism and preemption."""

from __future__ import annotations

import pytest

from gpupool.engine.model import TaskGroup, Workload, WorkloadSpec, WorkloadState
from gpupool.engine.ports import Finished, Started, Stopped
from gpupool.sim.engine import EventQueue, SimExecutor, kept_work
from gpupool.sim.replay import SimOptions, run_trace
from gpupool.sim.traces import SyntheticOptions, Trace, TraceJob, synthetic


def tiny() -> Trace:
    # Two tenants with one 8-GPU node each.
    return Trace(
        "tiny",
        [
            TraceJob("j1", 0.0, 100.0, 8, "a"),
            TraceJob("j2", 10.0, 500.0, 8, "a"),
            TraceJob("j3", 20.0, 30.0, 4, "b"),
        ],
        {"a": 1, "b": 1},
        gpus_per_node=8,
    )


def test_static_figures_by_hand():
    r = run_trace(tiny(), "static")
    f = r.figures
    # j1 runs 0-100 on a's node; j2 waits for it (b's node is not a's): 100-600; j3 runs 20-50.
    recs = r.recorder.jobs
    assert (recs["j1"].first_start, recs["j1"].end) == (0.0, 100.0)
    assert (recs["j2"].first_start, recs["j2"].end) == (100.0, 600.0)
    assert (recs["j3"].first_start, recs["j3"].end) == (20.0, 50.0)
    assert f["jobs"] == 3
    assert f["wait_s_p50"] == 0.0
    assert f["wait_s_p95"] == pytest.approx(81.0)  # percentile of [0, 0, 90]
    assert f["jct_s_mean"] == pytest.approx((100 + 590 + 30) / 3, abs=1e-3)
    # Window = first to last arrival (0-20): 8 of 16 GPUs busy.
    assert f["gpu_utilization_pct"] == pytest.approx(50.0)
    # a's demand >= 8 from 0 to 600 and it always held 8; b never demanded its 8.
    assert f["per_queue"]["root.a"]["guarantee_attainment_pct"] == pytest.approx(100.0)
    assert f["per_queue"]["root.b"]["guarantee_attainment_pct"] is None
    assert f["guarantee_attainment_pct"] == pytest.approx(100.0)
    assert f["preemptions"] == 0 and f["lost_gpu_hours"] == 0


def test_quota_borrows_then_preempts_and_loses_work_since_checkpoint():
    r = run_trace(tiny(), "quota", SimOptions(checkpoint_interval=0.0))
    recs = r.recorder.jobs
    f = r.figures
    # j2 borrows b's idle node at 10; j3 (b below its guarantee) preempts it after the delay.
    assert recs["j2"].first_start == 10.0
    assert recs["j2"].preemptions == 1 and f["preemptions"] == 1
    j3_start = recs["j3"].first_start
    assert j3_start is not None and 50.0 <= j3_start <= 120.0
    # No checkpoints: everything j2 did before it was preempted is lost and redone.
    lost_s = f["lost_gpu_hours"] * 3600 / 8
    assert lost_s > 0
    restart = recs["j2"].end - 500.0
    assert restart >= 100.0  # it could only come back once j1 was done
    assert f["outcomes"] == {"succeeded": 3}


def test_gpupool_checkpoints_on_preemption_and_loses_nothing():
    r = run_trace(tiny(), "gpupool", SimOptions(checkpoint_interval=600.0))
    assert r.figures["preemptions"] == 1
    assert r.figures["lost_gpu_hours"] == 0.0
    j2 = r.recorder.jobs["j2"]
    # It resumed with the work it had done: it ends 500 s of work after its first start plus
    # the time it spent stopped and waiting.
    assert j2.end is not None and j2.end < 600.0 + 100.0


def test_same_seed_same_result():
    opts = SyntheticOptions(seed=7, days=0.5, tenants=3, nodes_per_tenant=1, rate_per_hour=20)
    a = synthetic(opts)
    b = synthetic(opts)
    assert a.jobs == b.jobs
    assert synthetic(SyntheticOptions(seed=8, days=0.5)).jobs != a.jobs
    fa = run_trace(a, "gpupool").figures
    fb = run_trace(b, "gpupool").figures
    for f in (fa, fb):
        f.pop("seconds")
        f.pop("sim_seconds_per_wall_second")
    assert fa == fb


def _workload(duration: float, interval: float, gpus: int = 2) -> Workload:
    spec = WorkloadSpec(
        "w", (TaskGroup("worker", 1, {"gpu": gpus * 1000}),), duration=duration, checkpoint_interval=interval
    )
    w = Workload("w1", spec, submitted_at=0.0)
    w.attempt = 1
    return w


def _drain(events: EventQueue, ex: SimExecutor, until: float) -> list[tuple[float, object]]:
    out = []
    while (t := events.peek_time()) is not None and t <= until:
        for ev in events.pop_due(t):
            ev.action(t)
        out.extend((t, o) for o in ex.poll(t))
    return out


def test_executor_loses_work_since_last_checkpoint_and_resumes():
    events = EventQueue()
    ex = SimExecutor(events, stop_delay=30.0)
    w = _workload(1000.0, 300.0)
    ex.start(w, 0.0)
    assert _drain(events, ex, 700.0) == [(0.0, Started("w1", 1))]
    ex.preempt(w, grace=60.0, now=700.0)
    ex.preempt(w, grace=60.0, now=700.0)  # idempotent
    stopped = _drain(events, ex, 10_000.0)
    # progress 700, last checkpoint at 600: 100 s x 2 GPUs lost; stops at 700 + min(60, 30).
    assert stopped == [(730.0, Stopped("w1", 1, checkpoint="sim://w1@600s", work_done=600.0))]
    assert ex.stats.lost_gpu_seconds == pytest.approx(200.0)
    w.work_done = 600.0
    w.attempt = 2
    ex.start(w, 800.0)
    assert _drain(events, ex, 10_000.0) == [(800.0, Started("w1", 2)), (1200.0, Finished("w1", 2, True))]


def test_a_resumed_job_restores_its_checkpoint_before_its_work_goes_on():
    events = EventQueue()
    ex = SimExecutor(events, stop_delay=30.0, resume_delay=120.0, checkpoint_on_preempt=True)
    w = _workload(1000.0, 300.0)
    ex.start(w, 0.0)  # a first start has nothing to restore
    _drain(events, ex, 400.0)
    ex.preempt(w, grace=60.0, now=400.0)
    assert _drain(events, ex, 10_000.0) == [
        (430.0, Stopped("w1", 1, checkpoint="sim://w1@400s", work_done=400.0))
    ]
    w.work_done, w.attempt = 400.0, 2
    ex.start(w, 500.0)
    # 120 s restoring, then the 600 s of work left.
    assert _drain(events, ex, 10_000.0) == [(500.0, Started("w1", 2)), (1220.0, Finished("w1", 2, True))]
    # Preempted while restoring: nothing more was done, nothing is lost.
    w.attempt = 3
    ex.start(w, 2000.0)
    _drain(events, ex, 2050.0)
    ex.preempt(w, grace=60.0, now=2050.0)
    assert _drain(events, ex, 10_000.0) == [
        (2080.0, Stopped("w1", 3, checkpoint="sim://w1@400s", work_done=400.0))
    ]


def test_executor_without_checkpoints_loses_everything_and_short_grace_wins():
    events = EventQueue()
    ex = SimExecutor(events, stop_delay=30.0)
    w = _workload(1000.0, 0.0)
    ex.start(w, 0.0)
    _drain(events, ex, 500.0)
    ex.preempt(w, grace=5.0, now=500.0)
    assert _drain(events, ex, 10_000.0) == [(505.0, Stopped("w1", 1, checkpoint=None, work_done=0.0))]
    assert ex.stats.lost_gpu_seconds == pytest.approx(1000.0)


def test_job_finishing_within_its_stop_delay_just_finishes():
    events = EventQueue()
    ex = SimExecutor(events, stop_delay=30.0)
    w = _workload(100.0, 0.0)
    ex.start(w, 0.0)
    _drain(events, ex, 90.0)
    ex.preempt(w, grace=60.0, now=90.0)
    assert _drain(events, ex, 10_000.0) == [(100.0, Finished("w1", 1, True))]
    assert ex.stats.lost_gpu_seconds == 0.0


def test_kept_work():
    assert kept_work(700.0, 300.0) == 600.0
    assert kept_work(600.0, 300.0) == 600.0
    assert kept_work(700.0, 0.0) == 0.0


def test_nodes_join_after_their_boot_delay():
    from gpupool.sim.replay import build

    sim, rec, _ = build(tiny(), "quota", SimOptions(boot_delay=120.0))
    sim.run()
    assert rec.jobs["j1"].first_start == 120.0
    assert all(w.state == WorkloadState.SUCCEEDED for w in sim.driver.workloads.values())


def test_shares_of_one_gpu_run_side_by_side_in_the_simulator():
    # Four 0.25-GPU jobs share tenant a's one GPU; a fifth waits for the first to finish.
    quarter = 0.25  # a share of one GPU (TraceJob holds whole GPUs for the real traces)
    jobs = [TraceJob(f"s{i}", 0.0, 100.0 + i, quarter, "a") for i in range(5)]  # type: ignore[arg-type]
    r = run_trace(Trace("shares", jobs, {"a": 1}, gpus_per_node=1), "gpupool")
    recs = r.recorder.jobs
    assert [recs[f"s{i}"].first_start for i in range(4)] == [0.0] * 4
    assert recs["s4"].first_start == 100.0 and recs["s4"].end == 204.0
    assert r.figures["outcomes"] == {"succeeded": 5} and r.figures["preemptions"] == 0
