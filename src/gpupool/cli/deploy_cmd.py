"""``gpupool deploy | deployments | deployment status | undeploy``: model deployments.

Like the other service commands they talk to the control plane through the SDK
(``gpupool.Client``), with the same ``--url`` / ``--token`` / ``--data-dir`` and ``--json``.
``deploy_app`` holds the top-level commands; ``deployment_app`` is the ``gpupool deployment``
group (``status``).
"""

from __future__ import annotations

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
    working_dir: Annotated[str | None, typer.Option("--working-dir")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE (repeat).")] = None,
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
        "max_replicas": max_replicas,
        "scale_to_zero_after": _seconds(scale_to_zero_after, "--scale-to-zero-after"),
        "working_dir": working_dir,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with _client(url, token, data_dir) as gp:
        d = gp.deploy_raw(body)
    if json_output:
        _dump(d)
        return
    if d.notice:
        _console().print(f"Note: {d.notice}", markup=False)
    where = d.url or "no URL yet (serving on Ray is still to come)"
    _console().print(
        f"{d.name} ({d.id}) {_state(d.state)} in {d.queue or '-'}: "
        f"{d.min_replicas}..{d.max_replicas} replicas; {where}"
    )


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
    console.print(f"  desired {d.desired}, running {d.running}; url: {d.url or '-'}")
    if d.held:
        console.print(f"  {d.held}", markup=False)
    for r in d.replicas:
        extra = " (extra)" if r.extra else ""
        if r.state == "placed":
            gpus = f" GPU {','.join(map(str, r.gpu_ids))}" if r.gpu_ids else ""
            console.print(f"    {r.member}{extra}: on {r.node}{gpus}", markup=False)
        else:
            console.print(f"    {r.member}{extra}: waiting: {r.why or '-'}", markup=False)
    table = Table("at", "from", "to", "reason", title="history", title_justify="left")
    for t in d.history:
        table.add_row(_when(t.at), t.old or "-", _state(t.new), t.reason)
    console.print(table)


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
