"""What the Ray executor reads of Ray's own state: the node table and GPU use outside reservations.

* ``parse_node`` / ``read_node_table``: gpupool nodes from ``ray.nodes()`` (a node is named by
  its ``gpupool.io/node`` label or ``gpupool.node.<name>`` resource; a node pool's node carries
  ``gpupool.io/pool`` and is the autoscaler's to report);
* ``gpus_outside_pgs`` and ``escaped_work``: whether any node uses GPUs that no placement group
  reserved and, if so, which workload's Ray job started the task or actor behind it (from Ray's
  task events), for ``RayExecutor`` to stop it;
* ``named_pg`` and ``pg_from_hex``: placement groups by name or id;
* ``plain`` and ``short``: Ray's error texts as one plain line.

Everything here only reads; the executor (``gpupool.adapters.ray.executor``) decides and acts.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpupool.adapters.ray import naming
from gpupool.core.model import NodeSpec
from gpupool.core.resources import GPU_MILLI, GPU_TYPE_LABEL

log = logging.getLogger(__name__)

# Ray's task events reach the GCS about every second: GPU use outside placement groups that no
# workload's task events explain for this long is someone else's, and is only looked at again
# when it changes.
FOREIGN_SETTLE = 5.0
_PG_GPUS = re.compile(r"GPU_group_[0-9a-f]+")  # all GPUs a placement group holds on a node
_ACTOR_CREATION = 1  # common_pb2.TaskType.ACTOR_CREATION_TASK


@dataclass(slots=True)
class RayNode:
    """One node of Ray's node table, under its gpupool name."""

    name: str
    node_id: str
    alive: bool
    pin: str  # the resource a bundle asks a sliver of to land on this node
    spec: NodeSpec
    message: str = ""
    managed: bool = False  # launched by a node provider: the autoscaler reports it


def read_node_table(raw_nodes: Iterable[dict[str, Any]], old: Mapping[str, RayNode]) -> dict[str, RayNode]:
    """The node table from ``ray.nodes()``: an alive entry wins over a dead one of the same
    name, and a node that was alive in ``old`` and is no longer listed has left the cluster."""
    table: dict[str, RayNode] = {}
    for raw in raw_nodes:
        node = parse_node(raw)
        if node is None:
            continue
        was = table.get(node.name)
        if was is None or (node.alive and not was.alive):
            table[node.name] = node
    for name, gone in old.items():
        if name not in table and gone.alive:
            table[name] = RayNode(
                name, gone.node_id, False, gone.pin, gone.spec, "left the cluster", gone.managed
            )
    return table


def parse_node(raw: dict[str, Any]) -> RayNode | None:
    """A gpupool node from one entry of ``ray.nodes()``; None for a head without CPUs or GPUs."""
    resources: dict[str, float] = raw.get("Resources") or {}
    labels: dict[str, str] = raw.get("Labels") or {}
    name = labels.get(naming.NODE_LABEL)
    if name is None:
        name = next(
            (
                k.removeprefix(naming.NODE_RESOURCE_PREFIX)
                for k in resources
                if k.startswith(naming.NODE_RESOURCE_PREFIX)
            ),
            None,
        )
    alive = bool(raw.get("Alive"))
    if name is not None:
        pin = naming.node_resource(name)
    else:
        if alive and not resources.get("CPU") and not resources.get("GPU"):
            return None  # a head node that only runs Ray's own services
        if not alive and not resources:
            return None
        name = str(raw.get("NodeName") or raw.get("NodeManagerAddress"))
        pin = f"node:{raw.get('NodeManagerAddress')}"
    gpu_type = labels.get(naming.GPU_TYPE_LABEL) or labels.get("ray.io/accelerator-type")
    if gpu_type is None:
        for key in resources:
            if key.startswith(naming.GPU_TYPE_RESOURCE_PREFIX):
                gpu_type = key.removeprefix(naming.GPU_TYPE_RESOURCE_PREFIX)
            elif key.startswith("accelerator_type:"):
                gpu_type = key.removeprefix("accelerator_type:")
    capacity = {
        "gpu": int(resources.get("GPU", 0)) * GPU_MILLI,  # whole devices, in milli-GPU
        "vcore": round(resources.get("CPU", 0) * 1000),
        "memory": int(resources.get("memory", 0)),
    }
    spec = NodeSpec(name, capacity, {GPU_TYPE_LABEL: gpu_type} if gpu_type else {})
    message = str(raw.get("DeathReasonMessage") or "")
    return RayNode(name, str(raw.get("NodeID")), alive, pin, spec, message, naming.POOL_LABEL in labels)


class EscapeWatch:
    """Finds work that escaped its reservation, at most every ``interval`` seconds.

    Cheap first: Ray's per-node resources say whether any node uses GPUs outside placement
    groups at all; only then are Ray's task events read to find what and whose. GPU use that
    no workload explains is someone else's: logged once per node, and looked at again only
    when it changes.
    """

    def __init__(self, ray: Any, interval: float) -> None:
        self._ray = ray
        self.interval = interval
        self._last: float | None = None
        self._foreign_reported: set[str] = set()
        self._foreign_usage: dict[str, float] = {}  # node id -> GPUs used outside, nobody's
        self._foreign_since = 0.0

    def check(self, now: float, actors: Mapping[str, Any], table: Mapping[str, RayNode]) -> dict[str, str]:
        """``actors``: workload id -> the supervisor of each running job to check. Returns
        workload id -> what of it runs outside its reservation (empty if nothing, or if the
        check ran less than ``interval`` ago or could not run now)."""
        if self._last is not None and now - self._last < self.interval:
            return {}
        self._last = now
        try:
            nodes = gpus_outside_pgs()
            if not nodes:
                self._foreign_reported.clear()
                self._foreign_usage = {}
                return {}
            if nodes == self._foreign_usage and now - self._foreign_since > FOREIGN_SETTLE:
                return {}  # the same use nobody could be held to, for a while: nothing new
            jobs: dict[str, str] = {}
            refs = {actor.driver_jobs.remote(): wid for wid, actor in actors.items()}
            done, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=2.0) if refs else ([], [])
            for ref in done:
                with contextlib.suppress(Exception):
                    for job in self._ray.get(ref):
                        jobs[job] = refs[ref]
            escapes: dict[str, str] = {}
            if jobs:
                names: dict[str, str] = {}
                for n in table.values():
                    names.setdefault(n.node_id, n.name)
                escapes = escaped_work(jobs, names)
        except Exception as exc:  # a check that cannot run now runs again next time
            log.warning("checking for work outside reservations failed: %s", short(exc))
            return {}
        if not escapes and nodes != self._foreign_usage:
            self._foreign_usage, self._foreign_since = nodes, now
        elif not escapes and now - self._foreign_since > FOREIGN_SETTLE:
            for node_id, gpus in nodes.items():
                name = next((n.name for n in table.values() if n.node_id == node_id), node_id)
                if name not in self._foreign_reported:
                    self._foreign_reported.add(name)
                    log.warning("%g GPU(s) of node %s are used outside any placement group", gpus, name)
        return escapes


def gpus_outside_pgs() -> dict[str, float]:
    """Node id -> GPUs in use there that no placement group reserved."""
    from ray._private.state import state

    total = state.total_resources_per_node()
    available = state.available_resources_per_node()
    out: dict[str, float] = {}
    for node_id, res in total.items():
        used = res.get("GPU", 0) - available.get(node_id, {}).get("GPU", 0)
        reserved = sum(v for k, v in res.items() if _PG_GPUS.fullmatch(k))
        if used - reserved > 1e-6:
            out[node_id] = used - reserved
    return out


def escaped_work(jobs: Mapping[str, str], node_names: Mapping[str, str]) -> dict[str, str]:
    """The workloads whose Ray jobs have live tasks or actors holding GPUs outside any placement
    group, with what and where: ``jobs`` maps a Ray job id (hex) to its workload id,
    ``node_names`` a Ray node id (hex) to its gpupool name; returns workload id -> what."""
    from ray._private.state import state

    alive_actors = {a["ActorID"] for a in state.actor_table(None).values() if a.get("State") != "DEAD"}
    found: dict[str, str] = {}
    for event in state._get_all_task_events():
        wid = jobs.get(event.job_id.hex())
        info = event.task_info
        if wid is None or wid in found or info.placement_group_id:
            continue
        gpus = dict(info.required_resources).get("GPU", 0)
        if gpus <= 0:
            continue
        states = {common_status(k) for k in event.state_updates.state_ts_ns}
        if info.actor_id and info.type == _ACTOR_CREATION:
            if info.actor_id.hex() not in alive_actors:
                continue
            kind = f"actor {info.name or '?'}"
        elif states & {"FINISHED", "FAILED"}:
            continue
        else:
            kind = f"task {info.name or '?'}"
        node_id = event.state_updates.node_id.hex() if event.state_updates.node_id else ""
        where = node_names.get(node_id)
        found[wid] = f"{kind} with {gpus:g} GPU(s)" + (f" on {where}" if where else "")
    return found


def pg_from_hex(ray: Any, pg_id: str) -> Any:
    """The placement group of a hex id (as ``placement_group_table`` lists it)."""
    from ray.util.placement_group import PlacementGroup

    return PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id)))


def named_pg(ray: Any, name: str) -> Any:
    """The placement group named ``name`` that is not removed; None if there is none."""
    for pg_id, info in ray.util.placement_group_table().items():
        if info.get("name") == name and info.get("state") != "REMOVED":
            return pg_from_hex(ray, pg_id)
    return None


def common_status(value: int) -> str:
    """The name of a Ray task status number (``common_pb2.TaskStatus``)."""
    from ray.core.generated import common_pb2

    try:
        return str(common_pb2.TaskStatus.Name(value))  # type: ignore[attr-defined]  # generated
    except ValueError:
        return str(value)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences (Ray colours its error texts) or other control characters."""
    text = _ANSI.sub("", text)
    return "".join(c for c in text if c in "\n\t" or c.isprintable())


def short(exc: BaseException) -> str:
    """An exception as one plain line: its type and the first line of its text."""
    text = plain(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
