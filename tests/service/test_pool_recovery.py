"""Restarting the control plane keeps its elastic pool: the nodes the cloud still runs are
adopted, the work on them stays where it is, and nothing is launched again."""

from __future__ import annotations

import time

from gpupool.adapters.simcloud import SimCloud

from .conftest import TEST_CONFIG
from .test_recovery import _gated_job


def pools(headroom: str = "{nodes: 0}", max_nodes: int = 2) -> str:
    return f"""
nodepools:
  - name: l4
    min: 0
    max: {max_nodes}
    headroom: {headroom}
    idletimeout: 10m
    instancetypes:
      - {{name: l4-sim, gputype: L4, gpus: 4, vcore: 16, memory: 64Gi, region: local, boottime: 200ms}}
"""


def test_restart_adopts_the_pool_nodes_the_cloud_still_runs(make_server, tmp_path):
    config = tmp_path / "queues.yaml"
    config.write_text(TEST_CONFIG.read_text() + pools())
    cloud = SimCloud(seed=1)  # the cloud outlives the control plane: both servers are given it
    data = tmp_path / "data"
    first = make_server(data, config=config, provider=cloud)
    gp = first.client()
    cmd, mark, gate = _gated_job(tmp_path, "pool")
    w = gp.submit("on-l4", queue="root.a", entrypoint=cmd, task_groups=[{"gpus": 4, "gpu_types": ["L4"]}])
    running = gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    [node] = set(running.placement.values())
    assert [n.name for n in gp.nodes() if n.pool == "l4"] == [node]  # it runs on the pool's node
    assert cloud.launches == 1
    first.stop()

    second = make_server(data, config=config, provider=cloud)
    gp2 = second.client()
    [pool] = gp2.pools()
    assert pool.nodes == {"ready": 1}
    assert [(a.node, a.outcome) for a in pool.attempts] == [(node, "adopted")]
    shown = {n.name: n for n in gp2.nodes()}
    assert (shown[node].pool, shown[node].state, shown[node].gpu_type) == ("l4", "ready", "L4")
    assert shown[node].allocated.get("gpu") == 4  # the restored workload holds it again
    after = gp2.get(w.id)
    assert (after.state, after.attempt, after.placement) == ("running", 1, running.placement)

    gate.touch()
    assert gp2.wait(w.id, timeout=20, interval=0.1).state == "succeeded"
    assert cloud.launches == 1  # no node launched again for it
    assert second.executor.starts == 0 and mark.read_text().count("start") == 1
    assert [n.name for n in cloud.inventory()] == [node]  # idle, kept until its idle timeout


def test_pools_show_the_headroom_recent_arrivals_ask_for(make_server, tmp_path):
    config = tmp_path / "queues.yaml"
    config.write_text(TEST_CONFIG.read_text() + pools("{nodes: 0, window: 10m, maxNodes: 2}", 4))
    cloud = SimCloud(seed=1)
    gp = make_server(tmp_path / "data", config=config, provider=cloud).client()
    [pool] = gp.pools()
    assert (pool.headroom_window, pool.headroom_max_nodes, pool.headroom_gpus_now) == (600.0, 2, 0)
    cmd, _, gate = _gated_job(tmp_path, "burst")
    w = gp.submit("on-l4", queue="root.a", entrypoint=cmd, task_groups=[{"gpus": 4, "gpu_types": ["L4"]}])
    gp.wait(w.id, states={"running"}, timeout=20, interval=0.1)
    [pool] = gp.pools()
    # 4 GPUs arrived: 4 free GPUs kept warm (the default headroom counts GPUs, not whole nodes),
    # which the job's full node does not hold, so one more 4-GPU node.
    assert (pool.headroom_gpus_now, pool.headroom_now) == (4, 0)
    assert cloud.launches == 2  # the job's node and the warm one
    assert sum(pool.nodes.values()) == 2
    gate.touch()
    assert gp.wait(w.id, timeout=20, interval=0.1).state == "succeeded"


def test_compaction_from_the_config_moves_work_and_frees_a_pool_node(make_server, tmp_path):
    config = tmp_path / "queues.yaml"
    compaction = "compaction: {budget: 1, interval: 1s}\n"
    config.write_text(TEST_CONFIG.read_text() + pools(max_nodes=2) + compaction)
    cloud = SimCloud(seed=1)
    gp = make_server(tmp_path / "data", config=config, provider=cloud).client()
    cmd, _, gate = _gated_job(tmp_path, "light")

    def submit(name: str):
        return gp.submit(name, queue="root.a", entrypoint=cmd, task_groups=[{"gpus": 2, "gpu_types": ["L4"]}])

    def wait_running(*ws):
        return [gp.wait(w.id, states={"running"}, timeout=20, interval=0.1) for w in ws]

    a, b = wait_running(submit("a"), submit("b"))  # one 4-GPU node for both
    c, d = wait_running(submit("c"), submit("d"))  # a second node for these two
    first, second = a.placement["worker-0"], c.placement["worker-0"]
    assert first != second and b.placement["worker-0"] == first and d.placement["worker-0"] == second
    gp.cancel(b.id)
    gp.cancel(d.id)  # two half-used nodes: compaction moves one job onto the other node
    deadline = time.perf_counter() + 30  # a real server on the real clock
    while len(cloud.inventory()) != 1 or {gp.get(a.id).attempt, gp.get(c.id).attempt} != {1, 2}:
        assert time.perf_counter() < deadline, [gp.get(w.id).state for w in (a, c)]
        time.sleep(0.1)
    moved, stayed = sorted((gp.get(a.id), gp.get(c.id)), key=lambda w: -w.attempt)
    gp.wait(moved.id, states={"running"}, timeout=20, interval=0.1)
    [kept] = [n.name for n in cloud.inventory()]
    assert gp.get(moved.id).placement == stayed.placement == {"worker-0": kept}
    assert "moved by compaction" in " ".join(e.message for e in gp.events(moved.id))
    gate.touch()
    assert {gp.wait(w.id, timeout=20, interval=0.1).state for w in (a, c)} == {"succeeded"}
