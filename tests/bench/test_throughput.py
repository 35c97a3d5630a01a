"""`gpupool bench throughput` on a tiny cluster: the contract and the figures' consistency."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from gpupool.bench.throughput import POLICIES, ThroughputConfig, build, run
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


def test_json_contract_and_policies() -> None:
    runner = CliRunner()
    for policy in ("binpacking", "fgd"):
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


def test_unknown_policy_is_a_clear_error() -> None:
    out = CliRunner().invoke(app, ["bench", "throughput", "--policy", "magic", "--nodes", "5", "--asks", "5"])
    assert out.exit_code == 2
    assert "unknown policy" in out.output and "Hint" in out.output


def test_the_default_policy_is_the_config_default_and_fgd_names_the_core_scorer() -> None:
    args = ["bench", "throughput", "--nodes", "20", "--asks", "100", "--queues", "4", "--churn-steps", "1"]
    out = CliRunner().invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["policy"], data["fractional"]) == ("gpupool", 0.0)
    assert set(POLICIES) == {"binpacking", "fair", "gpupool", "fgd", "bestfit", "dotprod", "gpupacking"}
    fgd = CliRunner().invoke(app, [*args, "--policy", "fgd", "--fractional", "0.25", "--json"])
    assert fgd.exit_code == 0, fgd.output
    assert (json.loads(fgd.stdout)["policy"], json.loads(fgd.stdout)["fractional"]) == ("fgd", 0.25)


def test_cli_defaults_are_the_config_defaults() -> None:
    group = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    params = {p.name: p.default for p in group.commands["throughput"].params}
    shared = [f for f in dataclasses.fields(ThroughputConfig) if f.name in params]
    assert {f.name for f in shared} == {
        "nodes",
        "asks",
        "queues",
        "policy",
        "seed",
        "churn_steps",
        "fractional",
    }
    for f in shared:
        assert params[f.name] == f.default, (
            f"--{f.name} defaults to {params[f.name]!r}, the config to {f.default!r}"
        )


def test_workload_matches_the_contract_and_is_seeded() -> None:
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


def test_report_is_one_self_contained_page(tmp_path: Path) -> None:
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
