"""``/healthz``, ``/metrics`` (Prometheus) and the portal placeholder at ``/``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from gpupool.service.metrics import CONTENT_TYPE
from gpupool.service.routers.deps import PlaneDep

router = APIRouter(tags=["system"])

_PORTAL = """<!doctype html>
<html><head><meta charset="utf-8"><title>gpupool</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>gpupool</h1>
<p>The portal is coming. Meanwhile: the <a href="/docs">API</a>, the
<a href="/metrics">metrics</a>, and <code>gpupool list</code> / <code>gpupool queues</code>.</p>
</body></html>
"""


@router.get("/healthz")
def healthz(plane: PlaneDep) -> dict[str, object]:
    return {"ok": True, "tick_errors": plane.tick_errors}


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def portal() -> str:
    return _PORTAL
