"""``/queues``, ``/nodes``, ``/pools``, ``/config/reload``, ``/whoami``."""

from __future__ import annotations

from fastapi import APIRouter

from gpupool.api import NodeOut, PoolOut, QueueOut, WhoAmI
from gpupool.service.routers.deps import PlaneDep, PrincipalDep, errors

router = APIRouter(tags=["cluster"])


@router.get("/queues", response_model=list[QueueOut], responses=errors())
def queues(plane: PlaneDep, principal: PrincipalDep) -> list[QueueOut]:
    """The queue tree, parents before children: guaranteed, max, allocated and pending per resource."""
    return plane.cluster.queues()


@router.get("/nodes", response_model=list[NodeOut], responses=errors())
def nodes(plane: PlaneDep, principal: PrincipalDep) -> list[NodeOut]:
    """Every node with its pool (None: static) and state; pool nodes still booting included."""
    return plane.cluster.nodes()


@router.get("/pools", response_model=list[PoolOut], responses=errors())
def pools(plane: PlaneDep, principal: PrincipalDep) -> list[PoolOut]:
    """The node pools of the config: min, max, headroom, nodes by state, recent launch attempts."""
    return plane.cluster.pools()


@router.post("/config/reload", response_model=list[QueueOut], responses=errors(403))
def reload_config(plane: PlaneDep, principal: PrincipalDep) -> list[QueueOut]:
    """Re-read the queue configuration (admin on root); running workloads keep running."""
    return plane.cluster.reload(principal)


@router.get("/whoami", response_model=WhoAmI, responses=errors())
async def whoami(principal: PrincipalDep) -> WhoAmI:
    return WhoAmI(user=principal.user, groups=list(principal.groups), admin=principal.admin)
