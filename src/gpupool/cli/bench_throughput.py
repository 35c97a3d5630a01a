"""``gpupool bench throughput``: allocations per second of the scheduling core at scale."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpupool.bench.throughput import POLICIES, ThroughputConfig, run
from gpupool.cli.bench_cmd import bench_app

_CFG = ThroughputConfig()  # the option defaults (tests/bench/test_throughput.py compares them)


@bench_app.command("throughput")
def throughput(
    nodes: int = typer.Option(_CFG.nodes, min=1, help="8-GPU nodes of three GPU models."),
    asks: int = typer.Option(_CFG.asks, min=1, help="Asks (gang members count one each)."),
    queues: int = typer.Option(_CFG.queues, min=1, help="Leaf queues in a three-level tree."),
    policy: str = typer.Option(_CFG.policy, help=f"Node policy: {', '.join(POLICIES)}."),
    seed: int = typer.Option(_CFG.seed, help="Seed of the synthetic cluster and workload."),
    churn_steps: int = typer.Option(
        _CFG.churn_steps, min=0, help="Simulated steps of finishing work and new arrivals."
    ),
    fractional: float = typer.Option(
        _CFG.fractional,
        min=0.0,
        max=1.0,
        help="Share of the applications whose asks are 250 milli-GPU of one GPU (e.g. 0.25).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    report: Path | None = typer.Option(None, "--report", help="Write a self-contained HTML report."),
) -> None:
    """Measure the core alone: fill a cluster from a full queue, then churn with preemption on."""
    err = Console(stderr=True)
    if policy not in POLICIES:
        err.print(f"[red]error:[/red] unknown policy {policy!r}\n  Hint: choose one of {', '.join(POLICIES)}")
        raise typer.Exit(2)
    cfg = ThroughputConfig(
        nodes=nodes,
        asks=asks,
        queues=queues,
        policy=policy,
        seed=seed,
        churn_steps=churn_steps,
        fractional=fractional,
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("fill, then churn", total=churn_steps)
        series: list[tuple[float, float, int]] = []
        result = run(cfg, progress=lambda done, total: bar.update(task, completed=done), series=series)
    if report is not None:
        from gpupool.bench.report import write_throughput_report

        write_throughput_report(report, cfg, result, series)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"Scheduling throughput ({policy})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
