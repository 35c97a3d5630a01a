"""FastAPI dependencies: the control plane of this app, and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from gpupool.service.plane import ControlPlane
from gpupool.service.security import Principal


def get_plane(request: Request) -> ControlPlane:
    return request.app.state.plane


def get_principal(
    plane: Annotated[ControlPlane, Depends(get_plane)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    return plane.authenticate(token)


PlaneDep = Annotated[ControlPlane, Depends(get_plane)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
