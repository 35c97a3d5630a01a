"""The local Ray node provider on the real local cluster: launch -> Booted -> terminate ->
Terminated, and live autoscaling through the driver: a pool grows a Ray node for a waiting
workload, the job runs there on the node's GPUs, and the idle node goes again.

The pool's GPU type (L4) is one the session cluster has not, so only a pool node serves it;
every node a test launches is gone when it ends (the cluster is shared by the session)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from raytest_support import CHECKPOINTING, clock, python, write

from gpupool.adapters.ray.cluster import LocalRayCluster
from gpupool.adapters.ray.executor import RayExecutor
from gpupool.adapters.ray.provider import LocalRayProvider
from gpupool.config import parse_config
from gpupool.core.capacity import INSTANCE_LABEL, POOL_LABEL
from gpupool.core.config import InstanceType, NodePool
from gpupool.core.resources import GPU_TYPE_LABEL
from gpupool.core.scheduler import Scheduler
from gpupool.engine.autoscaler import Autoscaler
from gpupool.engine.driver import Driver
from gpupool.engine.model import TaskGroup, Workload, WorkloadSpec, WorkloadState
from gpupool.engine.ports import Booted, NodeUp, ProviderEvent, Terminated

GIB = 1024**3
L4 = InstanceType("l4-local", "L4", 2, 2000, 4 * GIB, boot_time=3.0)
CONFIG = {
    "partitions": [
        {"name": "default", "queues": [{"name": "root", "submitacl": "*", "queues": [{"name": "a"}]}]}
    ]
}

SHOW_GPUS = """
import os, time
from gpupool import runtime
print("GPUS", runtime.node(), runtime.gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
time.sleep(3)
"""


@pytest.fixture
def provider(cluster: LocalRayCluster) -> Iterator[LocalRayProvider]:
    p = LocalRayProvider(cluster)
    try:
        yield p
    finally:
        p.close()  # stops whatever a failed test left running


def events_until(
    provider: LocalRayProvider, done: Callable[[ProviderEvent], bool], timeout: float = 60.0
) -> list[ProviderEvent]:
    seen: list[ProviderEvent] = []
    deadline = clock() + timeout
    while not any(done(e) for e in seen):
        assert clock() < deadline, f"no matching event within {timeout}s; saw {seen}"
        seen.extend(provider.poll(clock()))
        time.sleep(0.1)
    return seen


def test_launch_boots_after_the_delay_then_terminate(
    provider: LocalRayProvider, executor: RayExecutor, cluster: LocalRayCluster
):
    provider.boot_delay = 2.0
    t0 = clock()
    provider.launch("l4", L4, "l4-test-0001", t0)
    assert clock() - t0 < 0.5  # returns at once; the node starts in the background
    assert provider.poll(clock()) == []
    seen = events_until(provider, lambda e: isinstance(e, Booted))
    assert seen == [Booted("l4-test-0001")]
    assert clock() - t0 >= 2.0
    assert "l4-test-0001" in {n.name for n in cluster.nodes()}
    # The executor pins work there but leaves reporting the node to the autoscaler.
    assert "l4-test-0001" not in {n.name for n in executor.nodes()}
    time.sleep(0.6)  # past the executor's node poll interval
    up = [o.node.name for o in executor.poll(clock()) if isinstance(o, NodeUp)]
    assert "l4-test-0001" not in up and up  # the static nodes, and only those

    provider.terminate("l4-test-0001", clock())
    seen = events_until(provider, lambda e: isinstance(e, Terminated))
    assert seen == [Terminated("l4-test-0001")]
    assert "l4-test-0001" not in {n.name for n in cluster.nodes()}
    assert provider.owned() == []


def test_a_pool_grows_a_ray_node_for_a_workload_and_drops_it_when_idle(
    provider: LocalRayProvider, executor: RayExecutor, cluster: LocalRayCluster, tmp_path: Path
):
    pool = NodePool("l4", (L4,), min=0, max=1, idle_timeout=2.0)
    scaler = Autoscaler((pool,), provider)
    driver = Driver(Scheduler(parse_config(CONFIG).partition("default")), executor, autoscaler=scaler)
    t0 = clock()

    def tick_until(done: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = clock() + timeout
        while not done():
            assert clock() < deadline and w.state != WorkloadState.FAILED, driver.why(w.id)
            driver.tick(clock() - t0)
            time.sleep(0.2)

    script = write(tmp_path, "gpus", SHOW_GPUS)
    group = TaskGroup("worker", 1, {"gpu": 2000, "vcore": 1000, "memory": GIB}, gpu_types=("L4",))
    w = driver.submit(
        WorkloadSpec(name="on-l4", queue="root.a", task_groups=(group,), entrypoint=python(script)),
        now=clock() - t0,
    )
    tick_until(lambda: bool(scaler.nodes))
    [name] = scaler.nodes
    assert scaler.nodes[name].state == "booting" and name not in driver.core.nodes
    tick_until(lambda: w.state == WorkloadState.RUNNING)
    assert w.placement == {"worker-0": name}
    node = driver.core.nodes[name]
    assert node.labels[POOL_LABEL] == "l4" and node.labels[INSTANCE_LABEL] == "l4-local"
    assert node.labels[GPU_TYPE_LABEL] == "L4" and node.capacity["gpu"] == 2000  # milli-GPU
    assert [a.outcome for a in scaler.history(w.id)] == ["launching", "booted"]
    boot = next(a for a in scaler.attempts if a.outcome == "booted")
    assert boot.at - scaler.attempts[0].at >= L4.boot_time

    tick_until(lambda: w.state == WorkloadState.SUCCEEDED)
    assert scaler.nodes[name].state == "ready"  # never taken away while the job ran
    finished = clock() - t0
    assert f"GPUS {name} [0, 1] 0,1" in executor.logs(w.id)

    tick_until(lambda: name not in driver.core.nodes and not scaler.nodes, timeout=30)
    assert clock() - t0 - finished >= pool.idle_timeout - 0.5
    assert name not in {n.name for n in cluster.nodes()}
    assert provider.owned() == []


def test_compaction_moves_checkpointed_work_live_and_frees_a_pool_node(
    provider: LocalRayProvider, executor: RayExecutor, tmp_path: Path
):
    """Two pool nodes each left with one light job: compaction checkpoints one, stops it, places
    it again on the other node, where it resumes, and the emptied node is terminated."""
    pool = NodePool("l4", (L4,), min=0, max=2, idle_timeout=600.0)  # no idle scale-down here
    scaler = Autoscaler((pool,), provider, compaction_budget=1, compaction_interval=1.0)
    driver = Driver(Scheduler(parse_config(CONFIG).partition("default")), executor, autoscaler=scaler)
    t0 = clock()
    script = write(tmp_path, "ckpt", CHECKPOINTING)
    group = TaskGroup("worker", 1, {"gpu": 1000, "vcore": 500, "memory": GIB}, gpu_types=("L4",))

    def submit(name: str) -> Workload:
        spec = WorkloadSpec(name=name, queue="root.a", task_groups=(group,), entrypoint=python(script))
        return driver.submit(spec, now=clock() - t0)

    def tick_until(done: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = clock() + timeout
        while not done():
            assert clock() < deadline, [driver.why(w.id) for w in driver.workloads.values()]
            driver.tick(clock() - t0)
            time.sleep(0.2)

    def running(*ws: Workload) -> bool:
        return all(w.state == WorkloadState.RUNNING for w in ws)

    a, b = submit("a"), submit("b")  # one node for both
    tick_until(lambda: running(a, b))
    c, d = submit("c"), submit("d")  # the first node is full: a second one for these two
    tick_until(lambda: running(c, d))
    first, second = a.placement["worker-0"], c.placement["worker-0"]
    assert first != second and b.placement["worker-0"] == first and d.placement["worker-0"] == second
    assert scaler.moves == 0  # two full nodes: nothing to gain

    for w in (b, d):  # each node is left half used
        driver.cancel(w.id, clock() - t0)
    tick_until(lambda: scaler.moves == 1)
    [moved] = [w for w in (a, c) if w.state == WorkloadState.PREEMPTING]  # checkpoint asked
    stayed = c if moved is a else a
    tick_until(lambda: len(provider.owned()) == 1 and moved.attempt == 2)
    [kept] = provider.owned()
    assert kept == stayed.placement["worker-0"] and moved.placement == {"worker-0": kept}
    assert (stayed.attempt, moved.preemptions) == (1, 1) and stayed.state == WorkloadState.RUNNING
    assert set(driver.core.nodes) & {first, second} == {kept}  # the emptied node left the core
    tick_until(lambda: moved.state == WorkloadState.SUCCEEDED)  # it resumed and finished
    logs = executor.logs(moved.id)
    assert "checkpointed at step" in logs and "resumed from step" in logs
    driver.cancel(stayed.id, clock() - t0)
    tick_until(lambda: stayed.terminal)


POOLS_YAML = """
partitions:
  - name: default
    queues:
      - name: root
        submitacl: "*"
        queues:
          - name: a
nodepools:
  - name: l4
    min: 0
    max: 1
    idletimeout: 2s
    instancetypes:
      - {name: l4-local, gputype: L4, gpus: 2, vcore: 2, memory: 4Gi, boottime: 2s}
"""


def test_the_service_scales_a_pool_live_and_shows_it(
    executor: RayExecutor, cluster: LocalRayCluster, tmp_path: Path
):
    from fastapi.testclient import TestClient

    from gpupool.service.app import create_app
    from gpupool.service.settings import ServiceSettings

    (tmp_path / "queues.yaml").write_text(POOLS_YAML)
    settings = ServiceSettings(
        data_dir=tmp_path / "svc", config_path=tmp_path / "queues.yaml", tick_interval=0.2
    )
    provider = LocalRayProvider(cluster)
    try:
        with TestClient(create_app(settings, executor, provider=provider)) as client:
            token = settings.admin_token_file.read_text().strip()
            client.headers["Authorization"] = f"Bearer {token}"
            body = {
                "name": "svc-l4",
                "queue": "root.a",
                "task_groups": [{"gpus": 2, "gpu_types": ["L4"], "cpu": 1, "memory": "1Gi"}],
                "entrypoint": "sleep 1",
            }
            r = client.post("/workloads", json=body)
            assert r.status_code in (200, 201), r.text
            wid = r.json()["id"]

            def wait(done: Callable[[], bool], timeout: float = 45.0) -> None:
                deadline = clock() + timeout
                while not done():
                    assert clock() < deadline, client.get(f"/workloads/{wid}/why").json()
                    time.sleep(0.2)

            def pool_nodes() -> list[dict]:
                return [n for n in client.get("/nodes").json() if n["pool"] == "l4"]

            wait(lambda: [n["state"] for n in pool_nodes()] == ["booting"])
            static = [n for n in client.get("/nodes").json() if n["pool"] is None]
            assert static and all(n["state"] == "ready" for n in static)
            portal = client.get("/portal/api/nodes").json()
            assert [n["state"] for p in portal if p["name"] == "l4" for n in p["nodes"]] == ["booting"]
            wait(lambda: client.get(f"/workloads/{wid}").json()["state"] == "succeeded")
            [pool] = client.get("/pools").json()
            assert (pool["name"], pool["min"], pool["max"]) == ("l4", 0, 1)
            assert [a["outcome"] for a in pool["attempts"]] == ["launching", "booted"]
            assert pool["attempts"][0]["for_workloads"] == [wid]
            wait(lambda: not pool_nodes())  # idle for 2 s: scaled down
            assert client.get("/pools").json()[0]["nodes"] == {}
    finally:
        provider.close()
    assert provider.owned() == [] and not [n for n in cluster.nodes() if n.name.startswith("l4")]


def test_a_new_autoscaler_adopts_a_node_the_provider_still_runs(
    provider: LocalRayProvider, executor: RayExecutor, cluster: LocalRayCluster
):
    provider.boot_delay = 1.0
    pool = NodePool("l4", (L4,), min=1, max=1, idle_timeout=600.0)
    t0 = clock()

    def driver_with(scaler: Autoscaler) -> Driver:
        return Driver(Scheduler(parse_config(CONFIG).partition("default")), executor, autoscaler=scaler)

    first = Autoscaler((pool,), provider)
    driver = driver_with(first)
    deadline = clock() + 60
    while not any(n.state == "ready" for n in first.nodes.values()):  # min 1: one node comes up
        assert clock() < deadline, first.attempts
        driver.tick(clock() - t0)
        time.sleep(0.2)
    [name] = first.nodes
    assert [(n.name, n.pool, n.instance_type, n.state) for n in provider.inventory()] == [
        (name, "l4", "l4-local", "ready")
    ]

    # The control plane restarts: a new driver and autoscaler over the same provider.
    second = Autoscaler((pool,), provider)
    driver = driver_with(second)
    assert driver.adopt_pool_nodes(clock() - t0) == [name]
    assert second.nodes[name].state == "ready"
    node = driver.core.nodes[name]
    assert node.labels[POOL_LABEL] == "l4" and node.labels[INSTANCE_LABEL] == "l4-local"
    assert node.labels[GPU_TYPE_LABEL] == "L4" and node.capacity["gpu"] == 2000  # milli-GPU
    for _ in range(5):  # the pool is at its min and max with the adopted node: nothing launches
        driver.tick(clock() - t0)
        time.sleep(0.1)
    assert list(second.nodes) == [name] and provider.owned() == [name]
    assert not [a for a in second.attempts if a.outcome == "launching"]
    assert name in {n.name for n in cluster.nodes()}

    provider.terminate(name, clock())
    events_until(provider, lambda e: isinstance(e, Terminated))
    assert provider.owned() == [] and name not in {n.name for n in cluster.nodes()}


def test_a_restarted_provider_takes_its_nodes_back_from_the_store(
    executor: RayExecutor, cluster: LocalRayCluster, tmp_path: Path
):
    """A control plane killed with a pool node up: the next provider over the same cluster and
    database keeps the node that still runs, forgets one that is gone, and stops a pool node the
    store never heard of; the autoscaler adopts the node once and terminating it clears the row."""
    from gpupool.adapters.ray.cluster import LocalNode
    from gpupool.engine.ports import ProviderNode
    from gpupool.service.db import Database
    from gpupool.service.poolnodes import DbPoolNodeStore

    db = Database(f"sqlite:///{tmp_path / 'gpupool.db'}")
    db.migrate()
    store = DbPoolNodeStore(db)
    first = LocalRayProvider(cluster, boot_delay=0.5, store=store)
    t0 = clock()
    first.launch("l4", L4, "l4-store-0001", t0)
    events_until(first, lambda e: isinstance(e, Booted))
    assert [(n.name, n.state) for n in store.load()] == [("l4-store-0001", "ready")]
    # What a crash leaves: a record of a node that is gone, and a pool node without a record.
    store.save(ProviderNode("l4-store-0002", "l4", "l4-local", "ready", t0))
    cluster.add_node(LocalNode("l4-store-0003", "L4", 2, 2, 4 * GIB, pool="l4"))
    first._pool.shutdown(wait=True)  # the old control plane is gone; its nodes are not

    second = LocalRayProvider(cluster, store=store)
    try:
        assert second.recovered == {
            "l4-store-0001": "kept",
            "l4-store-0002": "gone",
            "l4-store-0003": "stopped (no record)",
        }
        assert [(n.name, n.state) for n in second.inventory()] == [("l4-store-0001", "ready")]
        deadline = clock() + 30
        while "l4-store-0003" in {n.name for n in cluster.nodes()}:
            assert clock() < deadline
            time.sleep(0.2)
        pool = NodePool("l4", (L4,), min=0, max=1, idle_timeout=600.0)
        scaler = Autoscaler((pool,), second)
        driver = Driver(Scheduler(parse_config(CONFIG).partition("default")), executor, autoscaler=scaler)
        assert driver.adopt_pool_nodes(clock()) == ["l4-store-0001"]
        assert "l4-store-0001" in driver.core.nodes
        second.terminate("l4-store-0001", clock())
        events_until(second, lambda e: isinstance(e, Terminated))
        assert store.load() == []
        assert not [n for n in cluster.nodes() if n.name.startswith("l4-store")]
    finally:
        second.close()
        db.close()
