"""``gpupool.bench.http``: the load generator's small HTTP/1.1 client, against a scripted server."""

from __future__ import annotations

import asyncio

import pytest

from gpupool.bench.api import in_own_loop
from gpupool.bench.http import Client, ConnectionClosed, HttpError

ANSWERS = {
    b"/length": b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"ok": true}',
    b"/chunked": b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b'4\r\n{"a"\r\n4\r\n: 1}\r\n0\r\n\r\n',
    b"/close": b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
}


async def _serve(seen: list[bytes], connections: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            path = head.split(b" ")[1]
            seen.append(head.split(b"\r\n")[0] + b" " + body)
            if path == b"/drop":  # closes without answering, as a server dropping an idle connection
                break
            writer.write(ANSWERS[path])
            await writer.drain()
            if path == b"/close":
                break
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_answers_by_length_or_chunks_keeps_connections_alive_and_reports_a_dropped_one():
    async def scenario() -> None:
        seen: list[bytes] = []
        connections: list[int] = []
        server = await _serve(seen, connections)
        port = server.sockets[0].getsockname()[1]
        async with Client(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t"}) as http:
            a = await http.get("/length")
            assert (a.status_code, a.json()) == (200, {"ok": True})
            b = await http.post("/chunked", {"x": 1})
            assert (b.status_code, b.json()) == (201, {"a": 1})
            assert len(connections) == 1  # the same kept-alive connection
            c = await http.get("/close")
            assert (c.status_code, c.text) == (404, "no")
            await http.get("/length")
            assert len(connections) == 2  # the server closed the first one: a new one was opened
            with pytest.raises(ConnectionClosed):
                await http.post("/drop", {"y": 2})
        server.close()
        await server.wait_closed()
        assert seen[1] == b'POST /chunked HTTP/1.1 {"x": 1}'

    in_own_loop(scenario())


def test_a_refused_connection_is_an_os_error_and_only_http_urls_are_taken():
    async def refused() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with Client(f"http://127.0.0.1:{port}", {}) as http:
            await http.get("/x")

    with pytest.raises(OSError):
        in_own_loop(refused())
    with pytest.raises(HttpError):
        Client("https://127.0.0.1:1", {})
