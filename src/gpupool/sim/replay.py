"""Replaying a trace in one mode: build the cluster, the core and the driver, run, and measure.

``run_trace(trace, mode, options)`` returns a ``RunResult`` whose ``figures`` are the JSON of
``gpupool sim replay`` (benchmarks.md section 3). Wall-clock time is read here, outside the
simulation, only for the ``seconds`` and ``sim_seconds_per_wall_second`` figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.sim import modes
from gpupool.sim.engine import RunStats, SimExecutor, SimJournal, Simulation
from gpupool.sim.metrics import Recorder
from gpupool.sim.options import SimOptions
from gpupool.sim.traces import Trace, TraceJob


@dataclass(slots=True)
class RunResult:
    """One mode's replay of a trace: ``figures`` (the JSON of ``gpupool sim replay``), recorder, counters."""

    mode: str
    figures: dict[str, Any]
    recorder: Recorder
    stats: RunStats
    tenants: dict[str, int]  # tenant -> nodes (after scaling)
    gpus_per_node: int
    config: dict[str, Any] = field(default_factory=dict)


def scaled_tenants(trace: Trace, scale: float) -> dict[str, int]:
    if scale <= 0:
        raise ValueError("--nodes-scale must be positive")
    return {t: max(1, round(n * scale)) for t, n in trace.tenants.items()}


def recorder_for(tenants: dict[str, int], gpus_per_node: int, jobs: list[TraceJob]) -> Recorder:
    """A recorder of ``tenants`` (guaranteed their nodes' GPUs) over the window of ``jobs``."""
    arrivals = [j.arrival for j in jobs]
    window = (min(arrivals), max(arrivals)) if arrivals else (0.0, 0.0)
    return Recorder(
        {t: modes.queue_path(t) for t in tenants},
        {t: n * gpus_per_node for t, n in tenants.items()},
        window,
    )


def submit_jobs(
    sim: Simulation,
    jobs: Iterable[TraceJob],
    mode: str,
    gpus_per_node: int,
    checkpoint_interval: float,
    grace: float,
) -> None:
    """Queue the arrival of every job in ``jobs`` as a workload of ``mode``."""
    for job in jobs:
        spec = modes.workload_spec(
            mode,
            name=job.id,
            tenant=job.tenant,
            gpus=job.gpus,
            duration=job.duration,
            gpus_per_node=gpus_per_node,
            checkpoint_interval=checkpoint_interval,
            grace=grace,
        )
        sim.submit_at(job.arrival, spec, job.id, job.tenant)


def build(trace: Trace, mode: str, options: SimOptions) -> tuple[Simulation, Recorder, dict[str, int]]:
    """The simulation of ``trace`` under ``mode``, with every job's arrival queued."""
    s = modes.settings(mode)
    tenants = scaled_tenants(trace, options.nodes_scale)
    gpn = trace.gpus_per_node
    part = modes.partition(mode, tenants, gpn, options.preemption_delay)

    def make_driver(executor: SimExecutor, journal: SimJournal) -> Driver:
        return Driver(Scheduler(part), executor, journal)

    recorder = recorder_for(tenants, gpn, trace.jobs)
    sim = Simulation(
        make_driver,
        recorder,
        interval=options.interval,
        retry=options.retry if (s.preemption or s.gangs) else None,
        stop_delay=options.stop_delay,
        resume_delay=options.resume_delay,
        checkpoint_on_preempt=s.checkpoint_on_preempt,
        until=options.until,
    )
    for node in modes.nodes(mode, tenants, gpn):
        sim.cluster.add_node(node, at=0.0, boot_delay=options.boot_delay)
    jobs = (j for j in trace.jobs if j.tenant in tenants)
    submit_jobs(sim, jobs, mode, gpn, options.checkpoint_interval, options.grace)
    return sim, recorder, tenants


def run_trace(
    trace: Trace,
    mode: str,
    options: SimOptions | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> RunResult:
    options = options or SimOptions()
    wall0 = time.perf_counter()
    sim, recorder, tenants = build(trace, mode, options)
    stats = sim.run(on_progress)
    seconds = time.perf_counter() - wall0
    summary = recorder.summary(sim.executor.stats.lost_by_workload)
    figures: dict[str, Any] = {"mode": mode}
    figures.update(summary)
    figures["sim_seconds_per_wall_second"] = round(stats.end / seconds, 1) if seconds > 0 else None
    figures["seconds"] = round(seconds, 3)
    figures["trace"] = trace.name
    figures["sim_seconds"] = round(stats.end, 3)
    figures["ticks"] = stats.ticks
    figures["cluster_gpus"] = sum(tenants.values()) * trace.gpus_per_node
    return RunResult(
        mode,
        figures,
        recorder,
        stats,
        tenants,
        trace.gpus_per_node,
        config={"mode": mode, "settings": asdict(modes.settings(mode)), "options": asdict(options)},
    )
