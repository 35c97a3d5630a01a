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
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from gpupool.core.capacity import POOL_LABEL, headroom_target
from gpupool.core.placement import may_submit
from gpupool.core.resources import GPU_TYPE_LABEL, format_resources, gpu_count
from gpupool.service.plane import ControlPlane, NotFound, ServiceError
from gpupool.service.routers.deps import PlaneDep, PrincipalDep
from gpupool.service.security import Principal, administers, may_see

HERE = Path(__file__).parent
STATIC = HERE / "static"
TOKEN_COOKIE = "gpupool_token"
POLL_MS = 2000  # how often pages refresh their live parts
DEFAULT_POOL = "default"
_REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html?$")
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/portal/api", tags=["portal"])


# ---------------------------------------------------------------------------- JSON views


class MeOut(BaseModel):
    """The caller and what the portal should offer it (the API enforces the same rules)."""

    user: str
    groups: list[str]
    admin: bool
    submit_queues: list[str]
    admin_queues: list[str]
    may_reload: bool


class GpuCell(BaseModel):
    state: Literal["used", "reserved", "free"]
    workload: str | None = None
    queue: str | None = None
    name: str | None = None  # only for workloads the caller may see
    user: str | None = None


class NodeView(BaseModel):
    name: str
    pool: str
    gpu_type: str | None
    state: Literal["ready", "draining", "booting", "lost"]
    gpus: int
    free: int
    cells: list[GpuCell]
    capacity: str
    allocated: str
    note: str = ""  # why a lost node was lost, and when


class PoolView(BaseModel):
    name: str
    gpus: int
    free: int
    largest_free: int  # the most free GPUs on one ready node: the biggest member that fits now
    booting: int
    draining: int
    headroom_nodes: int = 0  # warm nodes kept now (burst-sized headroom: what recent arrivals ask)
    headroom_gpus: int = 0
    headroom_follows_arrivals: bool = False
    nodes: list[NodeView]


def me_of(plane: ControlPlane, principal: Principal) -> MeOut:
    with plane.lock:
        core = plane.driver.core
        queues = list(core.queues.values())
        submit = sorted(
            q.path
            for q in queues
            if q.is_leaf and not q.dynamic and may_submit(q, principal.user, principal.groups)
        )
        admin = sorted(q.path for q in queues if administers(principal, q))
        may_reload = administers(principal, core.root)
    return MeOut(
        user=principal.user,
        groups=list(principal.groups),
        admin=principal.admin,
        submit_queues=submit,
        admin_queues=admin,
        may_reload=may_reload,
    )


def occupancy(plane: ControlPlane, principal: Principal) -> list[PoolView]:
    """Every node's GPUs one by one, grouped by pool; booting nodes from the autoscaler if any."""
    headroom = {p.name: p for p in plane.config.nodepools}
    nodes: list[NodeView] = []
    with plane.lock:
        driver = plane.driver
        core = driver.core
        autoscaler = driver.autoscaler
        pool_nodes = dict(autoscaler.nodes) if autoscaler is not None else {}
        arrivals = tuple(autoscaler.arrivals) if autoscaler is not None else ()
        peaks = autoscaler.peaks(plane.clock()) if autoscaler is not None else None
        now = plane.clock()
        for node in sorted(core.nodes.values(), key=lambda n: n.name):
            cells: list[GpuCell] = []
            for alloc in sorted(node.allocations.values(), key=lambda a: a.seq):
                w = driver.workloads.get(alloc.app.id)
                visible = w is not None and may_see(principal, w.spec.user, alloc.queue)
                cell = GpuCell(
                    state="used",
                    workload=alloc.app.id,
                    queue=alloc.queue.path,
                    name=w.spec.name if visible and w else None,
                    user=w.spec.user if visible and w else None,
                )
                cells.extend(cell.model_copy() for _ in range(gpu_count(alloc.resources)))
            for ask_id, held in sorted(node.held.items()):
                # GPUs kept for a waiting workload after preemption made room for it.
                cells.extend(
                    GpuCell(state="reserved", workload=ask_id.split("/", 1)[0])
                    for _ in range(gpu_count(held))
                )
            total = gpu_count(node.capacity)
            cells = cells[:total]
            free = total - len(cells)
            cells.extend(GpuCell(state="free") for _ in range(free))
            pool_node = pool_nodes.get(node.name)
            draining = not node.schedulable or (pool_node is not None and pool_node.state == "terminating")
            nodes.append(
                NodeView(
                    name=node.name,
                    pool=node.labels.get(POOL_LABEL) or (pool_node.pool if pool_node else DEFAULT_POOL),
                    gpu_type=node.gpu_type,
                    state="draining" if draining else "ready",
                    gpus=total,
                    free=free,
                    cells=cells,
                    capacity=format_resources(node.capacity),
                    allocated=format_resources({k: v for k, v in node.allocated.items() if v}),
                )
            )
        for name, lost in sorted(driver.lost.items()):
            if name in core.nodes:
                continue
            nodes.append(
                NodeView(
                    name=name,
                    pool=lost.spec.labels.get(POOL_LABEL) or DEFAULT_POOL,
                    gpu_type=lost.spec.labels.get(GPU_TYPE_LABEL),
                    state="lost",
                    gpus=gpu_count(lost.spec.capacity),
                    free=0,
                    cells=[],
                    capacity=format_resources(lost.spec.capacity),
                    allocated="",
                    note=f"lost at {datetime.fromtimestamp(lost.at, UTC):%H:%M:%S} UTC: {lost.reason}",
                )
            )
        for name, pn in sorted(pool_nodes.items()):
            if pn.state != "booting" or name in core.nodes:
                continue
            gpus = pn.instance_type.gpus
            nodes.append(
                NodeView(
                    name=name,
                    pool=pn.pool,
                    gpu_type=pn.instance_type.gpu_type,
                    state="booting",
                    gpus=gpus,
                    free=gpus,
                    cells=[GpuCell(state="free") for _ in range(gpus)],
                    capacity=format_resources(pn.instance_type.capacity()),
                    allocated="",
                )
            )
    pools: dict[str, list[NodeView]] = {}
    for n in nodes:
        pools.setdefault(n.pool, []).append(n)
    out = []
    for name in sorted(pools, key=lambda p: (p != DEFAULT_POOL, p)):
        members = pools[name]
        ready = [n for n in members if n.state == "ready"]
        cfg = headroom.get(name)
        out.append(
            PoolView(
                name=name,
                gpus=sum(n.gpus for n in members if n.state not in ("booting", "lost")),
                free=sum(n.free for n in ready),
                largest_free=max((n.free for n in ready), default=0),
                booting=sum(n.state == "booting" for n in members),
                draining=sum(n.state == "draining" for n in members),
                headroom_nodes=headroom_target(cfg, arrivals, now, peaks) if cfg else 0,
                headroom_gpus=cfg.headroom_gpus if cfg else 0,
                headroom_follows_arrivals=bool(cfg and cfg.headroom_window > 0),
                nodes=members,
            )
        )
    return out


@api.get("/me", response_model=MeOut)
def me(plane: PlaneDep, principal: PrincipalDep) -> MeOut:
    """Who you are, the leaf queues you may submit to and those you administer."""
    return me_of(plane, principal)


@api.get("/nodes", response_model=list[PoolView])
def nodes(plane: PlaneDep, principal: PrincipalDep) -> list[PoolView]:
    """GPU-level occupancy: one cell per GPU (workload and queue, reserved, or free), by pool."""
    return occupancy(plane, principal)


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
    context = {"title": title, "nav": nav, "me": me_of(plane, principal).model_dump(), "poll_ms": POLL_MS}
    context.update(extra)
    return templates.TemplateResponse(request, template, context)


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


# Where a sign-in may go next: the portal's own pages, by path, with an optional query. No
# backslash, whitespace or control character anywhere: browsers read `/\host` and `/<tab>/host`
# as `//host`, another site.
_PORTAL_NEXT = re.compile(r"^/(?:portal/(?!signin)[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(?:\?[^\s\\#]*)?$")


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


@router.get("/portal/submit", response_class=HTMLResponse)
def submit_page(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    sizes = [
        {
            "name": s.name,
            "description": s.description,
            "shapes": [
                format_resources(shape.resources).strip("{}")
                + (f" on {' or '.join(shape.gpu_types)}" if shape.gpu_types else " on any GPU type")
                for shape in s.shapes
            ],
        }
        for s in plane.sizes().values()
    ]
    return _page(request, "submit.html", "Submit", "submit", sizes=sizes, gpu_types=plane.gpu_types())


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
