"""The deployment front in-process, against two small aiohttp replicas on 127.0.0.1 (no Ray).

It spreads requests over the ready replicas (fewest in flight first), holds them while none is
ready (503 after the hold timeout), retries a replica it cannot reach on another, stops sending
to a drained replica at once and reports its in-flight count going to 0, and counts load and
latency.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from gpupool.adapters.ray.front import Front


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def backend(name: str) -> tuple[web.AppRunner, str]:
    """A replica: answers its name, the path it got and the body; ``?sleep=S`` holds it."""

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("sleep", "0")))
        if request.query.get("fail"):
            return web.json_response({"replica": name}, status=500)
        body = await request.read()
        return web.json_response({"replica": name, "path": request.path_qs, "body": body.decode()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/_gp/{name}"


def run(test: Callable[..., Awaitable[None]], **front_args: Any) -> None:
    """Runs ``test(front, http, urls)`` with a started front and replicas a and b (not routed)."""

    async def main() -> None:
        front = Front("demo", **front_args)
        port = await front.start("127.0.0.1", 0)
        ra, a = await backend("a")
        rb, b = await backend("b")
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            try:
                await test(front, http, {"a": a, "b": b})
            finally:
                await front.stop()
                await ra.cleanup()
                await rb.cleanup()

    asyncio.run(main())


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any]]:
    async with http.get(path) as r:
        return r.status, await r.json()


def test_spreads_over_ready_replicas_and_passes_requests_through() -> None:
    async def test(front: Front, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        await front.set_routes(urls)
        async with http.post("/predict?x=1", json={"features": [1, 2, 3, 4]}) as r:
            assert r.status == 200
            got = await r.json()
        assert got["path"].endswith("/predict?x=1") and got["path"].startswith("/_gp/")
        assert '"features"' in got["body"]
        # Four slow requests at once: two on each replica (fewest in flight first).
        slow = [asyncio.create_task(get(http, "/slow?sleep=0.5")) for _ in range(4)]
        await asyncio.sleep(0.2)
        assert front.load() == {
            "in_flight": 4,
            "queued": 0,
            "ready": 2,
            "replicas": {"a": 2, "b": 2},
            "draining": [],
        }
        answers = await asyncio.gather(*slow)
        assert sorted(a["replica"] for _, a in answers) == ["a", "a", "b", "b"]
        stats = front.stats()
        assert stats["requests"] == 5 and stats["errors"] == 0
        assert stats["p50_ms"] is not None and stats["p99_ms"] >= stats["p50_ms"]
        assert front.load()["in_flight"] == 0

    run(test)


def test_holds_requests_until_a_replica_is_ready_then_times_out() -> None:
    async def test(front: Front, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        waiting = asyncio.create_task(get(http, "/healthz"))
        await asyncio.sleep(0.3)
        assert front.load()["queued"] == 1 and front.load()["ready"] == 0
        await front.set_routes({"b": urls["b"]})
        status, body = await waiting
        assert (status, body["replica"]) == (200, "b")
        await front.set_routes({})
        status, body = await get(http, "/healthz")
        assert status == 503 and "no replica ready" in body["error"]
        assert front.stats()["errors"] == 1 and front.load()["queued"] == 0

    run(test, hold_timeout=1.0)


def test_drain_stops_routing_at_once_and_reports_in_flight_to_zero() -> None:
    async def test(front: Front, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        await front.set_routes(urls)
        slow = [asyncio.create_task(get(http, "/slow?sleep=0.6")) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert front.load()["replicas"] == {"a": 1, "b": 1}
        assert await front.drain("a") == 1
        after = [await get(http, "/fast") for _ in range(3)]
        assert [a["replica"] for _, a in after] == ["b", "b", "b"]
        assert front.load()["draining"] == ["a"] and front.load()["ready"] == 1
        # A replica being drained stays out even when a route table still lists it.
        await front.set_routes(urls)
        assert front.load()["ready"] == 1
        assert [s for s, _ in await asyncio.gather(*slow)] == [200, 200]
        assert await front.drain("a") == 0
        assert front.load()["replicas"] == {"b": 0}
        assert front.stats()["errors"] == 0

    run(test)


def test_unreachable_replica_is_retried_on_another_and_5xx_counts_as_error() -> None:
    async def test(front: Front, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        await front.set_routes({"dead": f"http://127.0.0.1:{free_port()}/_gp/dead", "b": urls["b"]})
        answers = [await get(http, "/x") for _ in range(4)]
        assert [(s, a["replica"]) for s, a in answers] == [(200, "b")] * 4
        assert (await get(http, "/x?fail=1"))[0] == 500
        assert front.stats()["errors"] == 1 and front.stats()["requests"] == 5

    run(test)


def test_max_ongoing_queues_the_excess_at_the_front() -> None:
    async def test(front: Front, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        await front.set_routes({"a": urls["a"]})
        calls = [asyncio.create_task(get(http, "/slow?sleep=0.4")) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert front.load()["in_flight"] == 2 and front.load()["queued"] == 1
        assert [s for s, _ in await asyncio.gather(*calls)] == [200, 200, 200]

    run(test, max_ongoing=2)
