"""``/healthz`` and ``/metrics`` (Prometheus); the portal at ``/`` is ``gpupool.service.portal``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gpupool.service.metrics import CONTENT_TYPE
from gpupool.service.routers.deps import PlaneDep, errors

router = APIRouter(tags=["system"])


@router.get("/healthz", responses=errors())
async def healthz(plane: PlaneDep) -> dict[str, object]:
    return {"ok": True, "tick_errors": plane.tick_errors}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}, **errors()},
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
