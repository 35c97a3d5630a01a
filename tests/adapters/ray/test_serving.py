"""Deployment replicas on Ray Serve, live, on a local Ray cluster of this module's own.

The cluster is a head without CPUs or GPUs and two nodes with two (fake) T4 each, all on
127.0.0.1. Two replicas of the demo model, pinned by ``ServeRunner`` to t4-0 and t4-1 with the
GPU index the test gives each, answer through their deployment's front; each sees its own node
and GPU. One replica is removed while a bounded client loop sends requests: none fails, and the
front stops sending to it at once. An import path that does not import is refused before
anything is made, and, given to Serve anyway, ends as a failed replica with Serve's message.
A request to a deployment without replicas waits at the front and is answered once the first
replica runs (scale from zero).

Timings (Serve start, replica RUNNING, drain, first request from zero) are printed for the
record (``-s``); nothing is asserted on them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ray
from raytest_support import clock

from gpupool.adapters.ray.cluster import LocalRayCluster
from gpupool.adapters.ray.executor import RayExecutor
from gpupool.adapters.ray.serving import (
    ReplicaSpec,
    ReplicaState,
    ServeRunner,
    ServingError,
    check_import_path,
)

DEMO = "gpupool.serving_demo:app"
FEATURES = {"features": [6.7, 3.0, 5.2, 2.3]}
TIMINGS: dict[str, float] = {}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeRunner]:
    """A cluster, a connection and Serve of the module's own (the session's connection, if any,
    is dropped first and this one's after), all stopped at the end."""
    ray.shutdown()
    cluster = LocalRayCluster("2xT4:2:cpu=2:memory=8Gi", tmp_path_factory.mktemp("ray-serving"))
    serve_runner: ServeRunner | None = None
    try:
        t0 = clock()
        address = cluster.start()
        TIMINGS["cluster_start_s"] = clock() - t0
        RayExecutor(address, tmp_path_factory.mktemp("serving-data"))  # connects this process to it
        serve_runner = ServeRunner(free_port(), front_hold_timeout=30.0)
        TIMINGS["serve_start_s"] = serve_runner.start()
        yield serve_runner
    finally:
        try:
            if serve_runner is not None:
                serve_runner.shutdown()
        finally:
            ray.shutdown()
            cluster.stop()
            print("\nserving timings:", {k: round(v, 1) for k, v in TIMINGS.items()})


def replica(
    member: str, node: str, gpu: int, import_path: str = DEMO, deployment: str = "iris"
) -> ReplicaSpec:
    return ReplicaSpec(
        deployment=deployment,
        member=member,
        import_path=import_path,
        node=node,
        ingress="Demo",
        gpus=1,
        cpus=0.5,
        memory=1 << 28,
        gpu_ids=(gpu,),
        graceful_shutdown_timeout_s=10.0,
    )


def serve_replica_ids(runner: ServeRunner) -> list[str]:
    """Serve's ids of the replica actors of gpupool's applications (new ones after a restart)."""
    return sorted(
        r["replica_id"]
        for name, app in runner._details().items()
        if name.startswith("gp.")
        for d in app["deployments"].values()
        for r in d["replicas"]
    )


class Load:
    """A bounded client loop: ``threads`` clients POST /predict (each held ``hold`` s at the
    replica) until stopped or ``limit`` requests each, ``deadline`` s at most."""

    def __init__(self, url: str, threads: int = 3, hold: float = 0.3, limit: int = 200) -> None:
        self.results: list[tuple[int, str | None, float]] = []  # status, node, when it was sent
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.deadline = clock() + 60.0
        self.threads = [
            threading.Thread(target=self._client, args=(url, hold, limit), daemon=True)
            for _ in range(threads)
        ]

    def _client(self, url: str, hold: float, limit: int) -> None:
        with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as http:
            for _ in range(limit):
                if self.stop.is_set() or clock() > self.deadline:
                    return
                sent = clock()
                try:
                    r = http.post(f"/predict?sleep={hold}", json=FEATURES)
                    node = r.json().get("node") if r.status_code == 200 else r.text
                    out = (r.status_code, node, sent)
                except httpx.HTTPError as exc:
                    out = (599, repr(exc), sent)
                with self.lock:
                    self.results.append(out)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)


def test_pinned_replicas_answer_through_the_front_and_one_drains_without_errors(runner: ServeRunner) -> None:
    assert check_import_path(DEMO) == "Demo"
    a, b = replica("r0", "t4-0", gpu=1), replica("r1", "t4-1", gpu=0)
    t0 = clock()
    runner.add_replica(a)
    runner.add_replica(b)
    for spec in (a, b):
        runner.wait(spec.key, {ReplicaState.RUNNING, ReplicaState.FAILED}, timeout=90)
        TIMINGS[f"replica_{spec.member}_running_s"] = clock() - t0
    states = runner.replicas()
    assert {k: s.state for k, s in states.items()} == {a.key: "running", b.key: "running"}, states

    url = runner.front("iris")
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as http:
        seen = {}
        for _ in range(8):
            r = http.post("/predict", json=FEATURES)
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["label"] == "virginica"
            seen[got["node"]] = got["cuda_visible_devices"]
        assert seen == {"t4-0": "1", "t4-1": "0"}  # each on its node, seeing the GPU it was given
        assert http.get("/healthz").json()["ok"] is True
    # Serve made each replica's placement group on the node asked for.
    groups = [
        b
        for g in ray.util.placement_group_table().values()
        if g.get("state") == "CREATED" and str(g.get("name", "")).startswith("SERVE_REPLICA::gp.iris.")
        for b in g["bundles"].values()
    ]
    assert sorted(next(k for k in b if k.startswith("gpupool.node.")) for b in groups) == [
        "gpupool.node.t4-0",
        "gpupool.node.t4-1",
    ]
    assert all(b["GPU"] == 1 and b["CPU"] == 0.5 for b in groups), groups

    with Load(url) as load:
        time.sleep(2.0)
        t0 = clock()
        runner.remove_replica(a.key)
        removed_at = clock()
        others = []  # the other replica stays running (and routed) all along
        while (states := runner.replicas())[a.key].state != ReplicaState.GONE:
            assert clock() < removed_at + 60, states
            others.append(states[b.key].state)
            time.sleep(0.1)
        TIMINGS["drain_to_gone_s"] = clock() - t0
        time.sleep(1.5)
    statuses = [s for s, _, _ in load.results]
    failed = [(s, node, f"sent {at - removed_at:+.2f}s") for s, node, at in load.results if s != 200]
    assert statuses and not failed, failed
    assert others and set(others) == {ReplicaState.RUNNING}, others
    # The front stopped sending to the removed replica at once: every request sent after
    # remove_replica returned went to the other one (Serve alone would still route to it a while).
    assert {node for _, node, at in load.results if at < removed_at} == {"t4-0", "t4-1"}
    late = [node for _, node, at in load.results if at > removed_at]
    assert late and set(late) == {"t4-1"}, load.results
    assert {k: s.state for k, s in runner.replicas().items()} == {a.key: "gone", b.key: "running"}
    stats = runner.stats("iris")
    assert stats["errors"] == 0 and stats["requests"] >= 9 + len(statuses)
    assert runner.load("iris")["ready"] == 1
    print("\nfront stats:", stats, "load requests:", len(statuses))
    # A control plane restarted takes over what runs: the replica, its front, its routes.
    again = ServeRunner(0)
    assert again.adopt() == [b.key] and again.front("iris") == url
    assert again.replicas()[b.key].state == ReplicaState.RUNNING
    replica_ids = serve_replica_ids(again)
    again._apply()  # its config, rebuilt from Serve's details, is the one running: no restart
    time.sleep(1.5)
    assert again.replicas()[b.key].state == ReplicaState.RUNNING
    assert serve_replica_ids(again) == replica_ids
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as http:
        assert http.post("/predict", json=FEATURES).json()["node"] == "t4-1"
    runner.forget(a.key)


def test_an_import_path_that_does_not_import_fails_with_serves_message(runner: ServeRunner) -> None:
    with pytest.raises(ServingError, match=r"No module named 'gpupool\.no_such_app'"):
        check_import_path("gpupool.no_such_app:app")
    with pytest.raises(ServingError, match="not a Serve application"):
        check_import_path("gpupool.serving_demo:MAX_SLEEP_S")
    bad = replica("r0", "t4-0", gpu=0, import_path="gpupool.no_such_app:app", deployment="broken")
    t0 = clock()
    runner.add_replica(bad)
    st = runner.wait(bad.key, {ReplicaState.FAILED, ReplicaState.RUNNING}, timeout=60)
    TIMINGS["bad_import_failed_s"] = clock() - t0
    assert st.state == ReplicaState.FAILED and st.serve_status == "DEPLOY_FAILED"
    assert "No module named 'gpupool.no_such_app'" in st.message, st.message
    runner.remove_replica(bad.key)
    runner.wait(bad.key, {ReplicaState.GONE}, timeout=30)


def test_the_first_request_to_a_deployment_without_replicas_waits_and_is_answered(
    runner: ServeRunner,
) -> None:
    """Scale from zero: the front holds the request until the first replica runs."""
    url = runner.front("cold")
    answer: dict[str, Any] = {}

    def first() -> None:
        t0 = clock()
        with httpx.Client(base_url=url, timeout=60.0, trust_env=False) as http:
            r = http.post("/predict", json=FEATURES)
        answer.update(status=r.status_code, node=r.json().get("node"), seconds=clock() - t0)

    caller = threading.Thread(target=first, daemon=True)
    caller.start()
    deadline = clock() + 10
    while runner.load("cold")["queued"] != 1:
        assert clock() < deadline, runner.load("cold")
        time.sleep(0.1)
    assert not answer
    cold = replica("r0", "t4-0", gpu=0, deployment="cold")
    runner.add_replica(cold)
    runner.wait(cold.key, {ReplicaState.RUNNING, ReplicaState.FAILED}, timeout=90)
    caller.join(timeout=30)
    assert answer["status"] == 200 and answer["node"] == "t4-0", answer
    TIMINGS["first_request_from_zero_s"] = answer["seconds"]
    assert runner.load("cold")["queued"] == 0 and runner.stats("cold")["errors"] == 0
    runner.remove_replica(cold.key)
    runner.wait(cold.key, {ReplicaState.GONE}, timeout=30)
