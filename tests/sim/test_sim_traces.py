"""Trace loaders on small CSV slices: formats, windows, bad rows (error naming file and line, or skip)."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from gpupool.sim.traces import (
    SyntheticOptions,
    TraceError,
    job_mix_of,
    load_philly,
    parse_size_mix,
    synthetic,
)

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
VCS = "vc,node num\nvca,2\nvcb,1\n"


def write(tmp_path, jobs: str, vcs: str = VCS):
    j = tmp_path / "philly.csv"
    v = tmp_path / "vc.csv"
    j.write_text(HEADER + jobs)
    v.write_text(vcs)
    return j, v


def test_loads_jobs_sorted_with_epoch_and_tenants(tmp_path):
    j, v = write(
        tmp_path,
        "2017-10-09 07:01:55,66.0,1,66.0,vca\n"
        "2017-10-09 06:13:03,2951.0,2,5902.0,vcb\n"
        "2017-10-09 06:13:03,10.0,16,160.0,vca\n",
    )
    tr = load_philly(j, v)
    assert tr.tenants == {"vca": 2, "vcb": 1} and tr.gpus_per_node == 8
    assert tr.epoch == "2017-10-09 06:13:03"
    assert [(x.id, x.arrival, x.gpus, x.tenant) for x in tr.jobs] == [
        ("philly-000003", 0.0, 2, "vcb"),
        ("philly-000004", 0.0, 16, "vca"),
        ("philly-000002", 2932.0, 1, "vca"),
    ]
    assert tr.jobs[0].duration == 2951.0


def test_window_and_unknown_tenants_and_too_big(tmp_path):
    j, v = write(
        tmp_path,
        "2017-10-01 00:00:00,60,1,60,vca\n"
        "2017-10-02 12:00:00,60,1,60,vca\n"
        "2017-10-03 00:00:00,60,1,60,vca\n"
        "2017-10-02 13:00:00,60,1,60,nope\n"
        "2017-10-02 14:00:00,60,64,3840,vca\n",
    )
    tr = load_philly(j, v, start=datetime(2017, 10, 2), days=1)
    assert [x.arrival for x in tr.jobs] == [12 * 3600.0]
    assert tr.unknown_tenant_jobs == 1
    assert tr.too_big_jobs == 1  # 64 GPUs > 3 nodes x 8


@pytest.mark.parametrize(
    ("row", "what"),
    [
        ("2017-13-45 00:00:00,60,1,60,vca", "not a timestamp"),
        ("2017-10-01 00:00:00,abc,1,60,vca", "duration 'abc' is not a number"),
        ("2017-10-01 00:00:00,-5,1,60,vca", "duration must be positive"),
        ("2017-10-01 00:00:00,60,1.5,60,vca", "num_gpus '1.5' is not a whole number"),
        ("2017-10-01 00:00:00,60,0,60,vca", "num_gpus must be a positive"),
        ("2017-10-01 00:00:00,60,1,60", "expected 5 fields, found 4"),
        ("2017-10-01 00:00:00,60,1,60,", "empty cluster"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, row, what):
    j, v = write(tmp_path, "2017-10-01 00:00:00,60,1,60,vca\n" + row + "\n")
    with pytest.raises(TraceError) as exc:
        load_philly(j, v)
    assert f"{j}:3:" in str(exc.value) and what in str(exc.value)
    assert exc.value.line == 3 and exc.value.hint


def test_bad_rows_skipped_and_counted(tmp_path):
    j, v = write(tmp_path, "2017-10-01 00:00:00,60,1,60,vca\nbad,row\n2017-10-01 00:00:00,x,1,60,vca\n")
    tr = load_philly(j, v, skip_bad=True)
    assert len(tr.jobs) == 1 and tr.bad_rows == 2
    assert tr.bad_examples[0].startswith(f"{j}:3:")


def test_missing_file_header_and_bad_vc(tmp_path):
    j, v = write(tmp_path, "")
    with pytest.raises(TraceError, match="file not found"):
        load_philly(tmp_path / "nope.csv", v)
    (tmp_path / "h.csv").write_text("when,duration\n")
    with pytest.raises(TraceError, match=r"h.csv:1: header lacks column\(s\) timestamp"):
        load_philly(tmp_path / "h.csv", v)
    v.write_text("vc,node num\nvca,two\n")
    with pytest.raises(TraceError, match=r"vc.csv:2: node num 'two' is not a number"):
        load_philly(j, v)


def test_synthetic_shape():
    tr = synthetic(SyntheticOptions(seed=3, days=1, tenants=3, nodes_per_tenant=2, gang_fraction=0.5))
    assert tr.tenants == {"t0": 2, "t1": 2, "t2": 2}
    assert tr.jobs and all(0 <= j.arrival < 86400 for j in tr.jobs)
    assert any(j.gpus > 8 and j.gpus % 8 == 0 for j in tr.jobs)
    assert {j.tenant for j in tr.jobs} <= set(tr.tenants)
    assert [j.arrival for j in tr.jobs] == sorted(j.arrival for j in tr.jobs)


def test_hawkes_arrivals_come_in_runs_of_one_tenant_and_keep_the_mean_rate():
    opts = SyntheticOptions(seed=5, days=20, tenants=4, arrivals="hawkes", branching=0.9, excitation=600)
    tr = synthetic(opts)
    assert tr == synthetic(opts)  # same seed, same trace
    arrivals = [j.arrival for j in tr.jobs]
    assert arrivals == sorted(arrivals) and all(0 <= a < 20 * 86400 for a in arrivals)
    # Mean rate: 12 jobs an hour over 20 days, give or take the randomness of a few hundred runs.
    assert 0.75 * 12 * 480 < len(tr.jobs) < 1.25 * 12 * 480
    # Runs: a job is followed within 10 minutes by one of the same tenant far more often than
    # tenants drawn independently (skew 1 over 4 tenants: about 0.35) would give.
    follows = [
        b.tenant == a.tenant
        for a, b in zip(tr.jobs, tr.jobs[1:], strict=False)
        if b.arrival - a.arrival < 600
    ]
    assert sum(follows) / len(follows) > 0.6

    # The counts of arrivals of one 5-minute bin and the next correlate (a renewal process with
    # gamma gaps does not, whatever its burstiness).
    def lag1(tr_) -> float:
        bins = [0] * int(20 * 86400 / 300)
        for j in tr_.jobs:
            bins[int(j.arrival // 300)] += 1
        mean = sum(bins) / len(bins)
        d = [b - mean for b in bins]
        return sum(x * y for x, y in itertools.pairwise(d)) / sum(x * x for x in d)

    assert lag1(tr) > 0.4
    assert lag1(synthetic(SyntheticOptions(seed=5, days=20, tenants=4, burstiness=4.0))) < 0.25
    with pytest.raises(ValueError, match="branching"):
        synthetic(SyntheticOptions(arrivals="hawkes", branching=1.0))
    with pytest.raises(ValueError, match="arrival model"):
        synthetic(SyntheticOptions(arrivals="poisson"))


def test_a_real_job_mix_gives_each_synthetic_job_a_real_jobs_gpus_and_length(tmp_path):
    rows = "2017-10-01 00:00:00,600,1,600,vca\n2017-10-01 00:05:00,7200,16,1,vcb\n"
    rows += "2017-10-01 00:09:00,90,2,1,vca\n"
    real = load_philly(*write(tmp_path, rows))
    mix = job_mix_of(real)
    assert sorted(mix) == [((0.0, 1, 600.0),), ((0.0, 2, 90.0),), ((0.0, 16, 7200.0),)]
    opts = SyntheticOptions(
        seed=2, days=2, arrivals="hawkes", branching=0.5, job_mix=mix, job_mix_name="philly"
    )
    tr = synthetic(opts)
    assert tr == synthetic(opts) and 0.7 * 12 * 48 < len(tr.jobs) < 1.3 * 12 * 48  # 12 an hour
    assert {(j.gpus, j.duration) for j in tr.jobs} == {(1, 600.0), (2, 90.0), (16, 7200.0)}
    assert tr.source["job_mix"] == "philly" and tr.source["job_mix_jobs"] == 3
    assert "size_mix" not in tr.source
    with pytest.raises(ValueError, match="job mix"):
        synthetic(SyntheticOptions(job_mix=(((0.0, 0, 10.0),),)))
    with pytest.raises(ValueError, match="job mix"):
        synthetic(SyntheticOptions(job_mix=((),)))


def test_a_batch_job_mix_brings_whole_real_batches_at_once(tmp_path):
    # vca submits three 1-GPU jobs 30 s apart (one batch) and, later, one more; vcb two 8-GPU
    # jobs at once; vca's 4-GPU job in between is a batch of its own (another size).
    rows = "".join(
        f"2017-10-01 {t},{d},{g},1,{vc}\n"
        for t, d, g, vc in [
            ("00:00:00", 600, 1, "vca"),
            ("00:00:30", 700, 1, "vca"),
            ("00:00:40", 300, 4, "vca"),
            ("00:01:00", 800, 1, "vca"),
            ("00:02:00", 900, 8, "vcb"),
            ("00:02:00", 950, 8, "vcb"),
            ("03:00:00", 100, 1, "vca"),
        ]
    )
    mix = job_mix_of(load_philly(*write(tmp_path, rows)), batch_gap=60)
    assert sorted(mix) == sorted(
        [
            ((0.0, 1, 600.0), (30.0, 1, 700.0), (60.0, 1, 800.0)),
            ((0.0, 4, 300.0),),
            ((0.0, 8, 900.0), (0.0, 8, 950.0)),
            ((0.0, 1, 100.0),),
        ]
    )
    opts = SyntheticOptions(seed=4, days=10, tenants=3, rate_per_hour=12, job_mix=mix)
    tr = synthetic(opts)
    # The process brings submissions at 12 / 2 an hour (2 jobs a submission), so 12 jobs an hour.
    assert 0.8 * 12 * 240 < len(tr.jobs) < 1.2 * 12 * 240
    assert [j.arrival for j in tr.jobs] == sorted(j.arrival for j in tr.jobs)
    assert len({j.id for j in tr.jobs}) == len(tr.jobs)
    # Every 8-GPU job comes with its twin: same tenant, same instant.
    eights = [(j.arrival, j.tenant) for j in tr.jobs if j.gpus == 8]
    assert eights and all(eights.count(e) == 2 for e in eights)
    assert tr.source["job_mix_submissions"] == 4 and tr.source["job_mix_jobs"] == 7


def test_parse_size_mix():
    assert parse_size_mix("1:0.5,8:0.5") == ((1, 0.5), (8, 0.5))
    with pytest.raises(ValueError, match="bad size mix item"):
        parse_size_mix("1:x")
