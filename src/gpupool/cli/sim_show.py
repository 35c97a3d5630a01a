"""What ``gpupool sim`` runs and prints: the experiments' loops, tables and progress bars.

``gpupool.cli.sim_cmd`` reads and checks the options and calls these; the documents (JSON,
charts, HTML reports) are built in ``gpupool.sim.report``. Bad input is ``fail``: one
``Error:`` line (and a ``Hint:``) on stderr and exit code 2.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table


class UsageProblem(ValueError):
    """Bad input; the message says what, where, and the hint what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def fail(message: str, hint: str | None = None) -> typer.Exit:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False)
    if hint:
        console.print(f"Hint: {hint}", markup=False)
    return typer.Exit(code=2)


def progress_bar(console: Console, total: float, label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of simulated time"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _advance(progress: Progress, task: TaskID) -> Callable[[float], None]:
    """A progress callback: the simulated time reached moves ``task``'s bar."""

    def update(t: float) -> None:
        progress.update(task, completed=t)

    return update


def fmt_s(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 3600:
        return f"{v / 3600:,.1f} h"
    if v >= 60:
        return f"{v / 60:,.1f} min"
    return f"{v:,.0f} s"


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def replay_modes(
    tr: Any, modes: list[str], options: Any, *, as_json: bool, plot: Path | None, report: Path | None
) -> None:
    """``sim replay`` without ``--autoscale``: each mode on the trace, then the figures."""
    from gpupool.sim import report as documents

    results = run_modes(tr, modes, options)
    out = Console(highlight=False)
    if plot is not None or report is not None:
        try:
            charts = documents.replay_charts(results)
            if plot is not None:
                documents.write_pngs(plot, charts)
            if report is not None:
                documents.replay_report(report, tr, results, charts, command_line("replay"))
        except OSError as exc:
            raise fail(
                f"cannot write {exc.filename}: {exc.strerror}", "check that the folder is writable"
            ) from None
    figures = [documents.contract(r.figures, tr) for r in results]
    if as_json:
        if len(figures) == 1:
            typer.echo(json.dumps(figures[0], indent=2))
        else:
            typer.echo(
                json.dumps(
                    {"runs": figures, "seconds": round(sum(f["seconds"] for f in figures), 3)}, indent=2
                )
            )
        return
    out.print(summary_table(tr, figures))
    if tr.bad_rows or tr.unknown_tenant_jobs or tr.too_big_jobs:
        out.print(
            f"left out: {tr.bad_rows} bad row(s), {tr.unknown_tenant_jobs} job(s) of tenants without a "
            f"cluster size, {tr.too_big_jobs} job(s) wider than the cluster"
        )
    if plot is not None:
        out.print(f"Charts written to {plot}")
    if report is not None:
        out.print(f"Report written to {report}")


def command_line(name: str) -> str:
    """The command line as typed, for a report's subtitle."""
    return f"gpupool sim {name} " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


def autoscale(
    tr: Any,
    opts: Any,
    *,
    as_json: bool,
    plot: Path | None,
    report: Path | None,
    configs: tuple[str, ...] | None = None,
) -> None:
    """``sim replay --autoscale``: the autoscaling configurations (all three unless ``configs``
    names fewer; the targets are judged only with all three) on one trace."""
    from gpupool.sim import report as documents
    from gpupool.sim.autoscale import CONFIGS, run_elastic, targets

    console = Console(stderr=True)
    horizon = max((j.arrival + j.duration for j in tr.jobs), default=1.0) or 1.0
    results = []
    with progress_bar(console, horizon, "simulating") as progress:
        for c in configs or CONFIGS:
            task = progress.add_task(c, total=horizon)
            results.append(run_elastic(tr, c, opts, on_progress=_advance(progress, task)))
            progress.update(task, completed=horizon)
    figures = [r.figures for r in results]
    goals = targets({f["name"]: f for f in figures})
    out_json = documents.autoscale_json(tr, opts, results, goals)
    if plot is not None or report is not None:
        try:
            charts = documents.autoscale_charts(results)
            if plot is not None:
                documents.write_pngs(plot, charts)
            if report is not None:
                rows = [(label, key) for label, key, _ in autoscale_rows()]
                documents.autoscale_report(
                    report, tr, opts, results, goals, charts, rows, command_line("replay")
                )
        except OSError as exc:
            raise fail(
                f"cannot write {exc.filename}: {exc.strerror}", "check that the folder is writable"
            ) from None
    if as_json:
        typer.echo(json.dumps(out_json, indent=2))
        return
    out = Console(highlight=False)
    table = Table(
        title=f"sim replay --autoscale: {tr.name}, {len(tr.jobs):,} jobs (window: 0 to the last arrival)",
        title_justify="left",
    )
    table.add_column("figure")
    for f in figures:
        table.add_column(f["name"], justify="right")
    for label, key, shown in autoscale_rows():
        table.add_row(label, *(shown(f.get(key)) for f in figures))
    out.print(table)
    if goals is None:
        out.print("targets: not judged (they need all three configurations: --configs all)")
        return
    t1, t2 = goals["vs_no_headroom"], goals["vs_ray_like"]

    def verdict(met: bool) -> str:
        return "[green]met[/]" if met else "[red]not met[/]"

    out.print(
        f"target 1, {t1['target']}: p95 {fmt(t1['p95_ratio'], 2)}x, GPU-hours "
        f"{fmt(t1['gpu_hours_ratio'], 3)}x -> {verdict(t1['met'])}"
    )
    out.print(
        f"target 2, {t2['target']}: idle {fmt(t2['idle_ratio'], 2)}x, p95 "
        f"{'no worse' if t2['p95_ok'] else 'worse'} -> {verdict(t2['met'])}"
    )
    if plot is not None:
        out.print(f"Charts written to {plot}")
    if report is not None:
        out.print(f"Report written to {report}")


def autoscale_windows(
    window: Callable[[int], tuple[Any, Any]],
    n: int,
    opts: Any,
    *,
    as_json: bool,
    unit: str = "start",
    configs: tuple[str, ...] | None = None,
) -> None:
    """``sim replay --autoscale --windows N`` (or ``--seeds N``): the configurations (all three
    unless ``configs`` names fewer) on N traces (consecutive Philly windows, or synthetic seeds),
    with the targets judged per trace and counted (only with all three). ``unit``: what
    ``window(k)`` returns first, a window's ``start`` or a ``seed``."""
    from dataclasses import asdict

    from gpupool.sim.autoscale import CONFIGS, run_elastic, target_fields, targets

    names = configs or CONFIGS

    console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    keys = ("gpu_hours", "idle_gpu_hours", "cost", "wait_s_p50", "wait_s_p95", "preemptions", "launches")
    for k in range(n):
        value, tr = window(k)
        if not tr.jobs:
            continue
        console.print(f"{k + 1}/{n}: {unit} {value}, {len(tr.jobs):,} jobs", highlight=False)
        figures = {c: run_elastic(tr, c, opts).figures for c in names}
        goals = targets(figures)
        rows.append(
            {
                unit: value,
                "jobs": len(tr.jobs),
                **target_fields(goals),
                "configs": {c: {key: f[key] for key in keys} for c, f in figures.items()},
                "targets": goals,
            }
        )
    runs = "seeds" if unit == "seed" else "windows"
    judged = [r["targets"] for r in rows if r["targets"] is not None]
    met: dict[str, Any] = {
        runs: len(rows),
        "vs_no_headroom": sum(t["vs_no_headroom"]["met"] for t in judged) if judged else None,
        "vs_ray_like": sum(t["vs_ray_like"]["met"] for t in judged) if judged else None,
        "both": sum(t["vs_no_headroom"]["met"] and t["vs_ray_like"]["met"] for t in judged)
        if judged
        else None,
    }
    if as_json:
        typer.echo(json.dumps({runs: rows, "met": met, "options": asdict(opts)}, indent=2))
        return
    out = Console(highlight=False)
    table = Table(title=f"sim replay --autoscale: {met[runs]} {runs}", title_justify="left")
    short = {"gpupool": "g", "no-headroom": "a", "ray-like": "b"}
    columns = ["seed" if unit == "seed" else "window", "jobs"]
    columns += [
        f"GPU-h {' / '.join(short[x] for x in names)}",
        f"p95 s {' / '.join(short[x] for x in names)}",
    ]
    if judged:
        columns += ["target 1: p95 / GPU-h x (a)", "target 2: idle x (b), p95"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("window", "seed") else "right")
    for r in rows:
        c, t = r["configs"], r["targets"]
        cells = [
            str(r[unit])[:16].replace("T", " "),
            f"{r['jobs']:,}",
            " / ".join(fmt(c[x]["gpu_hours"], 0) for x in names),
            " / ".join(fmt(c[x]["wait_s_p95"], 0) for x in names),
        ]
        if t is not None:
            a, b = t["vs_no_headroom"], t["vs_ray_like"]
            cells += [
                f"{fmt(a['p95_ratio'], 2)} / {fmt(a['gpu_hours_ratio'], 3)} "
                + ("[green]met[/]" if a["met"] else "[red]no[/]"),
                f"{fmt(b['idle_ratio'], 2)}, {'ok' if b['p95_ok'] else 'worse'} "
                + ("[green]met[/]" if b["met"] else "[red]no[/]"),
            ]
        table.add_row(*cells)
    out.print(table)
    if not judged:
        out.print("targets: not judged (they need all three configurations: --configs all)")
        return
    out.print(
        f"target 1 (vs (a)) met in {met['vs_no_headroom']} of {met[runs]} {runs}, "
        f"target 2 (vs (b)) in {met['vs_ray_like']}, both in {met['both']}"
    )


def autoscale_rows() -> list[tuple[str, str, Any]]:
    return [
        ("GPU-hours provisioned", "gpu_hours", lambda v: fmt(v, 0)),
        ("idle GPU-hours", "idle_gpu_hours", lambda v: fmt(v, 0)),
        ("idle %", "idle_pct", fmt),
        ("cost $", "cost", lambda v: fmt(v, 0)),
        ("wait p50", "wait_s_p50", fmt_s),
        ("wait p95", "wait_s_p95", fmt_s),
        ("preemptions", "preemptions", fmt),
        ("compaction moves", "compaction_moves", fmt),
        ("launches", "launches", fmt),
        ("peak GPUs", "peak_gpus", fmt),
        ("jobs", "jobs", fmt),
        ("wall seconds", "seconds", lambda v: fmt(v, 2)),
    ]


def run_modes(tr: Any, modes: list[str], options: Any) -> list[Any]:
    from gpupool.sim.replay import run_trace

    console = Console(stderr=True)
    horizon = max((j.arrival + j.duration for j in tr.jobs), default=1.0) or 1.0
    results = []
    with progress_bar(console, horizon, "simulating") as progress:
        for m in modes:
            task = progress.add_task(m, total=horizon)
            results.append(run_trace(tr, m, options, on_progress=_advance(progress, task)))
            progress.update(task, completed=horizon)
    return results


def summary_table(tr: Any, figures: list[dict[str, Any]]) -> Table:
    table = Table(title=f"sim replay: {tr.name}, {len(tr.jobs):,} jobs", title_justify="left")
    table.add_column("figure")
    for f in figures:
        table.add_column(f["mode"], justify="right")
    rows = [
        ("GPU utilisation %", lambda f: fmt(f["gpu_utilization_pct"])),
        ("wait p50", lambda f: fmt_s(f["wait_s_p50"])),
        ("wait p95", lambda f: fmt_s(f["wait_s_p95"])),
        ("JCT mean", lambda f: fmt_s(f["jct_s_mean"])),
        ("preemptions", lambda f: fmt(f["preemptions"])),
        ("lost GPU-hours", lambda f: fmt(f["lost_gpu_hours"])),
        ("guarantee attainment %", lambda f: fmt(f["guarantee_attainment_pct"])),
        ("cluster GPUs", lambda f: fmt(f["cluster_gpus"])),
        ("sim s / wall s", lambda f: fmt(f["sim_seconds_per_wall_second"], 0)),
        ("wall seconds", lambda f: fmt(f["seconds"], 2)),
    ]
    for label, get in rows:
        table.add_row(label, *(get(f) for f in figures))
    return table
