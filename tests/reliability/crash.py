"""The control-plane crash test: ``kill -9`` of ``gpupool up`` at random moments, then restart.

``python tests/reliability/crash.py [--cycles 10] [--jobs 50] [--seed 1] [--json]`` runs the real
``gpupool up`` (its own local Ray cluster) on a fresh data dir, submits short jobs a batch per
cycle, kills the control plane with SIGKILL at a random (seeded) moment each cycle and starts it
again on the same data dir. Every job appends one line per run to its own file. At the end the
control plane runs until every job is done, is stopped gracefully (SIGTERM), and every process
that belonged to it is looked for. Figures: cycles, jobs, lost (accepted and not succeeded), run
twice (jobs whose entrypoint started more than once), orphans (processes of its Ray cluster or
its jobs left after the final stop) and clusters (distinct head nodes started over the run).

A process belongs to the data dir when its stdout is a ``DATA/ray/*.out`` file (``ray start``
of a node), when it is in the session of such a process (every Ray process of that node), or
when its environment names the data dir (the jobs and their supervisors): this needs nothing
from the code under test, so the same script measures a build without crash recovery.

``--reap-between`` kills what the killed control plane left before starting the next one (and
counts it), for a build whose restart would otherwise start a second cluster next to the first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

QUEUES = """
partitions:
  - name: default
    queues:
      - name: root
        submitacl: "*"
        queues:
          - name: a
"""


@dataclass
class Figures:
    cycles: int = 0
    jobs: int = 0
    accepted: int = 0
    succeeded: int = 0
    lost: int = 0
    run_twice: int = 0
    max_runs: int = 0
    orphans: int = 0
    orphan_rss_mb: int = 0
    left_after_kills: list[int] = field(default_factory=list)  # with --reap-between
    clusters: int = 0
    seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    restarts_recovered: dict[str, int] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def owned_pids(data_dir: Path, exclude: set[int] = frozenset()) -> dict[int, int]:  # type: ignore[assignment]
    """Processes that belong to ``data_dir``'s control plane, its Ray cluster and its jobs: pid -> RSS kB."""
    ray_out = str(data_dir / "ray") + "/"
    needle = str(data_dir).encode()
    leaders: set[int] = set()
    found: dict[int, int] = {}
    sids: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in exclude or pid == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            sids[pid] = int(fields[3])
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/1").startswith(ray_out):
                    leaders.add(sids[pid])
                    found[pid] = 0
            if needle in Path(f"/proc/{pid}/environ").read_bytes():
                found[pid] = 0
        except (OSError, IndexError, ValueError):
            continue
    for pid, sid in sids.items():
        if sid in leaders:
            found[pid] = 0
    for pid in list(found):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = (line for line in status.splitlines() if line.startswith("VmRSS"))
            found[pid] = int(next(rss).split()[1])
        except (OSError, StopIteration):
            found[pid] = found.get(pid, 0)
    return found


def _head_pid(data_dir: Path) -> int | None:
    """The ``ray start --head`` process of the data dir's cluster (its stdout is ray/head.out)."""
    target = str(data_dir / "ray" / "head.out")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/fd/1") == target:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                    if b"_raystart" in cmd and b"--head" in cmd:
                        return int(entry)
    return None


def _kill(pids: set[int] | dict[int, int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class Plane:
    """One ``gpupool up`` process on the data dir."""

    def __init__(self, gpupool: str, data: Path, config: Path, spec: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = log.open("ab")
        cmd = [gpupool, "up", "--data-dir", str(data), "--port", str(self.port), "--config", str(config)]
        cmd += ["--cluster", spec]
        self.proc = subprocess.Popen(
            cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def wait_up(self, timeout: float = 240.0) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gpupool up exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"gpupool up did not answer within {timeout:.0f}s")

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.out.close()

    def stop(self, timeout: float = 180.0) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.out.close()


def job_entrypoint(runs: Path, name: str, seconds: float) -> str:
    f = runs / f"{name}.log"
    line = '"$GPUPOOL_WORKLOAD_ID attempt=$GPUPOOL_ATTEMPT pid=$$'
    return f'echo {line} start" >> {f}; sleep {seconds:.1f}; echo {line} end" >> {f}'


def run(
    work: Path,
    *,
    cycles: int = 10,
    jobs: int = 50,
    seed: int = 1,
    spec: str = "2xH100:4",
    reap_between: bool = False,
    gpupool: str | None = None,
    log: object = print,
) -> Figures:
    say = log if callable(log) else print
    rng = random.Random(seed)
    gpupool = gpupool or str(Path(sys.executable).parent / "gpupool")
    work.mkdir(parents=True, exist_ok=True)
    data, runs = work / "data", work / "runs"
    runs.mkdir(exist_ok=True)
    config = work / "queues.yaml"
    config.write_text(QUEUES)
    plane_log = work / "gpupool-up.log"
    figures = Figures(cycles=cycles, jobs=jobs)
    durations = {f"job-{i:03d}": round(rng.uniform(1.0, 6.0), 1) for i in range(jobs)}
    names = list(durations)
    batches = [names[i * jobs // cycles : (i + 1) * jobs // cycles] for i in range(cycles)]
    to_submit: list[str] = []
    accepted: dict[str, str] = {}  # job name -> workload id
    heads: set[int] = set()
    t0 = time.perf_counter()
    me = {os.getpid()}

    def submit(plane: Plane, token: str) -> None:
        with httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            for name in list(to_submit):
                body = {
                    "name": name,
                    "queue": "root.a",
                    "task_groups": [{"gpus": 1, "cpu": 1, "memory": "1Gi"}],
                    "entrypoint": job_entrypoint(runs, name, durations[name]),
                    "idempotency_key": name,
                }
                try:
                    r = c.post("/workloads", json=body)
                except httpx.TransportError:
                    return
                if r.status_code in (200, 201):
                    accepted[name] = r.json()["id"]
                    to_submit.remove(name)

    def start() -> tuple[Plane, str]:
        """Start the control plane, note its Ray head, and read its admin token."""
        plane = Plane(gpupool, data, config, spec, plane_log)
        plane.wait_up()
        head = _head_pid(data)
        if head is not None:
            heads.add(head)
        return plane, (data / "admin.token").read_text().strip()

    plane: Plane | None = None
    try:
        for cycle in range(cycles):
            plane, token = start()
            to_submit.extend(batches[cycle])
            submit(plane, token)
            wait = rng.uniform(1.0, 8.0)
            time.sleep(wait)
            plane.kill9()
            plane = None
            say(f"cycle {cycle + 1}/{cycles}: killed after {wait:.1f}s; {len(accepted)} accepted")
            if reap_between:
                time.sleep(1.0)
                left = owned_pids(data, me)
                figures.left_after_kills.append(len(left))
                say(f"  left by the kill: {len(left)} processes, {sum(left.values()) // 1024} MB; killed")
                _kill(left)
                time.sleep(1.0)
        plane, token = start()
        submit(plane, token)
        deadline = time.perf_counter() + 600
        states: dict[str, str] = {}
        with httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            while time.perf_counter() < deadline:
                states = {n: c.get(f"/workloads/{wid}").json()["state"] for n, wid in accepted.items()}
                if all(s in ("succeeded", "failed", "cancelled") for s in states.values()):
                    break
                time.sleep(1.0)
            for wid in accepted.values():
                for t in c.get(f"/workloads/{wid}").json()["history"]:
                    if t["old"] is not None and "restart" in t["reason"]:
                        key = t["reason"].split(";")[0][:60]
                        figures.restarts_recovered[key] = figures.restarts_recovered.get(key, 0) + 1
        plane.stop()
        plane = None
        time.sleep(3.0)  # a job's fate-sharing watcher notices its supervisor's end within a second
        left = owned_pids(data, me)
        figures.orphans = len(left)
        figures.orphan_rss_mb = sum(left.values()) // 1024
        if left:
            say("orphans: " + ", ".join(f"{pid}" for pid in sorted(left)))
            for pid in sorted(left)[:20]:
                with contextlib.suppress(OSError):
                    say(f"  {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:150]!r}")
        _kill(left)
    finally:
        if plane is not None:
            plane.kill9()
        _kill(owned_pids(data, me))
    figures.accepted = len(accepted)
    figures.states = {}
    for s in states.values():
        figures.states[s] = figures.states.get(s, 0) + 1
    figures.succeeded = figures.states.get("succeeded", 0)
    figures.lost = jobs - figures.succeeded
    starts = {n: 0 for n in names}
    for n in names:
        f = runs / f"{n}.log"
        if f.exists():
            starts[n] = sum(1 for line in f.read_text().splitlines() if line.endswith(" start"))
    figures.run_twice = sum(1 for n in starts.values() if n > 1)
    figures.max_runs = max(starts.values(), default=0)
    figures.clusters = len(heads)
    figures.seconds = round(time.perf_counter() - t0, 1)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=None, help="working directory (default: a new temp dir)")
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--jobs", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cluster", default="2xH100:4")
    p.add_argument("--reap-between", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="gpupool-crash-"))
    figures = run(
        work,
        cycles=args.cycles,
        jobs=args.jobs,
        seed=args.seed,
        spec=args.cluster,
        reap_between=args.reap_between,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps(asdict(figures)))
    else:
        print(
            f"crash test: {figures.cycles} cycles, {figures.jobs} jobs, lost {figures.lost}, "
            f"run twice {figures.run_twice} (most runs of one job: {figures.max_runs}), "
            f"orphans {figures.orphans}, clusters started {figures.clusters}, {figures.seconds}s"
        )
        print(json.dumps(asdict(figures)))


if __name__ == "__main__":
    main()
