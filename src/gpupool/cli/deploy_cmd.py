"""``gpupool deploy | deployments | deployment status | undeploy``: model deployments.

Like the other service commands they talk to the control plane through the SDK
(``gpupool.Client``), with the same ``--url`` / ``--token`` / ``--data-dir`` and ``--json``.
``deploy_app`` holds the top-level commands; ``deployment_app`` is the ``gpupool deployment``
group (``status``).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from gpupool.api import DeploymentOut
from gpupool.cli.service_cmd import (
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    _client,
    _console,
    _dump,
    _gpus_wire,
    _history,
    _pairs,
    _res,
    _state,
    _when,
)
from gpupool.core.configerror import DurationError, parse_duration

deploy_app = typer.Typer(help="Model deployments.")
deployment_app = typer.Typer(help="One model deployment.", no_args_is_help=True)


def _seconds(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError as exc:
        typer.echo(f"Error: {option}: {exc}", err=True)
        raise typer.Exit(2) from None


@deploy_app.command("deploy")
def deploy_command(
    name: Annotated[str, typer.Argument(help="Deployment name (unique among live deployments).")],
    import_path: Annotated[
        str, typer.Option("--import-path", help="module:attribute of the Ray Serve application.")
    ],
    queue: Annotated[str, typer.Option("--queue", "-q", help="Leaf queue, e.g. root.ml.serving.")],
    size: Annotated[str | None, typer.Option("--size", "-s", help="Standard size of one replica.")] = None,
    gpus: Annotated[
        float | None,
        typer.Option("--gpus", help="GPUs per replica (instead of --size): whole (1) or a share (0.25)."),
    ] = None,
    gpu_type: Annotated[
        str | None, typer.Option("--gpu-type", help="GPU type of a replica (with --gpus).")
    ] = None,
    cpu: Annotated[
        float | None, typer.Option("--cpu", help="Cores per replica (with --gpus; default 1).")
    ] = None,
    memory: Annotated[
        str | None, typer.Option("--memory", help="Memory per replica (with --gpus; default 4Gi).")
    ] = None,
    min_replicas: Annotated[int, typer.Option("--min-replicas")] = 1,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="Default: --min-replicas.")
    ] = None,
    target: Annotated[
        float, typer.Option("--target-ongoing-requests", help="Ongoing requests per replica to scale at.")
    ] = 2.0,
    scale_to_zero_after: Annotated[
        str | None, typer.Option("--scale-to-zero-after", help="Go to 0 replicas after this long idle (10m).")
    ] = None,
    upscale_delay: Annotated[
        str | None, typer.Option("--upscale-delay", help="Load above target this long before adding (30s).")
    ] = None,
    downscale_delay: Annotated[
        str | None,
        typer.Option("--downscale-delay", help="Load below target this long before removing."),
    ] = None,
    look_back: Annotated[
        str | None, typer.Option("--look-back", help="Load is averaged over this long (30s).")
    ] = None,
    working_dir: Annotated[str | None, typer.Option("--working-dir")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE (repeat).")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until a replica answers (or it fails).")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 600.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Deploy a model: a Ray Serve app whose replicas are GPU allocations in the queue."""
    body: dict[str, object] = {
        "name": name,
        "import_path": import_path,
        "queue": queue,
        "min_replicas": min_replicas,
        "target_ongoing_requests": target,
        "env": _pairs(env or [], "--env"),
    }
    if size is not None:
        body["size"] = size
    if gpus is not None:
        body["gpus"] = _gpus_wire(gpus)
    optional = {
        "gpu_type": gpu_type,
        "cpu": cpu,
        "memory": memory,
        "max_replicas": max_replicas,
        "scale_to_zero_after": _seconds(scale_to_zero_after, "--scale-to-zero-after"),
        "upscale_delay": _seconds(upscale_delay, "--upscale-delay"),
        "downscale_delay": _seconds(downscale_delay, "--downscale-delay"),
        "look_back": _seconds(look_back, "--look-back"),
        "working_dir": working_dir,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with _client(url, token, data_dir) as gp:
        d = gp.deploy_raw(body)
        if d.notice and not json_output:
            _console().print(f"Note: {d.notice}", markup=False)
        if wait:
            d = _wait_serving(gp, d, timeout)
    if json_output:
        _dump(d)
    elif d.state not in ("failed", "cancelled"):
        where = d.url or "no URL (this control plane's executor serves none)"
        _console().print(
            f"{d.name} ({d.id}) {_state(d.state)} in {d.queue or '-'}: "
            f"{d.min_replicas}..{d.max_replicas} replicas; {where}",
            soft_wrap=True,
        )
    if d.state in ("failed", "cancelled"):
        _console().print(f"Error: {d.name} {d.state}: {d.reason}", markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _parked(d: DeploymentOut) -> bool:
    """Scaled to zero: it served, and the next request starts a replica."""
    return d.state == "preempted" and d.reason.startswith("scaled to zero")


def _wait_serving(gp: object, d: DeploymentOut, timeout: float) -> DeploymentOut:
    """Poll until the deployment runs (a replica answers), ends, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout  # noqa: TID251 - the CLI waits on the server in real time
    while d.state not in ("running", "failed", "cancelled", "succeeded") and not _parked(d):
        if time.monotonic() > deadline:  # noqa: TID251
            _console().print(
                f"Error: {d.name} is still {d.state} after {timeout:g}s: {d.held or d.reason}; "
                f"follow it with `gpupool deployment status {d.name}`",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        time.sleep(0.5)
        d = gp.deployment(d.name)  # type: ignore[attr-defined]
    return d


@deploy_app.command("deployments")
def deployments_command(
    include_finished: Annotated[bool, typer.Option("--all", help="Undeployed ones too.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Live deployments: state, queue, replicas running of desired, per-replica shape."""
    with _client(url, token, data_dir) as gp:
        found = gp.deployments(include_finished=include_finished)
    if json_output:
        _dump(found)
        return
    table = Table("name", "id", "state", "queue", "replicas", "min..max", "replica", "app")
    for d in found:
        table.add_row(
            d.name,
            d.id,
            _state(d.state),
            d.queue or "-",
            f"{d.running}/{d.desired}",
            f"{d.min_replicas}..{d.max_replicas}",
            _res(d.resources),
            d.import_path,
        )
    _console().print(table)


@deployment_app.command("status")
def status_command(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """One deployment: its spec, replicas (node, GPUs, or why they wait), desired vs running, history."""
    with _client(url, token, data_dir) as gp:
        d = gp.deployment(name)
    if json_output:
        _dump(d)
        return
    _print_deployment(d)


def _print_deployment(d: DeploymentOut) -> None:
    console = _console()
    console.print(f"[bold]{d.name}[/] ({d.id})  {_state(d.state)}  {d.reason}", markup=True)
    console.print(f"  app {d.import_path}  revision {d.revision}  user {d.user}  queue {d.queue or '-'}")
    types = f" of {'/'.join(d.gpu_types)}" if d.gpu_types else ""
    console.print(f"  replica: {_res(d.resources)}{types}" + (f" (size {d.size})" if d.size else ""))
    zero = f", to 0 after {d.scale_to_zero_after:g}s idle" if d.scale_to_zero_after is not None else ""
    console.print(
        f"  replicas {d.min_replicas}..{d.max_replicas}, target {d.target_ongoing_requests:g} ongoing per "
        f"replica, up after {d.upscale_delay:g}s, down after {d.downscale_delay:g}s{zero}"
    )
    console.print(f"  desired {d.desired}, running {d.running}, ready {d.ready}; url: {d.url or '-'}")
    if d.scale_reason:
        console.print(f"  autoscaling: {d.scale_reason}", markup=False, soft_wrap=True)
    if d.stats is not None:
        s = d.stats
        lat = (
            f"p50 {s.p50_ms:g} ms, p99 {s.p99_ms:g} ms"
            if s.p50_ms is not None and s.p99_ms is not None
            else "-"
        )
        load = f"in flight {s.in_flight:g}, queued {s.queued:g}"
        console.print(f"  requests {s.requests}, errors {s.errors}, {load}; {lat}")
    if d.held:
        console.print(f"  {d.held}", markup=False, soft_wrap=True)
    for r in d.replicas:
        extra = " (extra)" if r.extra else ""
        if r.state in ("placed", "draining"):
            gpus = f" GPU {','.join(map(str, r.gpu_ids))}" if r.gpu_ids else ""
            drains = " (draining)" if r.state == "draining" else ""
            console.print(f"    {r.member}{extra}: on {r.node}{gpus}{drains}", markup=False)
        else:
            console.print(f"    {r.member}{extra}: waiting: {r.why or '-'}", markup=False)
    if d.decisions:
        scaled = Table("at", "from", "to", "reason", title="autoscaling", title_justify="left")
        for x in d.decisions[-10:]:
            scaled.add_row(_when(x.at), str(x.old), str(x.new), x.reason)
        console.print(scaled)
    console.print(_history(d.history))


@deploy_app.command("undeploy")
def undeploy_command(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Undeploy: the replicas stop and their GPUs go back to the queue."""
    with _client(url, token, data_dir) as gp:
        d = gp.undeploy(name)
    if json_output:
        _dump(d)
        return
    _console().print(f"{d.name} ({d.id}) {_state(d.state)}: {d.reason}")
