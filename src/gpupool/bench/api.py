"""``gpupool bench api``: a bounded load of submissions and status reads against a running server.

One client sends ``rate`` requests a second for ``seconds`` seconds, open loop: request ``i`` is
due at ``start + i / rate`` whether or not earlier ones have been answered, so a slow server
shows as latency, not as a politely lower load. Requests alternate between a submission
(``POST /workloads``) and a status read (``GET /workloads/{id}`` of the newest accepted
workload). A latency is measured from the moment a request was due to its answer, so time a
request waited for a free connection counts too.

Afterwards the run is checked: every accepted submission must be stored (``lost`` counts those
the server no longer knows), and for a sample of them the time from submission to the
scheduler's first decision (the first transition out of ``pending``) is reported.

Each submission carries an idempotency key, so one whose connection closed under it (a server
dropping a keep-alive connection as the request was sent) is sent once more, safely, and so is a
read; such retries are counted (``retries``), not hidden.

The load is bounded (rate, duration and requests in flight) and sent only to a loopback
address: this is a measuring tool, not a load generator for someone else's server. It goes
through a small HTTP client of its own (``gpupool.bench.http``) that costs the machine far less
CPU than httpx, so that the client, sharing the machine, does not set the rate it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gpupool.bench.http import Client, ConnectionClosed, HttpError

T = TypeVar("T")

MAX_RATE = 1000.0
MAX_SECONDS = 600.0
MAX_IN_FLIGHT = 256
DECISION_SAMPLE = 200
KINDS = ("submit", "read")


class BenchError(ValueError):
    """The run cannot be made as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class ApiLoad:
    """What to send: ``rate`` requests/s (half submissions) for ``seconds`` seconds."""

    rate: float = 200.0
    seconds: float = 60.0
    queue: str | None = None
    gpus: int = 1
    entrypoint: str = "true"
    cleanup: bool = True  # cancel what the run submitted, after the measurement

    def check(self) -> None:
        if not (0 < self.rate <= MAX_RATE) or math.isnan(self.rate):
            raise BenchError(f"--rate must be above 0 and at most {MAX_RATE:g} requests/s")
        if not (0 < self.seconds <= MAX_SECONDS) or math.isnan(self.seconds):
            raise BenchError(f"--seconds must be above 0 and at most {MAX_SECONDS:g}")
        if self.gpus < 0:
            raise BenchError("--gpus must be 0 or more")


def check_loopback(url: str) -> None:
    """Refuse any URL whose host is not a loopback address (or ``localhost``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise BenchError(
        f"{url} is not a loopback address: `bench api` only loads a server on this machine "
        "(127.0.0.1, ::1 or localhost)"
    )


@dataclass
class _Run:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: dict[str, int] = field(default_factory=dict)  # "submit 500" -> count
    accepted: list[str] = field(default_factory=list)
    first_error: str = ""
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # a submission got an answer
    retries: int = 0  # requests sent again after their connection closed under them

    def error(self, key: str, detail: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1
        if not self.first_error:
            self.first_error = f"{key}: {detail[:300]}"


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def run(url: str, token: str, load: ApiLoad) -> dict[str, Any]:
    """Drive ``load`` against the server at ``url``; returns the figures (see the module doc)."""
    load.check()
    check_loopback(url)
    return in_own_loop(_run(url.rstrip("/"), token, load))


def in_own_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop in a thread of its own, so that a caller already inside
    an event loop (a notebook, a test framework's browser driver) can still call ``run``."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpupool-bench") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _run(url: str, token: str, load: ApiLoad) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "gpupool-bench-api"}
    async with Client(url, headers, timeout=60.0) as http:
        r = await http.get("/whoami")
        if r.status_code != 200:
            raise BenchError(f"the server at {url} refused the token: {r.status_code} {r.text[:200]}")
        tag = f"bench-{time.time_ns():x}"  # names and idempotency keys unique to this run
        state = _Run()
        total = max(1, round(load.rate * load.seconds))
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        start = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        for i in range(total):
            due = start + i / load.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = KINDS[i % 2]
            tasks.append(asyncio.create_task(_one(http, gate, state, load, kind, due, f"{tag}-{i}")))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        lost = await _lost(http, state.accepted)
        decisions, waiting = await _decisions(http, state.accepted)
        if load.cleanup:
            await _cancel_all(http, gate, state.accepted)
    done = sum(len(v) for v in state.latencies.values())
    return {
        "url": url,
        "rate": load.rate,
        "seconds": load.seconds,
        "requests": total,
        "achieved_rate": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "elapsed_s": round(elapsed, 2),
        "submitted": len(state.accepted),
        "errors": sum(state.errors.values()),
        "errors_by_kind": dict(sorted(state.errors.items())),
        "first_error": state.first_error,
        "retries": state.retries,
        "lost": lost,
        "p50_ms": {k: _ms(percentile(state.latencies[k], 50)) for k in KINDS},
        "p99_ms": {k: _ms(percentile(state.latencies[k], 99)) for k in KINDS},
        "max_ms": {k: _ms(max(state.latencies[k], default=None)) for k in KINDS},
        "decision_ms": {
            "sampled": len(decisions),
            "waiting": waiting,
            "p50": _ms(percentile(decisions, 50)),
            "p99": _ms(percentile(decisions, 99)),
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def _one(
    http: Client,
    gate: asyncio.Semaphore,
    state: _Run,
    load: ApiLoad,
    kind: str,
    due: float,
    name: str,
) -> None:
    async with gate:
        try:
            if kind == "submit":
                body: dict[str, Any] = {
                    "name": name,
                    "idempotency_key": name,
                    "entrypoint": load.entrypoint,
                    "task_groups": [{"gpus": load.gpus, "cpu": 0.1, "memory": "64Mi"}],
                }
                if load.queue:
                    body["queue"] = load.queue
                try:
                    r = await http.post("/workloads", body)
                except ConnectionClosed:
                    # The connection closed under the request (the server dropped it as idle as
                    # it was sent). The idempotency key makes a second try safe: it answers 200
                    # with the first if that one was stored.
                    state.retries += 1
                    r = await http.post("/workloads", body)
                ok = r.status_code in (200, 201)
                if ok:
                    state.accepted.append(r.json()["id"])
                state.answered.set()
            else:
                if not state.accepted:  # the first submission is still on its way
                    await asyncio.wait_for(state.answered.wait(), timeout=60.0)
                if not state.accepted:  # refused (the error names why): nothing to read
                    state.error("read skipped", "no submission was accepted, so there is nothing to read")
                    return
                try:
                    r = await http.get(f"/workloads/{state.accepted[-1]}")
                except ConnectionClosed:  # as above; a read is safe to send again
                    state.retries += 1
                    r = await http.get(f"/workloads/{state.accepted[-1]}")
                ok = r.status_code == 200
        except (HttpError, OSError, TimeoutError) as exc:
            state.error(f"{kind} {type(exc).__name__}", str(exc))
            return
    state.latencies[kind].append(time.perf_counter() - due)
    if not ok:
        state.error(f"{kind} {r.status_code}", r.text)


async def _lost(http: Client, accepted: list[str]) -> int:
    """Accepted submissions the server does not list (newest first) nor find one by one."""
    if not accepted:
        return 0
    r = await http.get("/workloads", params={"limit": min(5000, len(accepted) + 100)})
    if r.status_code != 200:
        raise BenchError(f"listing the workloads failed: {r.status_code} {r.text[:200]}")
    listed = {w["id"] for w in r.json()}
    missing = [wid for wid in accepted if wid not in listed]
    lost = 0
    for start in range(0, len(missing), 32):
        batch = missing[start : start + 32]
        answers = await asyncio.gather(*(http.get(f"/workloads/{wid}") for wid in batch))
        lost += sum(1 for a in answers if a.status_code == 404)
    return lost


async def _decisions(http: Client, accepted: list[str]) -> tuple[list[float], int]:
    """Seconds from submission to the first transition out of pending, for an even sample of the
    accepted submissions; and how many of the sample are still waiting for one."""
    if not accepted:
        return [], 0
    step = max(1, len(accepted) // DECISION_SAMPLE)
    sample = accepted[::step][:DECISION_SAMPLE]
    answers = await asyncio.gather(*(http.get(f"/workloads/{wid}") for wid in sample))
    out: list[float] = []
    waiting = 0
    for a in answers:
        if a.status_code != 200:
            continue
        w = a.json()
        first = next((t for t in w["history"] if t["old"] is not None and t["old"] != t["new"]), None)
        if first is None:
            waiting += 1
        else:
            out.append(max(0.0, first["at"] - w["submitted_at"]))
    return out, waiting


async def _cancel_all(http: Client, gate: asyncio.Semaphore, accepted: list[str]) -> None:
    async def cancel(wid: str) -> None:
        async with gate:
            # Best effort: what is left is visible with `gpupool list`.
            with contextlib.suppress(HttpError, OSError):
                await http.post(f"/workloads/{wid}/cancel")

    for start in range(0, len(accepted), 64):
        await asyncio.gather(*(cancel(wid) for wid in accepted[start : start + 64]))
