"""Control-plane crashes and restarts of the real ``gpupool up`` with its own local Ray cluster.

* kill -9 at random (seeded) moments, 10 cycles, 50 short jobs that record every run: none lost,
  none run twice, one cluster throughout, no process of it left after the final stop;
* a pool node the elastic pool launched survives a kill -9: the restart adopts it (once), the job
  on it goes on, and it is scaled down later, its Ray processes gone;
* a graceful stop (SIGTERM) asks running work to checkpoint: the next start resumes from there;
* a cluster that died with the control plane (its head killed too) is replaced: what was left of
  it is stopped (only its recorded processes), a new one starts and the work is requeued.

They start clusters of their own, one at a time, and take a few minutes: ``make reliability``
runs them (``make test`` does not).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import httpx
from crash import QUEUES, Plane, owned_pids, run

from gpupool.adapters.ray import procs
from jobs import checkpointing_job

SCRIPT_DIR = Path(__file__).parent


def test_kill_9_at_random_moments_runs_no_job_twice_and_leaves_nothing(tmp_path: Path):
    figures = run(tmp_path, cycles=10, jobs=50, seed=12)
    print("CRASH TEST FIGURES " + json.dumps(asdict(figures)))
    assert figures.accepted == 50
    assert figures.lost == 0, figures.states
    assert figures.run_twice == 0, figures
    assert figures.orphans == 0
    assert figures.clusters == 1  # the first cluster was adopted by every restart


POOL_QUEUES = (
    QUEUES
    + """nodepools:
  - name: l4
    min: 0
    max: 1
    idletimeout: 3s
    instancetypes:
      - {name: l4-local, gputype: L4, gpus: 2, vcore: 2, memory: 4Gi, boottime: 1s}
"""
)

CHECKPOINTING = checkpointing_job(0.2)


class Api:
    def __init__(self, plane: Plane, data: Path) -> None:
        token = (data / "admin.token").read_text().strip()
        self.http = httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def get(self, path: str) -> object:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def submit(self, body: dict) -> str:
        r = self.http.post("/workloads", json=body)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while not done():
            assert time.perf_counter() < deadline, f"not {what} within {timeout:.0f}s"
            time.sleep(0.3)

    def run_one(self, name: str, gpus: int, gpu_type: str, entrypoint: str) -> str:
        """Submit one single-member job to root.a and wait until it runs."""
        task_group = {"gpus": gpus, "gpu_types": [gpu_type], "cpu": 1, "memory": "1Gi"}
        body = {"name": name, "queue": "root.a", "task_groups": [task_group], "entrypoint": entrypoint}
        wid = self.submit(body)
        self.wait("running", lambda: self.state(wid) == "running", timeout=180)
        return wid

    def state(self, wid: str) -> str:
        body = self.get(f"/workloads/{wid}")
        assert isinstance(body, dict)
        return str(body["state"])

    def pool_nodes(self) -> list[dict]:
        nodes = self.get("/nodes")
        assert isinstance(nodes, list)
        return [n for n in nodes if n["pool"] == "l4"]


def _record(data: Path) -> dict:
    record = procs.read_record(data / "ray" / "cluster.json")
    assert record is not None
    return record


def _cleanup(plane: Plane | None, data: Path) -> None:
    """After a failure: the control plane, then whatever its cluster left (recorded groups only)."""
    if plane is not None:
        plane.kill9()
    record = procs.read_record(data / "ray" / "cluster.json")
    if record is not None:
        procs.stop_recorded(record, graceful=False)
    for pid in owned_pids(data):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _setup(tmp_path: Path, queues: str) -> tuple[str, Path, Path, Path]:
    gpupool = str(Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "gpupool")
    if not os.path.exists(gpupool):
        import sys

        gpupool = str(Path(sys.executable).parent / "gpupool")
    config = tmp_path / "queues.yaml"
    config.write_text(queues)
    return gpupool, tmp_path / "data", config, tmp_path / "gpupool-up.log"


def test_a_pool_node_survives_a_kill_9_is_adopted_once_and_scaled_down_later(tmp_path: Path):
    gpupool, data, config, log = _setup(tmp_path, POOL_QUEUES)
    runs = tmp_path / "runs.log"
    plane = Plane(gpupool, data, config, "1xH100:1", log)
    try:
        plane.wait_up()
        api = Api(plane, data)
        wid = api.run_one("on-l4", 2, "L4", f"echo start >> {runs}; sleep 25; echo end >> {runs}")
        [node] = api.pool_nodes()
        assert node["state"] == "ready"
        name = node["name"]
        head = _record(data)["nodes"]["head"]
        plane.kill9()

        # The control plane is gone; its cluster, the pool node and the job still run.
        record = _record(data)
        assert name in record["nodes"]
        assert procs.alive(record["nodes"][name]["pid"], record["nodes"][name]["start"])

        plane = Plane(gpupool, data, config, "1xH100:1", log)
        plane.wait_up()
        api = Api(plane, data)
        assert _record(data)["nodes"]["head"] == head  # the same cluster, adopted
        nodes = api.pool_nodes()
        assert [(n["name"], n["state"]) for n in nodes] == [(name, "ready")]  # adopted, counted once
        [pool] = api.get("/pools")  # type: ignore[misc]
        assert [a["outcome"] for a in pool["attempts"]] == ["adopted"]
        body = api.get(f"/workloads/{wid}")
        assert isinstance(body, dict) and body["state"] == "running" and body["attempt"] == 1
        api.wait("succeeded", lambda: api.state(wid) == "succeeded", timeout=120)
        assert runs.read_text().count("start") == 1  # the job went on, it did not run again
        api.wait("scaled down", lambda: not api.pool_nodes(), timeout=120)
        api.wait("stopped", lambda: name not in _record(data)["nodes"], timeout=60)
        [pool] = api.get("/pools")  # type: ignore[misc]
        assert pool["nodes"] == {}
        assert plane.stop() == 0
        plane = None
        time.sleep(2.0)
        left = owned_pids(data)
        assert not left, f"processes left after the stop: {sorted(left)}"
        assert not (data / "ray" / "cluster.json").exists()
    finally:
        _cleanup(plane, data)


def test_a_graceful_stop_checkpoints_running_work_and_the_restart_resumes_it(tmp_path: Path):
    gpupool, data, config, log = _setup(tmp_path, POOL_QUEUES)
    script = tmp_path / "ckpt.py"
    script.write_text(CHECKPOINTING)
    plane = Plane(gpupool, data, config, "1xH100:1", log)
    try:
        plane.wait_up()
        api = Api(plane, data)
        wid = api.run_one("ckpt", 1, "H100", f"python {script}")
        time.sleep(2.0)
        assert plane.stop() == 0  # SIGTERM
        plane = None
        time.sleep(2.0)
        assert not owned_pids(data), "the graceful stop left processes"

        plane = Plane(gpupool, data, config, "1xH100:1", log)
        plane.wait_up()
        api = Api(plane, data)
        api.wait("succeeded", lambda: api.state(wid) == "succeeded", timeout=180)
        body = api.get(f"/workloads/{wid}")
        assert isinstance(body, dict) and body["attempt"] == 2
        reasons = [t["reason"] for t in body["history"]]
        assert any("control plane is stopping" in r for r in reasons), reasons
        logs = api.get(f"/workloads/{wid}/logs")
        assert isinstance(logs, dict)
        text = str(logs["text"])
        assert "checkpointed at step" in text and "resumed from step" in text, text
        saved = int(text.split("checkpointed at step ")[1].split()[0])
        resumed = int(text.split("resumed from step ")[1].split()[0])
        assert resumed == saved > 1  # no progress lost
        assert plane.stop() == 0
        plane = None
    finally:
        _cleanup(plane, data)


def test_a_cluster_that_died_with_the_control_plane_is_replaced_and_its_work_requeued(tmp_path: Path):
    gpupool, data, config, log = _setup(tmp_path, POOL_QUEUES)
    runs = tmp_path / "runs.log"
    plane = Plane(gpupool, data, config, "1xH100:1", log)
    try:
        plane.wait_up()
        api = Api(plane, data)
        wid = api.run_one("long", 1, "H100", f"echo start >> {runs}; sleep 8")
        old = _record(data)
        plane.kill9()
        # The watchdog would clean up a cluster whose owner and head are both gone: without it,
        # what is left (the worker node and its job) is the restart's to stop.
        dog, head = old["watchdog"], old["nodes"]["head"]
        assert procs.signal_group(dog["pid"], dog["start"], signal.SIGKILL)
        assert procs.signal_group(head["pid"], head["start"], signal.SIGKILL)  # the head dies too
        procs.wait_gone([(head["pid"], head["start"]), (dog["pid"], dog["start"])], 10)
        assert any(procs.ours(n["pid"], n["start"]) for name, n in old["nodes"].items() if name != "head")

        plane = Plane(gpupool, data, config, "1xH100:1", log)
        plane.wait_up()
        api = Api(plane, data)
        new = _record(data)
        assert new["id"] != old["id"] and new["nodes"]["head"]["pid"] != head["pid"]
        for name, node in old["nodes"].items():  # what was left of the old one is gone
            assert not procs.ours(node["pid"], node["start"]), name
        assert "replaced the ray cluster" in log.read_text().lower()
        api.wait("succeeded", lambda: api.state(wid) == "succeeded", timeout=180)
        body = api.get(f"/workloads/{wid}")
        assert isinstance(body, dict) and body["attempt"] == 2
        assert any("not found after a control-plane restart" in t["reason"] for t in body["history"])
        assert plane.stop() == 0
        plane = None
        time.sleep(2.0)
        assert not owned_pids(data)
    finally:
        _cleanup(plane, data)
