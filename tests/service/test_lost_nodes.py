"""A node that dies stays visible as `lost` (when and why) in /nodes, the portal and /metrics, its
work is requeued, and it is `ready` again when it comes back."""

from __future__ import annotations

from gpupool.engine.ports import NodeDown, NodeUp

from .executors import default_nodes, wait_until


def _nodes(server) -> dict[str, dict]:
    with server.http() as http:
        return {n["name"]: n for n in http.get("/nodes").json()}


def test_a_lost_node_stays_visible_until_it_returns(sqlite_server):
    plane = sqlite_server.app.state.plane
    w = sqlite_server.client().submit(
        "victim", queue="root.a", entrypoint="sleep 60", task_groups=[{"gpus": 4, "gpu_types": ["A100"]}]
    )
    wait_until(lambda: sqlite_server.client().get(w.id).state == "running")
    node = sqlite_server.client().get(w.id).placement["worker-0"]
    with plane.lock:
        sqlite_server.executor.outbox.append(NodeDown(node, "the raylet missed its health checks"))
    wait_until(lambda: _nodes(sqlite_server)[node]["state"] == "lost")
    lost = _nodes(sqlite_server)[node]
    assert lost["lost_reason"] == "the raylet missed its health checks"
    assert lost["lost_at"] > 0 and not lost["schedulable"] and lost["capacity"]["gpu"] == 4
    with sqlite_server.http() as http:
        metrics = http.get("/metrics").text
        portal = {n["name"]: n for p in http.get("/portal/api/nodes").json() for n in p["nodes"]}
    assert portal[node]["state"] == "lost" and "the raylet missed its health checks" in portal[node]["note"]
    assert f'gpupool_node_state{{gpu_type="A100",node="{node}",state="lost"}} 1.0' in metrics
    assert f'gpupool_node_lost_timestamp_seconds{{gpu_type="A100",node="{node}"' in metrics
    assert any(f"node {node} was lost" in t.reason for t in sqlite_server.client().get(w.id).history)
    spec = next(n for n in default_nodes() if n.name == node)
    with plane.lock:
        sqlite_server.executor.outbox.append(NodeUp(spec))
    wait_until(lambda: _nodes(sqlite_server)[node]["state"] == "ready")
    back = _nodes(sqlite_server)[node]
    assert back["lost_at"] is None and back["schedulable"]
    sqlite_server.client().cancel(w.id)
