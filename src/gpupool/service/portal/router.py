"""The portal's routes: HTML pages, static assets, reports, and the portal's own JSON views.

Sign-in: the sign-in page checks the API token against ``GET /whoami`` and keeps it in the tab's
``sessionStorage`` (sent as ``Authorization: Bearer`` on every fetch of the JSON API) and in a
``SameSite=Strict`` session cookie, which is how the server knows the caller when it renders a
page or serves a report (navigations cannot carry a header). The API itself never reads the
cookie, so a cross-site form cannot act with it. A page requested without a valid token is
answered with the sign-in page.

Pages are rendered with what only the server knows (the caller, the queues it may submit to,
the configured sizes); the live parts are filled in and refreshed by the page's script from the
JSON API every few seconds.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from gpupool.core.resources import format_resources
from gpupool.service.cluster_service import MeOut, PoolView
from gpupool.service.errors import NotFound, ServiceError
from gpupool.service.plane import ControlPlane
from gpupool.service.routers.deps import PlaneDep, PrincipalDep
from gpupool.service.security import Principal

HERE = Path(__file__).parent
STATIC = HERE / "static"
TOKEN_COOKIE = "gpupool_token"
POLL_MS = 2000  # how often pages refresh their live parts
_REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html?$")
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/portal/api", tags=["portal"])


# ---------------------------------------------------------------------------- JSON views


@api.get("/me", response_model=MeOut)
def me(plane: PlaneDep, principal: PrincipalDep) -> MeOut:
    """Who you are, the leaf queues you may submit to and those you administer."""
    return plane.cluster.me(principal)


@api.get("/nodes", response_model=list[PoolView])
def nodes(plane: PlaneDep, principal: PrincipalDep) -> list[PoolView]:
    """GPU-level occupancy: one cell per GPU (workload and queue, reserved, or free), by pool."""
    return plane.cluster.occupancy(principal)


# ---------------------------------------------------------------------------- pages


def _principal(request: Request) -> Principal | None:
    plane: ControlPlane = request.app.state.plane
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    try:
        return plane.authenticate(token)
    except ServiceError:
        return None


def _page(request: Request, template: str, title: str, nav: str, **extra: Any) -> Response:
    principal = _principal(request)
    if principal is None:
        return _signin(request)
    plane: ControlPlane = request.app.state.plane
    context = {"title": title, "nav": nav, "me": plane.cluster.me(principal).model_dump(), "poll_ms": POLL_MS}
    context.update(extra)
    return templates.TemplateResponse(request, template, context)


def signin(request: Request) -> Response:
    """The sign-in page, leading back to the page asked for (the notebook proxy's too)."""
    return _signin(request)


def _signin(request: Request) -> Response:
    next_url = request.url.path
    if request.url.query:
        next_url += "?" + request.url.query
    next_url = portal_next(next_url)
    return templates.TemplateResponse(
        request, "signin.html", {"title": "Sign in", "nav": "", "me": None, "next": next_url}
    )


@router.get("/", response_class=HTMLResponse)
def queues_page(request: Request) -> Response:
    return _page(request, "queues.html", "Queues", "queues", selected=request.query_params.get("queue"))


# Where a sign-in may go next: the portal's own pages and notebook sessions (through the proxy),
# by path, with an optional query. No backslash, whitespace or control character anywhere:
# browsers read `/\host` and `/<tab>/host` as `//host`, another site.
_PORTAL_NEXT = re.compile(
    r"^/(?:(?:portal/(?!signin)|notebooks/[A-Za-z0-9][A-Za-z0-9._-]{0,62}/)[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
    r"(?:\?[^\s\\#]*)?$"
)


def portal_next(value: str | None) -> str:
    """``value`` if it is a path of the portal, else ``/`` (a sign-in never leads elsewhere)."""
    if value and _PORTAL_NEXT.match(value) and not value.startswith("//"):
        return value
    return "/"


@router.get("/portal/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> Response:
    next_url = portal_next(request.query_params.get("next"))
    return templates.TemplateResponse(
        request, "signin.html", {"title": "Sign in", "nav": "", "me": None, "next": next_url}
    )


@router.get("/portal/workloads", response_class=HTMLResponse)
def workloads_page(request: Request) -> Response:
    return _page(request, "workloads.html", "Workloads", "workloads")


@router.get("/portal/workloads/{workload_id}", response_class=HTMLResponse)
def workload_page(request: Request, workload_id: str) -> Response:
    return _page(request, "workload.html", f"Workload {workload_id}", "workloads", workload_id=workload_id)


@router.get("/portal/nodes", response_class=HTMLResponse)
def nodes_page(request: Request) -> Response:
    return _page(request, "nodes.html", "Nodes", "nodes")


def _sizes(plane: ControlPlane) -> list[dict[str, Any]]:
    """The configured sizes as the forms offer them: name, description, shapes in words."""
    return [
        {
            "name": s.name,
            "description": s.description,
            "shapes": [
                format_resources(shape.resources).strip("{}")
                + (f" on {' or '.join(shape.gpu_types)}" if shape.gpu_types else " on any GPU type")
                for shape in s.shapes
            ],
        }
        for s in plane.cluster.sizes().values()
    ]


@router.get("/portal/submit", response_class=HTMLResponse)
def submit_page(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    sizes = _sizes(plane)
    return _page(request, "submit.html", "Submit", "submit", sizes=sizes, gpu_types=plane.cluster.gpu_types())


@router.get("/portal/deployments", response_class=HTMLResponse)
def deployments_page(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    return _page(
        request,
        "deployments.html",
        "Deployments",
        "deployments",
        sizes=_sizes(plane),
        gpu_types=plane.cluster.gpu_types(),
    )


@router.get("/portal/deployments/{name}", response_class=HTMLResponse)
def deployment_page(request: Request, name: str) -> Response:
    return _page(request, "deployment.html", f"Deployment {name}", "deployments", deployment=name)


@router.get("/portal/notebooks", response_class=HTMLResponse)
def notebooks_page(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    return _page(
        request,
        "notebooks.html",
        "Notebooks",
        "notebooks",
        sizes=_sizes(plane),
        gpu_types=plane.cluster.gpu_types(),
        reclaimed=sorted(plane.notebooks.reclaimed_gpu_hours(plane.clock()).items()),
    )


@router.get("/portal/reports", response_class=HTMLResponse)
def reports_page(request: Request) -> Response:
    return _page(request, "reports.html", "Reports", "reports", reports=_reports(request))


@router.get("/portal/reports/{name}")
def report(request: Request, name: str) -> Response:
    if _principal(request) is None:
        return _signin(request)
    path = _reports_dir(request) / name
    if not _REPORT_NAME.match(name) or not path.is_file():
        raise NotFound(f"no report {name!r}", hint="see /portal/reports for the reports there are")
    # A report is a document of its own: sandboxed, it cannot read the portal's token.
    headers = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/portal/static/{name}")
def static(name: str) -> Response:
    path = STATIC / name
    kind = _STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or not path.is_file():
        raise NotFound(f"no asset {name!r}")
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-cache"})


def _reports_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir) / "reports"


def _reports(request: Request) -> list[dict[str, Any]]:
    directory = _reports_dir(request)
    if not directory.is_dir():
        return []
    out = []
    for path in directory.iterdir():
        if not (_REPORT_NAME.match(path.name) and path.is_file()):
            continue
        stat = path.stat()
        out.append(
            {
                "name": path.name,
                "title": _title(path) or path.stem,
                "size": stat.st_size,
                "modified": datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "mtime": stat.st_mtime,
            }
        )
    return sorted(out, key=lambda r: -r["mtime"])


def _title(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(8192).decode("utf-8", errors="replace")
    m = re.search(r"<title[^>]*>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
    return html.unescape(m.group(1)).strip() if m else None


@router.get("/portal", response_class=HTMLResponse)
def portal_home(request: Request) -> Response:
    return queues_page(request)


router.include_router(api)
