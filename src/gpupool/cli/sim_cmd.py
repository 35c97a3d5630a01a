"""``gpupool sim ...``: replay traces through the real driver and core, and the convergence experiment.

``sim replay`` is benchmarks.md section 3 (Philly, or a seeded synthetic trace) in one mode, a
comma list of modes or ``all``; ``sim converge`` measures how fast guarantees are restored.
Bad input (missing trace file, bad row, bad option) is one message on stderr with a hint and
exit code 2, never a traceback. JSON goes to stdout only; the human summary is a rich table.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpupool.datasets import ENV_TRACE_DIR, PHILLY_JOBS, PHILLY_VCS, trace_dir

sim_app = typer.Typer(help="Simulation: replay traces through the scheduler.", no_args_is_help=True)

MODES = ("static", "quota", "gpupool")
BATCH_GAP = 60.0  # --job-mix philly-batches: at most this many seconds between a batch's jobs


class UsageProblem(ValueError):
    """Bad input; the message says what, where, and the hint what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _fail(message: str, hint: str | None = None) -> typer.Exit:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False)
    if hint:
        console.print(f"Hint: {hint}", markup=False)
    return typer.Exit(code=2)


def data_dir() -> Path:
    """Where the traces live: the repository's data/ (or $GPUPOOL_TRACE_DIR), see gpupool.datasets."""
    return trace_dir()


def parse_modes(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(MODES)
    out: list[str] = []
    for item in text.split(","):
        m = item.strip().lower()
        if m not in MODES:
            raise UsageProblem(
                f"bad --mode {text!r}: unknown mode {item.strip()!r}",
                f"use one of {', '.join(MODES)}, a comma list of them, or all",
            )
        if m not in out:
            out.append(m)
    return out


def _progress(console: Console, total: float, label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of simulated time"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 3600:
        return f"{v / 3600:,.1f} h"
    if v >= 60:
        return f"{v / 60:,.1f} min"
    return f"{v:,.0f} s"


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


@sim_app.command("replay")
def replay(
    trace: Annotated[
        str, typer.Option("--trace", help="philly, or synthetic (seeded generator).")
    ] = "philly",
    mode: Annotated[
        str, typer.Option("--mode", help="static, quota, gpupool, a comma list, or all.")
    ] = "gpupool",
    start: Annotated[str | None, typer.Option("--start", help="Philly: window start (ISO time).")] = None,
    days: Annotated[float | None, typer.Option("--days", help="Days of arrivals to replay.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write PNG charts into DIR.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    jobs_file: Annotated[Path | None, typer.Option("--jobs-file", help="Philly jobs CSV.")] = None,
    vc_file: Annotated[
        Path | None, typer.Option("--vc-file", help="Philly virtual cluster sizes CSV.")
    ] = None,
    skip_bad_rows: Annotated[
        bool, typer.Option("--skip-bad-rows", help="Skip (and count) malformed CSV rows instead of failing.")
    ] = False,
    nodes_scale: Annotated[
        float,
        typer.Option("--nodes-scale", help="Scale every tenant's nodes (e.g. 0.25 for a busier cluster)."),
    ] = 1.0,
    interval: Annotated[
        float, typer.Option("--interval", help="Scheduling interval in s (0 = tick at every event).")
    ] = 0.0,
    checkpoint_interval: Annotated[
        float, typer.Option("--checkpoint-interval", help="Seconds of work between checkpoints (0 = never).")
    ] = 3600.0,
    grace: Annotated[float, typer.Option("--grace", help="Preemption grace period (s).")] = 60.0,
    stop_delay: Annotated[
        float, typer.Option("--stop-delay", help="A victim stops after min(grace, this) s.")
    ] = 30.0,
    resume_delay: Annotated[
        float,
        typer.Option(
            "--resume-delay",
            help="A job resumed from a checkpoint (after preemption or a compaction move) holds its "
            "GPUs this many s restoring it before its work goes on.",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic: random seed.")] = 1,
    tenants: Annotated[int, typer.Option("--tenants", help="Synthetic: number of tenants.")] = 4,
    nodes_per_tenant: Annotated[
        int, typer.Option("--nodes-per-tenant", help="Synthetic: nodes per tenant.")
    ] = 4,
    rate: Annotated[float, typer.Option("--rate", help="Synthetic: arrivals per hour.")] = 12.0,
    burstiness: Annotated[
        float, typer.Option("--burstiness", help="Synthetic: inter-arrival coefficient of variation.")
    ] = 1.0,
    size_mix: Annotated[
        str, typer.Option("--size-mix", help="Synthetic: single-node sizes GPUS:WEIGHT,...")
    ] = "1:0.55,2:0.15,4:0.15,8:0.15",
    gang_fraction: Annotated[
        float, typer.Option("--gang-fraction", help="Synthetic: share of multi-node gang jobs.")
    ] = 0.1,
    duration_median: Annotated[
        float, typer.Option("--duration-median", help="Synthetic: median job length (s).")
    ] = 3600.0,
    duration_sigma: Annotated[
        float, typer.Option("--duration-sigma", help="Synthetic: sigma of the log-normal job length.")
    ] = 1.0,
    job_mix: Annotated[
        str,
        typer.Option(
            "--job-mix",
            help="Synthetic: parametric (--size-mix, --gang-fraction, --duration-*); philly (each "
            "job's GPUs and length drawn from a real Philly job); philly-batches (each arrival a "
            "real Philly batch: jobs of one virtual cluster and size submitted within 60 s).",
        ),
    ] = "parametric",
    tenant_skew: Annotated[
        float, typer.Option("--tenant-skew", help="Synthetic: demand skew between tenants.")
    ] = 1.0,
    arrivals: Annotated[
        str,
        typer.Option(
            "--arrivals",
            help="Synthetic: gamma (renewal, --burstiness) or hawkes (self-exciting: jobs bring on "
            "more jobs of their tenant).",
        ),
    ] = "gamma",
    branching: Annotated[
        float,
        typer.Option("--branching", help="Synthetic hawkes: jobs each job brings on, on average (< 1)."),
    ] = 0.8,
    excitation: Annotated[
        float,
        typer.Option(
            "--excitation", help="Synthetic hawkes: mean delay (s) from a job to those it brings on."
        ),
    ] = 600.0,
    windows: Annotated[
        int,
        typer.Option(
            "--windows",
            help="Philly --autoscale: replay this many consecutive windows of --days from --start and "
            "count where each target is met.",
        ),
    ] = 1,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            help="Synthetic --autoscale: replay the traces of this many seeds from --seed and count "
            "where each target is met.",
        ),
    ] = 1,
    autoscale: Annotated[
        bool,
        typer.Option(
            "--autoscale",
            help="Elastic pool benchmark: gpupool vs (a) no headroom vs (b) a Ray-like autoscaler.",
        ),
    ] = False,
    headroom: Annotated[
        int,
        typer.Option("--headroom", help="Autoscale: warm idle nodes the gpupool configuration always keeps."),
    ] = 0,
    headroom_window: Annotated[
        float,
        typer.Option(
            "--headroom-window",
            help="Autoscale: the GPUs asked in the last this many seconds size gpupool's warm nodes "
            "(0 = fixed --headroom).",
        ),
    ] = 900.0,
    headroom_max: Annotated[
        int | None,
        typer.Option(
            "--headroom-max",
            help="Autoscale: the most warm nodes (GPUs' worth with --headroom-fit) the arrivals of "
            "--headroom-window may keep [default: 4].",
        ),
    ] = None,
    headroom_fit: Annotated[
        bool | None,
        typer.Option(
            "--headroom-fit/--no-headroom-fit",
            help="Autoscale: count the free GPUs of ready nodes as warm room, not only idle nodes "
            "[default: no fit].",
        ),
    ] = None,
    headroom_memory: Annotated[
        float | None,
        typer.Option(
            "--headroom-memory",
            help="Autoscale: series headroom remembers each queue's burst peak this long (s; 0 = off) "
            "[default: 0].",
        ),
    ] = None,
    headroom_series: Annotated[
        float | None,
        typer.Option(
            "--headroom-series",
            help="Autoscale: share of a remembered burst peak kept warm between bursts [default: 0.3].",
        ),
    ] = None,
    headroom_series_min: Annotated[
        int | None,
        typer.Option(
            "--headroom-series-min",
            help="Autoscale: only burst peaks of at least this many GPUs count [default: 256].",
        ),
    ] = None,
    headroom_gpus: Annotated[
        int, typer.Option("--headroom-gpus", help="Autoscale: warm idle GPUs of the gpupool configuration.")
    ] = 0,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", help="Autoscale: an empty node goes after this (s).")
    ] = 600.0,
    boot_time: Annotated[
        float, typer.Option("--boot-time", help="Autoscale: seconds from launch until a node takes work.")
    ] = 240.0,
    compaction_budget: Annotated[
        int, typer.Option("--compaction-budget", help="Autoscale: workloads one compaction round moves.")
    ] = 4,
    cloud_seed: Annotated[
        int, typer.Option("--cloud-seed", help="Autoscale: the simulated cloud's seed.")
    ] = 1,
    stockout_rate: Annotated[
        float, typer.Option("--stockout-rate", help="Autoscale: chance a launch stocks out.")
    ] = 0.0,
    boot_failure_rate: Annotated[
        float, typer.Option("--boot-failure-rate", help="Autoscale: chance a node fails to boot.")
    ] = 0.0,
) -> None:
    """Replay a trace in one or more modes (benchmarks.md section 3): static per-tenant pools,
    a shared quota pool, or gpupool's full policy."""
    from gpupool.sim.replay import SimOptions
    from gpupool.sim.traces import (
        SyntheticOptions,
        TraceError,
        job_mix_of,
        load_philly,
        parse_size_mix,
        synthetic,
    )

    try:
        modes = parse_modes(mode)
        for name, value in (
            ("--grace", grace),
            ("--stop-delay", stop_delay),
            ("--interval", interval),
            ("--resume-delay", resume_delay),
        ):
            if value < 0:
                raise UsageProblem(f"bad {name} {value:g}: must not be negative")
        if checkpoint_interval < 0:
            raise UsageProblem(f"bad --checkpoint-interval {checkpoint_interval:g}: must not be negative")
        if nodes_scale <= 0:
            raise UsageProblem(f"bad --nodes-scale {nodes_scale:g}: must be positive", "e.g. 0.25")
        if days is not None and days <= 0:
            raise UsageProblem(f"bad --days {days:g}: must be positive")
        if windows < 1:
            raise UsageProblem(f"bad --windows {windows}: must be at least 1")
        if seeds < 1:
            raise UsageProblem(f"bad --seeds {seeds}: must be at least 1")
        if seeds > 1 and not (autoscale and trace.strip().lower() == "synthetic"):
            raise UsageProblem(
                "--seeds needs --autoscale --trace synthetic",
                "e.g. --trace synthetic --job-mix philly --arrivals hawkes --seeds 5 --autoscale",
            )
        if windows > 1 and not (autoscale and trace.strip().lower() == "philly" and start and days):
            raise UsageProblem(
                "--windows needs --autoscale --trace philly with --start and --days",
                "e.g. --trace philly --start 2017-10-03 --days 3 --windows 26 --autoscale",
            )
        options = SimOptions(
            interval=interval,
            stop_delay=stop_delay,
            resume_delay=resume_delay,
            grace=grace,
            checkpoint_interval=checkpoint_interval,
            nodes_scale=nodes_scale,
        )
        kind = trace.strip().lower()
        runs, unit = windows, "start"  # traces the targets are judged on, and what tells them apart
        if kind == "philly":
            begin = None
            if start is not None:
                try:
                    begin = datetime.fromisoformat(start)
                except ValueError:
                    raise UsageProblem(
                        f"bad --start {start!r}: not an ISO time",
                        "e.g. --start 2017-10-01 or 2017-10-01T06:00",
                    ) from None
                if begin.tzinfo is not None:
                    begin = begin.replace(tzinfo=None)
            base = data_dir()
            jobs_path = jobs_file or base / PHILLY_JOBS
            vc_path = vc_file or base / PHILLY_VCS
            tr = load_philly(jobs_path, vc_path, start=begin, days=days, skip_bad=skip_bad_rows)
            if windows > 1 and begin is not None and days is not None:
                first, span = begin, days

                def window(k: int) -> tuple[Any, Any]:
                    at = first + timedelta(days=span * k)
                    if k == 0:
                        return at.isoformat(), tr
                    trace_k = load_philly(jobs_path, vc_path, start=at, days=span, skip_bad=skip_bad_rows)
                    return at.isoformat(), trace_k
        elif kind == "synthetic":
            if start is not None:
                raise UsageProblem("--start applies to --trace philly only", "drop --start")
            mix_kind = job_mix.strip().lower()
            if mix_kind not in ("parametric", "philly", "philly-batches"):
                raise UsageProblem(
                    f"bad --job-mix {job_mix!r}", "use --job-mix parametric, philly or philly-batches"
                )
            real_mix: tuple[tuple[tuple[float, int, float], ...], ...] = ()
            if mix_kind != "parametric":
                base = data_dir()
                real = load_philly(
                    jobs_file or base / PHILLY_JOBS,
                    vc_file or base / PHILLY_VCS,
                    skip_bad=skip_bad_rows,
                )
                real_mix = job_mix_of(real, BATCH_GAP if mix_kind == "philly-batches" else None)
            try:
                syn = SyntheticOptions(
                    seed=seed,
                    days=days if days is not None else 2.0,
                    tenants=tenants,
                    nodes_per_tenant=nodes_per_tenant,
                    rate_per_hour=rate,
                    burstiness=burstiness,
                    size_mix=parse_size_mix(size_mix),
                    gang_fraction=gang_fraction,
                    duration_median=duration_median,
                    duration_sigma=duration_sigma,
                    tenant_skew=tenant_skew,
                    job_mix=real_mix,
                    job_mix_name=mix_kind if real_mix else "",
                    arrivals=arrivals.strip().lower(),
                    branching=branching,
                    excitation=excitation,
                )
                tr = synthetic(syn)
                if seeds > 1:
                    runs, unit = seeds, "seed"

                    def window(k: int) -> tuple[Any, Any]:
                        return seed + k, tr if k == 0 else synthetic(replace(syn, seed=seed + k))

            except ValueError as exc:
                raise UsageProblem(f"bad synthetic trace options: {exc}") from None
        else:
            raise UsageProblem(
                f"bad --trace {trace!r}: unknown trace", "use --trace philly or --trace synthetic"
            )
    except UsageProblem as exc:
        raise _fail(str(exc), exc.hint) from None
    except TraceError as exc:
        hint = exc.hint or "check the file"
        if exc.path is not None and "not found" in str(exc):
            hint = (
                f"pass --jobs-file / --vc-file, or set {ENV_TRACE_DIR} to a folder holding "
                "philly/ and helios/ (the repository's data/ has them)"
            )
        raise _fail(str(exc), hint) from None
    if not tr.jobs:
        raise _fail("the trace window holds no jobs", "widen --days or move --start into the trace's range")
    if autoscale:
        from gpupool.sim.autoscale import AutoscaleOptions

        try:
            given = {
                "headroom_max_nodes": headroom_max,
                "headroom_fit": headroom_fit,
                "headroom_memory": headroom_memory,
                "headroom_series": headroom_series,
                "headroom_series_min": headroom_series_min,
            }
            series_options = {k: v for k, v in given.items() if v is not None}
            numbers = [headroom, headroom_gpus, compaction_budget, headroom_window]
            numbers += [v for v in series_options.values() if not isinstance(v, bool)]
            if min(numbers) < 0:
                raise UsageProblem("bad autoscale option: headroom and budgets must not be negative")
            if headroom_series is not None and headroom_series > 1:
                raise UsageProblem(
                    f"bad --headroom-series {headroom_series:g}: a share between 0 and 1", "e.g. 0.3"
                )
            if idle_timeout < 0 or boot_time < 0:
                raise UsageProblem("bad --idle-timeout / --boot-time: must not be negative")
            if not (0 <= stockout_rate <= 1 and 0 <= boot_failure_rate <= 1):
                raise UsageProblem("bad --stockout-rate / --boot-failure-rate: must be between 0 and 1")
        except UsageProblem as exc:
            raise _fail(str(exc), exc.hint) from None
        aopts = AutoscaleOptions(
            headroom_nodes=headroom,
            headroom_gpus=headroom_gpus,
            headroom_window=headroom_window,
            idle_timeout=idle_timeout,
            boot_time=boot_time,
            compaction_budget=compaction_budget,
            nodes_scale=nodes_scale,
            seed=cloud_seed,
            stockout_rate=stockout_rate,
            boot_failure_rate=boot_failure_rate,
            stop_delay=stop_delay,
            resume_delay=resume_delay,
            grace=grace,
            checkpoint_interval=checkpoint_interval,
        )
        aopts = replace(aopts, **series_options)
        if runs > 1:
            _autoscale_windows(window, runs, aopts, as_json=as_json, unit=unit)
        else:
            _autoscale(tr, aopts, as_json=as_json, plot=plot, report=report)
        return

    results = _run_modes(tr, modes, options)
    command = "gpupool sim replay " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    out = Console(highlight=False)
    if plot is not None or report is not None:
        try:
            charts = _replay_charts(results)
            if plot is not None:
                _write_pngs(plot, charts)
            if report is not None:
                _replay_report(report, tr, results, charts, command)
        except OSError as exc:
            raise _fail(
                f"cannot write {exc.filename}: {exc.strerror}", "check that the folder is writable"
            ) from None
    figures = [_contract(r.figures, tr) for r in results]
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
    out.print(_summary_table(tr, figures))
    if tr.bad_rows or tr.unknown_tenant_jobs or tr.too_big_jobs:
        out.print(
            f"left out: {tr.bad_rows} bad row(s), {tr.unknown_tenant_jobs} job(s) of tenants without a "
            f"cluster size, {tr.too_big_jobs} job(s) wider than the cluster"
        )
    if plot is not None:
        out.print(f"Charts written to {plot}")
    if report is not None:
        out.print(f"Report written to {report}")


def _autoscale(tr: Any, opts: Any, *, as_json: bool, plot: Path | None, report: Path | None) -> None:
    """``sim replay --autoscale``: the three autoscaling configurations on one trace."""
    from dataclasses import asdict

    from gpupool.sim.autoscale import (
        CONFIGS,
        LABELS,
        provisioning_figure,
        run_elastic,
        target_fields,
        targets,
    )

    console = Console(stderr=True)
    horizon = max((j.arrival + j.duration for j in tr.jobs), default=1.0) or 1.0
    results = []
    with _progress(console, horizon, "simulating") as progress:
        for c in CONFIGS:
            task = progress.add_task(c, total=horizon)
            results.append(
                run_elastic(tr, c, opts, on_progress=lambda t, task=task: progress.update(task, completed=t))
            )
            progress.update(task, completed=horizon)
    configs = [r.figures for r in results]
    goals = targets({f["name"]: f for f in configs})
    out_json: dict[str, Any] = {
        "trace": tr.name,
        **target_fields(goals),
        "configs": configs,
        "targets": goals,
        "seconds": round(sum(f["seconds"] for f in configs), 3),
        "options": asdict(opts),
        "window_s": [0.0, max(j.arrival for j in tr.jobs)],
        "source": tr.source,
        "left_out": {
            "bad_rows": tr.bad_rows,
            "unknown_tenant_jobs": tr.unknown_tenant_jobs,
            "too_big_jobs": tr.too_big_jobs,
            "over_quota_jobs": results[0].settings["over_quota_jobs"],
        },
    }
    command = "gpupool sim replay " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    if plot is not None or report is not None:
        from gpupool.reporting import figure_png

        try:
            charts = [("autoscale.png", figure_png(provisioning_figure(results)))]
            if plot is not None:
                _write_pngs(plot, charts)
            if report is not None:
                from gpupool.reporting import HtmlReport

                rep = HtmlReport(f"gpupool sim replay --autoscale: {tr.name}", subtitle=command)
                rows = _autoscale_rows()
                rep.table(
                    "Configurations side by side (window: 0 to the last arrival)",
                    ["figure", *(f["name"] for f in configs)],
                    [[label, *(f.get(k) for f in configs)] for label, k, _ in rows],
                )
                t1, t2 = goals["vs_no_headroom"], goals["vs_ray_like"]
                rep.table(
                    "Targets",
                    ["target", "figures", "met"],
                    [
                        [
                            t1["target"],
                            f"p95 {t1['p95_ratio']}x, GPU-hours {t1['gpu_hours_ratio']}x",
                            t1["met"],
                        ],
                        [t2["target"], f"idle {t2['idle_ratio']}x, p95 no worse: {t2['p95_ok']}", t2["met"]],
                    ],
                )
                for _name, png in charts:
                    rep.figure("Provisioned vs used GPUs", png)
                rep.config(
                    "Configuration",
                    {
                        "configurations": LABELS,
                        "options": asdict(opts),
                        "trace": tr.name,
                        "source": tr.source,
                        "jobs": len(tr.jobs),
                        "runs": [r.settings for r in results],
                        "whole run (until the last job ended)": {f["name"]: f["whole_run"] for f in configs},
                    },
                )
                rep.write(report)
        except OSError as exc:
            raise _fail(
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
    for f in configs:
        table.add_column(f["name"], justify="right")
    for label, key, fmt in _autoscale_rows():
        table.add_row(label, *(fmt(f.get(key)) for f in configs))
    out.print(table)
    t1, t2 = goals["vs_no_headroom"], goals["vs_ray_like"]

    def verdict(met: bool) -> str:
        return "[green]met[/]" if met else "[red]not met[/]"

    out.print(
        f"target 1, {t1['target']}: p95 {_fmt(t1['p95_ratio'], 2)}x, GPU-hours "
        f"{_fmt(t1['gpu_hours_ratio'], 3)}x -> {verdict(t1['met'])}"
    )
    out.print(
        f"target 2, {t2['target']}: idle {_fmt(t2['idle_ratio'], 2)}x, p95 "
        f"{'no worse' if t2['p95_ok'] else 'worse'} -> {verdict(t2['met'])}"
    )
    if plot is not None:
        out.print(f"Charts written to {plot}")
    if report is not None:
        out.print(f"Report written to {report}")


def _autoscale_windows(
    window: Callable[[int], tuple[Any, Any]], n: int, opts: Any, *, as_json: bool, unit: str = "start"
) -> None:
    """``sim replay --autoscale --windows N`` (or ``--seeds N``): the three configurations on N
    traces (consecutive Philly windows, or synthetic seeds), with the targets judged per trace
    and counted. ``unit``: what ``window(k)`` returns first, a window's ``start`` or a ``seed``."""
    from dataclasses import asdict

    from gpupool.sim.autoscale import CONFIGS, run_elastic, target_fields, targets

    console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    keys = ("gpu_hours", "idle_gpu_hours", "cost", "wait_s_p50", "wait_s_p95", "preemptions", "launches")
    for k in range(n):
        value, tr = window(k)
        if not tr.jobs:
            continue
        console.print(f"{k + 1}/{n}: {unit} {value}, {len(tr.jobs):,} jobs", highlight=False)
        figures = {c: run_elastic(tr, c, opts).figures for c in CONFIGS}
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
    met = {
        runs: len(rows),
        "vs_no_headroom": sum(r["targets"]["vs_no_headroom"]["met"] for r in rows),
        "vs_ray_like": sum(r["targets"]["vs_ray_like"]["met"] for r in rows),
        "both": sum(
            r["targets"]["vs_no_headroom"]["met"] and r["targets"]["vs_ray_like"]["met"] for r in rows
        ),
    }
    if as_json:
        typer.echo(json.dumps({runs: rows, "met": met, "options": asdict(opts)}, indent=2))
        return
    out = Console(highlight=False)
    table = Table(title=f"sim replay --autoscale: {met[runs]} {runs}", title_justify="left")
    for col in (
        "seed" if unit == "seed" else "window",
        "jobs",
        "GPU-h g / a / b",
        "p95 s g / a / b",
        "target 1: p95 / GPU-h x (a)",
        "target 2: idle x (b), p95",
    ):
        table.add_column(col, justify="left" if col in ("window", "seed") else "right")
    for r in rows:
        c, t = r["configs"], r["targets"]
        a, b = t["vs_no_headroom"], t["vs_ray_like"]
        table.add_row(
            str(r[unit])[:16].replace("T", " "),
            f"{r['jobs']:,}",
            " / ".join(_fmt(c[x]["gpu_hours"], 0) for x in CONFIGS),
            " / ".join(_fmt(c[x]["wait_s_p95"], 0) for x in CONFIGS),
            f"{_fmt(a['p95_ratio'], 2)} / {_fmt(a['gpu_hours_ratio'], 3)} "
            + ("[green]met[/]" if a["met"] else "[red]no[/]"),
            f"{_fmt(b['idle_ratio'], 2)}, {'ok' if b['p95_ok'] else 'worse'} "
            + ("[green]met[/]" if b["met"] else "[red]no[/]"),
        )
    out.print(table)
    out.print(
        f"target 1 (vs (a)) met in {met['vs_no_headroom']} of {met[runs]} {runs}, "
        f"target 2 (vs (b)) in {met['vs_ray_like']}, both in {met['both']}"
    )


def _autoscale_rows() -> list[tuple[str, str, Any]]:
    return [
        ("GPU-hours provisioned", "gpu_hours", lambda v: _fmt(v, 0)),
        ("idle GPU-hours", "idle_gpu_hours", lambda v: _fmt(v, 0)),
        ("idle %", "idle_pct", _fmt),
        ("cost $", "cost", lambda v: _fmt(v, 0)),
        ("wait p50", "wait_s_p50", _fmt_s),
        ("wait p95", "wait_s_p95", _fmt_s),
        ("preemptions", "preemptions", _fmt),
        ("compaction moves", "compaction_moves", _fmt),
        ("launches", "launches", _fmt),
        ("peak GPUs", "peak_gpus", _fmt),
        ("jobs", "jobs", _fmt),
        ("wall seconds", "seconds", lambda v: _fmt(v, 2)),
    ]


def _run_modes(tr: Any, modes: list[str], options: Any) -> list[Any]:
    from gpupool.sim.replay import run_trace

    console = Console(stderr=True)
    horizon = max((j.arrival + j.duration for j in tr.jobs), default=1.0) or 1.0
    results = []
    with _progress(console, horizon, "simulating") as progress:
        for m in modes:
            task = progress.add_task(m, total=horizon)
            results.append(
                run_trace(tr, m, options, on_progress=lambda t, task=task: progress.update(task, completed=t))
            )
            progress.update(task, completed=horizon)
    return results


def _contract(figures: dict[str, Any], tr: Any) -> dict[str, Any]:
    """The JSON of benchmarks.md section 3 (its keys first), plus what was left out of the trace."""
    keys = (
        "mode",
        "jobs",
        "gpu_utilization_pct",
        "wait_s_p50",
        "wait_s_p95",
        "jct_s_mean",
        "preemptions",
        "lost_gpu_hours",
        "guarantee_attainment_pct",
        "per_queue",
        "sim_seconds_per_wall_second",
        "seconds",
    )
    out = {k: figures.get(k) for k in keys}
    for k, v in figures.items():
        if k not in out:
            out[k] = v
    out["left_out"] = {
        "bad_rows": tr.bad_rows,
        "unknown_tenant_jobs": tr.unknown_tenant_jobs,
        "too_big_jobs": tr.too_big_jobs,
    }
    return out


def _summary_table(tr: Any, figures: list[dict[str, Any]]) -> Table:
    table = Table(title=f"sim replay: {tr.name}, {len(tr.jobs):,} jobs", title_justify="left")
    table.add_column("figure")
    for f in figures:
        table.add_column(f["mode"], justify="right")
    rows = [
        ("GPU utilisation %", lambda f: _fmt(f["gpu_utilization_pct"])),
        ("wait p50", lambda f: _fmt_s(f["wait_s_p50"])),
        ("wait p95", lambda f: _fmt_s(f["wait_s_p95"])),
        ("JCT mean", lambda f: _fmt_s(f["jct_s_mean"])),
        ("preemptions", lambda f: _fmt(f["preemptions"])),
        ("lost GPU-hours", lambda f: _fmt(f["lost_gpu_hours"])),
        ("guarantee attainment %", lambda f: _fmt(f["guarantee_attainment_pct"])),
        ("cluster GPUs", lambda f: _fmt(f["cluster_gpus"])),
        ("sim s / wall s", lambda f: _fmt(f["sim_seconds_per_wall_second"], 0)),
        ("wall seconds", lambda f: _fmt(f["seconds"], 2)),
    ]
    for label, get in rows:
        table.add_row(label, *(get(f) for f in figures))
    return table


def _write_pngs(folder: Path, charts: list[tuple[str, bytes]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in charts:
        (folder / name).write_bytes(png)


def _replay_charts(results: list[Any]) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes): usage per queue for each mode, and the wait CDF of all modes."""
    from gpupool.reporting import figure_png
    from gpupool.sim.plots import mode_waits, usage_figure, wait_cdf_figure

    charts = [
        (
            f"usage_{r.mode}.png",
            figure_png(usage_figure(r.recorder, f"{r.mode}: GPUs allocated per queue vs guaranteed")),
        )
        for r in results
    ]
    charts.append(("wait_cdf.png", figure_png(wait_cdf_figure(mode_waits(results)))))
    return charts


def _replay_report(
    path: Path, tr: Any, results: list[Any], charts: list[tuple[str, bytes]], command: str
) -> None:
    from gpupool.reporting import HtmlReport

    rep = HtmlReport(f"gpupool sim replay: {tr.name}", subtitle=command)
    figures = [r.figures for r in results]
    for f in figures:
        rep.key_figures(
            {
                "GPU utilisation %": f["gpu_utilization_pct"],
                "wait p50 (s)": f["wait_s_p50"],
                "wait p95 (s)": f["wait_s_p95"],
                "JCT mean (s)": f["jct_s_mean"],
                "preemptions": f["preemptions"],
                "lost GPU-hours": f["lost_gpu_hours"],
                "guarantee attainment %": f["guarantee_attainment_pct"],
            },
            title=f"Mode {f['mode']}",
        )
    rep.table(
        "Modes side by side",
        ["figure", *(f["mode"] for f in figures)],
        [
            [k, *(f.get(k) for f in figures)]
            for k in (
                "jobs",
                "gpu_utilization_pct",
                "wait_s_p50",
                "wait_s_p95",
                "jct_s_mean",
                "preemptions",
                "lost_gpu_hours",
                "guarantee_attainment_pct",
                "cluster_gpus",
                "sim_seconds",
                "sim_seconds_per_wall_second",
                "seconds",
            )
        ],
    )
    for f in figures:
        cols = [
            "queue",
            "guaranteed GPUs",
            "jobs",
            "wait p50 s",
            "wait p95 s",
            "JCT mean s",
            "GPU-hours",
            "preemptions",
            "lost GPU-h",
            "attainment %",
        ]
        rows = [
            [
                q,
                v["guaranteed_gpus"],
                v["jobs"],
                v["wait_s_p50"],
                v["wait_s_p95"],
                v["jct_s_mean"],
                v["gpu_hours"],
                v["preemptions"],
                v["lost_gpu_hours"],
                v["guarantee_attainment_pct"],
            ]
            for q, v in f["per_queue"].items()
        ]
        rep.table(f"Per queue: {f['mode']}", cols, rows)
    for name, fig in charts:
        rep.figure(name.removesuffix(".png").replace("_", " "), fig)
    rep.config(
        "Configuration",
        {
            "trace": tr.name,
            "source": tr.source,
            "epoch": tr.epoch,
            "jobs": len(tr.jobs),
            "tenants (nodes)": tr.tenants,
            "gpus_per_node": tr.gpus_per_node,
            "left out": {
                "bad_rows": tr.bad_rows,
                "unknown_tenant_jobs": tr.unknown_tenant_jobs,
                "too_big_jobs": tr.too_big_jobs,
            },
            "runs": [r.config for r in results],
        },
    )
    rep.write(path)


@sim_app.command("converge")
def converge(
    mode: Annotated[str, typer.Option("--mode", help="quota, gpupool, a comma list, or all.")] = "gpupool",
    queues: Annotated[int, typer.Option("--queues", help="Number of queues.")] = 5,
    nodes_per_queue: Annotated[
        int, typer.Option("--nodes-per-queue", help="Guarantee per queue, in nodes.")
    ] = 2,
    others_at: Annotated[
        float, typer.Option("--others-at", help="When the other queues submit (s).")
    ] = 600.0,
    checkpoint_interval: Annotated[
        float, typer.Option("--checkpoint-interval", help="Seconds of work between checkpoints (0 = never).")
    ] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write PNG charts into DIR.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
) -> None:
    """Five queues with guarantees: one takes nearly all the cluster, then the others submit.
    How long until every queue holds its guarantee?"""
    from gpupool.sim.converge import ConvergeOptions, run_converge
    from gpupool.sim.replay import SimOptions

    try:
        modes = [m for m in parse_modes(mode) if m != "static"]
        if not modes:
            raise UsageProblem("static mode has no shared pool to converge in", "use --mode quota or gpupool")
        if queues < 2 or nodes_per_queue < 1 or others_at < 0 or checkpoint_interval < 0:
            raise UsageProblem(
                "bad converge options: need --queues >= 2, --nodes-per-queue >= 1, non-negative times"
            )
    except UsageProblem as exc:
        raise _fail(str(exc), exc.hint) from None
    opts = ConvergeOptions(queues=queues, nodes_per_queue=nodes_per_queue, others_at=others_at)
    runs = [run_converge(opts, m, SimOptions(checkpoint_interval=checkpoint_interval)) for m in modes]
    command = "gpupool sim converge " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    out = Console(highlight=False)
    if plot is not None or report is not None:
        from gpupool.reporting import figure_png
        from gpupool.sim.plots import converge_figure

        charts: list[tuple[str, bytes]] = []
        for f, r in runs:
            done = f["converge_s"] + others_at if f["converge_s"] is not None else None
            fig = converge_figure(r.recorder, others_at, done, r.stats.end)
            charts.append((f"converge_{f['mode']}.png", figure_png(fig)))
        try:
            if plot is not None:
                _write_pngs(plot, charts)
            if report is not None:
                from gpupool.reporting import HtmlReport

                rep = HtmlReport("gpupool sim converge", subtitle=command)
                for f, _ in runs:
                    rep.key_figures(
                        {
                            "converge (s)": f["converge_s"],
                            "preemptions": f["preemptions"],
                            "lost GPU-hours": f["lost_gpu_hours"],
                        },
                        title=f"Mode {f['mode']}",
                    )
                    rep.table(
                        f"Seconds until each queue held its guarantee: {f['mode']}",
                        ["queue", "seconds after the others submitted"],
                        [[q, s] for q, s in f["per_queue_s"].items()],
                    )
                for name, fig in charts:
                    rep.figure(name.removesuffix(".png").replace("_", " "), fig)
                rep.config("Configuration", {"options": opts.__repr__(), "runs": [r.config for _, r in runs]})
                rep.write(report)
        except OSError as exc:
            raise _fail(
                f"cannot write {exc.filename}: {exc.strerror}", "check that the folder is writable"
            ) from None
    figures = [f for f, _ in runs]
    if as_json:
        typer.echo(json.dumps(figures[0] if len(figures) == 1 else {"runs": figures}, indent=2))
        return
    table = Table(title="sim converge: time until every queue holds its guarantee", title_justify="left")
    table.add_column("figure")
    for f in figures:
        table.add_column(f["mode"], justify="right")
    table.add_row("converge", *(_fmt_s(f["converge_s"]) for f in figures))
    for q in figures[0]["per_queue_s"]:
        table.add_row(f"  {q}", *(_fmt_s(f["per_queue_s"][q]) for f in figures))
    table.add_row("preemptions", *(_fmt(f["preemptions"]) for f in figures))
    table.add_row("lost GPU-hours", *(_fmt(f["lost_gpu_hours"], 2) for f in figures))
    out.print(table)
    if plot is not None:
        out.print(f"Charts written to {plot}")
    if report is not None:
        out.print(f"Report written to {report}")
