"""``gpupool bench serve``'s load generator against a tiny aiohttp server on 127.0.0.1.

The server holds each ``POST /predict`` for a set delay and counts what it sees (requests, the
most in flight at once, the bodies), and answers 503 to the requests the test marks. Only lower
bounds are asserted on latencies (a request cannot be answered before the server's delay):
nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gpupool.bench.api import BenchError
from gpupool.bench.serve import FEATURES, ServeLoad, drive, figures


@dataclass
class Server:
    """A /predict server in a thread of its own: ``delay`` seconds per request, 503 for the
    request numbers in ``fail`` (1-based, in arrival order)."""

    delay: float = 0.0
    fail: set[int] = field(default_factory=set)
    seen: int = 0
    in_flight: int = 0
    peak: int = 0
    bodies: list[object] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen += 1
        n = self.seen
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            self.bodies.append(json.loads(await request.read()))
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if n in self.fail:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"prediction": 2})


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/app/predict", srv.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        srv.url = f"http://127.0.0.1:{runner.addresses[0][1]}/app"
        runner_box.append(runner)
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert ready.wait(10)
    try:
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def short(**kw: object) -> ServeLoad:
    base: dict[str, object] = dict(low_seconds=0, peak_seconds=1.0, tail_seconds=0, arrivals="uniform")
    return ServeLoad(**{**base, **kw})  # type: ignore[arg-type]


def test_every_due_request_is_sent_with_the_demo_body_and_timed_from_its_due_time(server: Server) -> None:
    server.delay = 0.05
    load = short(peak_rate=20.0)
    due = load.schedule()
    assert len(due) == 20 and due[0] == 0.0 and due[-1] == pytest.approx(0.95)
    result = drive(server.url, load)
    assert server.seen == 20 and [r.due for r in result.records] == due
    assert all(b == {"features": FEATURES} for b in server.bodies)
    assert all(r.status == 200 and not r.error for r in result.records)
    assert all(r.latency >= 0.05 for r in result.records)  # the server held each that long
    out = figures(result, load)
    assert out["requests"] == 20 and out["errors"] == 0 and out["errors_by_kind"] == {}
    assert out["p50_ms"] >= 50 and out["p99_ms"] >= out["p50_ms"]


def test_the_load_is_open_loop_and_bounded_in_flight(server: Server) -> None:
    """Six requests due at once, at most two in flight: they go in three waves, and the time each
    waited for a free slot counts in its latency (measured from its due time, not its sending)."""
    server.delay = 0.3
    load = short(max_in_flight=2)
    result = drive(server.url, load, schedule=[0.0] * 6)
    assert server.seen == 6 and server.peak <= 2 and result.peak_in_flight == 2
    latencies = sorted(r.latency for r in result.records)
    for i, floor in enumerate([0.3, 0.3, 0.6, 0.6, 0.9, 0.9]):
        assert latencies[i] >= floor - 0.01, latencies


def test_a_refusal_is_an_error_with_its_status_and_kept_out_of_the_latencies(server: Server) -> None:
    server.fail = {2, 5}
    load = short(peak_rate=10.0)
    result = drive(server.url, load)
    out = figures(result, load)
    assert out["requests"] == 10 and out["errors"] == 2
    assert out["errors_by_kind"] == {"503": 2} and out["first_error"].startswith("503")
    assert sorted(r.status for r in result.records).count(503) == 2


def test_no_server_means_every_request_fails_without_an_answer() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    load = short(peak_rate=5.0)
    out = figures(drive(f"http://127.0.0.1:{port}/x", load), load)
    assert out["requests"] == 5 and out["errors"] == 5
    assert out["p50_ms"] is None and out["p99_ms"] is None
    assert out["errors_by_kind"] == {"ConnectionRefusedError": 5}


def test_a_request_slower_than_the_timeout_is_an_error(server: Server) -> None:
    server.delay = 1.0
    load = short(timeout=0.2)
    out = figures(drive(server.url, load, schedule=[0.0]), load)
    assert out["errors"] == 1 and out["first_error"].startswith("HttpError")


def test_the_replica_count_is_sampled_by_the_runs_callback_until_the_phases_end(server: Server) -> None:
    calls: list[int] = []

    def sample() -> int:
        calls.append(1)
        return len(calls)

    load = short(peak_seconds=1.2, peak_rate=5.0)
    result = drive(server.url, load, sample=sample)
    assert result.samples and len(result.samples) == len(calls)
    times = [t for t, _ in result.samples]
    assert times == sorted(times) and times[0] < 0.5
    assert [n for _, n in result.samples] == list(range(1, len(calls) + 1))


def test_a_failing_sample_is_counted_and_the_load_goes_on(server: Server) -> None:
    def sample() -> int:
        raise RuntimeError("serve.status() failed")

    load = short(peak_rate=5.0)
    result = drive(server.url, load, sample=sample)
    assert len(result.records) == 5 and not result.samples
    assert result.sample_errors >= 1 and "serve.status() failed" in result.first_sample_error


def test_ctrl_c_stops_the_load_at_once(server: Server) -> None:
    """Ctrl-C in the caller (here: a KeyboardInterrupt sent to the main thread) cancels the load
    rather than waiting for the rest of it: of 100 requests due over 50 s, few are sent."""
    import _thread

    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            drive(server.url, short(peak_rate=2.0, peak_seconds=50.0))
    finally:
        timer.cancel()
    assert server.seen < 100


@pytest.mark.parametrize("url", ["http://192.0.2.1:8000", "http://example.com/app", "http://10.0.0.1"])
def test_a_server_off_this_machine_is_refused(url: str) -> None:
    with pytest.raises(BenchError, match="not a loopback address"):
        drive(url, short())
