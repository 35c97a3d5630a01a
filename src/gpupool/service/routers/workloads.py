"""``/workloads``: submit, list, get, cancel, why, logs, events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from gpupool.api import LIST_MAX, EventOut, LogsOut, SubmitRequest, WhyOut, WorkloadOut
from gpupool.service.routers.deps import PlaneDep, PrincipalDep, errors

router = APIRouter(prefix="/workloads", tags=["workloads"])


def _json(out: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """An answer the plane built already typed: serialised once, here, on the request's thread
    (FastAPI would validate it again against the response model, on another trip to the pool)."""
    return Response(out.model_dump_json(), status_code=status_code, media_type="application/json")


@router.post(
    "",
    response_model=WorkloadOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": WorkloadOut, "description": "Already submitted with this idempotency key"},
        **errors(403, 409),
    },
)
async def submit(req: SubmitRequest, plane: PlaneDep, principal: PrincipalDep) -> Response:
    """Submit a workload. Resubmitting with the same idempotency key returns the first (200)."""
    # On the event loop when the plane's lock is free (a submission is a few short statements;
    # the trip to the thread pool would cost more); on the thread pool while a tick holds it.
    answer = plane.workloads.try_submit(principal, req)
    if answer is None:
        answer = await run_in_threadpool(plane.workloads.submit, principal, req)
    workload, created = answer
    return _json(workload, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.get("", response_model=list[WorkloadOut], responses=errors())
def list_workloads(
    plane: PlaneDep,
    principal: PrincipalDep,
    state: Annotated[str | None, Query(description="comma-separated states")] = None,
    queue: str | None = None,
    user: str | None = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 200,
) -> list[WorkloadOut]:
    """Your workloads, and those in queues you administer (newest first)."""
    return plane.workloads.list_visible(principal, state=state, queue=queue, user=user, limit=limit)


@router.get("/{workload_id}", response_model=WorkloadOut, responses=errors(404))
async def get_workload(workload_id: str, plane: PlaneDep, principal: PrincipalDep) -> Response:
    return _json(plane.workloads.get(principal, workload_id))


@router.post("/{workload_id}/cancel", response_model=WorkloadOut, responses=errors(403, 404))
def cancel(workload_id: str, plane: PlaneDep, principal: PrincipalDep) -> WorkloadOut:
    return plane.workloads.cancel(principal, workload_id)


@router.get("/{workload_id}/why", response_model=WhyOut, responses=errors(404))
def why(workload_id: str, plane: PlaneDep, principal: PrincipalDep) -> WhyOut:
    """Why it is in its state; for a waiting workload, what holds it back and what would change it."""
    return plane.workloads.why(principal, workload_id)


@router.get("/{workload_id}/logs", response_model=LogsOut, responses=errors(404))
def logs(workload_id: str, plane: PlaneDep, principal: PrincipalDep) -> LogsOut:
    return plane.workloads.logs(principal, workload_id)


@router.get("/{workload_id}/events", response_model=list[EventOut], responses=errors(404))
def events(workload_id: str, plane: PlaneDep, principal: PrincipalDep) -> list[EventOut]:
    """Its transitions (with reasons) and events, oldest first."""
    return plane.workloads.events(principal, workload_id)
