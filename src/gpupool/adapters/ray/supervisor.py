"""The per-workload supervisor: a detached, named Ray actor that runs one attempt's entrypoint.

``RayExecutor`` creates one ``JobSupervisor`` per attempt in bundle 0 of the workload's
placement group, holding member 0's CPUs, memory and GPUs, so the entrypoint runs as member 0
on the node the scheduler chose, with the GPU indices the scheduling core chose for member 0
(``config["gpu_ids"]``; Ray's own ids when the core gave none) in ``CUDA_VISIBLE_DEVICES``. This is what
Ray's own job supervisor does, without the dashboard's job server, and it works on any Ray
cluster: the executor talks to it by Ray calls only, and it talks to the job through files in a
node-local control directory (see ``gpupool.runtime``).

Being detached and named (``gpupool.job.<workload>.<attempt>``), it outlives a control-plane
restart: the executor finds it again by name (``adopt``). The entrypoint runs in its own
process group; a small watcher kills that group if the supervisor dies, so a job never outlives
its reservation.

Methods run on a thread pool (``max_concurrency``): ``wait_exit`` and ``request_checkpoint``
block until their event, while ``stop``, ``logs`` and ``info`` answer at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gpupool import runtime
from gpupool.adapters.ray import naming

LOG_RETURN_LIMIT = 1 << 20  # the largest log tail shipped back to the executor


class JobSupervisor:
    """Runs one attempt's entrypoint as member 0 of its workload, as a detached, named Ray actor.

    ``RayExecutor`` wraps it with ``ray.remote`` and places it in bundle 0 of the workload's
    placement group; ``config`` is a plain dict of what to run (workload id, attempt, data dir,
    entrypoint ...). The module docstring describes its lifecycle.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.workload_id: str = config["workload_id"]
        self.attempt: int = int(config["attempt"])
        data_dir = Path(config["data_dir"])
        self.log_path = naming.log_path(data_dir, self.workload_id, self.attempt)
        self.control_dir = naming.control_dir(data_dir, self.workload_id, self.attempt)
        self.checkpoint_root = naming.checkpoint_root(data_dir, self.workload_id)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched: dict[str, Any] | None = None
        self._stopped = threading.Event()  # stop() was called
        self._exit_code: int | None = None

    # ------------------------------------------------------------------ calls

    def launch(self) -> dict[str, Any]:
        """Start the entrypoint (once; later calls return the first answer)."""
        import ray

        with self._lock:
            if self._launched is not None:
                return self._launched
            ray_ids = [int(i) for i in ray.get_gpu_ids()]
            # The core's GPU indices are authoritative (``status`` and the portal show them);
            # Ray's own instance ids may differ for a share (docs/ray.md, "GPU shares").
            core_ids = self.config.get("gpu_ids")
            gpu_ids = [int(i) for i in core_ids] if core_ids else ray_ids
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.control_dir.mkdir(parents=True, exist_ok=True)
            ckpt_dir = self.checkpoint_root / f"attempt-{self.attempt}"
            entrypoint = self.config.get("entrypoint")
            self.set_members(self.config.get("members") or [])
            error = None
            if entrypoint and not self._stopped.is_set():
                env = self._env(gpu_ids, ckpt_dir)
                cwd = self.config.get("working_dir") or str(self.log_path.parent)
                try:
                    with self.log_path.open("ab") as out:
                        self._proc = subprocess.Popen(
                            ["/bin/bash", "-c", entrypoint],
                            cwd=cwd,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,
                        )
                except (OSError, ValueError) as exc:  # no such working_dir, a NUL byte ...
                    error = _launch_error(exc, cwd)
                else:
                    self._watch(self._proc.pid)
            else:
                self.log_path.touch()
            self._launched = {
                "error": error,
                "pid": self._proc.pid if self._proc else None,
                "gpu_ids": gpu_ids,
                "ray_gpu_ids": ray_ids,
                "node_id": ray.get_runtime_context().get_node_id(),
                "log_path": str(self.log_path),
                "placement_group_id": self.config["placement_group_id"],
            }
            return self._launched

    def wait_exit(self, with_log: bool = False) -> dict[str, Any]:
        """Block until the entrypoint exits (or, without one, until ``stop``); its exit code."""
        while self._launched is None and not self._stopped.is_set():
            time.sleep(0.1)
        if self._proc is not None:
            self._exit_code = self._proc.wait()
        else:
            self._stopped.wait()
            self._exit_code = 0
        return {"code": self._exit_code, "log": self.logs() if with_log else None}

    def request_checkpoint(self, timeout: float) -> str | None:
        """Ask the job to checkpoint; return the path it reports within ``timeout`` seconds.

        None when it exits or the time runs out without a report.
        """
        report = self.control_dir / runtime.REPORT_FILE
        self.control_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            report.unlink()  # an older, periodic report is not the answer to this request
        (self.control_dir / runtime.REQUEST_FILE).write_text(str(os.getpid()))
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if report.exists():
                with contextlib.suppress(OSError, ValueError):
                    return str(json.loads(report.read_text())["path"])
            if self._proc is None or self._proc.poll() is not None:
                return None
            time.sleep(0.1)
        return None

    def stop(self, term_timeout: float, with_log: bool = False) -> dict[str, Any]:
        """SIGTERM the entrypoint's process group, SIGKILL it after ``term_timeout`` seconds."""
        self._stopped.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=term_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc is not None:
            # Children that outlived the leader still belong to the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        code = proc.returncode if proc is not None else 0
        return {"code": code, "log": self.logs() if with_log else None}

    def set_members(self, rows: list[list[Any]]) -> None:
        """Tell the job its current members: [[member, node, placement group id, bundle], ...]."""
        if rows:
            self.control_dir.mkdir(parents=True, exist_ok=True)
            runtime._write_atomic(self.control_dir / runtime.MEMBERS_FILE, json.dumps(rows))

    def driver_jobs(self) -> list[str]:
        """The Ray job ids (hex) of the drivers the entrypoint started (its process group's)."""
        proc = self._proc
        if proc is None:
            return []
        from ray._private.state import state

        out = []
        for job in state.job_table():
            if job.get("IsDead"):
                continue
            with contextlib.suppress(OSError, TypeError, ValueError):
                if os.getpgid(int(job["DriverPid"])) == proc.pid:
                    out.append(str(job["JobID"]))
        return out

    def logs(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - LOG_RETURN_LIMIT))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def info(self) -> dict[str, Any]:
        proc = self._proc
        return {
            "workload_id": self.workload_id,
            "attempt": self.attempt,
            "launched": self._launched is not None,
            "running": proc is not None and proc.poll() is None,
            "exit_code": proc.poll() if proc is not None else None,
            "placement_group_id": self.config["placement_group_id"],
        }

    # ------------------------------------------------------------------ internals

    def _env(self, gpu_ids: list[int], ckpt_dir: Path) -> dict[str, str]:
        import ray
        from ray._private.utils import remove_ray_internal_flags_from_env

        env = dict(os.environ)
        remove_ray_internal_flags_from_env(env)  # ours are a Ray worker's; the job is a driver
        # `python` in an entrypoint is the cluster's own Python (where gpupool and ray live).
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        cfg = self.config
        env.update({str(k): str(v) for k, v in (cfg.get("env") or {}).items()})
        # The job's driver is captured in its placement group when it calls ray.init (runtime).
        own_hook = env.get(runtime.RAY_HOOK_ENV)
        if own_hook and own_hook != runtime.CAPTURE_HOOK:
            env[runtime.ENV_NEXT_HOOK] = own_hook
        env[runtime.RAY_HOOK_ENV] = runtime.CAPTURE_HOOK
        env.update(
            {
                "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
                "PYTHONUNBUFFERED": "1",
                "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in gpu_ids),
                runtime.ENV_WORKLOAD_ID: self.workload_id,
                runtime.ENV_ATTEMPT: str(self.attempt),
                runtime.ENV_MEMBER: cfg["placement"][0][0],
                runtime.ENV_NODE: cfg["placement"][0][1],
                runtime.ENV_PLACEMENT: json.dumps(cfg["placement"]),
                runtime.ENV_PLACEMENT_GROUP_ID: cfg["placement_group_id"],
                runtime.ENV_GPU_IDS: ",".join(str(i) for i in gpu_ids),
                runtime.ENV_CONTROL_DIR: str(self.control_dir),
                runtime.ENV_CHECKPOINT_DIR: str(ckpt_dir),
                runtime.ENV_CHECKPOINT_ROOT: str(self.checkpoint_root),
            }
        )
        if cfg.get("resume_from"):
            env[runtime.ENV_RESUME_FROM] = str(cfg["resume_from"])
        else:
            env.pop(runtime.ENV_RESUME_FROM, None)
        return env

    def _watch(self, pgid: int) -> None:
        # Fate-share: a watcher in its own session kills the job's group once we are gone.
        subprocess.Popen(
            f"while kill -s 0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill -9 -{pgid} 2>/dev/null",
            shell=True,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _launch_error(exc: BaseException, cwd: str) -> str:
    """Why the entrypoint could not be started, in plain words."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError) and not Path(cwd).is_dir():
        return f"its working_dir {cwd} does not exist on this node"
    if isinstance(exc, ValueError) and "null" in str(exc):
        return "its entrypoint, env or working_dir contains a NUL byte"
    return f"its entrypoint could not be started: {type(exc).__name__}: {exc}"
