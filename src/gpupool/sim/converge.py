"""The convergence experiment: how fast preemption hands every queue its guarantee back.

Five queues share a cluster, each guaranteed an equal share (max = the whole cluster). The
first queue submits enough long jobs to take nearly all of it; ``others_at`` seconds later the
other queues each submit their guarantee's worth. The figure is how long after that it takes
until every queue holds at least its guarantee (``converge_s``), and when each one got there.
"""

from __future__ import annotations

import time
from typing import Any

from gpupool.sim.options import ConvergeOptions, SimOptions
from gpupool.sim.replay import RunResult, run_trace
from gpupool.sim.traces import Trace, TraceJob


def converge_trace(opts: ConvergeOptions) -> Trace:
    if opts.queues < 2 or opts.nodes_per_queue < 1 or opts.job_gpus < 1:
        raise ValueError("need at least 2 queues, 1 node per queue and 1 GPU per job")
    if opts.job_gpus > opts.gpus_per_node:
        raise ValueError("a job may not be wider than a node here")
    names = [f"q{i + 1}" for i in range(opts.queues)]
    cluster = opts.queues * opts.nodes_per_queue * opts.gpus_per_node
    guarantee = opts.nodes_per_queue * opts.gpus_per_node
    jobs: list[TraceJob] = []
    hog = int(cluster * opts.fill_pct / 100) // opts.job_gpus
    for i in range(hog):
        jobs.append(TraceJob(f"{names[0]}-{i:04d}", float(i), opts.duration, opts.job_gpus, names[0]))
    per_queue = -(-guarantee // opts.job_gpus)
    for name in names[1:]:
        for i in range(per_queue):
            jobs.append(TraceJob(f"{name}-{i:04d}", opts.others_at, opts.duration, opts.job_gpus, name))
    jobs.sort(key=lambda j: (j.arrival, j.id))
    return Trace(
        name="converge",
        jobs=jobs,
        tenants=dict.fromkeys(names, opts.nodes_per_queue),
        gpus_per_node=opts.gpus_per_node,
        source={"experiment": "converge", "first_queue_jobs": hog, "jobs_per_other_queue": per_queue},
    )


def _first_at_or_after(times: list[float], ok: list[bool], since: float) -> float | None:
    """First time >= ``since`` at which the step function ``ok`` holds (sampled where it changes)."""
    for i, t in enumerate(times):
        if t >= since:
            if i > 0 and t > since and ok[i - 1]:
                return since
            if ok[i]:
                return t
    if times and times[-1] < since and ok[-1]:
        return since
    return None


def at_guarantee_times(result: RunResult, since: float) -> dict[str, float | None]:
    """For each queue, the first time at or after ``since`` its allocation reached its guarantee."""
    rec = result.recorder
    s = rec.series
    return {
        path: _first_at_or_after(s.times, [a >= rec.guarantees[tenant] for a in s.alloc[tenant]], since)
        for tenant, path in rec.tenants.items()
    }


def all_at_guarantee(result: RunResult, since: float) -> float | None:
    """The first time at or after ``since`` every queue held at least its guarantee."""
    rec = result.recorder
    s = rec.series
    ok = [all(s.alloc[tn][i] >= rec.guarantees[tn] for tn in rec.tenants) for i in range(len(s.times))]
    return _first_at_or_after(s.times, ok, since)


def run_converge(
    opts: ConvergeOptions, mode: str = "gpupool", sim: SimOptions | None = None
) -> tuple[dict[str, Any], RunResult]:
    wall0 = time.perf_counter()
    trace = converge_trace(opts)
    options = sim or SimOptions()
    horizon = opts.others_at + min(opts.duration / 2, 3 * 3600.0)
    options = SimOptions(**{**_fields(options), "until": horizon})
    result = run_trace(trace, mode, options)
    done = all_at_guarantee(result, opts.others_at)
    per_queue = at_guarantee_times(result, opts.others_at)
    figures: dict[str, Any] = {
        "mode": mode,
        "queues": opts.queues,
        "cluster_gpus": opts.queues * opts.nodes_per_queue * opts.gpus_per_node,
        "guaranteed_gpus_per_queue": opts.nodes_per_queue * opts.gpus_per_node,
        "others_submit_at_s": opts.others_at,
        "converge_s": round(done - opts.others_at, 3) if done is not None else None,
        "per_queue_s": {
            q: (round(t - opts.others_at, 3) if t is not None else None) for q, t in per_queue.items()
        },
        "preemptions": result.figures["preemptions"],
        "lost_gpu_hours": result.figures["lost_gpu_hours"],
        "seconds": round(time.perf_counter() - wall0, 3),
    }
    return figures, result


def _fields(options: SimOptions) -> dict[str, Any]:
    return {f: getattr(options, f) for f in options.__dataclass_fields__}
