"""The notebook proxy: ``/notebooks/{name}/...`` forwarded to the session's Jupyter server.

Every request is authenticated with gpupool's own token (``Authorization: Bearer``, or the
portal's sign-in cookie, which a browser sends on navigations and websockets; a browser without
either is shown the portal's sign-in page, which leads back to the notebook) and checked
against the session (``NotebookService.target``: its owner, anyone with submit access on its
queue, or its admins; others get 403). The proxy then adds the session's Jupyter token itself
(``Authorization: token ...``), which nobody outside the control plane sees, and drops the
caller's gpupool credentials, so the Jupyter server and the user's code never receive them.

HTTP goes through ``httpx`` (streamed both ways); websockets (kernels, terminals) are relayed
message by message with the ``websockets`` client. The Jupyter server listens on 127.0.0.1
with ``base_url`` the same path, so its links and redirects need no rewriting; the one thing
rewritten is the token JupyterLab writes into its HTML pages, taken out.

Its HTML pages also get a small script (``portal/static/session-warning.js``) that asks
``/notebooks/{name}/-/warning`` (answered here, not by Jupyter; the same credentials and access
rules) every ``WARNING_POLL`` seconds and shows a pending reclaim's warning (idle, lifetime,
preemption) as a bar across the top of JupyterLab, so whoever works in the notebook sees it, not
only the portal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
from typing import Any

import httpx
from fastapi import APIRouter, Request, WebSocket
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gpupool.api import ErrorBody
from gpupool.engine.model import notebook_path
from gpupool.engine.ports import NotebookEndpoint
from gpupool.service.errors import ServiceError, Unauthorized
from gpupool.service.plane import ControlPlane
from gpupool.service.portal.router import TOKEN_COOKIE, signin
from gpupool.service.security import Principal

router = APIRouter(include_in_schema=False)

# Hop-by-hop headers (RFC 9110 7.6.1) and what the proxy sets itself: never forwarded.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "cookie",
        "content-length",
    }
)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CONNECT_TIMEOUT = 10.0  # seconds to reach a session's server
# Jupyter answers a kernel's websocket handshake only once the kernel replies to it (up to its
# kernel_info_timeout, 60 s): a starting kernel on a busy node takes a while.
WS_OPEN_TIMEOUT = 90.0
WS_CLOSE_REFUSED = 1008  # policy violation: the caller may not open this session


def _token(headers: Any, cookies: dict[str, str]) -> str | None:
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return str(value.strip())
    return cookies.get(TOKEN_COOKIE) or None


def _cookie_header(cookies: dict[str, str]) -> str | None:
    """The caller's cookies for the Jupyter server: all but gpupool's own."""
    kept = [f"{k}={v}" for k, v in cookies.items() if k != TOKEN_COOKIE]
    return "; ".join(kept) or None


async def _principal(plane: ControlPlane, token: str | None) -> Principal:
    known = plane.known_principal(token)
    return known if known is not None else await run_in_threadpool(plane.authenticate, token)


async def _target(plane: ControlPlane, token: str | None, name: str) -> NotebookEndpoint:
    principal = await _principal(plane, token)
    return await run_in_threadpool(plane.notebooks.target, principal, name)


def _client(request: Request | WebSocket) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(request.app.state, "notebook_http", None)
    if client is None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT), follow_redirects=False
        )
        request.app.state.notebook_http = client
    return client


WARNING_POLL = 5  # seconds between a page's reads of its session's warning
WARNING_PATH = "-/warning"  # under the session's path; not a path Jupyter serves


def _warning_script(name: str) -> bytes:
    """The tag that loads the warning bar (``portal/static/session-warning.js``) into a page."""
    url = html.escape(notebook_path(name) + WARNING_PATH)
    return (
        f'<script id="gpupool-warning-script" src="/portal/static/session-warning.js" '
        f'data-url="{url}" data-every="{WARNING_POLL}"></script>'
    ).encode()


@router.get(f"/notebooks/{{name}}/{WARNING_PATH}")
async def warning(name: str, request: Request) -> dict[str, Any]:
    """The session's pending reclaim, for the script in its pages: ``state``, ``warning``,
    ``reclaim_at``, ``reclaim_why`` (None when nothing is pending)."""
    plane: ControlPlane = request.app.state.plane
    principal = await _principal(plane, _token(request.headers, request.cookies))
    nb = await run_in_threadpool(functools.partial(plane.notebooks.get, principal, name, with_history=False))
    return {
        "state": nb.state,
        "warning": nb.warning,
        "reclaim_at": nb.reclaim_at,
        "reclaim_why": nb.reclaim_why,
    }


def _with_warning_script(page: bytes, name: str) -> bytes:
    tag = _warning_script(name)
    at = page.rfind(b"</body>")
    return page + tag if at < 0 else page[:at] + tag + page[at:]


@router.api_route("/notebooks/{name}/{path:path}", methods=_METHODS)
async def forward(name: str, path: str, request: Request) -> Response:
    """One HTTP request to the session's Jupyter server, answered as it answers."""
    plane: ControlPlane = request.app.state.plane
    try:
        endpoint = await _target(plane, _token(request.headers, request.cookies), name)
    except Unauthorized:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return signin(request)  # a browser not signed in: sign in, then back here
        raise
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
    headers.append(("authorization", f"token {endpoint.token}"))
    cookie = _cookie_header(request.cookies)
    if cookie:
        headers.append(("cookie", cookie))
    url = endpoint.url + notebook_path(name) + path
    if request.url.query:
        url += "?" + request.url.query
    client = _client(request)
    upstream = client.build_request(request.method, url, headers=headers, content=request.stream())
    try:
        answer = await client.send(upstream, stream=True)
    except httpx.TransportError as exc:
        return _unreachable(name, exc)
    out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP - {"content-length"}}
    location = answer.headers.get("location")
    if location and location.startswith(endpoint.url):
        out_headers["location"] = location[len(endpoint.url) :]  # the same path, here
    if answer.headers.get("content-type", "").startswith("text/html"):
        # JupyterLab writes its token into its page's config; the proxy adds it to every request
        # itself, so the page gets none (a page is small: read whole, decoded). The page gets the
        # warning bar's script.
        try:
            page = (await answer.aread()).replace(endpoint.token.encode(), b"")
            page = _with_warning_script(page, name)
        finally:
            await answer.aclose()
        for name_ in ("content-encoding", "content-length"):
            out_headers.pop(name_, None)
        return Response(page, status_code=answer.status_code, headers=out_headers)
    return StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        headers=out_headers,
        background=BackgroundTask(answer.aclose),
    )


def _unreachable(name: str, exc: Exception) -> Response:
    body = ErrorBody(
        code="notebook-unreachable",
        message=f"notebook {name}: its Jupyter server did not answer ({type(exc).__name__})",
        hint=f"it may be starting or stopping; see `gpupool notebook status {name}`",
    )
    return Response(body.model_dump_json(), status_code=502, media_type="application/json")


@router.websocket("/notebooks/{name}/{path:path}")
async def relay(websocket: WebSocket, name: str, path: str) -> None:
    """A websocket (a kernel's channels, a terminal) relayed both ways, message by message."""
    plane: ControlPlane = websocket.app.state.plane
    try:
        endpoint = await _target(plane, _token(websocket.headers, websocket.cookies), name)
    except ServiceError as exc:
        await websocket.close(code=WS_CLOSE_REFUSED, reason=exc.message[:120])  # HTTP 403 before accept
        return
    url = endpoint.url.replace("http://", "ws://", 1) + notebook_path(name) + path
    query = websocket.scope.get("query_string", b"").decode()
    if query:
        url += "?" + query
    headers = [("Authorization", f"token {endpoint.token}")]
    cookie = _cookie_header(websocket.cookies)
    if cookie:
        headers.append(("Cookie", cookie))
    protocols = websocket.scope.get("subprotocols") or None
    try:
        upstream = await connect(
            url,
            additional_headers=headers,
            subprotocols=protocols,
            open_timeout=WS_OPEN_TIMEOUT,
            max_size=None,
            compression=None,
            ping_interval=None,  # the browser and Jupyter keep the connection alive themselves
        )
    except (OSError, InvalidStatus, TimeoutError):
        await websocket.close(code=1011)
        return
    async with upstream:
        await websocket.accept(subprotocol=upstream.subprotocol)

        async def inbound() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await upstream.send(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send(message["bytes"])

        async def outbound() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in upstream:
                    if isinstance(data, str):
                        await websocket.send_text(data)
                    else:
                        await websocket.send_bytes(data)

        tasks = [asyncio.create_task(inbound()), asyncio.create_task(outbound())]
        _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    with contextlib.suppress(RuntimeError):
        await websocket.close()
