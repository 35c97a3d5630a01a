"""The front of a deployment: one HTTP entry that spreads requests over its replica routes.

Every replica of a gpupool deployment is a Serve application of its own, with its own route on
Serve's proxy (``serving.ServeRunner``); a ``Front`` gives the deployment one URL. It forwards
each request to the ready replica with the fewest requests in flight (round robin among equals),
streams the answer back, and counts as it goes:

* ``load()``: requests in flight (per replica and in all), requests queued at the front, ready
  replicas: the exact load signal the autoscaling policy reads each tick;
* ``stats()``: requests answered, errors (5xx, upstream failures, hold time-outs), p50/p99 ms
  over the last ``LATENCY_WINDOW`` requests.

While no replica is ready (scale from zero, a single replica being replaced) or every ready one
is at ``max_ongoing`` (if set), requests wait at the front for up to ``hold_timeout`` seconds,
then get a 503. ``drain(replica)`` stops sending new requests to a replica at once and returns
how many it still has in flight: gpupool deletes the replica's application only at 0, so
removing a replica drops no request (Serve's route disappears the moment its application is
deleted).

**Where it runs: a detached Ray actor on the head** (``start_front``), one per deployment,
named ``gpupool.front.<deployment>`` in the ``gpupool`` namespace, ``num_cpus=0`` and pinned to
the head node. Why not a thread in the control plane:

* its own process and GIL: the data path does not compete with the driver loop, the REST API
  and the journal of ``gpupool up``, and a slow tick does not stall requests;
* it outlives the control plane: after a restart ``start_front`` finds it by name, with its
  routes and counters, and requests in flight are not lost;
* it sits next to Serve's proxy (``proxy_location="HeadOnly"``): the hop to the replica routes
  is loopback, on a local or a remote cluster alike.

The price is one actor call per ``load()``/``stats()`` (a few ms), well within a tick. The
``Front`` class itself is plain asyncio (aiohttp), so it also runs in-process (the unit tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gpupool.adapters.ray import naming

LATENCY_WINDOW = 10_000
FRONT_PREFIX = "gpupool.front."
# Headers that belong to one connection, not to the request or answer being passed on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass
class _Replica:
    url: str
    in_flight: int = 0
    routable: bool = True


class Front:
    """The HTTP front of one deployment (asyncio; call every method from the server's loop)."""

    def __init__(
        self,
        name: str,
        *,
        hold_timeout: float = 60.0,
        max_ongoing: int = 0,
        request_timeout: float = 300.0,
    ) -> None:
        self.name = name
        self.hold_timeout = hold_timeout
        self.max_ongoing = max_ongoing  # per replica; 0: no cap
        self.request_timeout = request_timeout
        self.port: int | None = None
        self._replicas: dict[str, _Replica] = {}
        self._queued = 0
        self._requests = 0
        self._errors = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._turn = itertools.count()
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ server

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: a free port); return the port."""
        if self.port is not None:
            return self.port
        self._changed = asyncio.Condition()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.port = None

    # ------------------------------------------------------------------ control

    async def set_routes(self, routes: Mapping[str, str]) -> None:
        """The ready replicas: replica key -> base URL of its route. A replica left out is no
        longer sent requests (its requests in flight are still counted until they end); a
        replica being drained stays out even if listed."""
        for key, url in routes.items():
            rep = self._replicas.get(key)
            if rep is None:
                self._replicas[key] = _Replica(url.rstrip("/"))
            elif rep.url != url.rstrip("/") and rep.routable:
                rep.url = url.rstrip("/")
        for key, rep in list(self._replicas.items()):
            if key not in routes:
                rep.routable = False
                if rep.in_flight == 0:
                    del self._replicas[key]
        await self._notify()

    async def drain(self, replica: str) -> int:
        """Stop sending new requests to ``replica``; return its requests still in flight (0: it
        may be deleted)."""
        rep = self._replicas.get(replica)
        if rep is None:
            return 0
        rep.routable = False
        if rep.in_flight == 0:
            del self._replicas[replica]
            return 0
        return rep.in_flight

    def load(self) -> dict[str, Any]:
        """In flight (all, and per replica), queued at the front, ready (routable) replicas."""
        return {
            "in_flight": sum(r.in_flight for r in self._replicas.values()),
            "queued": self._queued,
            "ready": sum(1 for r in self._replicas.values() if r.routable),
            "replicas": {k: r.in_flight for k, r in self._replicas.items()},
            "draining": sorted(k for k, r in self._replicas.items() if not r.routable),
        }

    def stats(self) -> dict[str, Any]:
        """Requests answered, errors, p50 and p99 latency in ms (None before any request)."""
        lat = sorted(self._latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

        return {"requests": self._requests, "errors": self._errors, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}

    # ------------------------------------------------------------------ data path

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    def _pick(self, exclude: frozenset[str] = frozenset()) -> str | None:
        ready = [
            (r.in_flight, k)
            for k, r in self._replicas.items()
            if r.routable and k not in exclude and (self.max_ongoing <= 0 or r.in_flight < self.max_ongoing)
        ]
        if not ready:
            return None
        least = min(n for n, _ in ready)
        keys = sorted(k for n, k in ready if n == least)
        return keys[next(self._turn) % len(keys)]

    async def _acquire(self, exclude: frozenset[str], deadline: float) -> str | None:
        """A replica for the next request, waiting while none can take it; None at the deadline."""
        assert self._changed is not None
        key = self._pick(exclude)
        if key is None:
            self._queued += 1
            try:
                async with self._changed:
                    while (key := self._pick(exclude)) is None:
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            return None
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), left)
            finally:
                self._queued -= 1
        self._replicas[key].in_flight += 1
        return key

    async def _release(self, key: str) -> None:
        rep = self._replicas.get(key)
        if rep is not None:
            rep.in_flight -= 1
            if not rep.routable and rep.in_flight == 0:
                del self._replicas[key]
        await self._notify()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        status = 500
        try:
            resp = await self._forward(request, t0 + self.hold_timeout)
            status = resp.status
            return resp
        finally:
            self._requests += 1
            if status >= 500:
                self._errors += 1
            self._latencies.append((time.perf_counter() - t0) * 1000.0)

    async def _forward(self, request: web.Request, deadline: float) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        tried: frozenset[str] = frozenset()
        while True:
            key = await self._acquire(tried, deadline)
            if key is None:
                why = "no replica ready" if not tried else f"replicas {sorted(tried)} could not be reached"
                return web.json_response(
                    {"error": f"deployment {self.name}: {why} within {self.hold_timeout:g}s"}, status=503
                )
            url = self._replicas[key].url + request.rel_url.path_qs
            resp: web.StreamResponse | None = None
            try:
                async with self._session.request(request.method, url, data=body, headers=headers) as up:
                    resp = web.StreamResponse(status=up.status, reason=up.reason)
                    for k, v in up.headers.items():
                        if k.lower() not in HOP_BY_HOP:
                            resp.headers.add(k, v)
                    if up.content_length is not None:
                        resp.content_length = up.content_length
                    await resp.prepare(request)
                    async for chunk in up.content.iter_any():
                        await resp.write(chunk)
                    await resp.write_eof()
                    return resp
            except aiohttp.ClientConnectorError:
                tried = tried | {key}  # nothing was sent: another replica may take it
            except (aiohttp.ClientError, TimeoutError) as exc:
                if resp is not None and resp.prepared:
                    raise  # cut mid-answer: the client sees the connection end (counted as an error)
                return web.json_response({"error": f"replica {key}: {exc!r}"}, status=502)
            finally:
                await self._release(key)


# ---------------------------------------------------------------------- as a Ray actor


class FrontActor:
    """A ``Front`` in a Ray actor (async: the HTTP server runs in the actor's event loop)."""

    def __init__(self, name: str, hold_timeout: float = 60.0, max_ongoing: int = 0) -> None:
        self.front = Front(name, hold_timeout=hold_timeout, max_ongoing=max_ongoing)

    async def start(self, host: str, port: int) -> int:
        return await self.front.start(host, port)

    async def set_routes(self, routes: dict[str, str]) -> None:
        await self.front.set_routes(routes)

    async def drain(self, replica: str) -> int:
        return await self.front.drain(replica)

    async def load(self) -> dict[str, Any]:
        return self.front.load()

    async def stats(self) -> dict[str, Any]:
        return self.front.stats()

    async def port(self) -> int | None:
        return self.front.port

    async def stop(self) -> None:
        await self.front.stop()


def front_name(deployment: str) -> str:
    return FRONT_PREFIX + deployment


def start_front(
    deployment: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    hold_timeout: float = 60.0,
    max_ongoing: int = 0,
) -> tuple[Any, int]:
    """The front actor of ``deployment`` (found by name, or started detached on the head node)
    and its port. Needs a connected Ray."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next(
        n["NodeID"]
        for n in ray.nodes()
        if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {})
    )
    actor: Any = (
        ray.remote(FrontActor)
        .options(
            name=front_name(deployment),
            namespace=naming.NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False),
        )
        .remote(deployment, hold_timeout, max_ongoing)
    )
    bound: int | None = ray.get(actor.port.remote())
    if bound is None:
        bound = int(ray.get(actor.start.remote(host, port)))
    return actor, bound


def stop_front(deployment: str) -> None:
    """Stop and kill the front of ``deployment`` if it runs."""
    import ray

    try:
        actor = ray.get_actor(front_name(deployment), namespace=naming.NAMESPACE)
    except ValueError:
        return
    try:
        ray.get(actor.stop.remote(), timeout=10)
    finally:
        ray.kill(actor)
