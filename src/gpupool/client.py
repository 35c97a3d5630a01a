"""``gpupool.Client``: the Python SDK of the control plane, for scripts and notebooks.

    from gpupool import Client

    gp = Client()  # GPUPOOL_URL / GPUPOOL_TOKEN, else the local data dir of `gpupool up`
    w = gp.submit("train", entrypoint="python train.py", queue="root.research", size="large")
    gp.wait(w.id)
    print(gp.logs(w.id))

It speaks HTTP only (httpx) and never imports the server. Errors from the API are raised as
``ApiError`` carrying the server's code, message, offending fields and hint.
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from gpupool.api import (
    TERMINAL_STATES,
    DeploymentOut,
    ErrorBody,
    EventOut,
    NodeOut,
    PoolOut,
    QueueOut,
    TaskGroupIn,
    WhoAmI,
    WhyOut,
    WorkloadOut,
)
from gpupool.notebook_api import NotebookOut

__all__ = ["ApiError", "Client", "ClientConfigError", "resolve_connection"]

ENV_URL = "GPUPOOL_URL"
ENV_TOKEN = "GPUPOOL_TOKEN"
ENV_DATA_DIR = "GPUPOOL_DATA_DIR"
DEFAULT_URL = "http://127.0.0.1:8080"


class ClientConfigError(RuntimeError):
    """No server URL or token could be found."""


class ApiError(RuntimeError):
    """The server refused a call: ``status``, ``code``, ``message``, ``fields``, ``hint``."""

    def __init__(self, status: int, body: ErrorBody) -> None:
        self.status = status
        self.code = body.code
        self.message = body.message
        self.fields = [(f.field, f.message) for f in body.fields]
        self.hint = body.hint
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.message} [{self.status} {self.code}]"]
        lines += [f"  {field}: {message}" for field, message in self.fields]
        if self.hint:
            lines.append(f"  Hint: {self.hint}")
        return "\n".join(lines)


def _data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env).expanduser() if env else Path.home() / ".gpupool"


def resolve_connection(
    url: str | None = None, token: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> tuple[str, str]:
    """URL and token: arguments, else GPUPOOL_URL / GPUPOOL_TOKEN, else the data dir of `gpupool up`."""
    root = _data_dir(data_dir)
    if url is None:
        url = os.environ.get(ENV_URL)
    if url is None:
        server_file = root / "server.json"
        if server_file.exists():
            url = json.loads(server_file.read_text()).get("url")
    if token is None:
        token = os.environ.get(ENV_TOKEN)
    if token is None:
        token_file = root / "admin.token"
        if token_file.exists():
            token = token_file.read_text().strip()
    if not token:
        raise ClientConfigError(
            f"no API token: pass token=, set {ENV_TOKEN}, "
            f"or run `gpupool up` (which writes {root / 'admin.token'})"
        )
    return (url or DEFAULT_URL).rstrip("/"), token


class Client:
    """The SDK's handle on one control plane: one method per API call, answered with ``gpupool.api`` models.

    Connection details come from ``resolve_connection``; a refused call raises ``ApiError``. Use it
    as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, token = resolve_connection(url, token, data_dir)
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "gpupool-client"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = ErrorBody.model_validate(response.json())
            except ValueError:
                body = ErrorBody(code="http-error", message=response.text or response.reason_phrase)
            raise ApiError(response.status_code, body)
        return response.json()

    # ---- workloads

    def submit(
        self,
        name: str,
        *,
        entrypoint: str,
        queue: str | None = None,
        size: str | None = None,
        task_groups: Iterable[TaskGroupIn | Mapping[str, Any]] | None = None,
        gpus: int | float | None = None,
        members: int = 1,
        priority: int = 0,
        gang: bool = True,
        gang_style: str = "soft",
        gang_timeout: float | None = None,
        span_regions: bool = False,
        disruption: str = "checkpoint",
        grace: float | None = None,
        working_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> WorkloadOut:
        """Submit a workload: a standard ``size`` or explicit ``task_groups`` (dicts or TaskGroupIn).

        ``gpus`` (with ``members``) is a shorthand for one task group ``worker`` of ``members``
        members of ``gpus`` GPUs each: whole GPUs (``2``) or a share of one GPU (``0.25``).
        Validation is the server's: an invalid field comes back as an ``ApiError`` naming it.
        ``gang_timeout`` and ``grace`` left out take the server's defaults.
        """
        payload: dict[str, Any] = {
            "name": name,
            "entrypoint": entrypoint,
            "priority": priority,
            "gang": gang,
            "gang_style": gang_style,
            "span_regions": span_regions,
            "disruption": {"policy": disruption},
            "env": dict(env or {}),
            "tags": dict(tags or {}),
        }
        optional = {
            "queue": queue,
            "size": size,
            "working_dir": working_dir,
            "idempotency_key": idempotency_key,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        if gang_timeout is not None:
            payload["gang_timeout"] = gang_timeout
        if grace is not None:
            payload["disruption"]["grace"] = grace
        if gpus is not None:
            if task_groups is not None or size is not None:
                raise ValueError("give gpus= or task_groups= or size=, not several")
            task_groups = [{"name": "worker", "members": members, "gpus": gpus}]
        if task_groups is not None:
            payload["task_groups"] = [
                g.model_dump(mode="json") if isinstance(g, TaskGroupIn) else dict(g) for g in task_groups
            ]
        return self.submit_raw(payload)

    def submit_raw(self, payload: Mapping[str, Any]) -> WorkloadOut:
        """Submit a request body as is (the JSON of ``SubmitRequest``)."""
        return WorkloadOut.model_validate(self._call("POST", "/workloads", json=dict(payload)))

    def get(self, workload_id: str) -> WorkloadOut:
        return WorkloadOut.model_validate(self._call("GET", f"/workloads/{workload_id}"))

    def list(
        self,
        *,
        state: str | Iterable[str] | None = None,
        queue: str | None = None,
        user: str | None = None,
        limit: int = 200,
    ) -> builtins.list[WorkloadOut]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state if isinstance(state, str) else ",".join(state)
        if queue:
            params["queue"] = queue
        if user:
            params["user"] = user
        return [WorkloadOut.model_validate(w) for w in self._call("GET", "/workloads", params=params)]

    def cancel(self, workload_id: str) -> WorkloadOut:
        return WorkloadOut.model_validate(self._call("POST", f"/workloads/{workload_id}/cancel"))

    def why(self, workload_id: str) -> WhyOut:
        return WhyOut.model_validate(self._call("GET", f"/workloads/{workload_id}/why"))

    def logs(self, workload_id: str) -> str:
        return str(self._call("GET", f"/workloads/{workload_id}/logs")["text"])

    def events(self, workload_id: str) -> builtins.list[EventOut]:
        return [EventOut.model_validate(e) for e in self._call("GET", f"/workloads/{workload_id}/events")]

    def wait(
        self,
        workload_id: str,
        *,
        states: Iterable[str] = TERMINAL_STATES,
        timeout: float | None = None,
        interval: float = 0.5,
    ) -> WorkloadOut:
        """Poll until the workload reaches one of ``states`` (default: finished).

        Raises TimeoutError after ``timeout`` seconds (None: wait for ever).
        """
        wanted = set(states)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            w = self.get(workload_id)
            if w.state in wanted:
                return w
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{workload_id} is still {w.state} after {timeout}s: {w.reason}")
            time.sleep(interval)

    # ---- deployments

    def deploy(
        self,
        name: str,
        import_path: str,
        queue: str,
        *,
        size: str | None = None,
        gpus: int | float | None = None,
        gpu_type: str | None = None,
        cpu: float | None = None,
        memory: str | None = None,
        min_replicas: int = 1,
        max_replicas: int | None = None,
        target_ongoing_requests: float = 2.0,
        upscale_delay: float | None = None,
        downscale_delay: float | None = None,
        look_back: float | None = None,
        scale_to_zero_after: float | None = None,
        max_ongoing_requests: int | None = None,
        working_dir: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> DeploymentOut:
        """Deploy a model: the Ray Serve app at ``import_path`` (``module:attribute``), served by
        ``min_replicas`` to ``max_replicas`` replicas of a ``size`` or of ``gpus`` GPUs each (whole,
        or a share of one: ``0.25``) in ``queue``. Times are in seconds; options left out take the
        server's defaults. A bad field comes back as an ``ApiError`` naming it."""
        payload: dict[str, Any] = {
            "name": name,
            "import_path": import_path,
            "queue": queue,
            "min_replicas": min_replicas,
            "target_ongoing_requests": target_ongoing_requests,
            "env": dict(env or {}),
        }
        optional = {
            "size": size,
            "gpus": gpus,
            "gpu_type": gpu_type,
            "cpu": cpu,
            "memory": memory,
            "max_replicas": max_replicas,
            "upscale_delay": upscale_delay,
            "downscale_delay": downscale_delay,
            "look_back": look_back,
            "scale_to_zero_after": scale_to_zero_after,
            "max_ongoing_requests": max_ongoing_requests,
            "working_dir": working_dir,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        return self.deploy_raw(payload)

    def deploy_raw(self, payload: Mapping[str, Any]) -> DeploymentOut:
        """Deploy a request body as is (the JSON of ``DeployRequest``)."""
        return DeploymentOut.model_validate(self._call("POST", "/deployments", json=dict(payload)))

    def deployments(self, *, include_finished: bool = False) -> builtins.list[DeploymentOut]:
        """Live deployments you may see, newest first (``include_finished``: undeployed ones too)."""
        params = {"all": "true"} if include_finished else {}
        return [DeploymentOut.model_validate(d) for d in self._call("GET", "/deployments", params=params)]

    def deployment(self, name: str) -> DeploymentOut:
        """The live deployment of that name (else the newest one of that name)."""
        return DeploymentOut.model_validate(self._call("GET", f"/deployments/{name}"))

    def undeploy(self, name: str) -> DeploymentOut:
        """Undeploy the live deployment of that name: its replicas stop, their GPUs are freed."""
        return DeploymentOut.model_validate(self._call("DELETE", f"/deployments/{name}"))

    # ---- notebooks

    def start_notebook(
        self,
        name: str,
        queue: str,
        *,
        size: str | None = None,
        gpus: int | float | None = None,
        gpu_type: str | None = None,
        cpu: float | None = None,
        memory: str | None = None,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
        preemptible: bool = False,
    ) -> NotebookOut:
        """Start a notebook session ``name`` (a Jupyter server) in ``queue`` on a ``size`` or on
        ``gpus`` GPUs (whole, or a share of one). Times are in seconds. It is ``pending``, then
        ``starting``; once ``running``, ``url`` opens it (``wait_notebook`` waits for that)."""
        payload: dict[str, Any] = {"name": name, "queue": queue, "preemptible": preemptible}
        optional = {
            "size": size,
            "gpus": gpus,
            "gpu_type": gpu_type,
            "cpu": cpu,
            "memory": memory,
            "idle_timeout": idle_timeout,
            "max_lifetime": max_lifetime,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        return self.start_notebook_raw(payload)

    def start_notebook_raw(self, payload: Mapping[str, Any]) -> NotebookOut:
        """Start a session from a request body as is (the JSON of ``NotebookRequest``)."""
        return NotebookOut.model_validate(self._call("POST", "/notebooks", json=dict(payload)))

    def notebooks(self) -> builtins.list[NotebookOut]:
        """The sessions you may see, newest first, stopped ones too."""
        return [NotebookOut.model_validate(n) for n in self._call("GET", "/notebooks")]

    def notebook(self, name: str) -> NotebookOut:
        """One session: state, url, queue, GPUs, node, history."""
        return NotebookOut.model_validate(self._call("GET", f"/notebooks/{name}"))

    def stop_notebook(self, name: str) -> NotebookOut:
        """Stop a session: its server stops, its GPUs are freed, its files are kept."""
        return NotebookOut.model_validate(self._call("POST", f"/notebooks/{name}/stop"))

    def resume_notebook(self, name: str) -> NotebookOut:
        """Start a stopped session again, with its files."""
        return NotebookOut.model_validate(self._call("POST", f"/notebooks/{name}/resume"))

    def wait_notebook(self, name: str, timeout: float = 300.0, interval: float = 0.5) -> NotebookOut:
        """Poll until the session is ``running`` (its ``url`` answers) or ended; raises
        ``TimeoutError`` (with its state and reason) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            nb = self.notebook(name)
            if nb.state in ("running", "stopped", "failed"):
                return nb
            if time.monotonic() > deadline:
                raise TimeoutError(f"notebook {name} is still {nb.state} after {timeout:g}s: {nb.reason}")
            time.sleep(interval)

    # ---- cluster

    def queues(self) -> builtins.list[QueueOut]:
        return [QueueOut.model_validate(q) for q in self._call("GET", "/queues")]

    def nodes(self) -> builtins.list[NodeOut]:
        return [NodeOut.model_validate(n) for n in self._call("GET", "/nodes")]

    def pools(self) -> builtins.list[PoolOut]:
        return [PoolOut.model_validate(p) for p in self._call("GET", "/pools")]

    def reload_config(self) -> builtins.list[QueueOut]:
        return [QueueOut.model_validate(q) for q in self._call("POST", "/config/reload")]

    def whoami(self) -> WhoAmI:
        return WhoAmI.model_validate(self._call("GET", "/whoami"))

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/healthz"))
