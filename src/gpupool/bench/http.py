"""A small HTTP/1.1 client on asyncio streams, for ``gpupool bench api``'s load.

Why not httpx: the load generator shares the machine with the server it measures, and httpx's
async client spends about 6 ms of CPU on a request (its connection pool, its models, anyio);
at 200 requests/s that is more than a core, so the client, not the server, would set the rate.
This client sends a request and reads a ``Content-Length`` (or chunked) answer on a kept-alive
connection, and nothing else: no redirects, no cookies, no TLS, no proxies. It speaks only to
the loopback server ``bench api`` checked.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

# Idle connections are dropped before the server would drop them (uvicorn: after 5 s), so that a
# request is never sent on a connection the server is closing.
KEEPALIVE_EXPIRY = 2.0
MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """A request failed below HTTP (connection refused or closed, timeout, unreadable answer)."""


class ConnectionClosed(HttpError):
    """The connection closed before an answer began: the server may never have seen the request."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: its status and body."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used_at: float = 0.0

    def close(self) -> None:
        self.writer.close()


class Client:
    """Keep-alive connections to one server; ``get`` and ``post`` answer an ``Answer``.

    At most as many connections are open as requests are in flight (the caller bounds those).
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise HttpError(f"{base_url}: only http:// URLs are supported")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        host = f"{self.host}:{self.port}"
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, **headers}.items()).encode()
        self._idle: list[_Conn] = []

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Answer:
        if params:
            path = f"{path}?{urlencode(params)}"
        return await self.request("GET", path)

    async def post(self, path: str, json_body: Any = None) -> Answer:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        return await self.request("POST", path, body, json_body is not None)

    async def request(self, method: str, path: str, body: bytes = b"", is_json: bool = False) -> Answer:
        """Send one request; raises ``ConnectionClosed`` if a kept-alive connection closed under
        it before any answer came (the caller decides whether sending again is safe)."""
        conn = await self._checkout()
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode() + self._head
        if body or method == "POST":
            head += b"Content-Type: application/json\r\n" if is_json else b""
            head += f"Content-Length: {len(body)}\r\n".encode()
        try:
            conn.writer.write(head + b"\r\n" + body)
            answer, keep = await asyncio.wait_for(self._read(conn), self.timeout)
        except TimeoutError:
            conn.close()
            raise HttpError(f"{method} {path}: no answer within {self.timeout:g} s") from None
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            if isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                raise ConnectionClosed(f"{method} {path}: the connection closed before an answer") from None
            if isinstance(exc, ConnectionResetError):
                raise ConnectionClosed(f"{method} {path}: the connection was reset") from None
            raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if keep:
            conn.used_at = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    async def _checkout(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.used_at < KEEPALIVE_EXPIRY and not conn.reader.at_eof():
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_HEAD), self.timeout
            )
        except TimeoutError:
            raise HttpError(f"cannot connect to {self.host}:{self.port} within {self.timeout:g} s") from None
        return _Conn(reader, writer)

    @staticmethod
    async def _read(conn: _Conn) -> tuple[Answer, bool]:
        head = await conn.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await conn.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            content = b"".join(parts)
        else:
            content = await conn.reader.readexactly(int(headers.get("content-length", "0")))
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return Answer(int(status), content), keep
