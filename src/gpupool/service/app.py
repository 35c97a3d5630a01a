"""``create_app(settings)``: the FastAPI application of one control plane.

Startup (the app's lifespan) migrates the database, creates the bootstrap admin token on first
start, recovers the driver from the database and starts its loop; shutdown stops the loop. The
executor is given by the caller (the Ray executor in ``gpupool up``, a small real one in tests),
which also closes it. With a node ``provider`` and ``nodepools:`` in the config, the node pools
grow and shrink live through it (``ControlPlane``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gpupool.api import ErrorBody, FieldError
from gpupool.core.config import Config
from gpupool.engine.autoscaler import NodeProvider
from gpupool.service.db import Database
from gpupool.service.history import HistorySampler
from gpupool.service.history import router as history_router
from gpupool.service.metrics import Metrics
from gpupool.service.plane import ControlPlane, ServiceError, ServiceExecutor, load_queue_config
from gpupool.service.portal import router as portal_router
from gpupool.service.routers import cluster, system, workloads
from gpupool.service.security import bootstrap_admin
from gpupool.service.settings import ServiceSettings


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare(settings, database)
        plane.start()
        sampler.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            sampler.stop()
            plane.stop()
            if settings.checkpoint_on_stop is not None:
                plane.checkpoint_running(settings.checkpoint_on_stop)
            if db is None:
                database.close()

    app = FastAPI(title="gpupool", version="0.1.0", lifespan=lifespan)
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.history = sampler
    app.include_router(workloads.router)
    app.include_router(cluster.router)
    app.include_router(system.router)
    app.include_router(history_router)
    app.include_router(portal_router)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app


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
        message = str(err.get("msg", "invalid"))
        fields.append(FieldError(field=loc, message=message))
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    body = ErrorBody(
        code="invalid",
        message=f"invalid request ({summary})",
        fields=fields,
        hint="fix the fields named above; the schema is at /docs",
    )
    return JSONResponse(body.model_dump(), status_code=422)
