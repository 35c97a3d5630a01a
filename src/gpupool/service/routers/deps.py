"""FastAPI dependencies: the control plane of this app, and the caller's principal.

Both are ``async``: FastAPI runs a plain ``def`` dependency on its thread pool, and the trip
there and back costs more CPU than what they do (a lookup in memory). Only a token not seen
before is looked up in the database, on the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from gpupool.api import ErrorBody
from gpupool.service.plane import ControlPlane
from gpupool.service.security import Principal


async def get_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


async def get_principal(
    plane: Annotated[ControlPlane, Depends(get_plane)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    known = plane.known_principal(token)
    if known is not None:
        return known
    return await run_in_threadpool(plane.authenticate, token)


_WHY = {
    400: "The request cannot be read",
    401: "No token, or an unknown one",
    403: "The caller may not do this",
    404: "No such workload or queue (or one the caller may not see)",
    409: "Conflicts with what exists (an idempotency key of another user)",
    413: "The request body is too large",
    422: "A field is invalid; `fields` names each one",
    501: "This control plane cannot do it (its executor lacks the capability); nothing is stored",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation may give, for its OpenAPI entry: each an ``ErrorBody``.

    Every operation that reads a body or parameters lists 422 and 413 (validation, body size),
    and every authenticated one 401, so give only the others.
    """
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in sorted({400, 401, 413, 422, *statuses})}


PlaneDep = Annotated[ControlPlane, Depends(get_plane)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
