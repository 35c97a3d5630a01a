"""``create_app(settings)``: the FastAPI application of one control plane.

Startup (the app's lifespan) migrates the database, creates the bootstrap admin token on first
start, recovers the driver from the database and starts its loop; shutdown stops the loop. The
executor is given by the caller (the Ray executor in ``gpupool up``, a small real one in tests),
which also closes it. With a node ``provider`` and ``nodepools:`` in the config, the node pools
grow and shrink live through it (``ControlPlane``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.api import ErrorBody, FieldError
from gpupool.core.config import Config
from gpupool.engine.ports import NodeProvider
from gpupool.service.context import ServiceExecutor
from gpupool.service.db import Database
from gpupool.service.errors import ServiceError
from gpupool.service.history import HistorySampler
from gpupool.service.history import router as history_router
from gpupool.service.metrics import Metrics
from gpupool.service.notebook_proxy import router as notebook_proxy
from gpupool.service.notebook_reaper import SessionReaper
from gpupool.service.plane import ControlPlane
from gpupool.service.portal import router as portal_router
from gpupool.service.routers import cluster, deployments, notebooks, system, workloads
from gpupool.service.security import bootstrap_admin
from gpupool.service.settings import ServiceSettings, load_queue_config

log = logging.getLogger("gpupool.service")


def prepare(settings: ServiceSettings, db: Database) -> str | None:
    """Create the data dir, migrate, and make the bootstrap admin token on first start."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate()
    return bootstrap_admin(db, settings.admin_token_file)


def create_app(
    settings: ServiceSettings,
    executor: ServiceExecutor,
    *,
    config: Config | None = None,
    db: Database | None = None,
    on_ready: Callable[[], None] | None = None,
    provider: NodeProvider | None = None,
) -> FastAPI:
    config = config or load_queue_config(settings.config_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = db or Database(settings.db_url)
    metrics = Metrics()
    plane = ControlPlane(
        settings, config, database, executor, on_transition=metrics.on_transition, provider=provider
    )
    metrics.attach(plane)
    sampler = HistorySampler(plane)
    reaper = SessionReaper(plane)  # idle reclaim and lifetime of notebook sessions

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare(settings, database)
        plane.start()
        sampler.start()
        reaper.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            reaper.stop()
            sampler.stop()
            plane.stop()
            if settings.checkpoint_on_stop is not None:
                plane.checkpoint_running(settings.checkpoint_on_stop)
            if db is None:
                database.close()
            proxy_client = getattr(app.state, "notebook_http", None)
            if proxy_client is not None:
                await proxy_client.aclose()

    # /docs and /redoc load Swagger UI and ReDoc from the package (fastapi-offline), not from a
    # CDN: they work on a machine without internet.
    app = FastAPIOffline(title="gpupool", version="0.1.0", lifespan=lifespan)
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.history = sampler
    app.state.reaper = reaper
    app.include_router(workloads.router)
    app.include_router(deployments.router)
    app.include_router(notebooks.router)
    app.include_router(cluster.router)
    app.include_router(system.router)
    app.include_router(history_router)
    app.include_router(portal_router)
    app.include_router(notebook_proxy)  # after the API: /notebooks/{name}/stop and /resume are the API's
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    return app


_PROXIED = re.compile(r"^/notebooks/[^/]+/(?!(?:stop|resume)$)")  # the notebook proxy's paths
MAX_BODY = 1 << 20  # bytes: the largest request body (a submission is a few KB)

_HTTP_CODES = {
    400: ("bad-request", "check the request's syntax"),
    404: ("not-found", "the API's paths are listed at /docs"),
    405: ("method-not-allowed", "the methods this path takes are in the Allow header and at /docs"),
    413: ("too-large", f"a request body may hold at most {MAX_BODY} bytes"),
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """The router's own refusals (no such path, wrong method, unreadable request) as ErrorBody."""
    assert isinstance(exc, StarletteHTTPException)
    code, hint = _HTTP_CODES.get(exc.status_code, (f"http-{exc.status_code}", ""))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    body = ErrorBody(code=code, message=message, hint=hint)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API documents for this path (the router names only its first route's)."""
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(request.app.state, "allowed", None)
    if table is None:
        table = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"), sorted(ops))
            for path, ops in request.app.openapi().get("paths", {}).items()
        ]
        table = [(pattern, [m.upper() for m in methods]) for pattern, methods in table]
        request.app.state.allowed = table
    return sorted({m for pattern, methods in table if pattern.match(request.url.path) for m in methods})


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: logged with its traceback, answered with an ErrorBody, never text."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    body = ErrorBody(
        code="internal",
        message=f"the control plane failed on {request.method} {request.url.path}: {type(exc).__name__}",
        hint="this is a defect; the server's log has the details",
    )
    return JSONResponse(body.model_dump(), status_code=500)


class BodyLimit:
    """Refuse a request body above ``limit`` bytes with 413, before anything reads it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _PROXIED.match(scope.get("path", "")):
            # A notebook's own requests (saving a large notebook, uploads) are the Jupyter server's to limit.
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(scope, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise StarletteHTTPException(413, "request body too large")
            return message

        await self.app(scope, limited, send)


async def _too_large(scope: Scope, send: Send) -> None:
    code, hint = _HTTP_CODES[413]
    body = ErrorBody(
        code=code, message=f"{scope.get('method')} {scope.get('path')}: request body too large", hint=hint
    )
    await JSONResponse(body.model_dump(), status_code=413)(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    body = ErrorBody(
        code=exc.code,
        message=exc.message,
        fields=[FieldError(field=f, message=m) for f, m in exc.fields],
        hint=exc.hint,
    )
    return JSONResponse(body.model_dump(), status_code=exc.status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append(FieldError(field=loc, message=message))
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    body = ErrorBody(
        code="invalid",
        message=f"invalid request ({summary})",
        fields=fields,
        hint="fix the fields named above; the schema is at /docs",
    )
    return JSONResponse(body.model_dump(), status_code=422)
