"""``gpupool up | submit | status | list | logs | cancel | why | queues | nodes | token``.

Every command except ``up`` and ``token`` talks to the control plane over HTTP through the SDK
(``gpupool.Client``). The server URL and token come from ``--url`` / ``--token``, else
GPUPOOL_URL / GPUPOOL_TOKEN, else the data dir of ``gpupool up`` (its ``server.json`` and
``admin.token``). Every command takes ``--json`` for machine-readable output.

``service_app`` holds the top-level commands (registered without a name, so they appear as
``gpupool submit``); ``token_app`` is the ``gpupool token`` group.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gpupool.api import LIST_MAX, TransitionOut, WorkloadOut
from gpupool.client import ApiError, Client, ClientConfigError
from gpupool.core.resources import MILLI_RESOURCES, format_quantity, from_gpus, is_milli
from gpupool.service.settings import DEFAULT_PORT, SESSION_CHECK_INTERVAL

service_app = typer.Typer(help="Run the control plane and work with workloads.")
token_app = typer.Typer(
    help="API tokens (written straight to the control plane's database).", no_args_is_help=True
)

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="GPUPOOL_URL", help="Control-plane URL.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="GPUPOOL_TOKEN", help="API token.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="GPUPOOL_DATA_DIR", help="Data dir of `gpupool up` (default ~/.gpupool)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

_STATE_STYLE = {
    "pending": "yellow",
    "admitted": "cyan",
    "running": "green",
    "preempting": "magenta",
    "preempted": "magenta",
    "succeeded": "bold green",
    "failed": "bold red",
    "cancelled": "dim",
    "starting": "cyan",  # a notebook session's server not answering yet
    "stopped": "dim",  # a notebook session stopped (its files kept)
}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@contextmanager
def _client(url: str | None, token: str | None, data_dir: Path | None) -> Iterator[Client]:
    """A connected SDK client; API and connection errors become messages and exit codes."""
    try:
        client = Client(url, token, data_dir=data_dir)
    except ClientConfigError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with client:
            yield client
    except ApiError as exc:
        typer.echo(f"Error: {exc.render()}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"Error: cannot reach the control plane at {client.url}: {exc}", err=True)
        typer.echo("  Hint: start it with `gpupool up`, or pass --url / set GPUPOOL_URL", err=True)
        raise typer.Exit(2) from None


def _dump(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    typer.echo(json.dumps(data, indent=2))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _res(res: dict[str, int | float]) -> str:
    """A wire resource map for people: GPU quantities come in GPUs, the rest in core units."""
    if not res:
        return "-"

    def one(k: str, v: float) -> str:
        if is_milli(k) and k not in MILLI_RESOURCES:
            return format_quantity(k, from_gpus({k: v})[k])
        return format_quantity(k, int(v))

    return ", ".join(f"{k}={one(k, v)}" for k, v in sorted(res.items()))


def _gpus_of(res: dict[str, int | float]) -> str:
    """The GPUs of a wire resource map (``2``, ``0.75``), ``-`` for none."""
    gpus = res.get("gpu", 0)
    return f"{gpus:g}" if gpus else "-"


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, '')}]{state}[/]"


def _history(history: list[TransitionOut]) -> Table:
    """A workload's transitions as the table ``status`` commands print."""
    table = Table("at", "from", "to", "reason", title="history", title_justify="left")
    for t in history:
        table.add_row(_when(t.at), t.old or "-", _state(t.new), t.reason)
    return table


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.echo(f"Error: {option} {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(2)
        out[key] = value
    return out


# ---- up -------------------------------------------------------------------------------------


def up_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Queue configuration (YuniKorn queues.yaml); default: packaged."),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="Local Ray cluster, COUNTxTYPE:GPUS,... (default 2xH100:4,2xA100:4)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="HTTP port on 127.0.0.1.")] = DEFAULT_PORT,
    data_dir: DataDirOpt = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Use this Ray cluster instead of starting a local one."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            envvar="GPUPOOL_DATABASE_URL",
            help="Database URL (default: SQLite in the data dir).",
        ),
    ] = None,
    session_check_interval: Annotated[
        float,
        typer.Option(
            "--session-check-interval",
            min=0.1,
            help="Seconds between two idle checks of the running notebook sessions.",
        ),
    ] = SESSION_CHECK_INTERVAL,
) -> None:
    """Start the control plane (API, portal, metrics) and a local multi-node Ray cluster; Ctrl-C stops all."""
    from gpupool.adapters.ray.cluster import ClusterError
    from gpupool.configfile import ConfigError
    from gpupool.service.runner import StartError, up
    from gpupool.service.settings import ServiceSettings, default_data_dir

    settings = ServiceSettings(
        data_dir=data_dir or default_data_dir(),
        database_url=database,
        config_path=config,
        port=port,
        session_check_interval=session_check_interval,
    )
    try:
        up(settings, cluster_spec=cluster, ray_address=ray_address, echo=typer.echo)
    except ConfigError as exc:
        for line in exc.lines():
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    except StartError as exc:
        typer.echo(f"Error: {exc}", err=True)
        typer.echo(f"Hint: {exc.hint}", err=True)
        raise typer.Exit(2) from None
    except ClusterError as exc:  # e.g. another `gpupool up` runs this data dir's cluster
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


service_app.command("up")(up_command)


# ---- workloads ------------------------------------------------------------------------------


@service_app.command("submit")
def submit_command(
    name: Annotated[str, typer.Argument(help="Workload name.")],
    entrypoint: Annotated[str, typer.Option("--entrypoint", "-e", help="Command to run.")],
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", help="Leaf queue, e.g. root.research.")
    ] = None,
    size: Annotated[
        str | None, typer.Option("--size", "-s", help="Standard size: small, medium, large ...")
    ] = None,
    gpus: Annotated[
        float | None,
        typer.Option(
            "--gpus", help="GPUs per member (instead of --size): whole (2) or a share of one (0.25)."
        ),
    ] = None,
    members: Annotated[int, typer.Option("--members", "-n", help="Members (a gang when > 1).")] = 1,
    gpu_type: Annotated[
        list[str] | None, typer.Option("--gpu-type", help="Allowed GPU type (repeat).")
    ] = None,
    cpu: Annotated[float, typer.Option("--cpu", help="Cores per member.")] = 1.0,
    memory: Annotated[str, typer.Option("--memory", help="Memory per member, e.g. 16Gi.")] = "4Gi",
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSON or YAML request body (options override it).")
    ] = None,
    priority: Annotated[int, typer.Option("--priority")] = 0,
    no_gang: Annotated[bool, typer.Option("--no-gang", help="Members may start one by one.")] = False,
    span_regions: Annotated[
        bool,
        typer.Option("--span-regions", help="Members may spread over several regions (default: one)."),
    ] = False,
    disruption: Annotated[str, typer.Option("--disruption", help="never or checkpoint.")] = "checkpoint",
    grace: Annotated[
        float | None,
        typer.Option("--grace", help="Seconds to checkpoint before being stopped (default: the server's)."),
    ] = None,
    working_dir: Annotated[str | None, typer.Option("--working-dir")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE (repeat).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Placement tag KEY=VALUE (repeat).")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it finishes; exit 1 unless it succeeded.")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Submit a workload."""
    body: dict[str, Any] = {}
    if file is not None:
        import yaml

        loaded = yaml.safe_load(file.read_text())
        if not isinstance(loaded, dict):
            typer.echo(f"Error: {file}: expected a mapping (the request body)", err=True)
            raise typer.Exit(2)
        body.update(loaded)
    body.update(name=name, entrypoint=entrypoint, priority=priority)
    body["disruption"] = {"policy": disruption} | ({"grace": grace} if grace is not None else {})
    if queue is not None:
        body["queue"] = queue
    if size is not None:
        body["size"] = size
        body.pop("task_groups", None)
    elif gpus is not None or ("task_groups" not in body and "size" not in body):
        body.pop("size", None)
        body["task_groups"] = [
            {
                "name": "worker",
                "members": members,
                "gpus": _gpus_wire(gpus),
                "gpu_types": gpu_type or [],
                "cpu": cpu,
                "memory": memory,
            }
        ]
    if no_gang:
        body["gang"] = False
    if span_regions:
        body["span_regions"] = True
    for key, value in (("working_dir", working_dir), ("idempotency_key", idempotency_key)):
        if value is not None:
            body[key] = value
    if env:
        body["env"] = {**body.get("env", {}), **_pairs(env, "--env")}
    if tag:
        body["tags"] = {**body.get("tags", {}), **_pairs(tag, "--tag")}
    with _client(url, token, data_dir) as gp:
        w = gp.submit_raw(body)
        notice = w.notice
        if notice and not json_output:
            _console().print(f"Note: {notice}", markup=False)
        if wait:
            w = gp.wait(w.id)
    if json_output:
        _dump(w)
    else:
        _console().print(f"{w.id} {_state(w.state)} in {w.queue or '-'}: {w.reason}")
    if wait and w.state != "succeeded":
        raise typer.Exit(1)


def _gpus_wire(gpus: float | None) -> int | float:
    """``--gpus`` as the API takes it: an int when whole (2), else the share as given (0.25)."""
    if gpus is None:
        return 0
    return int(gpus) if gpus.is_integer() else gpus


@service_app.command("status")
def status_command(
    workload_id: Annotated[str, typer.Argument(help="Workload id.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show one workload: its spec, placement and every transition with its reason."""
    with _client(url, token, data_dir) as gp:
        w = gp.get(workload_id)
    if json_output:
        _dump(w)
        return
    _print_workload(w)


def _gpus_at(w: WorkloadOut, member: str) -> str:
    """`` GPU 2`` (``GPUs 0,1``; `` GPU 2 (0.25)`` for a share): the indices the member's process sees."""
    ids = w.gpu_ids.get(member)
    if not ids:
        return ""
    group = next((g for g in w.task_groups if member.rpartition("-")[0] == g.name), None)
    gpus = group.resources.get("gpu", 0) if group else 0
    share = f" ({gpus:g} of it)" if isinstance(gpus, float) and 0 < gpus < 1 else ""
    return f" GPU{'s' if len(ids) > 1 else ''} {','.join(map(str, ids))}{share}"


def _print_workload(w: WorkloadOut) -> None:
    console = _console()
    console.print(f"[bold]{w.id}[/] {w.name}  {_state(w.state)}  {w.reason}")
    console.print(f"  user {w.user}  queue {w.queue or '-'}  priority {w.priority}  attempt {w.attempt}")
    console.print(
        f"  disruption {w.disruption.policy} (grace {w.disruption.grace:g}s)  gang {w.gang_style}"
        + ("  spans regions" if w.span_regions else "")
    )
    for g in w.task_groups:
        types = f" of {'/'.join(g.gpu_types)}" if g.gpu_types else ""
        console.print(f"  {g.name}: {g.members} x {_res(g.resources)}{types}")
    if w.placement:
        console.print("  placement: " + ", ".join(f"{m}@{n}{_gpus_at(w, m)}" for m, n in w.placement.items()))
    console.print(f"  entrypoint: {w.entrypoint}")
    table = _history(w.history)
    console.print(table)


@service_app.command("list")
def list_command(
    state: Annotated[str | None, typer.Option("--state", help="Comma-separated states.")] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=LIST_MAX, help="Show at most this many (newest first).")
    ] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List workloads you may see (yours, and those in queues you administer), newest first."""
    with _client(url, token, data_dir) as gp:
        # One more than shown tells whether more exist (the API's limit is at most LIST_MAX).
        items = gp.list(state=state, queue=queue, user=user, limit=min(limit + 1, LIST_MAX))
    more = len(items) > limit
    items = items[:limit]
    note = (
        f"showing the newest {limit}; more workloads match: pass --limit (up to {LIST_MAX}) "
        "or narrow with --state / --queue / --user"
    )
    if json_output:
        _dump(items)
        if more:
            typer.echo(f"Note: {note}", err=True)
        return
    table = Table("id", "name", "user", "queue", "state", "gpus", "submitted", "reason")
    for w in items:
        table.add_row(
            w.id,
            w.name,
            w.user,
            w.queue or "-",
            _state(w.state),
            str(w.gpus),
            _when(w.submitted_at),
            w.reason,
        )
    _console().print(table)
    if more:
        _console().print(f"Note: {note}", markup=False)


@service_app.command("logs")
def logs_command(
    workload_id: Annotated[str, typer.Argument(help="Workload id.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Print a workload's output."""
    with _client(url, token, data_dir) as gp:
        text = gp.logs(workload_id)
    if json_output:
        _dump({"id": workload_id, "text": text})
    else:
        sys.stdout.write(text)


@service_app.command("cancel")
def cancel_command(
    workload_ids: Annotated[list[str], typer.Argument(help="Workload ids.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Cancel workloads (running ones are stopped)."""
    with _client(url, token, data_dir) as gp:
        done = [gp.cancel(wid) for wid in workload_ids]
    if json_output:
        _dump(done)
        return
    for w in done:
        _console().print(f"{w.id} {_state(w.state)}: {w.reason}")


@service_app.command("why")
def why_command(
    workload_id: Annotated[str, typer.Argument(help="Workload id.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Explain in plain words why a workload is where it is, and what would change it."""
    with _client(url, token, data_dir) as gp:
        why = gp.why(workload_id)
    if json_output:
        _dump(why)
        return
    for line in why.lines:
        typer.echo(line)


@service_app.command("queues")
def queues_command(
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The queue tree: guaranteed, max, allocated (and its GPUs held by model deployments, serving,
    and by other work, batch) and pending per resource."""
    with _client(url, token, data_dir) as gp:
        queues = gp.queues()
    if json_output:
        _dump(queues)
        return
    table = Table("queue", "guaranteed", "max", "allocated", "serving gpu", "batch gpu", "pending", "running")
    for q in queues:
        depth = q.path.count(".")
        table.add_row(
            "  " * depth + q.path.rsplit(".", 1)[-1],
            _res(q.guaranteed),
            _res(q.max),
            _res(q.allocated),
            _gpus_of(q.serving),
            _gpus_of(q.batch),
            _res(q.pending),
            str(q.running_apps),
        )
    _console().print(table)


@service_app.command("nodes")
def nodes_command(
    url: UrlOpt = None,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The cluster's nodes: GPU type, pool and state (booting, ready, draining), capacity, allocated."""
    with _client(url, token, data_dir) as gp:
        nodes = gp.nodes()
    if json_output:
        _dump(nodes)
        return
    table = Table("node", "gpu type", "pool", "state", "schedulable", "capacity", "allocated", "per GPU")
    for n in nodes:
        table.add_row(
            n.name,
            n.gpu_type or "-",
            n.pool or "-",
            n.state,
            "yes" if n.schedulable else "no",
            _res(n.capacity),
            _res(n.allocated),
            # index:part taken, e.g. "0:1 1:0.75 2:0" (0.75: shares of GPU 1)
            " ".join(f"{i}:{u:g}" for i, u in enumerate(n.gpu_use)) or "-",
        )
    _console().print(table)


# ---- tokens ---------------------------------------------------------------------------------


@token_app.command("create")
def token_create_command(
    user: Annotated[str, typer.Argument(help="User name the token acts as.")],
    groups: Annotated[
        str, typer.Option("--groups", help="Comma-separated groups, e.g. research,admins.")
    ] = "",
    admin: Annotated[
        bool, typer.Option("--admin", help="May see and cancel everything, reload the config.")
    ] = False,
    data_dir: DataDirOpt = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            envvar="GPUPOOL_DATABASE_URL",
            help="Database URL (default: SQLite in the data dir).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create an API token for USER (printed once; only its hash is stored)."""
    from gpupool.service.db import Database
    from gpupool.service.security import create_token
    from gpupool.service.settings import ServiceSettings, default_data_dir

    settings = ServiceSettings(data_dir=data_dir or default_data_dir(), database_url=database)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    names = tuple(g.strip() for g in groups.split(",") if g.strip())
    db = Database(settings.db_url)
    try:
        db.migrate()
        token = create_token(db, user, names, admin)
    finally:
        db.close()
    if json_output:
        _dump({"user": user, "groups": list(names), "admin": admin, "token": token})
    else:
        typer.echo(token)
