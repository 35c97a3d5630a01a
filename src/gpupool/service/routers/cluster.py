"""``/queues``, ``/nodes``, ``/config/reload``, ``/whoami``."""

from __future__ import annotations

from fastapi import APIRouter

from gpupool.api import NodeOut, QueueOut, WhoAmI
from gpupool.service.routers.deps import PlaneDep, PrincipalDep

router = APIRouter(tags=["cluster"])


@router.get("/queues", response_model=list[QueueOut])
def queues(plane: PlaneDep, principal: PrincipalDep) -> list[QueueOut]:
    """The queue tree, parents before children: guaranteed, max, allocated and pending per resource."""
    return plane.queues()


@router.get("/nodes", response_model=list[NodeOut])
def nodes(plane: PlaneDep, principal: PrincipalDep) -> list[NodeOut]:
    return plane.nodes()


@router.post("/config/reload", response_model=list[QueueOut])
def reload_config(plane: PlaneDep, principal: PrincipalDep) -> list[QueueOut]:
    """Re-read the queue configuration (admin on root); running workloads keep running."""
    return plane.reload(principal)


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: PrincipalDep) -> WhoAmI:
    return WhoAmI(user=principal.user, groups=list(principal.groups), admin=principal.admin)
