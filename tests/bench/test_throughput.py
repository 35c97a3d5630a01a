"""`gpupool bench throughput` on a tiny cluster: the contract and the figures' consistency."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gpupool.bench.throughput import ThroughputConfig, build, run
from gpupool.cli.main import app

KEYS = {
    "nodes",
    "asks",
    "queues",
    "policy",
    "allocations",
    "allocations_per_sec",
    "cycle_ms_p50",
    "cycle_ms_p99",
    "peak_rss_mb",
    "seconds",
}


def test_json_contract_and_policies():
    runner = CliRunner()
    for policy in ("gpupool", "fgd"):
        out = runner.invoke(
            app,
            [
                "bench",
                "throughput",
                "--nodes",
                "60",
                "--asks",
                "600",
                "--queues",
                "9",
                "--churn-steps",
                "3",
                "--policy",
                policy,
                "--json",
            ],
        )
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout)
        assert set(data) >= KEYS
        assert data["policy"] == policy and data["nodes"] == 60 and data["queues"] == 9
        assert data["allocations"] > 0 and data["allocations_per_sec"] > 0
        assert data["cycle_ms_p50"] <= data["cycle_ms_p99"]


def test_unknown_policy_is_a_clear_error():
    out = CliRunner().invoke(app, ["bench", "throughput", "--policy", "magic", "--nodes", "5", "--asks", "5"])
    assert out.exit_code == 2
    assert "unknown policy" in out.output and "Hint" in out.output


def test_workload_matches_the_contract_and_is_seeded():
    cfg = ThroughputConfig(nodes=30, asks=400, queues=6, churn_steps=2)
    sched, plans = build(cfg)
    assert sum(len(p.asks) for p in plans) == 400
    gangs = [p for p in plans if p.gang]
    assert gangs and all(2 <= len(p.asks) <= 8 for p in gangs[:-1])
    assert {n.capacity["gpu"] for n in sched.nodes.values()} == {8000}  # 8 GPUs, in milli-GPU
    assert len({n.gpu_type for n in sched.nodes.values()}) == 3
    assert max(q.depth for q in sched.queues.values()) == 2  # root -> department -> team
    assert sched.preemption_enabled
    first, second = run(cfg), run(cfg)
    for key in ("allocations", "preemptions", "cycles"):
        assert first[key] == second[key]


def test_report_is_one_self_contained_page(tmp_path):
    out = tmp_path / "throughput.html"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "throughput",
            "--nodes",
            "40",
            "--asks",
            "300",
            "--queues",
            "4",
            "--churn-steps",
            "2",
            "--report",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "Scheduling throughput" in page and "allocations / s" in page
    assert "data:image/png;base64," in page and "<script src" not in page and "http://" not in page
