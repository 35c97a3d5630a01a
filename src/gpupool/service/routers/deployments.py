"""``/deployments``: deploy a model, list deployments, read one (and its samples), undeploy it."""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from gpupool.api import DeploymentOut, DeploymentSeriesOut, DeployRequest
from gpupool.service.routers.deps import PlaneDep, PrincipalDep, errors

router = APIRouter(prefix="/deployments", tags=["deployments"])


@router.post(
    "", response_model=DeploymentOut, status_code=status.HTTP_201_CREATED, responses=errors(403, 409, 501)
)
async def deploy(req: DeployRequest, plane: PlaneDep, principal: PrincipalDep) -> DeploymentOut:
    """Deploy a model: a Ray Serve app whose replicas are allocations in the queue. Refused
    (nothing stored) when a live deployment has the name (409), the input is wrong (422), or the
    control plane's executor cannot run deployments (501)."""
    return await run_in_threadpool(plane.deployments.deploy, principal, req)


@router.get("", response_model=list[DeploymentOut], responses=errors())
def list_deployments(plane: PlaneDep, principal: PrincipalDep, all: bool = False) -> list[DeploymentOut]:
    """Your live deployments and those in queues you administer (newest first); ``all``: undeployed too."""
    return plane.deployments.listed(principal, include_finished=all)


@router.get("/{name}", response_model=DeploymentOut, responses=errors(404))
def get_deployment(name: str, plane: PlaneDep, principal: PrincipalDep) -> DeploymentOut:
    """The live deployment of that name (else the newest one): spec, state, replicas, desired vs running."""
    return plane.deployments.get(principal, name)


@router.get("/{name}/series", response_model=DeploymentSeriesOut, responses=errors(404))
def deployment_series(
    name: str, plane: PlaneDep, principal: PrincipalDep, since: float | None = None
) -> DeploymentSeriesOut:
    """Its samples (about one a second, the last hour) after ``since`` (seconds since the epoch):
    replicas placed, ready and wanted, requests in flight and queued, requests, errors, latency."""
    return plane.deployments.series(principal, name, since)


@router.delete("/{name}", response_model=DeploymentOut, responses=errors(403, 404))
def undeploy(name: str, plane: PlaneDep, principal: PrincipalDep) -> DeploymentOut:
    """Undeploy: its replicas stop and their GPUs go back to the queue."""
    return plane.deployments.undeploy(principal, name)
