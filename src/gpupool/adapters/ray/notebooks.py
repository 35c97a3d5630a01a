"""Notebook sessions on Ray: the Jupyter server a session's supervisor runs, and where it answers.

A session (a workload of kind ``notebook``) runs like a job (``executor``): one placement group
whose bundle 0 is pinned to the node the core chose, and a supervisor actor there that runs one
command as member 0, with the GPU indices the core chose in ``CUDA_VISIBLE_DEVICES``, ``RAY_ADDRESS``
and the capture hook set (``supervisor._env``). For a session that command is ``launch_command``:
JupyterLab's server bound to 127.0.0.1 on a port the OS picks, with ``base_url`` the session's
proxy path (``engine.model.notebook_path``), its files in ``files_dir`` (by session name, so kept
across stop and resume), and a random token that only the control plane learns
(``JUPYTER_TOKEN`` in its environment, read back with the port from the server's own info file in
its per-attempt runtime dir, ``read_endpoint``). The control plane's proxy adds that token to
every request; nobody else needs it.

The server runs in the supervisor's process group, so stopping the attempt (a stop, a
preemption's end, the supervisor's death) stops it and its kernels, as for any job.
"""

from __future__ import annotations

import json
import secrets
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpupool.adapters.ray import naming
from gpupool.adapters.ray.raystate import RayNode
from gpupool.adapters.ray.runs import Run
from gpupool.engine.model import NOTEBOOK_KIND, SESSION_AUTOSAVE, Workload, notebook_path
from gpupool.engine.ports import NotebookEndpoint, RunsNotebooks

SERVER_INFO_GLOB = "jpserver-*.json"
NEWS_SETTINGS = "@jupyterlab/apputils-extension/notification.jupyterlab-settings"
NO_NEWS = '{"fetchNews": "false"}'
# JupyterLab's app settings overrides (the session's own app settings dir): open documents are
# saved every SESSION_AUTOSAVE seconds, so a preemption's grace period sees them saved.
AUTOSAVE_OVERRIDES = json.dumps(
    {"@jupyterlab/docmanager-extension:plugin": {"autosave": True, "autosaveInterval": SESSION_AUTOSAVE}}
)
# what jupyter_server writes into its runtime dir once it listens


def session_root(data_dir: Path, name: str) -> Path:
    """Everything kept for the session ``name`` across its runs."""
    return data_dir / "notebooks" / name


def files_dir(data_dir: Path, name: str) -> Path:
    """The session's working directory: Jupyter's root dir (kept across stop and resume)."""
    return session_root(data_dir, name) / "files"


def runtime_dir(data_dir: Path, workload_id: str, attempt: int) -> Path:
    """Jupyter's runtime dir of one attempt (its server info file, kernels' connection files)."""
    return naming.attempt_dir(data_dir, workload_id, attempt) / "jupyter"


def launch_command(w: Workload, data_dir: Path) -> str:
    """The shell command the supervisor runs for a session: JupyterLab's server, exec'd so it
    leads the attempt's process group."""
    root = files_dir(data_dir, w.spec.name)
    app_settings = session_root(data_dir, w.spec.name) / "lab" / "app-settings"
    args = [
        "python",
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        "--port=0",  # the OS picks a free port; the server writes it to its info file
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={notebook_path(w.spec.name)}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_remote_access=False",
        "--ServerApp.allow_root=True",  # a node's Ray may run as root (a container, CI)
        "--ServerApp.quit_button=False",  # stop it with `gpupool notebook stop`, which frees the GPUs
        "--LabApp.news_url=None",  # no requests to the internet for news or updates
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no extension installs from PyPI at run time
        f"--LabApp.app_settings_dir={app_settings}",  # its overrides.json: the autosave interval
    ]
    # In its root dir: a kernel started without a path (over the REST API) works there too.
    where = shlex.quote(str(root))
    # JupyterLab asks each new user whether to fetch news from the internet: answered no, once
    # (the user may change it in JupyterLab's settings; the file is the session's own).
    news = session_root(data_dir, w.spec.name) / "lab" / "user-settings" / NEWS_SETTINGS
    no_news = f"{{ [ -e {shlex.quote(str(news))} ] || {{ mkdir -p {shlex.quote(str(news.parent))} && "
    no_news += f"printf %s {shlex.quote(NO_NEWS)} > {shlex.quote(str(news))}; }}; }}"
    overrides = shlex.quote(str(app_settings / "overrides.json"))
    autosave = f"mkdir -p {shlex.quote(str(app_settings))} && "
    autosave += f"printf %s {shlex.quote(AUTOSAVE_OVERRIDES)} > {overrides}"
    run = " ".join(shlex.quote(a) for a in args)
    return f"mkdir -p {where} && cd {where} && {no_news} && {autosave} && exec {run}"


def launch_env(w: Workload, data_dir: Path) -> dict[str, str]:
    """What the session's server needs in its environment beyond a job's: its token, runtime and
    config dirs (the session's own, so no user-level Jupyter config of the node applies)."""
    session = session_root(data_dir, w.spec.name)
    return {
        "JUPYTER_TOKEN": secrets.token_urlsafe(32),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir(data_dir, w.id, w.attempt)),
        "JUPYTER_CONFIG_DIR": str(session / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(session / "lab" / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(session / "lab" / "workspaces"),
    }


def read_endpoint(data_dir: Path, workload_id: str, attempt: int) -> NotebookEndpoint | None:
    """The attempt's server as its info file describes it (None before it listens)."""
    for info_file in sorted(runtime_dir(data_dir, workload_id, attempt).glob(SERVER_INFO_GLOB)):
        try:
            info = json.loads(info_file.read_text())
            port, token = int(info["port"]), str(info["token"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written
        return NotebookEndpoint(url=f"http://127.0.0.1:{port}", token=token)
    return None


def _read_utilisation(indices: list[int]) -> float | None:
    """Runs on the session's node (a Ray task): NVML's utilisation of its GPUs."""
    from gpupool.adapters.nvml import gpu_utilisation

    return gpu_utilisation(indices)


def read_gpu_utilisation(node_id: str, indices: list[int], timeout: float) -> float | None:
    """The highest utilisation of GPUs ``indices`` on Ray node ``node_id``: one task pinned there,
    taking no CPU (it must not wait behind the session's own reservation), awaited for
    ``timeout`` seconds; None when NVML cannot read them, or no answer came in time."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:  # Ray refuses a node id it does not know (the node left meanwhile)
        where = NodeAffinitySchedulingStrategy(node_id, soft=False)
    except ValueError:
        return None
    task = ray.remote(_read_utilisation).options(num_cpus=0, max_retries=0, scheduling_strategy=where)
    ref = task.remote(indices)
    try:
        value = ray.get(ref, timeout=timeout)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError):
        ray.cancel(ref, force=True)
        return None
    return None if value is None else float(value)


class Sessions:
    """The executor's side of notebook sessions: what a session's supervisor runs, and where
    each running session's server answers (read once per attempt from its info file)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.provide: Callable[[Workload], dict[str, str]] | None = None  # the control plane's env
        self._lock = threading.Lock()
        self._found: dict[str, tuple[int, NotebookEndpoint]] = {}  # workload -> (attempt, endpoint)

    def launch(self, w: Workload) -> tuple[str | None, dict[str, str]]:
        """The command and environment of ``w``'s supervisor: a job's own, or a session's server."""
        env = dict(w.spec.env)
        if w.spec.kind != NOTEBOOK_KIND:
            return w.spec.entrypoint, env
        env.update(self.provide(w) if self.provide is not None else {})
        env.update(launch_env(w, self.data_dir))
        return launch_command(w, self.data_dir), env

    def endpoint(self, w: Workload) -> NotebookEndpoint | None:
        """Where the running attempt of ``w`` answers; None before its server listens."""
        with self._lock:
            known = self._found.get(w.id)
        if known is not None and known[0] == w.attempt:
            return known[1]
        found = read_endpoint(self.data_dir, w.id, w.attempt)
        if found is not None:
            with self._lock:
                self._found[w.id] = (w.attempt, found)
        return found


class SessionPort(RunsNotebooks):
    """``RayExecutor``'s side of ``RunsNotebooks``, over its runs and node table (mixed into it)."""

    _sessions: Sessions
    _lock: Any
    _table: dict[str, RayNode]

    def _current(self, workload: Workload) -> Run | None:
        raise NotImplementedError

    def set_session_env(self, provide: Callable[[Workload], dict[str, str]]) -> None:
        self._sessions.provide = provide

    def notebook_endpoint(self, workload: Workload) -> NotebookEndpoint | None:
        with self._lock:
            run = self._current(workload)
        # "checkpointing": a preemption's grace period, through which the server answers.
        live = run is not None and run.phase in ("running", "checkpointing")
        return self._sessions.endpoint(workload) if live else None

    def gpu_utilisation(self, workload: Workload, timeout: float) -> float | None:
        with self._lock:
            run = self._current(workload)
            member, name = run.placement[0] if run is not None and run.placement else ("", "")
            node = self._table.get(name)
        indices = list(workload.gpu_ids.get(member, ()))
        if node is None or not node.alive or not indices:
            return None
        return read_gpu_utilisation(node.node_id, indices, timeout)
