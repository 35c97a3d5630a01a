"""The cluster use cases of the control plane: queues, nodes, pools, GPU types and sizes, the
configuration reload, and the portal's views (who the caller is, GPU-level occupancy).

``ClusterService`` reads the scheduling core, the driver and the autoscaler under the plane's
lock and answers with plain models (``gpupool.api``, and the portal's ``MeOut`` and ``PoolView``
here), so that routers and pages never walk the core themselves.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from gpupool.api import AttemptOut, NodeOut, PoolOut, QueueOut
from gpupool.config import DEFAULT_SIZES, ConfigError
from gpupool.core.admission import Host
from gpupool.core.capacity import POOL_LABEL, headroom_gpus_target, headroom_target
from gpupool.core.config import Size
from gpupool.core.model import Node
from gpupool.core.placement_rules import may_submit
from gpupool.core.resources import (
    GPU_MILLI,
    GPU_TYPE_LABEL,
    add_into,
    format_resources,
    gpu_milli,
    gpus_from_milli,
    in_gpus,
    whole_gpus,
)
from gpupool.service.errors import Forbidden, Invalid
from gpupool.service.security import Principal, administers, may_see
from gpupool.service.settings import load_queue_config
from gpupool.service.views import queue_out

if TYPE_CHECKING:
    from gpupool.engine.model import Workload
    from gpupool.service.context import Plane

DEFAULT_POOL = "default"  # the portal's pool of nodes no node pool launched


class MeOut(BaseModel):
    """The caller and what the portal should offer it (the API enforces the same rules)."""

    user: str
    groups: list[str]
    admin: bool
    submit_queues: list[str]
    admin_queues: list[str]
    may_reload: bool


class GpuShare(BaseModel):
    """One holder of a GPU: a workload's allocation (or room reserved for a waiting one), with
    how much of that GPU it holds (``milli`` of 1000; ``gpus`` the same as a fraction: 0.25)."""

    workload: str
    state: Literal["used", "reserved"] = "used"
    member: str | None = None
    queue: str | None = None
    name: str | None = None  # only for workloads the caller may see
    user: str | None = None
    milli: int = GPU_MILLI
    gpus: int | float = 1


class GpuCell(BaseModel):
    """One GPU (``index``: the index the core gave, the one its processes see in
    ``CUDA_VISIBLE_DEVICES``) in the portal's occupancy view: used whole by a workload, shared
    by several shares (``holders``), reserved for a waiting one, or free. ``workload``, ``queue``,
    ``name`` and ``user`` are the first holder's."""

    state: Literal["used", "shared", "reserved", "free"]
    index: int = 0
    workload: str | None = None
    queue: str | None = None
    name: str | None = None  # only for workloads the caller may see
    user: str | None = None
    holders: list[GpuShare] = Field(default_factory=list)
    used_milli: int = 0  # of 1000, over every holder


class NodeView(BaseModel):
    """A node in the portal's occupancy view: its state, its GPUs one by one, capacity and use as text."""

    name: str
    pool: str
    gpu_type: str | None
    state: Literal["ready", "draining", "booting", "lost"]
    gpus: int
    free: int
    cells: list[GpuCell]
    capacity: str
    allocated: str
    note: str = ""  # why a lost node was lost, and when


class PoolView(BaseModel):
    """A node pool in the portal's occupancy view: GPU totals, warm headroom now, and its nodes."""

    name: str
    gpus: int
    free: int
    largest_free: int  # the most free GPUs on one ready node: the biggest member that fits now
    booting: int
    draining: int
    headroom_nodes: int = 0  # warm nodes kept now (burst-sized headroom: what recent arrivals ask)
    headroom_gpus: int = 0
    headroom_follows_arrivals: bool = False
    nodes: list[NodeView]


class ClusterService:
    """What the cluster and its queues look like now, and the configuration reload."""

    def __init__(self, plane: Plane) -> None:
        self.plane = plane

    def queues(self) -> list[QueueOut]:
        with self.plane.lock:
            serving = self._serving_usage()
            return [queue_out(q, serving.get(q.path)) for q in self.plane.driver.core.root.walk()]

    def _serving_usage(self) -> dict[str, dict[str, int]]:
        """Queue path -> what model deployments' replicas hold in its subtree, as quota counts it
        (call with the lock held)."""
        workloads = self.plane.driver.workloads
        out: dict[str, dict[str, int]] = {}
        for alloc in self.plane.driver.core.allocations.values():
            w = workloads.get(alloc.app.id)
            if w is None or w.spec.kind != "deployment":
                continue
            for q in alloc.queue.ancestors():
                add_into(out.setdefault(q.path, {}), alloc.counted)
        return out

    def nodes(self) -> list[NodeOut]:
        """The scheduler's nodes, and pool nodes still booting, by name."""
        with self.plane.lock:
            autoscaler = self.plane.driver.autoscaler
            pool_nodes = autoscaler.nodes if autoscaler is not None else {}
            draining = autoscaler.draining if autoscaler is not None else {}
            out = []
            for n in self.plane.driver.core.nodes.values():
                pn = pool_nodes.get(n.name)
                state = "ready"
                if pn is not None and pn.state == "terminating":
                    state = "terminating"
                elif not n.schedulable or n.name in draining:
                    state = "draining"
                out.append(
                    NodeOut(
                        name=n.name,
                        gpu_type=n.gpu_type or n.labels.get(GPU_TYPE_LABEL),
                        schedulable=n.schedulable,
                        capacity=in_gpus(n.capacity),
                        allocated=in_gpus({k: v for k, v in n.allocated.items() if v}),
                        gpu_use=[gpus_from_milli(min(GPU_MILLI, max(0, GPU_MILLI - f))) for f in n.gpu_free],
                        pool=pn.pool if pn is not None else n.labels.get(POOL_LABEL),
                        state=state,  # type: ignore[arg-type]
                    )
                )
            for lost in self.plane.driver.lost.values():
                if lost.spec.name not in self.plane.driver.core.nodes:
                    out.append(
                        NodeOut(
                            name=lost.spec.name,
                            gpu_type=lost.spec.labels.get(GPU_TYPE_LABEL),
                            schedulable=False,
                            capacity=in_gpus(lost.spec.capacity),
                            allocated={},
                            pool=lost.spec.labels.get(POOL_LABEL),
                            state="lost",
                            lost_at=lost.at,
                            lost_reason=lost.reason,
                        )
                    )
            for pn in pool_nodes.values():
                if pn.state == "booting" and pn.name not in self.plane.driver.core.nodes:
                    out.append(
                        NodeOut(
                            name=pn.name,
                            gpu_type=pn.instance_type.gpu_type,
                            schedulable=False,
                            capacity=in_gpus(pn.instance_type.capacity()),
                            allocated={},
                            pool=pn.pool,
                            state="booting",
                        )
                    )
        return sorted(out, key=lambda n: n.name)

    def pools(self, attempts: int = 20) -> list[PoolOut]:
        """The configured node pools with their nodes by state and their last ``attempts`` launches."""
        with self.plane.lock:
            autoscaler = self.plane.driver.autoscaler
            now = self.plane.clock()
            arrived = autoscaler.arrivals if autoscaler is not None else ()
            peaks = autoscaler.peaks(now) if autoscaler is not None else None
            out = []
            for pool in self.plane.config.nodepools:
                counts: Counter[str] = Counter()
                history: list[AttemptOut] = []
                blocked: list[str] = []
                if autoscaler is not None:
                    counts.update(
                        "draining" if n.state == "ready" and n.name in autoscaler.draining else n.state
                        for n in autoscaler.nodes.values()
                        if n.pool == pool.name
                    )
                    blocked = sorted(
                        f"{itype} in {region}"
                        for (p, itype, region), until in autoscaler.blocked.items()
                        if p == pool.name and until > now
                    )
                    history = [
                        AttemptOut(
                            at=a.at,
                            pool=a.pool,
                            instance_type=a.instance_type,
                            region=a.region,
                            node=a.node,
                            outcome=a.outcome,
                            for_workloads=list(a.for_workloads),
                            message=a.message,
                        )
                        for a in autoscaler.attempts
                        if a.pool == pool.name
                    ][-attempts:]
                out.append(
                    PoolOut(
                        name=pool.name,
                        min=pool.min,
                        max=pool.max,
                        headroom_nodes=pool.headroom_nodes,
                        headroom_gpus=pool.headroom_gpus,
                        headroom_window=pool.headroom_window,
                        headroom_max_nodes=pool.headroom_max_nodes,
                        headroom_now=headroom_target(pool, arrived, now, peaks),
                        headroom_gpus_now=headroom_gpus_target(pool, arrived, now, peaks),
                        idle_timeout=pool.idle_timeout,
                        instance_types=[f"{t.name} in {t.region}" for t in pool.instance_types],
                        nodes={state: n for state, n in counts.items() if n},
                        blocked=blocked,
                        attempts=history,
                    )
                )
        return out

    def sizes(self) -> dict[str, Size]:
        """The standard sizes of the configuration (the packaged ones if it names none)."""
        return self.plane.config.sizes or DEFAULT_SIZES

    def gpu_types(self) -> list[str]:
        """The GPU types of the cluster's nodes and of what its node pools can launch."""
        with self.plane.lock:
            return sorted({h.gpu_type for h in self.hosts() if h.gpu_type})

    def hosts(self) -> list[Host]:
        """Every node of the cluster, and every machine a configured node pool can launch."""
        core = self.plane.driver.core
        hosts = [Host(dict(n.capacity), n.gpu_type, f"node {n.name}") for n in core.nodes.values()]
        for pool in self.plane.config.nodepools:
            for t in pool.instance_types:
                hosts.append(Host(t.capacity(), t.gpu_type, f"pool {pool.name}: {t.name}"))
        return hosts

    def reload(self, principal: Principal) -> list[QueueOut]:
        if not administers(principal, self.plane.driver.core.root):
            raise Forbidden(
                f"{principal.user} may not reload the configuration",
                hint="reloading needs admin access on root (its adminacl)",
            )
        try:
            config = load_queue_config(self.plane.settings.config_path)
        except ConfigError as exc:
            raise Invalid(
                f"the configuration is invalid; nothing was changed ({len(exc.issues)} problem(s))",
                fields=[
                    (i.path or exc.source, i.message + (f" (line {i.line})" if i.line else ""))
                    for i in exc.issues
                ],
                hint="run `gpupool config check FILE`, fix it, and reload again",
            ) from None
        self.plane.apply_config(config, f"configuration reloaded by {principal.user}")
        return self.queues()

    def me(self, principal: Principal) -> MeOut:
        """The caller and the queues it may submit to and administer (for the portal)."""
        with self.plane.lock:
            core = self.plane.driver.core
            queues = list(core.queues.values())
            submit = sorted(
                q.path
                for q in queues
                if q.is_leaf and not q.dynamic and may_submit(q, principal.user, principal.groups)
            )
            admin = sorted(q.path for q in queues if administers(principal, q))
            may_reload = administers(principal, core.root)
        return MeOut(
            user=principal.user,
            groups=list(principal.groups),
            admin=principal.admin,
            submit_queues=submit,
            admin_queues=admin,
            may_reload=may_reload,
        )

    def occupancy(self, principal: Principal) -> list[PoolView]:
        """Every node's GPUs one by one, grouped by pool; booting nodes from the autoscaler if any."""
        headroom = {p.name: p for p in self.plane.config.nodepools}
        nodes: list[NodeView] = []
        with self.plane.lock:
            driver = self.plane.driver
            core = driver.core
            autoscaler = driver.autoscaler
            pool_nodes = dict(autoscaler.nodes) if autoscaler is not None else {}
            arrivals = tuple(autoscaler.arrivals) if autoscaler is not None else ()
            peaks = autoscaler.peaks(self.plane.clock()) if autoscaler is not None else None
            now = self.plane.clock()
            for node in sorted(core.nodes.values(), key=lambda n: n.name):
                total = whole_gpus(node.capacity)
                cells = _gpu_cells(node, total, driver.workloads, principal)
                free = sum(c.state == "free" for c in cells)
                pool_node = pool_nodes.get(node.name)
                draining = not node.schedulable or (
                    pool_node is not None and pool_node.state == "terminating"
                )
                nodes.append(
                    NodeView(
                        name=node.name,
                        pool=node.labels.get(POOL_LABEL) or (pool_node.pool if pool_node else DEFAULT_POOL),
                        gpu_type=node.gpu_type,
                        state="draining" if draining else "ready",
                        gpus=total,
                        free=free,
                        cells=cells,
                        capacity=format_resources(node.capacity),
                        allocated=format_resources({k: v for k, v in node.allocated.items() if v}),
                    )
                )
            for name, lost in sorted(driver.lost.items()):
                if name in core.nodes:
                    continue
                nodes.append(
                    NodeView(
                        name=name,
                        pool=lost.spec.labels.get(POOL_LABEL) or DEFAULT_POOL,
                        gpu_type=lost.spec.labels.get(GPU_TYPE_LABEL),
                        state="lost",
                        gpus=whole_gpus(lost.spec.capacity),
                        free=0,
                        cells=[],
                        capacity=format_resources(lost.spec.capacity),
                        allocated="",
                        note=f"lost at {datetime.fromtimestamp(lost.at, UTC):%H:%M:%S} UTC: {lost.reason}",
                    )
                )
            for name, pn in sorted(pool_nodes.items()):
                if pn.state != "booting" or name in core.nodes:
                    continue
                gpus = pn.instance_type.gpus
                nodes.append(
                    NodeView(
                        name=name,
                        pool=pn.pool,
                        gpu_type=pn.instance_type.gpu_type,
                        state="booting",
                        gpus=gpus,
                        free=gpus,
                        cells=[GpuCell(state="free", index=i) for i in range(gpus)],
                        capacity=format_resources(pn.instance_type.capacity()),
                        allocated="",
                    )
                )
        pools: dict[str, list[NodeView]] = {}
        for n in nodes:
            pools.setdefault(n.pool, []).append(n)
        out = []
        for name in sorted(pools, key=lambda p: (p != DEFAULT_POOL, p)):
            members = pools[name]
            ready = [n for n in members if n.state == "ready"]
            cfg = headroom.get(name)
            out.append(
                PoolView(
                    name=name,
                    gpus=sum(n.gpus for n in members if n.state not in ("booting", "lost")),
                    free=sum(n.free for n in ready),
                    largest_free=max((n.free for n in ready), default=0),
                    booting=sum(n.state == "booting" for n in members),
                    draining=sum(n.state == "draining" for n in members),
                    headroom_nodes=headroom_target(cfg, arrivals, now, peaks) if cfg else 0,
                    headroom_gpus=math.ceil(headroom_gpus_target(cfg, arrivals, now, peaks)) if cfg else 0,
                    headroom_follows_arrivals=bool(cfg and cfg.headroom_window > 0),
                    nodes=members,
                )
            )
        return out


def _gpu_cells(node: Node, total: int, workloads: dict[str, Workload], principal: Principal) -> list[GpuCell]:
    """The node's GPUs one by one, by the index the core gave: who holds each and how much."""
    holders: dict[int, list[GpuShare]] = {i: [] for i in range(total)}

    def per_gpu(milli: int, ids: tuple[int, ...]) -> int:
        return milli if len(ids) == 1 and milli < GPU_MILLI else GPU_MILLI

    for alloc in sorted(node.allocations.values(), key=lambda a: a.seq):
        w = workloads.get(alloc.app.id)
        visible = w is not None and may_see(principal, w.spec.user, alloc.queue)
        milli = per_gpu(gpu_milli(alloc.resources), alloc.gpu_ids)
        for i in alloc.gpu_ids:
            holders.setdefault(i, []).append(
                GpuShare(
                    workload=alloc.app.id,
                    member=alloc.id.rpartition("/")[2],
                    queue=alloc.queue.path,
                    name=w.spec.name if visible and w else None,
                    user=w.spec.user if visible and w else None,
                    milli=milli,
                    gpus=gpus_from_milli(milli),
                )
            )
    for ask_id in sorted(node.held):
        # Room kept for a waiting workload after preemption made room for it.
        ids = node.held_gpus.get(ask_id, ())
        milli = per_gpu(gpu_milli(node.held[ask_id]), ids)
        for i in ids:
            holders.setdefault(i, []).append(
                GpuShare(
                    workload=ask_id.split("/", 1)[0],
                    state="reserved",
                    member=ask_id.rpartition("/")[2],
                    milli=milli,
                    gpus=gpus_from_milli(milli),
                )
            )
    cells: list[GpuCell] = []
    for i in sorted(holders):
        hs = holders[i]
        used = sum(h.milli for h in hs)
        if not hs:
            state: Literal["used", "shared", "reserved", "free"] = "free"
        elif all(h.state == "reserved" for h in hs):
            state = "reserved"
        elif any(h.state == "used" and h.milli >= GPU_MILLI for h in hs):
            state = "used"  # (with room reserved on it while its victims still stop)
        else:
            state = "shared"
        first = next((h for h in hs if h.state == "used"), hs[0] if hs else None)
        cells.append(
            GpuCell(
                state=state,
                index=i,
                workload=first.workload if first else None,
                queue=first.queue if first else None,
                name=first.name if first else None,
                user=first.user if first else None,
                holders=hs,
                used_milli=used,
            )
        )
    return cells
