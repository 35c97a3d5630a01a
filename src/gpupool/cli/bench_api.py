"""``gpupool bench api``: submissions and status reads against a running control plane."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from gpupool.bench.api import KINDS, MAX_SECONDS, ApiLoad, BenchError, run
from gpupool.cli.bench_cmd import bench_app
from gpupool.cli.service_cmd import DataDirOpt, JsonOpt, TokenOpt, UrlOpt
from gpupool.client import ClientConfigError, resolve_connection

_LOAD = ApiLoad()  # the option defaults


@bench_app.command("api")
def api(
    rate: float = typer.Option(_LOAD.rate, help="Requests per second, half submissions, half status reads."),
    seconds: float = typer.Option(_LOAD.seconds, help=f"How long to send them (at most {MAX_SECONDS:g})."),
    queue: str | None = typer.Option(
        _LOAD.queue, help="Queue of the submissions (default: placement rules)."
    ),
    gpus: int = typer.Option(_LOAD.gpus, help="GPUs each submitted workload asks for."),
    entrypoint: str = typer.Option(_LOAD.entrypoint, help="Command of each submitted workload."),
    cleanup: bool = typer.Option(_LOAD.cleanup, help="Cancel the submitted workloads afterwards."),
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a server on this machine (loopback only) and report rate, latencies, errors and losses."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        base, secret = resolve_connection(url, token, data_dir)
        load = ApiLoad(
            rate=rate, seconds=seconds, queue=queue, gpus=gpus, entrypoint=entrypoint, cleanup=cleanup
        )
        if not as_json:
            err.print(f"Sending {rate:g} requests/s to {base} for {seconds:g} s ...")
        result = run(base, secret, load)
    except (BenchError, ClientConfigError) as exc:
        err.print(f"[bold red]Error:[/] {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[bold red]Error:[/] cannot reach the control plane: {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result))
    else:
        _print(result)
    if result["errors"] or result["lost"]:
        raise typer.Exit(1)


def _print(result: dict[str, object]) -> None:
    table = Table(title=f"API load: {result['rate']:g} requests/s for {result['seconds']:g} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    p50, p99 = result["p50_ms"], result["p99_ms"]
    assert isinstance(p50, dict) and isinstance(p99, dict)
    table.add_row("achieved rate (requests/s)", str(result["achieved_rate"]))
    table.add_row("submissions accepted", str(result["submitted"]))
    for kind in KINDS:
        table.add_row(f"{kind} p50 / p99 (ms)", f"{p50[kind]} / {p99[kind]}")
    table.add_row("errors", str(result["errors"]))
    table.add_row("requests sent again (connection closed)", str(result["retries"]))
    table.add_row("lost submissions", str(result["lost"]))
    decision = result["decision_ms"]
    assert isinstance(decision, dict)
    table.add_row(
        "first decision p50 / p99 (ms)",
        f"{decision['p50']} / {decision['p99']} "
        f"({decision['sampled']} sampled, {decision['waiting']} waiting)",
    )
    Console().print(table)
    if result["first_error"]:
        Console(stderr=True).print(f"first error: {result['first_error']}")
