"""``gpupool bench ...``: benchmark commands.

``bench pack`` measures packing quality on Alibaba's GPU trace (spec/benchmarks.md section 1).
``bench serve`` runs the same open-loop load against the demo model autoscaled by gpupool and by
Ray Serve's own autoscaler (``gpupool.bench.serve``, ``gpupool.bench.serve_runs``).
Bad input (missing file, bad row, unknown policy, bad seeds) is reported in one message on
stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpupool.bench.serve import ServeLoad
from gpupool.bench.serve_runs import DEFAULT_CLUSTER
from gpupool.datasets import ALIBABA_NODES, ALIBABA_PODS, WHERE, trace_file

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)

_SEEDS_ITEM = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")


class UsageProblem(ValueError):
    """Bad input from the command line; the message says what to change."""


def parse_seeds(spec: str) -> list[int]:
    """'42-51' -> [42..51]; '42,43,50-51' -> [42, 43, 50, 51]. Order kept, duplicates dropped."""
    seeds: list[int] = []
    for item in spec.split(","):
        match = _SEEDS_ITEM.match(item)
        if match is None:
            raise UsageProblem(
                f"bad --seeds {spec!r}: {item.strip()!r} is not a seed or a range "
                "(expected e.g. 42-51 or 42,43,50-51)"
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise UsageProblem(f"bad --seeds {spec!r}: range {low}-{high} runs backwards")
        if high - low > 100_000:
            raise UsageProblem(f"bad --seeds {spec!r}: range {low}-{high} is too long")
        if low < 0:
            raise UsageProblem(f"bad --seeds {spec!r}: seeds are non-negative integers")
        seeds.extend(s for s in range(low, high + 1) if s not in seeds)
    return seeds


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]Error:[/] {message}", markup=True)
    return typer.Exit(code=2)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@bench_app.command("pack")
def pack(
    nodes: Annotated[
        Path | None,
        typer.Option("--nodes", help=f"Node list CSV (default: {ALIBABA_NODES} in {WHERE})."),
    ] = None,
    pods: Annotated[
        Path | None,
        typer.Option("--pods", help=f"Pod list CSV (default: {ALIBABA_PODS} in {WHERE})."),
    ] = None,
    policy: Annotated[
        str, typer.Option("--policy", help="Packing policy (random, bestfit, fgd, gpupool...).")
    ] = "gpupool",
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds: 42-51 or 42,43,50-51.")] = "42-51",
    ratio: Annotated[float, typer.Option("--ratio", help="Inflate the pods to RATIO x GPU capacity.")] = 1.3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write a self-contained HTML report to FILE.")
    ] = None,
    skip_bad_rows: Annotated[
        bool, typer.Option("--skip-bad-rows", help="Skip (and count) malformed CSV rows instead of failing.")
    ] = False,
) -> None:
    """Packing quality on Alibaba's GPU trace: percent of GPUs allocated when the arrived GPU
    demand reaches 100% and 130% of capacity (the FGD paper's experiment)."""
    # Imported here so that `gpupool --help` does not pay for numpy.
    from gpupool.packing.alibaba import LoadError, load_nodes, load_pods
    from gpupool.packing.experiment import run_pack
    from gpupool.packing.policies import UnknownPolicyError, policy_names

    nodes = nodes or trace_file(ALIBABA_NODES)
    pods = pods or trace_file(ALIBABA_PODS)
    try:
        seed_list = parse_seeds(seeds)
        if not ratio > 0 or ratio > 100:
            raise UsageProblem(f"bad --ratio {ratio}: give a positive number such as 1.3")
        if policy not in policy_names():
            raise UnknownPolicyError(policy)
        node_table = load_nodes(nodes, skip_bad=skip_bad_rows)
        pod_table = load_pods(pods, skip_bad=skip_bad_rows)
        if node_table.total_gpus == 0:
            raise UsageProblem(f"{nodes}: no node has a GPU, so there is nothing to pack")
    except (UsageProblem, LoadError, UnknownPolicyError) as exc:
        raise _fail(str(exc)) from None

    err = Console(stderr=True, highlight=False)
    for loaded in (node_table, pod_table):
        if loaded.skipped:
            first = loaded.skipped[0]
            err.print(
                f"Skipped {len(loaded.skipped)} bad row(s) of {loaded.file} "
                f"(first: line {first.line}: {first.what})",
                markup=False,
            )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        task = progress.add_task(f"{policy} seed {seed_list[0]}", total=len(seed_list) * 1000)
        finished: list[int] = []

        def on_progress(seed: int, done: int, total: int) -> None:
            if done == total:
                finished.append(seed)
            progress.update(
                task,
                completed=len(finished) * 1000 + (0 if done == total else done * 1000 // max(total, 1)),
                description=f"{policy} seed {seed}",
            )

        try:
            result = run_pack(node_table, pod_table, policy, seed_list, ratio, progress=on_progress)
        except UnknownPolicyError as exc:
            raise _fail(str(exc)) from None

    if report is not None:
        from gpupool.packing.report import html_report

        command = shlex.join(["gpupool", *sys.argv[1:]]) if sys.argv else ""
        generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        try:
            report.write_text(html_report(result, command=command, generated=generated), encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write the report {report}: {exc.strerror}") from None

    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return

    out = Console(highlight=False)
    table = Table(title=f"bench pack: {policy} on {Path(result.pods_file).name} (ratio {ratio:g})")
    table.add_column("seed", justify="right")
    table.add_column("alloc % @100", justify="right")
    table.add_column("alloc % @130", justify="right")
    table.add_column("failed pods", justify="right")
    table.add_column("pods", justify="right")
    table.add_column("seconds", justify="right")
    for s in result.per_seed:
        table.add_row(
            str(s.seed),
            _fmt(s.alloc_pct_at_100),
            _fmt(s.alloc_pct_at_130),
            str(s.failed_pods),
            str(s.pods),
            f"{s.seconds:.1f}",
        )
    table.add_section()
    table.add_row(
        "mean",
        _fmt(result.alloc_pct_at_100),
        _fmt(result.alloc_pct_at_130),
        f"{sum(s.failed_pods for s in result.per_seed) / len(result.per_seed):.1f}",
        "",
        f"{result.seconds:.1f}",
        style="bold",
    )
    out.print(table)
    if report is not None:
        out.print(f"Report written to {report}", markup=False)


_LOAD = ServeLoad()  # the defaults of `bench serve`


@bench_app.command("serve")
def serve(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write DIR/bench-serve.png: replicas and load over time.")
    ] = None,
    only: Annotated[str | None, typer.Option("--only", help="Run only one: gpupool or ray_serve.")] = None,
    batch_backlog: Annotated[
        bool,
        typer.Option("--batch-backlog", help="gpupool run: fill root.batch with one-GPU jobs first."),
    ] = False,
    cluster: Annotated[
        str, typer.Option("--cluster", help="Local Ray cluster of each run, COUNTxTYPE:GPUS,...")
    ] = DEFAULT_CLUSTER,
    low_rate: Annotated[
        float, typer.Option("--low-rate", help="Requests/s of the low phases.")
    ] = _LOAD.low_rate,
    peak_rate: Annotated[
        float, typer.Option("--peak-rate", help="Requests/s of the peak.")
    ] = _LOAD.peak_rate,
    low_seconds: Annotated[
        float, typer.Option("--low-seconds", help="The first low phase (s).")
    ] = _LOAD.low_seconds,
    peak_seconds: Annotated[float, typer.Option("--peak-seconds", help="The peak (s).")] = _LOAD.peak_seconds,
    tail_seconds: Annotated[
        float, typer.Option("--tail-seconds", help="The low phase after the peak (s).")
    ] = _LOAD.tail_seconds,
    arrivals: Annotated[str, typer.Option("--arrivals", help="poisson or uniform.")] = _LOAD.arrivals,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the Poisson arrivals.")] = _LOAD.seed,
    work_ms: Annotated[
        float, typer.Option("--work-ms", help="Simulated inference time of a request (ms).")
    ] = _LOAD.work_ms,
    gpus: Annotated[float, typer.Option("--gpus", help="GPUs per replica (logical).")] = _LOAD.gpus,
    min_replicas: Annotated[int, typer.Option("--min-replicas")] = _LOAD.min_replicas,
    max_replicas: Annotated[
        int, typer.Option("--max-replicas", help="Also the deployment queue's max, in replicas.")
    ] = _LOAD.max_replicas,
    target_ongoing_requests: Annotated[
        float, typer.Option("--target-ongoing-requests")
    ] = _LOAD.target_ongoing_requests,
    max_ongoing_requests: Annotated[int, typer.Option("--max-ongoing-requests")] = _LOAD.max_ongoing_requests,
    upscale_delay: Annotated[float, typer.Option("--upscale-delay", help="Seconds.")] = _LOAD.upscale_delay,
    downscale_delay: Annotated[
        float, typer.Option("--downscale-delay", help="Seconds.")
    ] = _LOAD.downscale_delay,
    look_back: Annotated[
        float, typer.Option("--look-back", help="Seconds of load averaged.")
    ] = _LOAD.look_back,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", help="Requests in flight at most.")
    ] = _LOAD.max_in_flight,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may take.")] = _LOAD.timeout,
    serving_guarantee: Annotated[
        int | None,
        typer.Option(
            "--serving-guarantee",
            help="gpupool run: replicas root.serving is guaranteed (default: what the peak needs).",
        ),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the runs' data dirs and logs.")] = False,
) -> None:
    """Serving under load: the demo model autoscaled by gpupool and by Ray Serve's own autoscaler,
    the same open-loop load (low, peak, low) on loopback; latency, errors, GPU-seconds, replicas."""
    from gpupool.bench.api import BenchError
    from gpupool.bench.serve_runs import RUNS, RunError, cluster_gpus, run_both

    load = ServeLoad(
        low_rate=low_rate,
        peak_rate=peak_rate,
        low_seconds=low_seconds,
        peak_seconds=peak_seconds,
        tail_seconds=tail_seconds,
        arrivals=arrivals,
        seed=seed,
        work_ms=work_ms,
        gpus=gpus,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_ongoing_requests=target_ongoing_requests,
        max_ongoing_requests=max_ongoing_requests,
        upscale_delay=upscale_delay,
        downscale_delay=downscale_delay,
        look_back=look_back,
        max_in_flight=max_in_flight,
        timeout=timeout,
        serving_guarantee=serving_guarantee,
    )
    try:
        load.check()
        if only is not None and only not in RUNS:
            raise UsageProblem(f"--only must be one of {', '.join(RUNS)}, not {only!r}")
        if only == "ray_serve" and batch_backlog:
            raise UsageProblem("--batch-backlog is a variant of the gpupool run; not with --only ray_serve")
        if cluster_gpus(cluster) < max_replicas * gpus:
            raise UsageProblem(f"--cluster {cluster!r} has fewer GPUs than --max-replicas x --gpus")
        if plot is not None:
            try:
                plot.mkdir(parents=True, exist_ok=True)  # now, not after minutes of load
            except OSError as exc:
                raise UsageProblem(f"--plot {plot}: {exc.strerror or exc}") from None
    except (BenchError, UsageProblem, RunError) as exc:
        raise _fail(str(exc)) from None

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    # Ray prints what its processes report on stdout: kept off the figures (and the JSON).
    with contextlib.redirect_stdout(sys.stderr):
        out = run_both(
            load,
            cluster,
            [only] if only else list(RUNS),
            echo=lambda line: err.print(line, markup=False),
            backlog=batch_backlog,
            keep=keep,
        )
    runs: dict[str, dict[str, Any] | None] = {name: out[name] for name in RUNS}
    failed = {name: run["error"] for name, run in runs.items() if run and run.get("error")}
    for name, why in failed.items():
        err.print(f"Error: {name} run: {why}", markup=False)
    if plot is not None:
        from gpupool.bench.serve_runs import write_plot

        try:
            err.print(f"Plot written to {write_plot(plot, runs, load)}", markup=False)
        except OSError as exc:
            raise _fail(f"cannot write the plot in {plot}: {exc.strerror or exc}") from None
    if as_json:
        typer.echo(json.dumps(out))
    else:
        _print_serve(runs, out["queue_max_replicas"])
    if failed or any(run and run.get("errors") for run in runs.values()):
        raise typer.Exit(1)


_SERVE_ROWS = (
    ("p50 latency (ms)", "p50_ms"),
    ("p99 latency (ms)", "p99_ms"),
    ("requests", "requests"),
    ("errors", "errors"),
    ("GPU-seconds", "gpu_seconds"),
    ("peak replicas", "peak_replicas"),
    ("replicas the peak needs", "needed_replicas"),
    ("scale-up (s from the peak's start)", "scale_up_s"),
    ("achieved rate (requests/s)", "achieved_rate"),
    ("batch GPUs held (peak)", "batch_gpus_peak"),
    ("batch GPU-seconds", "batch_gpu_seconds"),
)


def _print_serve(runs: dict[str, dict[str, Any] | None], queue_max: int) -> None:
    shown = {name: run for name, run in runs.items() if run is not None}
    table = Table(title=f"bench serve: the same load, two autoscalers (queue max {queue_max} replicas)")
    table.add_column("figure")
    for name in shown:
        table.add_column(name, justify="right")
    keys = [(label, key) for label, key in _SERVE_ROWS if any(key in run for run in shown.values())]
    for label, key in keys:
        table.add_row(label, *("-" if run.get(key) is None else str(run[key]) for run in shown.values()))
    phases: dict[str, Any] = next((run["phases"] for run in shown.values() if run.get("phases")), {})
    for phase in phases:
        table.add_row(
            f"p99 of phase {phase} (ms)",
            *(str(((run.get("phases") or {}).get(phase) or {}).get("p99_ms", "-")) for run in shown.values()),
        )
    Console(highlight=False).print(table)
