"""Replicas of gpupool deployments on Ray Serve: one Serve application per replica, pinned.

Serve lets no outside scheduler choose the node of each replica of a deployment, nor which
replica a scale-down stops (every placement option applies to all of its replicas; issue 16's
design note has the Serve source references). So every gpupool
replica is a Serve application of its own, ``gp.<deployment>.r<revision>.<member>``, holding the
user's ingress deployment with ``num_replicas=1`` and one placement-group bundle
``{CPU, GPU, memory, gpupool.node.<node>: 0.001}`` (``STRICT_PACK``): Serve makes that group on
exactly the node the core chose, with exactly the resources it gave. The GPU indices the core
assigned are passed as ``CUDA_VISIBLE_DEVICES`` (Ray told not to overwrite it), as for jobs.
Its route on Serve's proxy is ``/_gp/<deployment>/r<revision>/<member>``; the deployment's
one URL is its ``front`` (``adapters/ray/front.py``), which ``ServeRunner`` keeps told which
replicas are ready.

``ServeRunner`` works on an already connected Ray:

* ``start()``: Serve once, ``proxy_location="HeadOnly"`` (every local node has the same IP, so
  proxies per node would fight over one port), HTTP on 127.0.0.1 and the given port;
* ``add_replica(spec)`` / ``remove_replica(key)``: the set of replica applications, applied
  declaratively in one ``deploy_apps`` call (applications left out are deleted; unchanged ones
  are not rebuilt). Removal drains: the front stops sending to the replica first, and its
  application is dropped only when its requests in flight reach 0 (or after its grace);
* ``adopt()``: after a restart, the replica applications and fronts already running;
* ``replicas()``: each replica's state (starting, running, draining, failed with Serve's
  message, gone), from ``get_serve_details()``; it also moves drains on and updates the fronts.

``check_import_path`` imports an application the way Serve's build task will (a ``num_cpus=0``
task with the runtime env) and returns its ingress deployment's name, or raises ``ServingError``
with the import error: a bad path is refused before anything is made.

Private Serve APIs used (Ray is pinned; the live tests cover them): ``_get_global_client``,
``ServeControllerClient.deploy_apps`` and ``get_serve_details``, ``Application._bound_deployment``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from gpupool import runtime
from gpupool.adapters.ray import front as fronts
from gpupool.adapters.ray import naming

APP_PREFIX = "gp."
ROUTE_PREFIX = "/_gp"
NOSET_CUDA = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"
ENV_FRONT = "GPUPOOL_FRONT"  # the front a replica answers behind (its deployment's name)


class ServingError(RuntimeError):
    """Serve or an application could not be started (the message says why, in Serve's words)."""


class ReplicaState(enum.StrEnum):
    """Where a replica is in its life, as ``ServeRunner.replicas()`` reports it."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"  # the front no longer sends it requests; its application still exists
    FAILED = "failed"
    GONE = "gone"


def replica_key(deployment: str, revision: int, member: str) -> str:
    """How a replica is known (its application is ``gp.<key>``)."""
    return f"{deployment}.r{revision}.{member}"


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica: which application, where, with what. ``gpus`` may be a share (< 1)."""

    deployment: str
    member: str
    import_path: str
    node: str
    ingress: str  # the name of the application's ingress deployment (``check_import_path``)
    gpus: float = 0.0
    cpus: float = 0.0
    memory: int = 0  # bytes
    gpu_ids: tuple[int, ...] = ()  # the core's GPU indices on the node
    revision: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None  # a directory present on every node
    max_ongoing_requests: int = 5
    graceful_shutdown_timeout_s: float = 20.0
    health_check_period_s: float = 2.0
    max_constructor_retry_count: int = 2
    front: str = ""  # the front it answers behind (default: ``deployment``); revisions share one

    @property
    def front_key(self) -> str:
        return self.front or self.deployment

    @property
    def key(self) -> str:
        return replica_key(self.deployment, self.revision, self.member)

    @property
    def app_name(self) -> str:
        return APP_PREFIX + self.key

    @property
    def route(self) -> str:
        return f"{ROUTE_PREFIX}/{self.deployment}/r{self.revision}/{self.member}"

    def app_config(self) -> dict[str, Any]:
        """The Serve application config (``ServeApplicationSchema``) of this replica."""
        bundle: dict[str, float] = {naming.node_resource(self.node): naming.PIN_AMOUNT}
        actor: dict[str, Any] = {}
        for resource, option, amount in (
            ("CPU", "num_cpus", self.cpus),
            ("GPU", "num_gpus", self.gpus),
            ("memory", "memory", self.memory),
        ):
            actor[option] = amount
            if amount:
                bundle[resource] = amount
        env = {
            runtime.ENV_WORKLOAD_ID: self.deployment,
            runtime.ENV_MEMBER: self.member,
            runtime.ENV_NODE: self.node,
            **self.env,
        }
        if self.front:
            env[ENV_FRONT] = self.front
        if self.gpu_ids:
            ids = ",".join(str(i) for i in self.gpu_ids)
            env.update({"CUDA_VISIBLE_DEVICES": ids, NOSET_CUDA: "1", runtime.ENV_GPU_IDS: ids})
        runtime_env: dict[str, Any] = {"env_vars": env}
        if self.working_dir:
            runtime_env["working_dir"] = f"local://{self.working_dir}"
        return {
            "name": self.app_name,
            "import_path": self.import_path,
            "route_prefix": self.route,
            "runtime_env": runtime_env,
            "deployments": [
                {
                    "name": self.ingress,
                    "num_replicas": 1,
                    "ray_actor_options": actor,
                    "placement_group_bundles": [bundle],
                    "placement_group_strategy": "STRICT_PACK",
                    "max_ongoing_requests": self.max_ongoing_requests,
                    "graceful_shutdown_wait_loop_s": 0.5,
                    "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
                    "health_check_period_s": self.health_check_period_s,
                    "max_constructor_retry_count": self.max_constructor_retry_count,
                }
            ],
        }


@dataclass(frozen=True)
class ReplicaStatus:
    """What ``replicas()`` says of one replica; ``message`` is Serve's, when it has one."""

    key: str
    deployment: str
    node: str
    state: ReplicaState
    message: str = ""
    serve_status: str = ""  # the application's status in Serve (DEPLOYING, RUNNING, ...)


@dataclass
class _Replica:
    spec: ReplicaSpec
    removing_since: float | None = None  # perf_counter when remove_replica was called
    applied: bool = True  # still in the declarative set
    gone: bool = False
    seen: bool = False  # Serve has listed its application


class ServeRunner:
    """Runs gpupool deployment replicas as pinned Serve applications on the connected Ray.

    Not thread-safe: call it from one thread at a time (the executor's lock)."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", front_hold_timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.front_hold_timeout = front_hold_timeout
        self._client: Any = None
        self._replicas: dict[str, _Replica] = {}
        self._fronts: dict[str, tuple[Any, int]] = {}  # deployment -> (actor, port)
        self._routes: dict[str, dict[str, str]] = {}  # deployment -> routes last sent to its front

    # ------------------------------------------------------------------ Serve and fronts

    def start(self) -> float:
        """Start Serve (or connect to the running instance); return the seconds it took."""
        if self._client is not None:
            return 0.0
        from ray import serve
        from ray.serve.context import _get_global_client

        t0 = time.perf_counter()
        serve.start(proxy_location="HeadOnly", http_options={"host": self.host, "port": self.port})
        client: Any = _get_global_client()
        self.port = int(client.http_config.port)  # an instance started before keeps its own
        foreign = [
            name
            for name, app in client.get_serve_details().get("applications", {}).items()
            if app.get("source") == "declarative" and not name.startswith(APP_PREFIX)
        ]
        if foreign:
            raise ServingError(
                f"Serve on this cluster runs declarative applications gpupool does not own: {foreign}; "
                "gpupool's config would delete them (remove them with `serve shutdown` first)"
            )
        self._wait_proxy(120.0)
        self._client = client
        return time.perf_counter() - t0

    def _wait_proxy(self, timeout: float) -> None:
        import httpx

        deadline = time.perf_counter() + timeout
        while True:
            try:  # any answer (503 until a route exists) means the proxy listens
                httpx.get(f"http://{self.host}:{self.port}/-/healthz", timeout=2.0, trust_env=False)
                return
            except httpx.HTTPError as exc:
                if time.perf_counter() > deadline:
                    raise ServingError(f"Serve's proxy does not answer on {self.host}:{self.port}") from exc
                time.sleep(0.2)

    @property
    def serve_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def front(self, deployment: str, port: int = 0, max_ongoing: int = 0) -> str:
        """The URL of ``deployment``'s front (started on first use, sending each replica at most
        ``max_ongoing`` requests at once; 0: no cap)."""
        if deployment not in self._fronts:
            self._fronts[deployment] = fronts.start_front(
                deployment,
                host=self.host,
                port=port,
                hold_timeout=self.front_hold_timeout,
                max_ongoing=max_ongoing,
            )
        return f"http://{self.host}:{self._fronts[deployment][1]}"

    def has_front(self, deployment: str) -> bool:
        return deployment in self._fronts

    def stop_front(self, deployment: str) -> None:
        """Stop ``deployment``'s front (its URL stops answering)."""
        if self._fronts.pop(deployment, None) is not None:
            fronts.stop_front(deployment)
        self._routes.pop(deployment, None)

    def front_actor(self, deployment: str) -> Any:
        self.front(deployment)
        return self._fronts[deployment][0]

    def load(self, deployment: str) -> dict[str, Any]:
        return dict(ray.get(self.front_actor(deployment).load.remote()))

    def stats(self, deployment: str) -> dict[str, Any]:
        return dict(ray.get(self.front_actor(deployment).stats.remote()))

    # ------------------------------------------------------------------ replicas

    def add_replica(self, spec: ReplicaSpec) -> None:
        """Start a replica application (returns at once: ``replicas()`` says when it runs)."""
        if spec.key in self._replicas and not self._replicas[spec.key].gone:
            raise ServingError(f"replica {spec.key} exists")
        self.start()
        # The front keeps what a replica cannot take yet (its max_ongoing_requests) and gives it
        # to whichever replica frees up or starts first; sent on, it would wait in that replica.
        self.front(spec.front_key, max_ongoing=spec.max_ongoing_requests)
        self._replicas[spec.key] = _Replica(spec)
        self._apply()

    def remove_replica(self, key: str, grace: float | None = None) -> None:
        """Drain a replica: its front stops sending it requests now; its application is deleted
        once its requests in flight are done (or after ``grace``, default its shutdown timeout)."""
        rep = self._replicas[key]
        if rep.removing_since is not None or rep.gone:
            return
        rep.removing_since = time.perf_counter()
        if grace is not None:
            rep.spec = _with_grace(rep.spec, grace)
        ray.get(self.front_actor(rep.spec.front_key).drain.remote(key))
        self._routes.get(rep.spec.front_key, {}).pop(key, None)
        self._advance()

    def adopt(self) -> list[str]:
        """Take over the replica applications (``gp.*``) and fronts running on the cluster, after
        the control plane restarted; return their keys. Their configs are rebuilt exactly, so
        the next ``deploy_apps`` leaves them as they run."""
        self.start()
        for name, app in self._details().items():
            spec = (
                _spec_from_config(app.get("deployed_app_config") or {})
                if name.startswith(APP_PREFIX)
                else None
            )
            if spec is not None and spec.key not in self._replicas:
                self._replicas[spec.key] = _Replica(spec)
        for front, cap in sorted(
            {(r.spec.front_key, r.spec.max_ongoing_requests) for r in self._replicas.values()}
        ):
            self.front(front, max_ongoing=cap)  # found by name if it runs (keeps its own cap)
        return sorted(self._replicas)

    def has_replicas(self) -> bool:
        """Whether any replica is not gone yet (one being drained or deleted included)."""
        return any(not r.gone for r in self._replicas.values())

    def forget(self, key: str) -> None:
        """Stop reporting a replica that is gone."""
        if key in self._replicas and self._replicas[key].gone:
            del self._replicas[key]

    def replicas(self) -> dict[str, ReplicaStatus]:
        """Every replica's state; moves drains on and tells the fronts which replicas are ready."""
        self._advance()
        apps = self._details()
        out: dict[str, ReplicaStatus] = {}
        for key, rep in self._replicas.items():
            app = apps.get(rep.spec.app_name)
            if app is None and not rep.applied:
                rep.gone = True
            out[key] = _status(rep, app)
            rep.seen = rep.seen or app is not None
        self._route(out)
        return out

    def wait(self, key: str, states: set[ReplicaState], timeout: float) -> ReplicaStatus:
        """Poll ``replicas()`` until ``key`` is in one of ``states``; ServingError at the timeout."""
        deadline = time.perf_counter() + timeout
        while True:
            st = self.replicas()[key]
            if st.state in states:
                return st
            if time.perf_counter() > deadline:
                raise ServingError(f"replica {key} is {st.state} after {timeout:g}s: {st.message}")
            time.sleep(0.2)

    def shutdown(self, *, serve_too: bool = True) -> None:
        """Delete every replica application and front (and Serve itself, with ``serve_too``)."""
        for deployment in list(self._fronts):
            fronts.stop_front(deployment)
        self._fronts.clear()
        if self._client is not None:
            names = [n for n in self._details() if n.startswith(APP_PREFIX)]
            self._client.delete_apps(names, blocking=True)
            if serve_too:
                from ray import serve

                serve.shutdown()
        self._replicas.clear()
        self._client = None

    # ------------------------------------------------------------------ internals

    def _details(self) -> dict[str, Any]:
        if self._client is None:
            return {}
        return dict(self._client.get_serve_details().get("applications") or {})

    def _apply(self) -> None:
        from ray.serve.schema import ServeDeploySchema

        configs: list[Any] = [
            r.spec.app_config() for r in self._replicas.values() if r.applied and not r.gone
        ]
        self._client.deploy_apps(ServeDeploySchema(applications=configs), _blocking=False)

    def _advance(self) -> None:
        """Drop from Serve's set every draining replica whose requests are done or whose grace ran out."""
        now = time.perf_counter()
        done = []
        for key, rep in self._replicas.items():
            if rep.removing_since is None or not rep.applied:
                continue
            in_flight = ray.get(self.front_actor(rep.spec.front_key).drain.remote(key))
            if in_flight == 0 or now - rep.removing_since > rep.spec.graceful_shutdown_timeout_s:
                rep.applied = False
                done.append(key)
        if done:
            self._apply()

    def _route(self, statuses: Mapping[str, ReplicaStatus]) -> None:
        """Send each front the routes of its deployment's running replicas, when they changed."""
        for deployment in self._fronts:
            table = {
                key: self.serve_url + self._replicas[key].spec.route
                for key, st in statuses.items()
                if self._replicas[key].spec.front_key == deployment and st.state == ReplicaState.RUNNING
            }
            if table != self._routes.get(deployment):
                ray.get(self.front_actor(deployment).set_routes.remote(table))
                self._routes[deployment] = table


OURS_ENV = frozenset(
    {
        runtime.ENV_WORKLOAD_ID,
        runtime.ENV_MEMBER,
        runtime.ENV_NODE,
        runtime.ENV_GPU_IDS,
        "CUDA_VISIBLE_DEVICES",
        NOSET_CUDA,
        ENV_FRONT,
    }
)


DEPLOYMENT_OPTIONS = (
    "max_ongoing_requests",
    "graceful_shutdown_timeout_s",
    "health_check_period_s",
    "max_constructor_retry_count",
)


def _spec_from_config(cfg: Mapping[str, Any]) -> ReplicaSpec | None:
    """The ``ReplicaSpec`` whose ``app_config()`` gave ``cfg`` (as Serve keeps it); None if
    ``cfg`` is not one of ours."""
    try:
        runtime_env = cfg.get("runtime_env") or {}
        env = dict(runtime_env.get("env_vars") or {})
        (dep,) = cfg["deployments"]
        actor = dep.get("ray_actor_options") or {}
        revision = str(cfg["route_prefix"]).rstrip("/").split("/")[-2]
        gpu_ids = tuple(int(i) for i in str(env.get(runtime.ENV_GPU_IDS, "")).split(",") if i.strip())
        return ReplicaSpec(
            deployment=env[runtime.ENV_WORKLOAD_ID],
            member=env[runtime.ENV_MEMBER],
            import_path=cfg["import_path"],
            node=env[runtime.ENV_NODE],
            ingress=dep["name"],
            gpus=actor.get("num_gpus", 0.0),
            cpus=actor.get("num_cpus", 0.0),
            memory=int(actor.get("memory", 0)),
            gpu_ids=gpu_ids,
            revision=int(revision.removeprefix("r")),
            front=env.get(ENV_FRONT, ""),
            env={k: v for k, v in env.items() if k not in OURS_ENV},
            working_dir=str(runtime_env["working_dir"]).removeprefix("local://")
            if runtime_env.get("working_dir")
            else None,
            # Serve keeps only the options it knows in the details (not max_constructor_retry_count).
            **{k: dep[k] for k in DEPLOYMENT_OPTIONS if k in dep},
        )
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def _with_grace(spec: ReplicaSpec, grace: float) -> ReplicaSpec:
    from dataclasses import replace

    return replace(spec, graceful_shutdown_timeout_s=grace)


def _status(rep: _Replica, app: Mapping[str, Any] | None) -> ReplicaStatus:
    spec = rep.spec
    base = {"key": spec.key, "deployment": spec.deployment, "node": spec.node}
    if rep.gone:
        return ReplicaStatus(**base, state=ReplicaState.GONE)
    if app is None and rep.seen:
        msg = f"Serve no longer has the application {spec.app_name} (deleted outside gpupool?)"
        return ReplicaStatus(**base, state=ReplicaState.FAILED, message=msg)
    if app is None:
        return ReplicaStatus(**base, state=ReplicaState.STARTING, message="submitted to Serve")
    status = _value(app.get("status", ""))
    deployments = list((app.get("deployments") or {}).values())
    messages = [str(app.get("message") or "")] + [str(d.get("message") or "") for d in deployments]
    message = "\n".join(m for m in messages if m)
    if rep.removing_since is not None:
        return ReplicaStatus(**base, state=ReplicaState.DRAINING, message=message, serve_status=status)
    state = {
        "RUNNING": ReplicaState.RUNNING,
        "DEPLOY_FAILED": ReplicaState.FAILED,
        "UNHEALTHY": ReplicaState.FAILED,
        "DELETING": ReplicaState.DRAINING,
    }.get(status, ReplicaState.STARTING)
    # Every deploy_apps call puts the applications it lists back to DEPLOYING for a moment, even
    # unchanged ones whose replica keeps serving: the replica's own state says whether it runs.
    serving = any(_value(r.get("state")) == "RUNNING" for d in deployments for r in d.get("replicas") or ())
    if status == "DEPLOYING" and serving:
        state = ReplicaState.RUNNING
    return ReplicaStatus(**base, state=state, message=message, serve_status=status)


def _value(raw: Any) -> str:
    """A Serve status as its string (the details hold str enums or their values)."""
    return str(getattr(raw, "value", raw))


def check_import_path(
    import_path: str,
    *,
    env: Mapping[str, str] | None = None,
    working_dir: str | None = None,
    timeout: float = 120.0,
) -> str:
    """Import ``module:attribute`` as Serve's build task will; return the name of the
    application's ingress deployment, or raise ``ServingError`` with what went wrong."""
    runtime_env: dict[str, Any] = {"env_vars": dict(env or {})}
    if working_dir:
        # A directory on every node, as the replicas get it (Ray uploads a bare path only for jobs).
        runtime_env["working_dir"] = f"local://{working_dir}"
    try:
        task = ray.remote(_ingress_name).options(num_cpus=0, runtime_env=runtime_env, max_retries=0)
    except ValueError as exc:
        raise ServingError(f"{import_path}: Ray refused its runtime environment: {exc}") from None
    try:
        return str(ray.get(task.remote(import_path), timeout=timeout))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        lines = [ln for ln in str(cause).strip().splitlines() if ln.strip()]
        raise ServingError(f"{import_path} does not import: {lines[-1] if lines else cause!r}") from None
    except ray.exceptions.GetTimeoutError as exc:
        raise ServingError(f"importing {import_path} took more than {timeout:g}s") from exc


def _ingress_name(import_path: str) -> str:
    from ray.serve._private.utils import import_attr

    app = import_attr(import_path)
    bound = getattr(app, "_bound_deployment", None)
    if bound is None:
        raise TypeError(
            f"{import_path} is a {type(app).__name__}, not a Serve application (Deployment.bind())"
        )
    return str(bound.name)
