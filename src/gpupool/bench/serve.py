"""``gpupool bench serve``'s load and figures: an open-loop load in phases, and what it measured.

The load is open loop: request ``i`` is due at its arrival time whatever happened to the
earlier ones, and its latency is measured from that due time to its answer, so a slow or
saturated deployment shows as latency (time spent waiting for a free slot under the bound on
requests in flight counts too), never as a politely lower load. Arrivals come in three phases,
low, peak, low (``ServeLoad``), at fixed intervals or as a Poisson process of each phase's rate
(seeded, so two runs send the same schedule). Every request is ``POST <url>/predict`` with the
demo model's body (``gpupool.serving_demo``).

While the load runs, a callback the run gives (``sample``) is called every ``SAMPLE_EVERY``
seconds, in a thread, and returns how many replicas serve: the replica timeline. Ctrl-C in the
caller cancels the load at once.

The figures (``figures``): p50/p99 latency of the answered requests, requests, errors (any
answer but 2xx, or none), GPU-seconds (the integral over the load of running replicas x GPUs
per replica, the timeline taken as a step function), peak replicas, and ``scale_up_s``: seconds
from the peak phase's start to the first sample with as many replicas as the peak needs.

The load is bounded (rate, duration, requests, requests in flight) and sent only to a loopback
address, through ``gpupool.bench.http``'s small client (cheap on CPU: the load shares the
machine with what it measures).
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpupool.bench.api import BenchError, check_loopback, percentile
from gpupool.bench.http import Client, ConnectionClosed, HttpError

MAX_RATE = 500.0
MAX_SECONDS = 1800.0  # of load, all phases together
MAX_REQUESTS = 200_000
MAX_IN_FLIGHT = 1024
SAMPLE_EVERY = 0.5
SAMPLE_TIMEOUT = 10.0
ARRIVALS = ("poisson", "uniform")
FEATURES = [6.7, 3.0, 5.2, 2.3]  # one iris flower: the demo's /predict body is {"features": FEATURES}

# The defaults, worked out (Little's law: requests in flight = rate x time each takes):
# * each request takes WORK_MS = 1 s at a replica (the demo's GPUPOOL_DEMO_WORK_MS);
# * low phases, 1 request/s: 1 x 1 = 1 request in flight; with a target of 2 ongoing requests
#   per replica, ceil(1 / 2) = 1 replica (the minimum);
# * peak, 6 requests/s: 6 x 1 = 6 in flight, ceil(6 / 2) = 3 replicas needed. One replica takes
#   at most max_ongoing_requests = 5 at once, 5 / 1 = 5 requests/s: the peak overloads the single
#   replica of the low phase (requests queue) until the autoscaler adds two more;
# * max 4 replicas (4 x 1 GPU): room for one above what the peak needs, on a cluster of 8 GPUs
#   so that a batch backlog has GPUs to fill too.
# A long work time and low rates keep the CPU the load costs small (Serve's proxy spends a few ms
# of CPU on a request): the machine, often shared, must not be what runs out. Delays of seconds
# (Serve's defaults are 30 s up and 600 s down) keep a run at minutes: 20 s low + 60 s peak +
# 40 s low = 2 minutes of load per run. The look-back is above 10 s, Serve's metrics interval
# (Serve warns of an equal one).
WORK_MS = 1000.0


@dataclass(frozen=True, slots=True)
class ServeLoad:
    """The load and the autoscaling settings both runs share (times in seconds)."""

    low_rate: float = 1.0
    peak_rate: float = 6.0
    low_seconds: float = 20.0
    peak_seconds: float = 60.0
    tail_seconds: float = 40.0  # the second low phase, after the peak
    arrivals: str = "poisson"
    seed: int = 1
    work_ms: float = WORK_MS
    gpus: float = 1.0  # per replica (logical GPUs)
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0
    max_ongoing_requests: int = 5
    upscale_delay: float = 5.0
    downscale_delay: float = 15.0
    look_back: float = 15.0
    max_in_flight: int = 256
    timeout: float = 30.0  # per request
    # The gpupool run only: replicas root.serving is guaranteed (None: the replicas the peak needs).
    serving_guarantee: int | None = None

    def check(self) -> None:
        """Raise ``BenchError`` naming the first option out of bounds."""
        for name, rate in (("--low-rate", self.low_rate), ("--peak-rate", self.peak_rate)):
            if not (0 < rate <= MAX_RATE) or math.isnan(rate):
                raise BenchError(f"{name} must be above 0 and at most {MAX_RATE:g} requests/s")
        for name, s in (
            ("--low-seconds", self.low_seconds),
            ("--peak-seconds", self.peak_seconds),
            ("--tail-seconds", self.tail_seconds),
        ):
            if not s >= 0 or math.isinf(s):
                raise BenchError(f"{name} must be 0 or more")
        if not self.peak_seconds > 0:
            raise BenchError("--peak-seconds must be above 0")
        if self.seconds > MAX_SECONDS:
            raise BenchError(f"the phases last {self.seconds:g} s in all; at most {MAX_SECONDS:g}")
        if self.expected_requests > MAX_REQUESTS:
            raise BenchError(
                f"the phases send about {self.expected_requests} requests; at most {MAX_REQUESTS}"
            )
        if self.arrivals not in ARRIVALS:
            raise BenchError(f"--arrivals must be one of {', '.join(ARRIVALS)}, not {self.arrivals!r}")
        if not 0 <= self.work_ms <= 60_000:
            raise BenchError("--work-ms must be 0 to 60000")
        if not 0 < self.gpus <= 8:
            raise BenchError("--gpus must be above 0 and at most 8 per replica")
        if self.min_replicas < 1:
            raise BenchError("--min-replicas must be 1 or more")
        if self.max_replicas < self.min_replicas:
            raise BenchError("--max-replicas must be at least --min-replicas")
        if self.max_replicas > 64:
            raise BenchError("--max-replicas must be at most 64")
        if not self.target_ongoing_requests > 0:
            raise BenchError("--target-ongoing-requests must be above 0")
        if self.max_ongoing_requests < 1:
            raise BenchError("--max-ongoing-requests must be 1 or more")
        for name, d in (
            ("--upscale-delay", self.upscale_delay),
            ("--downscale-delay", self.downscale_delay),
        ):
            if not 0 <= d <= 3600:
                raise BenchError(f"{name} must be 0 to 3600 seconds")
        if not 0 < self.look_back <= 3600:
            raise BenchError("--look-back must be above 0 and at most 3600 seconds")
        if not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise BenchError(f"--max-in-flight must be 1 to {MAX_IN_FLIGHT}")
        if not 0 < self.timeout <= 600:
            raise BenchError("--timeout must be above 0 and at most 600 seconds")
        g = self.serving_guarantee
        if g is not None and not self.min_replicas <= g <= self.max_replicas:
            raise BenchError("--serving-guarantee must be between --min-replicas and --max-replicas")

    @property
    def phases(self) -> list[tuple[str, float, float]]:
        """(name, rate, seconds) of each phase, in order."""
        return [
            ("low", self.low_rate, self.low_seconds),
            ("peak", self.peak_rate, self.peak_seconds),
            ("low", self.low_rate, self.tail_seconds),
        ]

    @property
    def seconds(self) -> float:
        return self.low_seconds + self.peak_seconds + self.tail_seconds

    @property
    def peak_start(self) -> float:
        return self.low_seconds

    @property
    def expected_requests(self) -> int:
        return round(sum(rate * s for _, rate, s in self.phases))

    @property
    def needed_replicas(self) -> int:
        """Replicas the peak needs: ceil(peak rate x work time / target), within [min, max]."""
        in_flight = self.peak_rate * self.work_ms / 1000
        need = math.ceil(round(in_flight / self.target_ongoing_requests, 9))
        return max(self.min_replicas, min(self.max_replicas, need))

    @property
    def guaranteed_replicas(self) -> int:
        """Replicas the deployment's queue is guaranteed in the gpupool run."""
        return self.needed_replicas if self.serving_guarantee is None else self.serving_guarantee

    def schedule(self) -> list[float]:
        """The due times of every request, in seconds from the start of the load."""
        rng = random.Random(self.seed)
        due: list[float] = []
        start = 0.0
        for _, rate, seconds in self.phases:
            end = start + seconds
            if self.arrivals == "uniform":
                n = round(rate * seconds)
                due.extend(start + i / rate for i in range(n))
            else:  # Poisson: exponential gaps; memoryless, so each phase may start afresh
                t = start + rng.expovariate(rate)
                while t < end:
                    due.append(t)
                    t += rng.expovariate(rate)
            start = end
        return due


@dataclass(frozen=True, slots=True)
class Record:
    """One request: when it was due (s from the start), its latency from then (s), its answer."""

    due: float
    latency: float
    status: int  # the HTTP status; 0 when no answer came
    error: str = ""


@dataclass
class LoadResult:
    """What ``drive`` saw: every request, the replica timeline, and how the load went."""

    records: list[Record] = field(default_factory=list)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (s from the start, replicas)
    elapsed: float = 0.0  # from the first due time to the last answer
    retries: int = 0  # requests sent again because their kept-alive connection closed under them
    peak_in_flight: int = 0  # requests in flight at once, at most (bounded by max_in_flight)
    sample_errors: int = 0
    first_sample_error: str = ""


def drive(
    url: str,
    load: ServeLoad,
    sample: Callable[[], int] | None = None,
    schedule: list[float] | None = None,
) -> LoadResult:
    """Send ``load`` (or the given ``schedule`` of due times) to ``<url>/predict``, sampling the
    replica count with ``sample`` all along; blocks until every request is answered or failed."""
    load.check()
    try:
        check_loopback(url)
    except BenchError:
        raise BenchError(
            f"{url} is not a loopback address: `bench serve` only loads a server on this machine "
            "(127.0.0.1, ::1 or localhost)"
        ) from None
    due = load.schedule() if schedule is None else schedule
    return _interruptible(_drive(url.rstrip("/"), load, due, sample))


def _interruptible(coro: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run ``coro`` on an event loop in a thread of its own (the caller may be inside a loop
    already); Ctrl-C in the caller cancels it at once, so a run's clean-up is not held up by
    minutes of load still to send."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)
    box: list[LoadResult | BaseException] = []

    done = threading.Event()  # not Thread.join: a join that Ctrl-C interrupts can leave
    # is_alive() False while the thread still runs (Python 3.11)

    def work() -> None:
        try:
            box.append(loop.run_until_complete(task))
        except BaseException as exc:  # handed to the caller's thread
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="gpupool-bench-serve", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(task.cancel)
        done.wait(30)
        raise
    finally:
        if done.is_set():
            loop.close()
    out = box[0]
    if isinstance(out, BaseException):
        raise out
    return out


async def _drive(
    url: str, load: ServeLoad, schedule: list[float], sample: Callable[[], int] | None
) -> LoadResult:
    out = LoadResult()
    gate = asyncio.Semaphore(load.max_in_flight)
    in_flight = 0
    body = {"features": FEATURES}

    async def one(http: Client, due: float) -> None:
        nonlocal in_flight
        async with gate:
            in_flight += 1
            out.peak_in_flight = max(out.peak_in_flight, in_flight)
            status, error = 0, ""
            try:
                try:
                    r = await http.post("/predict", body)
                except ConnectionClosed:
                    # Closed under the request before any answer: a prediction is safe to send again.
                    out.retries += 1
                    r = await http.post("/predict", body)
                status = r.status_code
                if not 200 <= status < 300:
                    error = r.text[:300]
            except (HttpError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            finally:
                in_flight -= 1
        out.records.append(Record(due, time.perf_counter() - (start + due), status, error))

    async def sampler(stop: asyncio.Event) -> None:
        assert sample is not None
        loop = asyncio.get_running_loop()
        while True:
            t = time.perf_counter() - start
            try:
                n = await asyncio.wait_for(loop.run_in_executor(None, sample), SAMPLE_TIMEOUT)
                out.samples.append((round(t, 3), int(n)))
            except Exception as exc:  # a sample that failed is left out, and counted
                out.sample_errors += 1
                out.first_sample_error = out.first_sample_error or f"{type(exc).__name__}: {exc}"[:300]
            nxt = start + SAMPLE_EVERY * (math.floor((time.perf_counter() - start) / SAMPLE_EVERY) + 1)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, nxt - time.perf_counter()))
                return
            except TimeoutError:
                pass

    async with Client(url, {"User-Agent": "gpupool-bench-serve"}, timeout=load.timeout) as http:
        stop = asyncio.Event()
        start = time.perf_counter()
        watcher = asyncio.create_task(sampler(stop)) if sample is not None else None
        tasks: list[asyncio.Task[None]] = [] if watcher is None else [watcher]
        try:
            for due in schedule:
                delay = start + due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(http, due)))
            await asyncio.gather(*tasks[1 if watcher else 0 :])
            first = schedule[0] if schedule else 0.0
            out.elapsed = time.perf_counter() - start - first
            # Sample on to the end of the last phase (the requests may all be answered before it).
            rest = start + max(load.seconds, schedule[-1] if schedule else 0.0) - time.perf_counter()
            if watcher is not None:
                if rest > 0:
                    await asyncio.sleep(rest)
                stop.set()
                await watcher
        finally:  # cancelled (Ctrl-C): nothing is left running on the loop
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    out.records.sort(key=lambda r: r.due)
    return out


# ---------------------------------------------------------------------------------- figures


def gpu_seconds(samples: Sequence[tuple[float, float]], gpus: float, end: float, begin: float = 0.0) -> float:
    """The integral of replicas x ``gpus`` over [begin, end], each sample holding until the next
    (the first one from ``begin``). Nothing is counted without a sample."""
    if not samples:
        return 0.0
    total = 0.0
    points = sorted(samples)
    for i, (t, n) in enumerate(points):
        lo = max(begin, t if i else min(t, begin))
        hi = min(end, points[i + 1][0]) if i + 1 < len(points) else end
        if hi > lo:
            total += n * gpus * (hi - lo)
    return total


def scale_up_s(samples: list[tuple[float, int]], peak_start: float, needed: int) -> float | None:
    """Seconds from ``peak_start`` to the first sample with at least ``needed`` replicas (0 if the
    count already held them when the peak began); None if it never got there."""
    points = sorted(samples)
    before = [n for t, n in points if t <= peak_start]
    if before and before[-1] >= needed:
        return 0.0
    for t, n in points:
        if t >= peak_start and n >= needed:
            return round(t - peak_start, 2)
    return None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def figures(result: LoadResult, load: ServeLoad) -> dict[str, Any]:
    """The figures of one run (see the module doc), plus the replica timeline and per-phase p99."""
    ok = [r.latency for r in result.records if 200 <= r.status < 300]
    errors = [r for r in result.records if not 200 <= r.status < 300]
    by_status: dict[str, int] = {}
    for r in errors:
        key = str(r.status) if r.status else r.error.split(":", 1)[0]
        by_status[key] = by_status.get(key, 0) + 1
    phases: dict[str, Any] = {}
    start = 0.0
    for i, (name, rate, seconds) in enumerate(load.phases):
        key = f"{i + 1}-{name}"
        lat = [
            r.latency for r in result.records if start <= r.due < start + seconds and 200 <= r.status < 300
        ]
        phases[key] = {
            "rate": rate,
            "seconds": seconds,
            "p50_ms": _ms(percentile(lat, 50)),
            "p99_ms": _ms(percentile(lat, 99)),
        }
        start += seconds
    end = max(load.seconds, result.elapsed)
    return {
        "p50_ms": _ms(percentile(ok, 50)),
        "p99_ms": _ms(percentile(ok, 99)),
        "max_ms": _ms(max(ok, default=None)),
        "requests": len(result.records),
        "errors": len(errors),
        "errors_by_kind": dict(sorted(by_status.items())),
        "first_error": next((f"{r.status or ''} {r.error}".strip() for r in errors), ""),
        "gpu_seconds": round(gpu_seconds(result.samples, load.gpus, end), 1),
        "peak_replicas": max((n for _, n in result.samples), default=0),
        "scale_up_s": scale_up_s(result.samples, load.peak_start, load.needed_replicas),
        "needed_replicas": load.needed_replicas,
        "achieved_rate": round(len(result.records) / result.elapsed, 1) if result.elapsed > 0 else 0.0,
        "retries": result.retries,
        "peak_in_flight": result.peak_in_flight,
        "sample_errors": result.sample_errors,
        "phases": phases,
        "timeline": [[t, n] for t, n in result.samples],
        "sent_per_s": per_second([r.due for r in result.records], end),
    }


def per_second(times: list[float], end: float) -> list[int]:
    """How many of ``times`` fall in each second [i, i + 1) from 0 to ``end``."""
    counts = [0] * max(1, math.ceil(end))
    for t in times:
        if 0 <= t < len(counts):
            counts[int(t)] += 1
    return counts
