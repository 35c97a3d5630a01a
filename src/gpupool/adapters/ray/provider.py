"""``LocalRayProvider``: the autoscaler's node provider on a local Ray cluster.

A pool node is one more Ray worker node on this machine (``LocalRayCluster.add_node``), named
as the autoscaler names it, declaring the instance type's GPUs as logical ``GPU`` resources of
its GPU type, its vcore as logical CPUs (rounded up) and its memory as Ray's logical
``memory`` resource. They are declared as given, not scaled down to this machine: Ray's CPUs
and memory are bookkeeping, not limits, and the scheduling core places work by the instance
type's capacity, so Ray must offer the same amounts or the placement groups would never fit.
What a node really costs is its Ray processes (a raylet and its helpers, ~200 MB).

The node carries the Ray label ``gpupool.io/pool``: the Ray executor leaves such nodes to the
autoscaler (no ``NodeUp``/``NodeDown`` of its own), which reports the node to the driver with
its pool, instance type and region labels once this provider says ``Booted``. So the core has
one node per pool node, with the right labels, and no work lands on it before it has booted.

Events (``poll``):

* ``Booted``: the node's Ray processes run, Ray's node table lists it alive (when this process
  is connected to Ray), and the boot delay has passed since the launch: the instance type's
  ``boot_time``, or ``boot_delay`` when given (tests);
* ``LaunchFailed(kind="boot-failure")``: the node did not start, or died before it booted;
* ``Terminated``: after ``terminate``, once the node's processes are gone; also for a booted
  node whose processes died without being asked (a lost machine), so the driver requeues what
  ran there.

Every call returns at once: starting and stopping a node take seconds, so they run on a few
background threads and ``poll`` collects what they did.

``inventory`` lists the nodes of its registry not being stopped (ready once ``Booted`` was
reported, else booting), so a new autoscaler over the same provider (a restarted control plane
in the same process) adopts them.

Restart: with a ``store`` (``gpupool up`` gives the database's, ``service.poolnodes``), every
node is written there when launched, booted and asked to terminate, and deleted once gone. A
new provider over the same (adopted) local cluster reads them back: a node whose Ray processes
still run is kept (and listed by ``inventory``, so the restarted control plane's autoscaler adopts
it), one being terminated is stopped, one that is gone is forgotten, and a pool node running on
the cluster that the store does not know (launched just before a crash) is stopped: none is
leaked or counted twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from gpupool.adapters.ray import naming
from gpupool.adapters.ray.cluster import LocalNode, LocalRayCluster
from gpupool.core.config import InstanceType
from gpupool.engine.ports import (
    Booted,
    LaunchFailed,
    ProviderEvent,
    ProviderNode,
    Terminated,
)

log = logging.getLogger(__name__)


class NodeStore(Protocol):
    """Where the provider keeps its nodes across control-plane restarts (state ``booting``,
    ``ready`` or ``terminating``)."""

    def load(self) -> list[ProviderNode]: ...

    def save(self, node: ProviderNode) -> None: ...

    def delete(self, name: str) -> None: ...


@dataclass(slots=True)
class _Node:
    name: str
    pool: str
    instance_type: str
    launched_at: float
    ready_at: float  # when the boot delay has passed
    started: Future[list[str]]
    stopping: Future[None] | None = None
    booted: bool = False


class LocalRayProvider:
    """Launches and terminates pool nodes as Ray worker nodes of ``cluster`` (started already).

    ``boot_delay``: seconds from a launch to ``Booted`` at the earliest; None (the default) uses
    the instance type's ``boot_time``. ``boot_timeout``: seconds after that for Ray to list the
    node alive, else the launch fails. ``workers``: background threads for starting and stopping
    nodes. ``store``: keeps the nodes across restarts (see the module doc); ``recovered`` says
    what the provider found there when it was made.
    """

    def __init__(
        self,
        cluster: LocalRayCluster,
        *,
        boot_delay: float | None = None,
        boot_timeout: float = 60.0,
        workers: int = 4,
        store: NodeStore | None = None,
    ) -> None:
        self.cluster = cluster
        self.boot_delay = boot_delay
        self.boot_timeout = boot_timeout
        self.store = store
        self._nodes: dict[str, _Node] = {}
        self._events: list[ProviderEvent] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpupool-provider")
        self.recovered: dict[str, str] = {}  # node -> kept | stopping | gone | stopped (unknown)
        if store is not None:
            self._recover(store)

    def _recover(self, store: NodeStore) -> None:
        running = {n.name: n for n in self.cluster.pool_nodes()}
        for rec in store.load():
            node = running.pop(rec.name, None)
            if node is None:
                store.delete(rec.name)  # it died while nobody watched: nothing left to stop
                self.recovered[rec.name] = "gone"
                continue
            started: Future[list[str]] = Future()
            started.set_result([rec.name])
            booted = rec.state == "ready"
            n = _Node(rec.name, rec.pool, rec.instance_type, rec.launched_at, rec.launched_at, started)
            n.booted = booted
            if rec.state == "terminating":
                n.stopping = self._pool.submit(self._stop, n)
                self.recovered[rec.name] = "stopping"
            else:
                self.recovered[rec.name] = "kept"
            self._nodes[rec.name] = n
        for name in running:  # launched, but its record never made it: not ours to keep
            log.warning("stopping pool node %s: it runs but no record of it was kept", name)
            self.recovered[name] = "stopped (no record)"
            self._pool.submit(self._forget, name)

    def _save(self, node: _Node, state: str) -> None:
        if self.store is not None:
            self.store.save(ProviderNode(node.name, node.pool, node.instance_type, state, node.launched_at))

    def _delete(self, name: str) -> None:
        if self.store is not None:
            self.store.delete(name)

    # ------------------------------------------------------------------ NodeProvider port

    def launch(self, pool: str, itype: InstanceType, name: str, now: float) -> None:
        node = local_node(name, pool, itype)
        delay = itype.boot_time if self.boot_delay is None else self.boot_delay
        with self._lock:
            if name in self._nodes:
                self._events.append(LaunchFailed(name, "boot-failure", f"node {name} is launched already"))
                return
            record = ProviderNode(name, pool, itype.name, "booting", now)
            if self.store is not None:
                self.store.save(record)  # before the node exists: a crash never leaves one unrecorded
            started = self._pool.submit(self.cluster.add_node, node)
            self._nodes[name] = _Node(name, pool, itype.name, now, now + delay, started)

    def terminate(self, name: str, now: float) -> None:
        with self._lock:
            node = self._nodes.get(name)
            if node is None:
                self._events.append(Terminated(name))
            elif node.stopping is None:
                self._save(node, "terminating")
                node.stopping = self._pool.submit(self._stop, node)

    def poll(self, now: float) -> list[ProviderEvent]:
        with self._lock:
            out, self._events = self._events, []
            running: set[str] | None = None
            waiting: list[_Node] = []
            for node in list(self._nodes.values()):
                if node.stopping is not None:
                    if node.stopping.done():
                        del self._nodes[node.name]
                        self._delete(node.name)
                        out.append(Terminated(node.name))
                    continue
                if not node.started.done():
                    continue
                error = node.started.exception()
                if error is not None:
                    del self._nodes[node.name]
                    self._delete(node.name)
                    out.append(LaunchFailed(node.name, "boot-failure", _first_line(error)))
                    self._pool.submit(self._forget, node.name)
                    continue
                if running is None:
                    running = {n.name for n in self.cluster.nodes()}
                if node.name not in running:  # its processes died
                    del self._nodes[node.name]
                    self._delete(node.name)
                    if node.booted:
                        out.append(Terminated(node.name))
                    else:
                        out.append(
                            LaunchFailed(node.name, "boot-failure", "its Ray node exited while booting")
                        )
                    self._pool.submit(self._forget, node.name)
                    continue
                if not node.booted and now >= node.ready_at:
                    waiting.append(node)
            if waiting:
                alive = _alive_in_ray()
                for node in waiting:
                    if alive is None or node.name in alive:
                        node.booted = True
                        self._save(node, "ready")
                        out.append(Booted(node.name))
                    elif now >= node.ready_at + self.boot_timeout:
                        del self._nodes[node.name]
                        self._delete(node.name)
                        message = f"Ray did not list it alive within {self.boot_timeout:g}s"
                        out.append(LaunchFailed(node.name, "boot-failure", message))
                        self._pool.submit(self._forget, node.name)
            return out

    def next_time(self) -> float | None:
        with self._lock:
            due = [n.ready_at for n in self._nodes.values() if not n.booted and n.stopping is None]
        return min(due) if due else None

    def inventory(self) -> list[ProviderNode]:
        with self._lock:
            return [
                ProviderNode(
                    n.name, n.pool, n.instance_type, "ready" if n.booted else "booting", n.launched_at
                )
                for n in sorted(self._nodes.values(), key=lambda n: n.name)
                if n.stopping is None
            ]

    # ------------------------------------------------------------------ beyond the port

    def owned(self) -> list[str]:
        """The nodes launched and not yet terminated, by name."""
        with self._lock:
            return sorted(self._nodes)

    def close(self, *, stop_nodes: bool = True) -> None:
        """Wait for starts and stops under way; with ``stop_nodes``, stop every node still owned."""
        with self._lock:
            nodes = list(self._nodes.values())
            self._nodes.clear()
        if stop_nodes:
            for node in nodes:
                if node.stopping is None:
                    node.stopping = self._pool.submit(self._stop, node)
        self._pool.shutdown(wait=True)
        if stop_nodes:
            for node in nodes:
                self._delete(node.name)

    # ------------------------------------------------------------------ background work

    def _stop(self, node: _Node) -> None:
        with contextlib.suppress(Exception):  # it never started: what is left of it goes below
            node.started.result()
        try:
            self.cluster.remove_node(node.name)
        except Exception:
            log.exception("could not stop pool node %s", node.name)

    def _forget(self, name: str) -> None:
        try:
            self.cluster.remove_node(name)  # reaps what is left of its process group
        except Exception:
            log.exception("could not clean up pool node %s", name)


def local_node(name: str, pool: str, itype: InstanceType) -> LocalNode:
    """The local Ray node of an instance type: its GPUs, vcore (whole CPUs) and memory, labelled."""
    return LocalNode(
        name,
        itype.gpu_type or "",
        itype.gpus,
        max(1, math.ceil(itype.vcore / 1000)),
        itype.memory,
        pool=pool,
    )


def _alive_in_ray() -> set[str] | None:
    """Names of the pool nodes Ray's node table has alive; None when not connected to Ray."""
    import ray

    if not ray.is_initialized():
        return None
    out: set[str] = set()
    for raw in ray.nodes():
        labels = raw.get("Labels") or {}
        if raw.get("Alive") and naming.POOL_LABEL in labels:
            out.add(str(labels.get(naming.NODE_LABEL)))
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
