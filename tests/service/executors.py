"""A small real executor for the service tests: each workload runs as a local shell process.

Nodes are declared (logical GPUs of named types); a workload's entrypoint runs as one process
group in its own session, so it outlives a control plane that is stopped or killed -9. Each
attempt leaves files in ``<root>/<id>.<attempt>.{pid,rc,log}``: a new executor on the same root
re-adopts a running attempt by its pid file and learns how one ended from its rc file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gpupool.core.model import NodeSpec
from gpupool.engine.ports import Adoptable, Executor, Finished, Observation, Started, Stopped

GI = 2**30


def default_nodes() -> list[NodeSpec]:
    return [
        NodeSpec("h100-0", {"gpu": 4000, "vcore": 64000, "memory": 512 * GI}, {"gpu-type": "H100"}),
        NodeSpec("h100-1", {"gpu": 4000, "vcore": 64000, "memory": 512 * GI}, {"gpu-type": "H100"}),
        NodeSpec("a100-0", {"gpu": 4000, "vcore": 64000, "memory": 512 * GI}, {"gpu-type": "A100"}),
        NodeSpec("a100-1", {"gpu": 4000, "vcore": 64000, "memory": 512 * GI}, {"gpu-type": "A100"}),
    ]


@dataclass
class _Job:
    workload_id: str
    attempt: int
    pid: int
    started_reported: bool = False
    stop_deadline: float | None = None  # set when asked to stop
    killed: bool = False
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class ProcessExecutor(Executor, Adoptable):
    def __init__(self, root: Path, nodes: list[NodeSpec] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._nodes = nodes if nodes is not None else default_nodes()
        self.jobs: dict[str, _Job] = {}
        self.outbox: list[Observation] = []
        self.starts = 0

    def _file(self, wid: str, attempt: int, ext: str) -> Path:
        return self.root / f"{wid}.{attempt}.{ext}"

    # ---- Executor port

    def start(self, workload, now):
        job = self.jobs.get(workload.id)
        if job is not None and job.attempt == workload.attempt:
            return
        wid, attempt = workload.id, workload.attempt
        rc = self._file(wid, attempt, "rc")
        env = {
            **os.environ,
            **workload.spec.env,
            "GPUPOOL_WORKLOAD_ID": wid,
            "GPUPOOL_ATTEMPT": str(attempt),
        }
        log = open(self._file(wid, attempt, "log"), "ab")  # noqa: SIM115 - handed to the child
        script = f"({workload.spec.entrypoint}); echo $? > {rc}.tmp && mv {rc}.tmp {rc}"
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script],
            cwd=workload.spec.working_dir or None,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._file(wid, attempt, "pid").write_text(str(proc.pid))
        self.jobs[wid] = _Job(wid, attempt, proc.pid, popen=proc)
        self.starts += 1

    def preempt(self, workload, grace, now):
        job = self.jobs.get(workload.id)
        if job is None or job.stop_deadline is not None:
            return
        job.stop_deadline = now + grace
        _signal(job.pid, signal.SIGTERM)

    def cancel(self, workload, now):
        job = self.jobs.get(workload.id)
        if job is None:
            self.outbox.append(Stopped(workload.id, workload.attempt))
            return
        job.stop_deadline = min(job.stop_deadline or now, now)
        _signal(job.pid, signal.SIGTERM)

    def poll(self, now):
        for wid, job in list(self.jobs.items()):
            if not job.started_reported:
                job.started_reported = True
                self.outbox.append(Started(wid, job.attempt))
            rc_file = self._file(wid, job.attempt, "rc")
            alive = _alive(job)
            if job.stop_deadline is not None:
                if not alive or rc_file.exists():
                    del self.jobs[wid]
                    self.outbox.append(Stopped(wid, job.attempt))
                elif now >= job.stop_deadline and not job.killed:
                    job.killed = True
                    _signal(job.pid, signal.SIGKILL)
                continue
            if rc_file.exists():
                del self.jobs[wid]
                code = rc_file.read_text().strip()
                ok = code == "0"
                self.outbox.append(Finished(wid, job.attempt, ok, "" if ok else f"exit code {code}"))
            elif not alive:
                del self.jobs[wid]
                self.outbox.append(Finished(wid, job.attempt, False, "its process died"))
        out, self.outbox = self.outbox, []
        return out

    # ---- the service's additions

    def logs(self, workload_id: str) -> str:
        parts = sorted(self.root.glob(f"{workload_id}.*.log"), key=lambda p: int(p.name.split(".")[-2]))
        return "".join(p.read_text(errors="replace") for p in parts)

    def adopt(self, workload) -> bool:
        pid_file = self._file(workload.id, workload.attempt, "pid")
        if not pid_file.exists():
            return False
        job = _Job(workload.id, workload.attempt, int(pid_file.read_text()), started_reported=True)
        if not _alive(job) and not self._file(workload.id, workload.attempt, "rc").exists():
            return False
        self.jobs[workload.id] = job
        return True

    def nodes(self) -> list[NodeSpec]:
        return list(self._nodes)

    def close(self) -> None:
        self.jobs.clear()

    def kill_all(self) -> None:
        """Test teardown: kill every process any executor on this root started."""
        for pid_file in self.root.glob("*.pid"):
            _signal(int(pid_file.read_text()), signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _alive(job: _Job) -> bool:
    if job.popen is not None:
        return job.popen.poll() is None
    try:
        done, _ = os.waitpid(job.pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{job.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout  # noqa: TID251 - tests wait on real processes
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:  # noqa: TID251
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
