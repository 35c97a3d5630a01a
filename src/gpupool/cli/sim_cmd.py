"""``gpupool sim ...``: replay traces through the real driver and core, and the convergence experiment.

``sim replay`` is benchmarks.md section 3 (Philly, or a seeded synthetic trace) in one mode, a
comma list of modes or ``all``; ``sim converge`` measures how fast guarantees are restored.
Bad input (missing trace file, bad row, bad option) is one message on stderr with a hint and
exit code 2, never a traceback. JSON goes to stdout only; the human summary is a rich table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from gpupool.cli import sim_show as show
from gpupool.cli.sim_show import UsageProblem, command_line, fail, fmt, fmt_s
from gpupool.datasets import ENV_TRACE_DIR, PHILLY_JOBS, PHILLY_VCS, trace_dir
from gpupool.sim.modes import MODES
from gpupool.sim.options import AutoscaleOptions, ConvergeOptions, SimOptions
from gpupool.sim.traces import BATCH_GAP, JOB_MIXES, SyntheticOptions, format_size_mix

# The option defaults come from the dataclasses that the options fill (tests/sim/test_sim_defaults.py).
_SIM = SimOptions()
_SYN = SyntheticOptions()
_AUTO = AutoscaleOptions()
_CONV = ConvergeOptions()


class _OneLineErrors(TyperCommand):
    """A command whose bad option values (typer's ``min``/``max`` bounds, bad types) are one
    ``Error:`` line on stderr and exit code 2, like every other bad input of ``gpupool sim``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a (typer's own) click Context
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as exc:
            raise fail(exc.format_message()) from None


sim_app = typer.Typer(help="Simulation: replay traces through the scheduler.", no_args_is_help=True)


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


def parse_configs(text: str) -> tuple[str, ...]:
    """``--configs``: a comma list of the autoscale configurations, or ``all``; in their order."""
    from gpupool.sim.autoscale import CONFIGS

    if text.strip().lower() == "all":
        return CONFIGS
    asked = [item.strip().lower() for item in text.split(",")]
    for item in asked:
        if item not in CONFIGS:
            raise UsageProblem(
                f"bad --configs {text!r}: unknown configuration {item!r}",
                f"use one of {', '.join(CONFIGS)}, a comma list of them, or all",
            )
    return tuple(c for c in CONFIGS if c in asked)


@sim_app.command("replay", cls=_OneLineErrors)
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
        typer.Option(
            "--nodes-scale",
            help="Scale every tenant's nodes (e.g. 0.25 for a busier cluster).",
        ),
    ] = _SIM.nodes_scale,
    interval: Annotated[
        float, typer.Option("--interval", min=0, help="Scheduling interval in s (0 = tick at every event).")
    ] = _SIM.interval,
    checkpoint_interval: Annotated[
        float,
        typer.Option("--checkpoint-interval", min=0, help="Seconds of work between checkpoints (0 = never)."),
    ] = _SIM.checkpoint_interval,
    grace: Annotated[float, typer.Option("--grace", min=0, help="Preemption grace period (s).")] = _SIM.grace,
    stop_delay: Annotated[
        float, typer.Option("--stop-delay", min=0, help="A victim stops after min(grace, this) s.")
    ] = _SIM.stop_delay,
    resume_delay: Annotated[
        float,
        typer.Option(
            "--resume-delay",
            min=0,
            help="A job resumed from a checkpoint (after preemption or a compaction move) holds its "
            "GPUs this many s restoring it before its work goes on.",
        ),
    ] = _SIM.resume_delay,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic: random seed.")] = _SYN.seed,
    tenants: Annotated[int, typer.Option("--tenants", help="Synthetic: number of tenants.")] = _SYN.tenants,
    nodes_per_tenant: Annotated[
        int, typer.Option("--nodes-per-tenant", help="Synthetic: nodes per tenant.")
    ] = _SYN.nodes_per_tenant,
    rate: Annotated[float, typer.Option("--rate", help="Synthetic: arrivals per hour.")] = _SYN.rate_per_hour,
    burstiness: Annotated[
        float, typer.Option("--burstiness", help="Synthetic: inter-arrival coefficient of variation.")
    ] = _SYN.burstiness,
    size_mix: Annotated[
        str, typer.Option("--size-mix", help="Synthetic: single-node sizes GPUS:WEIGHT,...")
    ] = format_size_mix(_SYN.size_mix),
    gang_fraction: Annotated[
        float, typer.Option("--gang-fraction", help="Synthetic: share of multi-node gang jobs.")
    ] = _SYN.gang_fraction,
    duration_median: Annotated[
        float, typer.Option("--duration-median", help="Synthetic: median job length (s).")
    ] = _SYN.duration_median,
    duration_sigma: Annotated[
        float, typer.Option("--duration-sigma", help="Synthetic: sigma of the log-normal job length.")
    ] = _SYN.duration_sigma,
    job_mix: Annotated[
        str,
        typer.Option(
            "--job-mix",
            help="Synthetic: parametric (--size-mix, --gang-fraction, --duration-*); philly (each "
            "job's GPUs and length drawn from a real Philly job); philly-batches (each arrival a "
            f"real Philly batch: jobs of one virtual cluster and size submitted within {BATCH_GAP:g} s).",
        ),
    ] = JOB_MIXES[0],
    tenant_skew: Annotated[
        float, typer.Option("--tenant-skew", help="Synthetic: demand skew between tenants.")
    ] = _SYN.tenant_skew,
    arrivals: Annotated[
        str,
        typer.Option(
            "--arrivals",
            help="Synthetic: gamma (renewal, --burstiness) or hawkes (self-exciting: jobs bring on "
            "more jobs of their tenant).",
        ),
    ] = _SYN.arrivals,
    branching: Annotated[
        float,
        typer.Option("--branching", help="Synthetic hawkes: jobs each job brings on, on average (< 1)."),
    ] = _SYN.branching,
    excitation: Annotated[
        float,
        typer.Option(
            "--excitation", help="Synthetic hawkes: mean delay (s) from a job to those it brings on."
        ),
    ] = _SYN.excitation,
    windows: Annotated[
        int,
        typer.Option(
            "--windows",
            min=1,
            help="Philly --autoscale: replay this many consecutive windows of --days from --start and "
            "count where each target is met.",
        ),
    ] = 1,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
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
    configs: Annotated[
        str,
        typer.Option(
            "--configs",
            help="Autoscale: the configurations to run, a comma list of gpupool, no-headroom and "
            "ray-like, or all (the targets are judged only with all three).",
        ),
    ] = "all",
    headroom: Annotated[
        int,
        typer.Option(
            "--headroom", min=0, help="Autoscale: warm idle nodes the gpupool configuration always keeps."
        ),
    ] = _AUTO.headroom_nodes,
    headroom_window: Annotated[
        float,
        typer.Option(
            "--headroom-window",
            min=0,
            help="Autoscale: the GPUs asked in the last this many seconds size gpupool's warm nodes "
            "(0 = fixed --headroom).",
        ),
    ] = _AUTO.headroom_window,
    headroom_max: Annotated[
        int | None,
        typer.Option(
            "--headroom-max",
            min=0,
            help="Autoscale: the most warm nodes (GPUs' worth with --headroom-fit) the arrivals of "
            f"--headroom-window may keep [default: {_AUTO.headroom_max_nodes}].",
        ),
    ] = None,
    headroom_fit: Annotated[
        bool | None,
        typer.Option(
            "--headroom-fit/--no-headroom-fit",
            help="Autoscale: count the free GPUs of ready nodes as warm room, not only idle nodes "
            f"[default: {'fit' if _AUTO.headroom_fit else 'no fit'}].",
        ),
    ] = None,
    headroom_memory: Annotated[
        float | None,
        typer.Option(
            "--headroom-memory",
            min=0,
            help="Autoscale: series headroom remembers each queue's burst peak this long (s; 0 = off) "
            f"[default: {_AUTO.headroom_memory:g}].",
        ),
    ] = None,
    headroom_series: Annotated[
        float | None,
        typer.Option(
            "--headroom-series",
            min=0,
            max=1,
            help="Autoscale: share of a remembered burst peak kept warm between bursts "
            f"[default: {_AUTO.headroom_series:g}].",
        ),
    ] = None,
    headroom_series_min: Annotated[
        int | None,
        typer.Option(
            "--headroom-series-min",
            min=0,
            help="Autoscale: only burst peaks of at least this many GPUs count "
            f"[default: {_AUTO.headroom_series_min}].",
        ),
    ] = None,
    headroom_series_window: Annotated[
        float | None,
        typer.Option(
            "--headroom-series-window",
            min=0,
            help="Autoscale: a queue's burst peak is the most GPUs it asked within this many seconds "
            f"(0 = --headroom-window) [default: {_AUTO.headroom_series_window:g}].",
        ),
    ] = None,
    headroom_gpus: Annotated[
        int,
        typer.Option(
            "--headroom-gpus", min=0, help="Autoscale: warm idle GPUs of the gpupool configuration."
        ),
    ] = _AUTO.headroom_gpus,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", min=0, help="Autoscale: an empty node goes after this (s).")
    ] = _AUTO.idle_timeout,
    boot_time: Annotated[
        float,
        typer.Option("--boot-time", min=0, help="Autoscale: seconds from launch until a node takes work."),
    ] = _AUTO.boot_time,
    compaction_budget: Annotated[
        int,
        typer.Option("--compaction-budget", min=0, help="Autoscale: workloads one compaction round moves."),
    ] = _AUTO.compaction_budget,
    cloud_seed: Annotated[
        int, typer.Option("--cloud-seed", help="Autoscale: the simulated cloud's seed.")
    ] = _AUTO.seed,
    stockout_rate: Annotated[
        float, typer.Option("--stockout-rate", min=0, max=1, help="Autoscale: chance a launch stocks out.")
    ] = _AUTO.stockout_rate,
    boot_failure_rate: Annotated[
        float,
        typer.Option("--boot-failure-rate", min=0, max=1, help="Autoscale: chance a node fails to boot."),
    ] = _AUTO.boot_failure_rate,
) -> None:
    """Replay a trace in one or more modes (benchmarks.md section 3): static per-tenant pools,
    a shared quota pool, or gpupool's full policy."""
    from gpupool.sim.traces import TraceError

    targs = TraceArgs(
        trace.strip().lower(),
        start,
        days,
        jobs_file,
        vc_file,
        skip_bad_rows,
        seed,
        tenants,
        nodes_per_tenant,
        rate,
        burstiness,
        size_mix,
        gang_fraction,
        duration_median,
        duration_sigma,
        job_mix,
        tenant_skew,
        arrivals,
        branching,
        excitation,
    )
    try:
        modes = parse_modes(mode)
        chosen = parse_configs(configs)
        if not autoscale and configs.strip().lower() != "all":
            raise UsageProblem("--configs needs --autoscale", "e.g. --autoscale --configs gpupool")
        _check_options(targs, autoscale=autoscale, windows=windows, seeds=seeds, nodes_scale=nodes_scale)
        loaded = _load_trace(targs, windows=windows, seeds=seeds)
    except UsageProblem as exc:
        raise fail(str(exc), exc.hint) from None
    except TraceError as exc:
        hint = exc.hint or "check the file"
        if exc.path is not None and "not found" in str(exc):
            hint = (
                f"pass --jobs-file / --vc-file, or set {ENV_TRACE_DIR} to a folder holding "
                "philly/ and helios/ (the repository's data/ has them)"
            )
        raise fail(str(exc), hint) from None
    tr = loaded.trace
    if not tr.jobs:
        raise fail("the trace window holds no jobs", "widen --days or move --start into the trace's range")
    if autoscale:
        given: dict[str, Any] = {
            "headroom_max_nodes": headroom_max,
            "headroom_fit": headroom_fit,
            "headroom_memory": headroom_memory,
            "headroom_series": headroom_series,
            "headroom_series_min": headroom_series_min,
            "headroom_series_window": headroom_series_window,
        }
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
        aopts = replace(aopts, **{k: v for k, v in given.items() if v is not None})
        if loaded.runs > 1 and loaded.window is not None:
            show.autoscale_windows(
                loaded.window, loaded.runs, aopts, as_json=as_json, unit=loaded.unit, configs=chosen
            )
        else:
            show.autoscale(tr, aopts, as_json=as_json, plot=plot, report=report, configs=chosen)
        return
    options = SimOptions(
        interval=interval,
        stop_delay=stop_delay,
        resume_delay=resume_delay,
        grace=grace,
        checkpoint_interval=checkpoint_interval,
        nodes_scale=nodes_scale,
    )
    show.replay_modes(tr, modes, options, as_json=as_json, plot=plot, report=report)


@dataclass(frozen=True, slots=True)
class TraceArgs:
    """The trace options of ``sim replay``: which trace, its window, and the synthetic
    generator's parameters (``kind`` is ``philly`` or ``synthetic``)."""

    kind: str
    start: str | None
    days: float | None
    jobs_file: Path | None
    vc_file: Path | None
    skip_bad_rows: bool
    seed: int
    tenants: int
    nodes_per_tenant: int
    rate: float
    burstiness: float
    size_mix: str
    gang_fraction: float
    duration_median: float
    duration_sigma: float
    job_mix: str
    tenant_skew: float
    arrivals: str
    branching: float
    excitation: float


@dataclass(frozen=True, slots=True)
class LoadedTrace:
    """The trace to replay; with ``runs`` > 1, ``window(k)`` gives the k-th of the traces the
    targets are judged on (a Philly window's ``start`` or a synthetic ``seed``, and its trace)."""

    trace: Any
    runs: int = 1
    unit: str = "start"
    window: Callable[[int], tuple[Any, Any]] | None = None


def _check_options(t: TraceArgs, *, autoscale: bool, windows: int, seeds: int, nodes_scale: float) -> None:
    """What typer's bounds cannot say: positive sizes (not only non-negative), and ``--seeds``
    and ``--windows`` apply only to the autoscale benchmark of their trace."""
    if nodes_scale <= 0:
        raise UsageProblem(f"bad --nodes-scale {nodes_scale:g}: must be positive", "e.g. 0.25")
    if t.days is not None and t.days <= 0:
        raise UsageProblem(f"bad --days {t.days:g}: must be positive")
    if seeds > 1 and not (autoscale and t.kind == "synthetic"):
        raise UsageProblem(
            "--seeds needs --autoscale --trace synthetic",
            "e.g. --trace synthetic --job-mix philly --arrivals hawkes --seeds 5 --autoscale",
        )
    if windows > 1 and not (autoscale and t.kind == "philly" and t.start and t.days):
        raise UsageProblem(
            "--windows needs --autoscale --trace philly with --start and --days",
            "e.g. --trace philly --start 2017-10-03 --days 3 --windows 26 --autoscale",
        )


def _load_trace(t: TraceArgs, *, windows: int, seeds: int) -> LoadedTrace:
    """Load the Philly window or generate the synthetic trace ``t`` names (UsageProblem or
    TraceError on bad input)."""
    from gpupool.sim.traces import load_philly

    base = data_dir()
    jobs_path = t.jobs_file or base / PHILLY_JOBS
    vc_path = t.vc_file or base / PHILLY_VCS
    if t.kind == "philly":
        begin = None
        if t.start is not None:
            try:
                begin = datetime.fromisoformat(t.start)
            except ValueError:
                raise UsageProblem(
                    f"bad --start {t.start!r}: not an ISO time", "e.g. --start 2017-10-01 or 2017-10-01T06:00"
                ) from None
            if begin.tzinfo is not None:
                begin = begin.replace(tzinfo=None)
        tr = load_philly(jobs_path, vc_path, start=begin, days=t.days, skip_bad=t.skip_bad_rows)
        if windows > 1 and begin is not None and t.days is not None:
            first, span = begin, t.days

            def window(k: int) -> tuple[Any, Any]:
                at = first + timedelta(days=span * k)
                if k == 0:
                    return at.isoformat(), tr
                return at.isoformat(), load_philly(
                    jobs_path, vc_path, start=at, days=span, skip_bad=t.skip_bad_rows
                )

            return LoadedTrace(tr, windows, "start", window)
        return LoadedTrace(tr)
    if t.kind != "synthetic":
        raise UsageProblem(
            f"bad --trace {t.kind!r}: unknown trace", "use --trace philly or --trace synthetic"
        )
    return _synthetic(t, jobs_path, vc_path, seeds)


def _synthetic(t: TraceArgs, jobs_path: Path, vc_path: Path, seeds: int) -> LoadedTrace:
    from gpupool.sim.traces import job_mix_of, load_philly, parse_size_mix, synthetic

    if t.start is not None:
        raise UsageProblem("--start applies to --trace philly only", "drop --start")
    mix_kind = t.job_mix.strip().lower()
    if mix_kind not in JOB_MIXES:
        raise UsageProblem(
            f"bad --job-mix {t.job_mix!r}", "use --job-mix parametric, philly or philly-batches"
        )
    real_mix: tuple[tuple[tuple[float, int, float], ...], ...] = ()
    if mix_kind != JOB_MIXES[0]:
        real = load_philly(jobs_path, vc_path, skip_bad=t.skip_bad_rows)
        real_mix = job_mix_of(real, BATCH_GAP if mix_kind == "philly-batches" else None)
    try:
        syn = SyntheticOptions(
            seed=t.seed,
            days=t.days if t.days is not None else _SYN.days,
            tenants=t.tenants,
            nodes_per_tenant=t.nodes_per_tenant,
            rate_per_hour=t.rate,
            burstiness=t.burstiness,
            size_mix=parse_size_mix(t.size_mix),
            gang_fraction=t.gang_fraction,
            duration_median=t.duration_median,
            duration_sigma=t.duration_sigma,
            tenant_skew=t.tenant_skew,
            job_mix=real_mix,
            job_mix_name=mix_kind if real_mix else "",
            arrivals=t.arrivals.strip().lower(),
            branching=t.branching,
            excitation=t.excitation,
        )
        tr = synthetic(syn)
    except ValueError as exc:
        raise UsageProblem(f"bad synthetic trace options: {exc}") from None
    if seeds <= 1:
        return LoadedTrace(tr)

    def window(k: int) -> tuple[Any, Any]:
        return t.seed + k, tr if k == 0 else synthetic(replace(syn, seed=t.seed + k))

    return LoadedTrace(tr, seeds, "seed", window)


@sim_app.command("converge", cls=_OneLineErrors)
def converge(
    mode: Annotated[str, typer.Option("--mode", help="quota, gpupool, a comma list, or all.")] = "gpupool",
    queues: Annotated[int, typer.Option("--queues", min=2, help="Number of queues.")] = _CONV.queues,
    nodes_per_queue: Annotated[
        int, typer.Option("--nodes-per-queue", min=1, help="Guarantee per queue, in nodes.")
    ] = _CONV.nodes_per_queue,
    others_at: Annotated[
        float, typer.Option("--others-at", min=0, help="When the other queues submit (s).")
    ] = _CONV.others_at,
    checkpoint_interval: Annotated[
        float,
        typer.Option("--checkpoint-interval", min=0, help="Seconds of work between checkpoints (0 = never)."),
    ] = _SIM.checkpoint_interval,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write PNG charts into DIR.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
) -> None:
    """Five queues with guarantees: one takes nearly all the cluster, then the others submit.
    How long until every queue holds its guarantee?"""
    from gpupool.sim import report as documents
    from gpupool.sim.converge import run_converge

    try:
        modes = [m for m in parse_modes(mode) if m != "static"]
        if not modes:
            raise UsageProblem("static mode has no shared pool to converge in", "use --mode quota or gpupool")
    except UsageProblem as exc:
        raise fail(str(exc), exc.hint) from None
    opts = ConvergeOptions(queues=queues, nodes_per_queue=nodes_per_queue, others_at=others_at)
    runs = [run_converge(opts, m, SimOptions(checkpoint_interval=checkpoint_interval)) for m in modes]
    out = Console(highlight=False)
    if plot is not None or report is not None:
        charts = documents.converge_charts(runs, others_at)
        try:
            if plot is not None:
                documents.write_pngs(plot, charts)
            if report is not None:
                documents.converge_report(report, opts, runs, charts, command_line("converge"))
        except OSError as exc:
            raise fail(
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
    table.add_row("converge", *(fmt_s(f["converge_s"]) for f in figures))
    for q in figures[0]["per_queue_s"]:
        table.add_row(f"  {q}", *(fmt_s(f["per_queue_s"][q]) for f in figures))
    table.add_row("preemptions", *(fmt(f["preemptions"]) for f in figures))
    table.add_row("lost GPU-hours", *(fmt(f["lost_gpu_hours"], 2) for f in figures))
    out.print(table)
    if plot is not None:
        out.print(f"Charts written to {plot}")
    if report is not None:
        out.print(f"Report written to {report}")
