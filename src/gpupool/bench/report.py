"""The HTML report of ``gpupool bench throughput``: figures, the workload, and cycle latency."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from gpupool.bench.throughput import ThroughputConfig
from gpupool.reporting import HtmlReport


def write_throughput_report(
    path: Path, cfg: ThroughputConfig, result: dict[str, Any], series: list[tuple[float, float, int]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = HtmlReport(
        "Scheduling throughput",
        subtitle=f"gpupool bench throughput --policy {cfg.policy} --nodes {cfg.nodes}",
    )
    report.key_figures(
        {
            "allocations / s": result["allocations_per_sec"],
            "allocations": result["allocations"],
            "preemptions": result.get("preemptions", 0),
            "cycle p50 (ms)": result["cycle_ms_p50"],
            "cycle p99 (ms)": result["cycle_ms_p99"],
            "peak RSS (MB)": result["peak_rss_mb"],
        }
    )
    report.text(
        "The scheduling core alone, timed only inside schedule(): a synthetic cluster of 8-GPU nodes "
        "of three GPU models, a three-level queue tree with guarantees and maxes, asks of 1, 2, 4 and "
        "8 GPUs (a quarter in gangs of 2-8), preemption on. First every ask is pending and cycles run "
        "until nothing changes (fill); then each simulated step some work finishes, new work arrives "
        "and one cycle runs (churn).",
        note=True,
    )
    report.table("Figures", ["figure", "value"], [[k, v] for k, v in result.items()])
    if series:
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
        xs = list(range(len(series)))
        ax1.bar(xs, [s[1] for s in series], color="#2b6cb0")
        ax1.set_ylabel("cycle (ms)")
        ax2.bar(xs, [s[2] for s in series], color="#2f855a")
        ax2.set_ylabel("placements")
        ax2.set_xlabel("cycle")
        fig.tight_layout()
        report.figure("Every cycle: its duration and what it placed", fig)
        plt.close(fig)
    report.config("Configuration", asdict(cfg))
    report.write(path)
