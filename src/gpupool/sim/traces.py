"""Workload traces for the simulator: Microsoft's Philly trace and a seeded synthetic generator.

A trace is a list of jobs (arrival time, duration, GPUs, tenant) plus the tenants' own cluster
sizes (nodes per tenant, ``gpus_per_node`` GPUs a node). Times are seconds since the trace's
epoch (the window start, or the first arrival).

* ``load_philly``: ``philly.csv`` (``timestamp, duration, num_gpus, gpu_time, cluster``;
  timestamps ``YYYY-MM-DD HH:MM:SS``, durations in seconds, ``gpu_time`` in GPU-seconds) and
  ``philly_vc.csv`` (``vc, node num``; 8 GPUs a node). Each virtual cluster is a tenant.
* ``synthetic``: arrivals with tunable burstiness, a size mix, log-normal durations, a fraction
  of multi-node gangs and tenants with skewed demand. Same seed, same trace. Two arrival models:
  ``gamma`` (a renewal process: gamma inter-arrival times whose coefficient of variation is
  ``burstiness``; with a high one, clumps of jobs arrive at the same instant, independently of
  what came before) and ``hawkes`` (self-exciting: every job brings on average ``branching``
  more from the same tenant, each after an exponential delay of mean ``excitation``; the runs of
  arrivals this gives are correlated in time, as in Philly, where the numbers of arrivals of one
  5-minute bin and the next correlate at 0.8).

A malformed row raises ``TraceError`` naming the file and line, unless ``skip_bad=True``: then it
is skipped and counted (``Trace.bad_rows``, with the first few messages in ``bad_examples``).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
VC_COLUMNS = ("vc", "node num")
PHILLY_GPUS_PER_NODE = 8
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_BAD_EXAMPLES = 5
BATCH_GAP = 60.0  # a Philly batch: jobs of one tenant and size at most this many seconds apart
JOB_MIXES = ("parametric", "philly", "philly-batches")  # what ``sim replay --job-mix`` accepts


class TraceError(ValueError):
    """A trace file that cannot be read: what was wrong, where, and a hint."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.hint = hint


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace: when it arrives, how long it works, how many GPUs it takes, whose it is."""

    id: str
    arrival: float  # seconds since the trace epoch
    duration: float  # seconds of work
    gpus: int
    tenant: str


@dataclass(slots=True)
class Trace:
    """A workload trace for the simulator: jobs by arrival, tenants' own cluster sizes, what was left out."""

    name: str
    jobs: list[TraceJob]  # sorted by (arrival, id)
    tenants: dict[str, int]  # tenant -> nodes of its own
    gpus_per_node: int = PHILLY_GPUS_PER_NODE
    epoch: str | None = None  # ISO time of second 0, for real traces
    source: dict[str, object] = field(default_factory=dict)  # files, window, generator options
    bad_rows: int = 0
    bad_examples: list[str] = field(default_factory=list)
    unknown_tenant_jobs: int = 0  # jobs of tenants without a cluster size: left out
    too_big_jobs: int = 0  # jobs wider than the whole cluster: left out

    def capacity_gpus(self) -> int:
        return sum(self.tenants.values()) * self.gpus_per_node


# ---------------------------------------------------------------- Philly


def parse_timestamp(text: str) -> datetime:
    """``2017-10-09 07:01:55`` (or ISO ``2017-10-09T07:01:55``, or a date) -> naive datetime."""
    text = text.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a timestamp (expected YYYY-MM-DD HH:MM:SS)") from None


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; checks the header names ``columns``."""
    if not path.exists():
        raise TraceError("file not found", path=path, hint="check the path, or pass the file explicitly")
    if path.is_dir():
        raise TraceError("is a directory, not a CSV file", path=path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path=path) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise TraceError(f"not a readable CSV file ({exc})", path=path, line=1) from None
        if header is None:
            raise TraceError(
                "empty file (no header)", path=path, line=1, hint=f"expected the columns {', '.join(columns)}"
            )
        names = [h.strip().lower() for h in header]
        missing = [c for c in columns if c not in names]
        if missing:
            raise TraceError(
                f"header lacks column(s) {', '.join(missing)} (found: {', '.join(header)})",
                path=path,
                line=1,
                hint=f"expected the columns {', '.join(columns)}",
            )
        pos = {c: names.index(c) for c in columns}
        line = 1
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise TraceError(f"unreadable row ({exc})", path=path, line=line + 1) from None
            line = reader.line_num
            if not raw or all(not v.strip() for v in raw):
                continue
            if len(raw) != len(header):
                yield line, {"__error__": f"expected {len(header)} fields, found {len(raw)}"}
                continue
            yield line, {c: raw[i].strip() for c, i in pos.items()}


class _Bad:
    """Counts skipped rows, or raises on the first one."""

    def __init__(self, path: Path, skip: bool, hint: str) -> None:
        self.path = path
        self.skip = skip
        self.hint = hint
        self.count = 0
        self.examples: list[str] = []

    def __call__(self, line: int, message: str) -> None:
        if not self.skip:
            raise TraceError(message, path=self.path, line=line, hint=self.hint)
        self.count += 1
        if len(self.examples) < MAX_BAD_EXAMPLES:
            self.examples.append(f"{self.path}:{line}: {message}")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def _whole(text: str, what: str) -> int:
    value = _number(text, what)
    if value != int(value):
        raise ValueError(f"{what} {text!r} is not a whole number")
    return int(value)


def load_vcs(path: Path, skip_bad: bool = False, bad: _Bad | None = None) -> dict[str, int]:
    """``philly_vc.csv``: virtual cluster -> nodes."""
    if bad is None:
        bad = _Bad(Path(path), skip_bad, "each row is: vc,node num (a name and a positive whole number)")
    out: dict[str, int] = {}
    for line, row in _rows(Path(path), VC_COLUMNS):
        if "__error__" in row:
            bad(line, row["__error__"])
            continue
        try:
            name = row["vc"]
            if not name:
                raise ValueError("empty vc name")
            nodes = _whole(row["node num"], "node num")
            if nodes <= 0:
                raise ValueError(f"node num must be positive, got {nodes}")
            if name in out:
                raise ValueError(f"virtual cluster {name} listed twice")
        except ValueError as exc:
            bad(line, str(exc))
            continue
        out[name] = nodes
    if not out:
        raise TraceError("no virtual clusters in the file", path=path, hint="expected rows like: 6214e9,64")
    return out


def load_philly(
    jobs_path: Path,
    vc_path: Path,
    *,
    start: datetime | None = None,
    days: float | None = None,
    skip_bad: bool = False,
) -> Trace:
    """Philly jobs submitted in ``[start, start + days)`` (default: the whole trace).

    Second 0 is ``start`` when given, else the first submission in the window. Jobs of virtual
    clusters missing from ``vc_path`` are left out and counted (``unknown_tenant_jobs``).
    """
    jobs_path, vc_path = Path(jobs_path), Path(vc_path)
    vc_bad = _Bad(vc_path, skip_bad, "each row is: vc,node num (a name and a positive whole number)")
    vcs = load_vcs(vc_path, skip_bad, vc_bad)
    bad = _Bad(
        jobs_path,
        skip_bad,
        "each row is: timestamp (YYYY-MM-DD HH:MM:SS), duration (s), num_gpus, gpu_time (GPU-s), "
        "cluster; pass --skip-bad-rows to skip and count malformed rows",
    )
    end = start + timedelta(days=days) if start is not None and days is not None else None
    raw: list[tuple[datetime, int, float, int, str]] = []
    unknown = 0
    for line, row in _rows(jobs_path, PHILLY_COLUMNS):
        if "__error__" in row:
            bad(line, row["__error__"])
            continue
        try:
            ts = parse_timestamp(row["timestamp"])
            duration = _number(row["duration"], "duration")
            if duration <= 0:
                raise ValueError(f"duration must be positive seconds, got {row['duration']}")
            gpus = _whole(row["num_gpus"], "num_gpus")
            if gpus <= 0:
                raise ValueError(f"num_gpus must be a positive whole number, got {row['num_gpus']}")
            _number(row["gpu_time"], "gpu_time")
            cluster = row["cluster"]
            if not cluster:
                raise ValueError("empty cluster")
        except ValueError as exc:
            bad(line, str(exc))
            continue
        if start is not None and ts < start:
            continue
        if end is not None and ts >= end:
            continue
        if cluster not in vcs:
            unknown += 1
            continue
        raw.append((ts, line, duration, gpus, cluster))
    if start is None and days is not None and raw:
        first = min(r[0] for r in raw)
        cut = first + timedelta(days=days)
        raw = [r for r in raw if r[0] < cut]
    epoch = start if start is not None else (min(r[0] for r in raw) if raw else None)
    capacity = sum(vcs.values()) * PHILLY_GPUS_PER_NODE
    jobs: list[TraceJob] = []
    too_big = 0
    for ts, line, duration, gpus, cluster in raw:
        if gpus > capacity:
            too_big += 1
            continue
        assert epoch is not None
        jobs.append(TraceJob(f"philly-{line:06d}", (ts - epoch).total_seconds(), duration, gpus, cluster))
    jobs.sort(key=lambda j: (j.arrival, j.id))
    return Trace(
        name="philly",
        jobs=jobs,
        tenants=dict(sorted(vcs.items())),
        gpus_per_node=PHILLY_GPUS_PER_NODE,
        epoch=epoch.isoformat(sep=" ") if epoch is not None else None,
        source={
            "jobs_file": str(jobs_path),
            "vc_file": str(vc_path),
            "start": start.isoformat(sep=" ") if start is not None else None,
            "days": days,
        },
        bad_rows=bad.count + vc_bad.count,
        bad_examples=(vc_bad.examples + bad.examples)[:MAX_BAD_EXAMPLES],
        unknown_tenant_jobs=unknown,
        too_big_jobs=too_big,
    )


# ---------------------------------------------------------------- synthetic


@dataclass(frozen=True, slots=True)
class SyntheticOptions:
    """The parameters of the seeded synthetic trace generator (``synthetic``)."""

    seed: int = 1
    days: float = 2.0
    tenants: int = 4
    nodes_per_tenant: int = 4
    gpus_per_node: int = 8
    rate_per_hour: float = 12.0  # mean arrivals per hour over all tenants
    burstiness: float = 1.0  # coefficient of variation of inter-arrival times (1 = Poisson)
    size_mix: tuple[tuple[int, float], ...] = ((1, 0.55), (2, 0.15), (4, 0.15), (8, 0.15))
    gang_fraction: float = 0.1  # share of jobs that are multi-node gangs of 2-4 whole nodes
    duration_median: float = 3600.0  # seconds
    duration_sigma: float = 1.0  # of the log-normal
    tenant_skew: float = 1.0  # tenant i gets weight 1 / (i + 1) ** skew
    arrivals: str = "gamma"  # "gamma" (renewal, ``burstiness``) or "hawkes" (self-exciting)
    branching: float = 0.8  # hawkes: jobs each job brings on, on average (< 1)
    excitation: float = 600.0  # hawkes: mean delay (s) from a job to the jobs it brings on
    # Real submissions to draw from instead: each arrival of the process brings one of them, at
    # random: a batch of jobs as (seconds after the first, GPUs, duration s); a single job is a
    # batch of one. A real trace's sizes and lengths, how they go together and how they come in
    # batches, under synthetic arrival times and tenants; ``rate_per_hour`` still counts jobs.
    # When set, ``size_mix``, ``gang_fraction`` and the durations' parameters are not used.
    job_mix: tuple[tuple[tuple[float, int, float], ...], ...] = ()
    job_mix_name: str = ""


def parse_size_mix(text: str) -> tuple[tuple[int, float], ...]:
    """``1:0.55,2:0.15,4:0.15,8:0.15`` -> ((1, 0.55), ...); weights need not sum to 1."""
    out: list[tuple[int, float]] = []
    for item in text.split(","):
        size, sep, weight = item.partition(":")
        try:
            gpus = int(size)
            w = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"bad size mix item {item.strip()!r} (expected GPUS:WEIGHT, e.g. 4:0.15)"
            ) from None
        if gpus <= 0 or w < 0 or not math.isfinite(w):
            raise ValueError(
                f"bad size mix item {item.strip()!r}: GPUs must be positive, weights non-negative"
            )
        out.append((gpus, w))
    if not out or sum(w for _, w in out) <= 0:
        raise ValueError(f"bad size mix {text!r}: no positive weight")
    return tuple(out)


def format_size_mix(mix: tuple[tuple[int, float], ...]) -> str:
    """((1, 0.55), ...) -> ``1:0.55,...``: the text ``parse_size_mix`` reads back."""
    return ",".join(f"{gpus}:{weight:g}" for gpus, weight in mix)


def job_mix_of(
    trace: Trace, batch_gap: float | None = None
) -> tuple[tuple[tuple[float, int, float], ...], ...]:
    """The submissions of ``trace`` as a job mix for ``SyntheticOptions.job_mix``: every job on its
    own, or with ``batch_gap`` its batches: jobs of one tenant and one size, each submitted at
    most ``batch_gap`` seconds after the one before (a sweep submitted at once)."""
    if batch_gap is None:
        return tuple(((0.0, j.gpus, j.duration),) for j in trace.jobs)
    batches: list[list[TraceJob]] = []
    open_: dict[tuple[str, int], list[TraceJob]] = {}
    for j in trace.jobs:  # sorted by arrival
        key = (j.tenant, j.gpus)
        run = open_.get(key)
        if run is not None and j.arrival - run[-1].arrival <= batch_gap:
            run.append(j)
            continue
        run = [j]
        open_[key] = run
        batches.append(run)
    return tuple(tuple((j.arrival - b[0].arrival, j.gpus, j.duration) for j in b) for b in batches)


def synthetic(opts: SyntheticOptions) -> Trace:
    """A seeded synthetic trace over ``opts.days`` days."""
    if opts.tenants <= 0 or opts.nodes_per_tenant <= 0 or opts.gpus_per_node <= 0:
        raise ValueError("tenants, nodes per tenant and GPUs per node must be positive")
    if opts.rate_per_hour <= 0 or opts.days <= 0:
        raise ValueError("the arrival rate and the number of days must be positive")
    if opts.burstiness <= 0:
        raise ValueError("burstiness (the inter-arrival coefficient of variation) must be positive")
    if not 0 <= opts.gang_fraction <= 1:
        raise ValueError("the gang fraction must be between 0 and 1")
    if any(g > opts.gpus_per_node for g, _ in opts.size_mix):
        raise ValueError(f"a single-node size in the mix is above {opts.gpus_per_node} GPUs per node")
    if any(not b for b in opts.job_mix) or any(
        g <= 0 or d <= 0 or at < 0 for b in opts.job_mix for at, g, d in b
    ):
        raise ValueError(
            "every submission of the job mix needs at least one job, each with positive GPUs, a "
            "positive duration and a non-negative offset"
        )
    if opts.arrivals not in ("gamma", "hawkes"):
        raise ValueError(f"unknown arrival model {opts.arrivals!r} (expected gamma or hawkes)")
    if not 0 <= opts.branching < 1 or opts.excitation <= 0:
        raise ValueError("hawkes needs 0 <= branching < 1 and a positive excitation time")
    rng = random.Random(opts.seed)
    names = [f"t{i}" for i in range(opts.tenants)]
    weights = [1.0 / (i + 1) ** opts.tenant_skew for i in range(opts.tenants)]
    sizes = [g for g, _ in opts.size_mix]
    size_w = [w for _, w in opts.size_mix]
    horizon = opts.days * 86400.0
    max_gang_nodes = min(4, opts.tenants * opts.nodes_per_tenant)
    jobs: list[TraceJob] = []
    arrivals: Iterable[tuple[float, str]]
    process = opts
    if opts.job_mix:  # the process brings submissions; the jobs keep coming at ``rate_per_hour``
        per_submission = sum(len(b) for b in opts.job_mix) / len(opts.job_mix)
        process = replace(opts, rate_per_hour=opts.rate_per_hour / per_submission)
    if opts.arrivals == "hawkes":
        arrivals = _hawkes(rng, process, horizon, names, weights)
    else:
        arrivals = _gamma(rng, process, horizon, names, weights)
    for t, tenant in arrivals:
        if opts.job_mix:
            for at, gpus, duration in rng.choice(opts.job_mix):
                if t + at < horizon:
                    jobs.append(TraceJob("", round(t + at, 3), float(duration), gpus, tenant))
            continue
        if max_gang_nodes >= 2 and rng.random() < opts.gang_fraction:
            gpus = rng.randint(2, max_gang_nodes) * opts.gpus_per_node
        else:
            gpus = rng.choices(sizes, size_w)[0]
        duration = max(60.0, rng.lognormvariate(math.log(opts.duration_median), opts.duration_sigma))
        jobs.append(TraceJob(f"syn-{len(jobs) + 1:06d}", round(t, 3), round(duration, 3), gpus, tenant))
    if opts.job_mix:  # batches overlap: number the jobs in arrival order
        jobs.sort(key=lambda j: j.arrival)
        jobs = [replace(j, id=f"syn-{i + 1:06d}") for i, j in enumerate(jobs)]
    return Trace(
        name="synthetic",
        jobs=jobs,
        tenants={n: opts.nodes_per_tenant for n in names},
        gpus_per_node=opts.gpus_per_node,
        source={
            "generator": "synthetic",
            "seed": opts.seed,
            "days": opts.days,
            "tenants": opts.tenants,
            "nodes_per_tenant": opts.nodes_per_tenant,
            "gpus_per_node": opts.gpus_per_node,
            "rate_per_hour": opts.rate_per_hour,
            "burstiness": opts.burstiness,
            **(
                {
                    "job_mix": opts.job_mix_name or "given",
                    "job_mix_submissions": len(opts.job_mix),
                    "job_mix_jobs": sum(len(b) for b in opts.job_mix),
                }
                if opts.job_mix
                else {
                    "size_mix": ",".join(f"{g}:{w:g}" for g, w in opts.size_mix),
                    "gang_fraction": opts.gang_fraction,
                    "duration_median_s": opts.duration_median,
                    "duration_sigma": opts.duration_sigma,
                }
            ),
            "tenant_skew": opts.tenant_skew,
            "arrivals": opts.arrivals,
            **(
                {"branching": opts.branching, "excitation_s": opts.excitation}
                if opts.arrivals == "hawkes"
                else {}
            ),
        },
    )


def _gamma(
    rng: random.Random, opts: SyntheticOptions, horizon: float, names: list[str], weights: list[float]
) -> Iterator[tuple[float, str]]:
    """Renewal arrivals: gamma gaps with coefficient of variation ``burstiness``. A generator, so
    that the caller's draws for each job come between (the traces of earlier versions stay)."""
    shape = 1.0 / opts.burstiness**2  # gamma shape k: CV = 1/sqrt(k)
    mean_gap = 3600.0 / opts.rate_per_hour
    t = 0.0
    while True:
        t += rng.gammavariate(shape, mean_gap / shape)
        if t >= horizon:
            return
        yield t, rng.choices(names, weights)[0]


def _hawkes(
    rng: random.Random, opts: SyntheticOptions, horizon: float, names: list[str], weights: list[float]
) -> list[tuple[float, str]]:
    """Self-exciting arrivals by their cluster form: first jobs arrive as a Poisson process at
    ``rate * (1 - branching)`` (so the mean rate is ``rate``), and every job brings on a Poisson
    number (mean ``branching``) of jobs of its tenant, each after an exponential delay."""
    base = opts.rate_per_hour * (1.0 - opts.branching) / 3600.0
    out: list[tuple[float, str]] = []
    pending: list[tuple[float, str]] = []
    t = 0.0
    while True:
        t += rng.expovariate(base)
        if t >= horizon:
            break
        pending.append((t, rng.choices(names, weights)[0]))
    while pending:
        at, tenant = pending.pop()
        out.append((at, tenant))
        for _ in range(_poisson(rng, opts.branching)):
            child = at + rng.expovariate(1.0 / opts.excitation)
            if child < horizon:
                pending.append((child, tenant))
    out.sort()
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; ``mean`` is below 1 here)."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
