"""``gpupool notebook start | open | status | stop | resume`` and ``gpupool notebooks``.

Interactive notebook sessions, through the SDK (``gpupool.Client``) like the other service
commands, with the same ``--url`` / ``--token`` / ``--data-dir`` and ``--json`` (the session as
the API gives it: name, state, url, queue, gpus, node and the rest). ``notebooks_app`` holds the
top-level ``notebooks``; ``notebook_app`` is the ``gpupool notebook`` group.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gpupool.cli.deploy_cmd import _seconds
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
    _state,
    _when,
)
from gpupool.client import Client
from gpupool.notebook_api import NotebookOut

notebooks_app = typer.Typer(help="Notebook sessions.")
notebook_app = typer.Typer(help="One notebook session.", no_args_is_help=True)

WAIT_TIMEOUT = 600.0  # seconds `start` and `resume` wait for the server by default


def _finish(gp: Client, nb: NotebookOut, wait: bool, timeout: float, json_output: bool) -> None:
    """Wait for the session (if asked), then print it: the URL once it runs."""
    if nb.notice and not json_output:
        _console().print(f"Note: {nb.notice}", markup=False, soft_wrap=True)
    if wait:
        try:
            nb = gp.wait_notebook(nb.name, timeout=timeout)
        except TimeoutError as exc:
            typer.echo(f"Error: {exc}; follow it with `gpupool notebook status {nb.name}`", err=True)
            raise typer.Exit(1) from None
    if json_output:
        _dump(nb)
    elif nb.state == "running":
        gpus = f" GPU {','.join(map(str, nb.gpu_ids))}" if nb.gpu_ids else ""
        _console().print(f"{nb.name} running in {nb.queue} on {nb.node}{gpus}: {nb.url}", markup=False)
    else:
        _console().print(f"{nb.name} ({nb.id}) {_state(nb.state)}: {nb.reason}", soft_wrap=True)
    if nb.state == "failed":
        raise typer.Exit(1)


@notebook_app.command("start")
def start_command(
    name: Annotated[str, typer.Argument(help="Session name (unique).")],
    queue: Annotated[str, typer.Option("--queue", "-q", help="Leaf queue, e.g. root.ml.research.")],
    size: Annotated[str | None, typer.Option("--size", "-s", help="Standard size.")] = None,
    gpus: Annotated[
        float | None, typer.Option("--gpus", help="GPUs (instead of --size): whole (1) or a share (0.25).")
    ] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="GPU type (with --gpus).")] = None,
    cpu: Annotated[float | None, typer.Option("--cpu", help="Cores (with --gpus; default 1).")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory (with --gpus; default 4Gi).")] = None,
    idle_timeout: Annotated[
        str | None, typer.Option("--idle-timeout", help="Stop after this long idle (30m).")
    ] = None,
    max_lifetime: Annotated[
        str | None, typer.Option("--max-lifetime", help="Stop after this long in all (8h).")
    ] = None,
    preemptible: Annotated[
        bool, typer.Option("--preemptible", help="May be preempted when its queue is above its guarantee.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until its server answers.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = WAIT_TIMEOUT,
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Start a notebook session: a Jupyter server on GPUs of the queue; prints its URL."""
    body: dict[str, object] = {"name": name, "queue": queue, "preemptible": preemptible}
    optional = {
        "size": size,
        "gpus": None if gpus is None else _gpus_wire(gpus),
        "gpu_type": gpu_type,
        "cpu": cpu,
        "memory": memory,
        "idle_timeout": _seconds(idle_timeout, "--idle-timeout"),
        "max_lifetime": _seconds(max_lifetime, "--max-lifetime"),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with _client(url, token, data_dir) as gp:
        nb = gp.start_notebook_raw(body)
        _finish(gp, nb, wait, timeout, json_output)


@notebook_app.command("open")
def open_command(
    name: Annotated[str, typer.Argument(help="Session name.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Print the session's URL (open it signed in to the portal, or with `Authorization: Bearer`)."""
    with _client(url, token, data_dir) as gp:
        nb = gp.notebook(name)
    if json_output:
        _dump(nb)
        return
    if nb.url is None:
        typer.echo(f"Error: {nb.name} is {nb.state}: {nb.reason}", err=True)
        if nb.state == "stopped":
            typer.echo(f"  Hint: resume it with `gpupool notebook resume {nb.name}`", err=True)
        raise typer.Exit(1)
    typer.echo(nb.url)


@notebook_app.command("status")
def status_command(
    name: Annotated[str, typer.Argument(help="Session name.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """One session: state and why, URL, queue, GPUs, node, history."""
    with _client(url, token, data_dir) as gp:
        nb = gp.notebook(name)
    if json_output:
        _dump(nb)
        return
    console = _console()
    console.print(f"[bold]{nb.name}[/] ({nb.id})  {_state(nb.state)}  {nb.reason}", soft_wrap=True)
    gpus = f" GPU {','.join(map(str, nb.gpu_ids))}" if nb.gpu_ids else ""
    console.print(
        f"  user {nb.user}  queue {nb.queue or '-'}  gpus {nb.gpus:g}  node {nb.node or '-'}{gpus}",
        markup=False,
    )
    console.print(f"  url: {nb.url or '-'}", markup=False)
    if nb.ends_at is not None:
        console.print(f"  max lifetime ends: {_when(nb.ends_at)}", markup=False)
    if nb.warning is not None:
        console.print(
            f"  [bold yellow]warning[/] ({nb.reclaim_why}, at {_when(nb.reclaim_at)}): {escape(nb.warning)}",
            soft_wrap=True,
        )
    console.print(_history(nb.history))


@notebook_app.command("stop")
def stop_command(
    name: Annotated[str, typer.Argument(help="Session name.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Stop the session: its server stops and its GPUs are freed; its files are kept."""
    with _client(url, token, data_dir) as gp:
        nb = gp.stop_notebook(name)
    if json_output:
        _dump(nb)
        return
    _console().print(f"{nb.name} ({nb.id}) {_state(nb.state)}: {nb.reason}", soft_wrap=True)


@notebook_app.command("resume")
def resume_command(
    name: Annotated[str, typer.Argument(help="Session name.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until its server answers.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = WAIT_TIMEOUT,
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Start a stopped session again with its files; prints its URL."""
    with _client(url, token, data_dir) as gp:
        nb = gp.resume_notebook(name)
        _finish(gp, nb, wait, timeout, json_output)


@notebooks_app.command("notebooks")
def notebooks_command(
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Your notebook sessions (and those of queues you administer): state, queue, GPUs, node, URL."""
    with _client(url, token, data_dir) as gp:
        found = gp.notebooks()
    if json_output:
        _dump(found)
        return
    table = Table("name", "state", "user", "queue", "gpus", "node", "url", "ends", "warning")
    for nb in found:
        warning = f"{nb.reclaim_why} reclaim at {_when(nb.reclaim_at)}" if nb.reclaim_at is not None else "-"
        table.add_row(
            nb.name,
            _state(nb.state),
            nb.user,
            nb.queue or "-",
            f"{nb.gpus:g}",
            nb.node or "-",
            nb.url or "-",
            _when(nb.ends_at) if nb.ends_at is not None else "-",
            warning,
        )
    _console().print(table)
