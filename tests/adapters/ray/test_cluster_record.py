"""The local cluster's record and watchdog on real processes (``sleep`` in their own sessions
stand in for a node's ``ray start``): only recorded processes are ever signalled, a reused pid
is not "ours", and a cluster whose owner died is stopped after its orphan timeout, or left alone
while a (new) owner runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.adapters.ray import procs


def _spawn(*cmd: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(cmd), start_new_session=True)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for p in made:
        if p.poll() is None:
            p.kill()
        p.wait()


def _group(spawned: list[subprocess.Popen[bytes]], children: int = 1) -> subprocess.Popen[bytes]:
    """A session leader with ``children`` sleeping children in its group (as a node's ray start)."""
    script = "sleep 300 & " * children + "wait" if children else "exec sleep 300"
    p = _spawn("/bin/bash", "-c", script)
    spawned.append(p)
    deadline = time.perf_counter() + 10
    while len(procs.group_members(p.pid)) < children + 1:
        assert time.perf_counter() < deadline
        time.sleep(0.05)
    return p


def _wait(done, timeout: float = 20.0) -> None:
    deadline = time.perf_counter() + timeout
    while not done():
        assert time.perf_counter() < deadline
        time.sleep(0.1)


def test_alive_needs_the_recorded_start_time(spawned):
    p = _group(spawned, 0)
    start = procs.start_time(p.pid)
    assert start is not None
    assert procs.alive(p.pid, start) and procs.alive(p.pid, None)
    assert not procs.alive(p.pid, start + 1)  # a reused pid is another process
    assert not procs.signal_group(p.pid, start + 1, 9)  # and is never signalled
    assert p.poll() is None
    p.kill()
    p.wait()
    assert not procs.alive(p.pid, start)


def test_stop_recorded_stops_the_groups_and_only_them(spawned, tmp_path: Path):
    head, node, bystander = _group(spawned, 2), _group(spawned, 2), _group(spawned, 1)
    members = procs.group_members(head.pid) + procs.group_members(node.pid)
    tmp = tmp_path / "gpr-test"
    tmp.mkdir()
    record = {
        "nodes": {
            "head": {"pid": head.pid, "start": procs.start_time(head.pid)},
            "n-0": {"pid": node.pid, "start": procs.start_time(node.pid)},
        },
        "tmp": str(tmp),
    }
    node.kill()  # a leader gone, its group's members left: still the cluster's, still stopped
    node.wait()
    assert procs.stop_recorded(record, graceful=True) == 2
    assert not [pid for pid in members if procs.alive(pid, None)]
    assert not tmp.exists()
    assert len(procs.group_members(bystander.pid)) == 2  # not recorded: untouched


def _record(
    path: Path, owner: subprocess.Popen[bytes], head: subprocess.Popen[bytes], timeout: float
) -> None:
    procs.write_record(
        path,
        {
            "version": procs.RECORD_VERSION,
            "id": "gpr-test",
            "owner": {"pid": owner.pid, "start": procs.start_time(owner.pid)},
            "orphan_timeout": timeout,
            "nodes": {"head": {"pid": head.pid, "start": procs.start_time(head.pid)}},
        },
    )


def test_the_watchdog_stops_a_cluster_nobody_adopts(spawned, tmp_path: Path):
    owner, head = _group(spawned, 0), _group(spawned, 2)
    path = tmp_path / "cluster.json"
    _record(path, owner, head, timeout=2.0)
    dog = _spawn(sys.executable, "-m", "gpupool.adapters.ray._watchdog", str(path))
    spawned.append(dog)
    time.sleep(3.0)
    assert len(procs.group_members(head.pid)) == 3  # the owner runs: nothing happens
    owner.kill()  # kill -9 of the control plane, and no restart
    owner.wait()
    _wait(lambda: dog.poll() is not None, timeout=20)
    assert procs.group_members(head.pid) == [] and not path.exists()


def test_the_watchdog_leaves_an_adopted_cluster_alone(spawned, tmp_path: Path):
    owner, head, new_owner = _group(spawned, 0), _group(spawned, 1), _group(spawned, 0)
    path = tmp_path / "cluster.json"
    _record(path, owner, head, timeout=3.0)
    dog = _spawn(sys.executable, "-m", "gpupool.adapters.ray._watchdog", str(path))
    spawned.append(dog)
    owner.kill()
    owner.wait()
    _record(path, new_owner, head, timeout=3.0)  # a restart adopted it in time
    time.sleep(6.0)
    assert dog.poll() is None and len(procs.group_members(head.pid)) == 2
    path.unlink()  # a graceful stop removes the record: the watchdog goes too
    _wait(lambda: dog.poll() is not None, timeout=10)
    assert os.path.exists(f"/proc/{head.pid}")


def test_the_pool_node_store_keeps_nodes_in_the_database(tmp_path: Path):
    from gpupool.engine.ports import ProviderNode
    from gpupool.service.db import Database
    from gpupool.service.poolnodes import DbPoolNodeStore

    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    db.migrate()
    store = DbPoolNodeStore(db)
    store.save(ProviderNode("l4-a-0001", "l4", "l4-local", "booting", 10.0))
    store.save(ProviderNode("l4-a-0002", "l4", "l4-local", "booting", 11.0))
    store.save(ProviderNode("l4-a-0001", "l4", "l4-local", "ready", 10.0))
    store.delete("l4-a-0002")
    db.close()
    again = DbPoolNodeStore(Database(f"sqlite:///{tmp_path / 'g.db'}"))
    assert again.load() == [ProviderNode("l4-a-0001", "l4", "l4-local", "ready", 10.0)]
