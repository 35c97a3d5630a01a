"""The workloads API against a live server: lifecycle, logs, events, why, queues, nodes, metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .executors import wait_until


def test_healthz_portal_and_auth(server):
    with server.http() as http:
        assert http.get("/healthz").json()["ok"] is True
        assert "gpupool" in http.get("/").text
        me = http.get("/whoami").json()
        assert me == {"user": "admin", "groups": ["admins"], "admin": True}
    with server.http(token="gp_nope") as http:
        r = http.get("/workloads")
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    import httpx

    r = httpx.get(f"{server.url}/workloads")
    assert r.status_code == 401 and "Authorization" in r.json()["hint"]


def test_submit_runs_to_success_with_logs_history_and_events(server):
    gp = server.client()
    w = gp.submit(
        "hello",
        queue="root.a",
        entrypoint="echo hello from $GPUPOOL_WORKLOAD_ID; echo $GREETING",
        env={"GREETING": "bonjour"},
        task_groups=[{"name": "worker", "members": 2, "gpus": 2, "gpu_types": ["H100"]}],
    )
    assert w.id.startswith("w-") and w.user == "admin" and w.queue == "root.a" and w.gpus == 4
    done = gp.wait(w.id, timeout=20, interval=0.1)
    assert done.state == "succeeded", done
    assert [t.new for t in done.history] == ["admitted", "running", "succeeded"]
    assert all(t.reason for t in done.history)
    assert set(done.placement) == {"worker-0", "worker-1"}
    assert all(node.startswith("h100") for node in done.placement.values())
    assert f"hello from {w.id}" in gp.logs(w.id) and "bonjour" in gp.logs(w.id)
    kinds = [e.kind for e in gp.events(w.id)]
    assert kinds[0] == "submitted" and "state:succeeded" in kinds


def test_failure_is_recorded_with_its_exit_code(server):
    gp = server.client()
    w = gp.submit("boom", queue="root.a", entrypoint="exit 3", size="small")
    done = gp.wait(w.id, timeout=20, interval=0.1)
    assert done.state == "failed" and "exit code 3" in done.reason


def test_size_picks_the_first_shape_whose_gpu_type_exists(server):
    gp = server.client()
    # The default `small` prefers L4, then A100: the test cluster has no L4.
    w = gp.submit("sized", queue="root.a", entrypoint="true", size="small")
    assert w.task_groups[0].gpu_types == ["A100"] and w.gpus == 1 and w.size == "small"
    # With the A100 nodes full, the size falls back to its next shape (any GPU type).
    hog = gp.submit(
        "a100-hog",
        queue="root.b",
        entrypoint="sleep 30",
        task_groups=[{"members": 2, "gpus": 4, "gpu_types": ["A100"]}],
    )
    gp.wait(hog.id, states={"running"}, timeout=20, interval=0.1)
    small = gp.submit("fallback", queue="root.a", entrypoint="sleep 30", size="small")
    running = gp.wait(small.id, states={"running"}, timeout=20, interval=0.1)
    assert running.placement["main-0"].startswith("h100")
    for x in (hog, small):
        gp.cancel(x.id)


def test_pending_workload_is_explained_then_cancelled(server):
    gp = server.client()
    # A gang of 4 x 4 H100 GPUs: within root.a's max, but the cluster has only 8 H100 GPUs.
    groups = [{"members": 4, "gpus": 4, "gpu_types": ["H100"]}]
    w = gp.submit("too-wide", queue="root.a", entrypoint="sleep 30", task_groups=groups)
    wait_until(lambda: any("node" in line for line in gp.why(w.id).lines))
    why = gp.why(w.id)
    assert why.state == "pending"
    assert any("What would change it" in line for line in why.lines)
    cancelled = gp.cancel(w.id)
    assert cancelled.state == "cancelled" and "cancelled by admin" in cancelled.reason
    assert gp.why(w.id).lines[0].startswith(f"{w.id} (too-wide) is cancelled")


def test_cancel_running_workload_stops_it(server):
    gp = server.client()
    w = gp.submit("sleeper", queue="root.a", entrypoint="sleep 60", size="small")
    gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    gp.cancel(w.id)
    done = gp.wait(w.id, timeout=20, interval=0.1)
    assert done.state == "cancelled"
    wait_until(lambda: not server.executor.jobs)
    nodes = gp.nodes()
    assert all(not n.allocated.get("gpu") for n in nodes)


def test_preemption_requeues_the_victim_and_restores_the_guarantee(server):
    gp = server.client()
    team_a = server.token("alice", ("team-a",))
    team_b = server.token("bob", ("team-b",))
    a = server.client(team_a)
    b = server.client(team_b)
    hog = a.submit(
        "hog",
        queue="root.a",
        entrypoint="sleep 120",
        task_groups=[{"members": 4, "gpus": 4}],
        grace=1,
    )
    a.wait(hog.id, states={"running"}, timeout=20, interval=0.1)
    fair = b.submit("fair", queue="root.b", entrypoint="sleep 120", task_groups=[{"members": 1, "gpus": 4}])
    b.wait(fair.id, states={"running"}, timeout=30, interval=0.2)
    hog_now = a.get(hog.id)
    assert hog_now.state in ("preempted", "admitted", "running", "pending")
    states = [t.new for t in hog_now.history]
    assert "preempting" in states and "preempted" in states
    metrics = server.http().get("/metrics").text
    assert 'gpupool_queue_preemptions_total{queue="root.a"} 1.0' in metrics
    for w in (hog, fair):
        gp.cancel(w.id)


def test_queues_nodes_and_metrics(server):
    gp = server.client()
    w = gp.submit("m", queue="root.b", entrypoint="sleep 30", task_groups=[{"gpus": 2}])
    gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    queues = {q.path: q for q in gp.queues()}
    assert queues["root.b"].guaranteed == {"gpu": 8} and queues["root.b"].max == {"gpu": 16}
    assert queues["root.b"].allocated["gpu"] == 2 and queues["root"].allocated["gpu"] == 2
    nodes = {n.name: n for n in gp.nodes()}
    assert len(nodes) == 4 and nodes["h100-0"].gpu_type == "H100" and nodes["h100-0"].capacity["gpu"] == 4
    assert sum(n.allocated.get("gpu", 0) for n in nodes.values()) == 2
    text = server.http().get("/metrics").text
    assert 'gpupool_queue_allocated{queue="root.b",resource="gpu"} 2.0' in text
    assert 'gpupool_queue_guaranteed{queue="root.a",resource="gpu"} 8.0' in text
    assert 'gpupool_queue_max{queue="root.b",resource="gpu"} 16.0' in text
    assert "gpupool_node_gpus_used{" in text and "gpupool_scheduling_latency_seconds_bucket" in text
    # Prometheus' naming rule: a counter's samples end in _total, and no _created gauges.
    counters = [f for f in text_string_to_metric_families(text) if f.type == "counter"]
    assert {f.name for f in counters} >= {"gpupool_driver_tick_errors", "gpupool_workload_transitions"}
    assert all(s.name.endswith("_total") for f in counters for s in f.samples)
    assert "gpupool_driver_tick_errors_total 0.0" in text and "_created" not in text
    gp.cancel(w.id)


def test_config_reload_keeps_running_workloads(server):
    gp = server.client()
    w = gp.submit("keep", queue="root.a", entrypoint="sleep 60", size="small")
    gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    queues = gp.reload_config()
    assert {q.path for q in queues} >= {"root.a", "root.b", "root.open"}
    after = {q.path: q for q in gp.queues()}
    assert after["root.a"].allocated.get("gpu") == 1
    assert gp.get(w.id).state == "running"
    gp.cancel(w.id)
    assert gp.wait(w.id, timeout=20, interval=0.1).state == "cancelled"


def test_the_answer_to_a_submission_is_what_is_stored(sqlite_server):
    """The submission's answer is built from memory (no re-read): it must equal a later read."""
    with sqlite_server.http() as http:
        first = {"name": "hog", "queue": "root.open", "entrypoint": "sleep 30", "task_groups": [{"gpus": 4}]}
        assert http.post("/workloads", json=first).status_code == 201
        body = {
            "name": "waits",
            "queue": "root.open",
            "entrypoint": "true",
            "tags": {"team": "x"},
            "env": {"A": "1"},
            "idempotency_key": "k-1",
            "task_groups": [{"gpus": 1, "gpu_types": ["H100"], "memory": "1Gi"}],
        }
        posted = http.post("/workloads", json=body)
        assert posted.status_code == 201, posted.text
        read = http.get(f"/workloads/{posted.json()['id']}")
        again = http.post("/workloads", json=body)
    assert read.json() == posted.json()
    assert again.status_code == 200 and again.json() == read.json()
