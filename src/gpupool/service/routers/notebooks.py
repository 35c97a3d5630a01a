"""``/notebooks``: start a notebook session, list them, read one, stop it, resume it.

The session itself (its Jupyter server) is reached under ``/notebooks/{name}/`` through the
proxy (``service/notebook_proxy.py``); the routes here are the API's.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from gpupool.notebook_api import NotebookOut, NotebookRequest
from gpupool.service.routers.deps import PlaneDep, PrincipalDep, errors

router = APIRouter(prefix="/notebooks", tags=["notebooks"])


@router.post(
    "", response_model=NotebookOut, status_code=status.HTTP_201_CREATED, responses=errors(403, 409, 501)
)
async def start(req: NotebookRequest, plane: PlaneDep, principal: PrincipalDep) -> NotebookOut:
    """Start a session: a Jupyter server on the GPUs the scheduler gives it in the queue. Refused
    (nothing stored) when the name is taken (409), the input is wrong (422), the queue's ACL says
    no (403), or the control plane's executor cannot run notebooks (501)."""
    return await run_in_threadpool(plane.notebooks.start, principal, req)


@router.get("", response_model=list[NotebookOut], responses=errors())
def list_notebooks(plane: PlaneDep, principal: PrincipalDep) -> list[NotebookOut]:
    """Your sessions and those in queues you administer, newest first (stopped ones too)."""
    return plane.notebooks.listed(principal)


@router.get("/{name}", response_model=NotebookOut, responses=errors(404))
def get_notebook(name: str, plane: PlaneDep, principal: PrincipalDep) -> NotebookOut:
    """One session: state (and why), URL, queue, GPUs, node, history."""
    return plane.notebooks.get(principal, name)


@router.post("/{name}/stop", response_model=NotebookOut, responses=errors(403, 404, 409))
def stop(name: str, plane: PlaneDep, principal: PrincipalDep) -> NotebookOut:
    """Stop it: its server and kernels stop, its GPUs go back to the queue, its files stay."""
    return plane.notebooks.stop(principal, name)


@router.post("/{name}/resume", response_model=NotebookOut, responses=errors(403, 404, 409, 501))
async def resume(name: str, plane: PlaneDep, principal: PrincipalDep) -> NotebookOut:
    """Start a stopped session again with the same settings; its files are where it left them."""
    return await run_in_threadpool(plane.notebooks.resume, principal, name)
