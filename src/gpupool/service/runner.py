"""``gpupool up``: the control plane (FastAPI under uvicorn) and, by default, a local Ray cluster.

``up`` starts, in order: the database (migrated; bootstrap admin token on first start), the
local multi-node Ray cluster (skipped with ``--ray-address``), the Ray executor, and the HTTP
server on 127.0.0.1. Ctrl-C (or SIGTERM) stops them in reverse order, after asking the running
workloads to checkpoint (their local cluster goes away with the control plane, so they resume
from that checkpoint on the next start). Running ``up`` again on the same data dir carries on:
workloads are recovered from the database and running jobs re-adopted. After a crash (``kill
-9``) the local Ray cluster it left running is adopted, with its jobs and pool nodes, instead
of a second one being started (``LocalRayCluster.start``); without ``--cluster`` the recorded
cluster's nodes are kept. Ray is imported here, lazily, and nowhere else in the service.

Node pools: when the config has ``nodepools:`` and ``up`` runs its own local cluster, the pools
grow and shrink live on it: a ``LocalRayProvider`` adds and removes Ray worker nodes for the
autoscaler. The nodes of ``--cluster`` stay as static nodes. With ``--ray-address`` the pools
are not scaled (gpupool has no provider for a foreign cluster).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from gpupool.core.config import Config
from gpupool.engine.ports import NodeProvider
from gpupool.service.app import create_app, prepare
from gpupool.service.context import ServiceExecutor
from gpupool.service.db import Database
from gpupool.service.settings import ServiceSettings, load_queue_config

# Two nodes of each GPU type with 4 logical GPUs each: 16 GPUs that fit a laptop (no hardware).
DEFAULT_CLUSTER_SPEC = "2xH100:4,2xA100:4"
# On Ctrl-C / SIGTERM, how long running work gets to checkpoint before the local cluster stops.
STOP_CHECKPOINT_TIMEOUT = 30.0


class StartError(Exception):
    """``gpupool up`` cannot start; nothing was started. ``hint`` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def listen(settings: ServiceSettings) -> socket.socket:
    """Take the HTTP port now, before anything starts, or say why not (the server then serves
    on this socket: nobody can take the port in between)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StartError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
            "another program (perhaps another `gpupool up`) uses that port: stop it, or pass --port",
        ) from None
    return sock


def serve(
    settings: ServiceSettings,
    executor: ServiceExecutor,
    config: Config | None = None,
    *,
    on_ready: Callable[[], None] | None = None,
    provider: NodeProvider | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Run the HTTP server (on ``sock`` if given) until SIGINT or SIGTERM, then shut it down."""
    app = create_app(settings, executor, config=config, on_ready=on_ready, provider=provider)
    server = _QuietServer(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", lifespan="on")
    )

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True  # a second Ctrl-C stops waiting for open connections
        if server.started and getattr(stop, "again", False):
            server.force_exit = True
        stop.again = True  # type: ignore[attr-defined]

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    write_server_file(settings)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        settings.server_file.unlink(missing_ok=True)


class _QuietServer(uvicorn.Server):
    """Uvicorn re-raises Ctrl-C after shutting down, which prints a traceback; we handle the
    signals ourselves (``serve``) and shut down through ``should_exit`` instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def write_server_file(settings: ServiceSettings) -> None:
    settings.server_file.write_text(json.dumps({"url": settings.url(), "pid": os.getpid()}) + "\n")


def up(
    settings: ServiceSettings,
    *,
    cluster_spec: str | None = None,
    ray_address: str | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Start everything, serve until interrupted, stop everything."""
    # Fail fast, before anything starts: a bad config, a bad cluster spec, a port in use.
    config = load_queue_config(settings.config_path)
    nodes = None
    if ray_address is None:
        from gpupool.adapters.ray.cluster import parse_cluster_spec

        spec = cluster_spec or DEFAULT_CLUSTER_SPEC
        try:
            nodes = parse_cluster_spec(spec)
        except ValueError as exc:
            message, _, hint = str(exc).partition("\nHint: ")
            raise StartError(f"--cluster {spec!r}: {message}", hint or "e.g. 2xH100:4,1xA100:8") from None
    sock = listen(settings)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url)
        try:
            token = prepare(settings, db)
        finally:
            db.close()
    except BaseException:
        sock.close()
        raise

    from gpupool.adapters.ray.executor import RayExecutor  # lazily: the service does not need Ray

    cluster = None
    if nodes is not None:
        from gpupool.adapters.ray.cluster import LocalRayCluster

        recorded = LocalRayCluster.recorded_spec(settings.data_dir)
        if cluster_spec is None and recorded:
            nodes = recorded  # carry on with the cluster this data dir has
        cluster = LocalRayCluster(nodes, str(settings.data_dir))
        if recorded is None:
            echo(f"Starting a local Ray cluster: {spec}")
        try:
            # Outside the try below: a cluster that did not start (or is another `gpupool up`'s)
            # is not ours to stop.
            ray_address = cluster.start()
        except BaseException:
            sock.close()
            raise
        if cluster.recovery:
            echo(cluster.recovery[0].upper() + cluster.recovery[1:])
        settings.checkpoint_on_stop = STOP_CHECKPOINT_TIMEOUT  # the cluster goes when we go
    executor = None
    provider = None
    store_db = None
    try:
        assert ray_address is not None
        executor = RayExecutor(ray_address, str(settings.data_dir))
        if cluster is not None and config.nodepools:
            from gpupool.adapters.ray.provider import LocalRayProvider
            from gpupool.service.poolnodes import DbPoolNodeStore

            store_db = Database(settings.db_url)
            provider = LocalRayProvider(cluster, store=DbPoolNodeStore(store_db))
            for name, what in sorted(provider.recovered.items()):
                echo(f"  pool node {name}: {what}")

        def ready() -> None:
            url = settings.url()
            echo(f"gpupool is up (data dir {settings.data_dir}, database {_redact(settings.db_url)})")
            echo(f"  API:     {url}/docs")
            echo(f"  Portal:  {url}/")
            echo(f"  Metrics: {url}/metrics")
            echo(f"  Ray:     {ray_address}")
            if provider is not None:
                names = ", ".join(p.name for p in config.nodepools)
                echo(f"  Pools:   {names} (nodes added and removed on the local Ray cluster)")
            elif config.nodepools:
                echo("  Pools:   not scaled (no node provider for a Ray cluster given by address)")
            if token:
                echo(f"  Admin token (also in {settings.admin_token_file}): {token}")
            else:
                echo(f"  Admin token: in {settings.admin_token_file}")
            echo("Press Ctrl-C to stop.")

        serve(settings, executor, config, on_ready=ready, provider=provider, sock=sock)
    finally:
        sock.close()
        echo("Stopping ...")
        if executor is not None:
            executor.close()
        if provider is not None:
            provider.close(stop_nodes=True)  # and forgets them: nothing to adopt next time
        if store_db is not None:
            store_db.close()
        if cluster is not None:
            cluster.stop()
        echo("Stopped.")


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
