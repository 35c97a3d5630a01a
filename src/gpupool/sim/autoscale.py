"""Elastic replays: a trace through the driver with an ``Autoscaler`` over the simulated cloud.

``gpupool sim replay --autoscale`` runs one trace three times, same trace, same seeds, same boot
times, and compares what each autoscaling policy provisions against how long jobs wait:

* ``gpupool``: the elastic pool, quota-aware scale-up (only asks a new node would let run count),
  warm headroom sized by the arrivals of the last ``headroom_window`` seconds (at most
  ``headroom_max_nodes`` nodes' worth, at least ``headroom_nodes``; with ``headroom_fit`` counted
  in GPUs, free GPUs of ready nodes included) and by each queue's recent burst peaks (series
  headroom: ``headroom_series`` of peaks, GPUs asked within ``headroom_series_window`` seconds, of
  ``headroom_series_min`` GPUs or more within the last ``headroom_memory`` seconds), by default
  ``DEFAULT_BURST_HEADROOM``; idle scale-down and compaction;
* ``no-headroom`` (a): the same policy without headroom;
* ``ray-like`` (b): a Ray-autoscaler-like baseline: every waiting ask counts, quota-blocked ones
  too (packed onto the free room of ready nodes first, as Ray packs its resource demand), idle
  scale-down after the same timeout, no compaction, no headroom.

The cluster starts empty (pool ``min``, default 0). One node pool per trace (the traces carry no
GPU types): 8-GPU machines (AWS p3.16xlarge list prices, two regions), booting in
``boot_time`` seconds. Each tenant's queue is guaranteed, and capped at, its own GPUs (a Philly
virtual cluster's size, a synthetic tenant's nodes) times ``nodes_scale``: that cap is the quota
the gpupool policy is aware of. The pool's max is the sum of the tenants' nodes. Jobs wider than
their tenant's quota could never run and are left out (counted). All three configurations run
the same scheduler (``gpupool`` mode: the default node order, gangs, checkpoint-aware preemption).

Provisioning figures come from the autoscaler's accounting (every node from launch until it is
gone, booting included; idle = GPUs with nothing allocated). The headline figures cover the
trace's window, from 0 (the pool starts empty) to the last arrival, like the simulator's GPU
utilisation: after the last arrival a trace only drains (a few long Philly jobs run for weeks),
which no real pool sees, and warm headroom kept through a drain with no arrivals would be
charged for bursts that cannot come. The same figures until the last job ends are reported too
(``whole_run``).

The simulation ticks when the provider has an event due (``provider.next_time()``: a node boots,
a launch fails, a node is gone), when an idle node reaches its idle timeout, when compaction is
due and when a blocked offer is free again, so the pool changes on time. Nothing here reads a
clock or draws unseeded random numbers (the simulated cloud is seeded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gpupool.adapters.simcloud import SimCloud
from gpupool.config import parse_config
from gpupool.config.queues import DEFAULT_PARTITION
from gpupool.core.config import InstanceType, NodePool
from gpupool.core.resources import gpus_from_milli
from gpupool.core.scheduler import Scheduler
from gpupool.engine.autoscaler import Autoscaler
from gpupool.engine.driver import Driver
from gpupool.sim import modes
from gpupool.sim.engine import SimExecutor, SimJournal, Simulation
from gpupool.sim.metrics import Recorder
from gpupool.sim.options import AutoscaleOptions
from gpupool.sim.replay import recorder_for, scaled_tenants, submit_jobs
from gpupool.sim.traces import Trace

CONFIGS = ("gpupool", "no-headroom", "ray-like")
LABELS = {
    "gpupool": "gpupool: quota-aware, headroom, idle scale-down, compaction",
    "no-headroom": "(a) same policy, no headroom",
    "ray-like": "(b) Ray-like: all pending demand, idle scale-down, no compaction, no headroom",
}
SCHEDULER_MODE = "gpupool"
GIB = 2**30


@dataclass(frozen=True, slots=True)
class ScalerSettings:
    """What the autoscaler of one compared configuration gets, derived from the options by ``settings``."""

    headroom_nodes: int
    headroom_gpus: int
    compaction_budget: int
    demand: str  # "needs-node" (quota-aware) or "all"
    headroom_window: float = 0.0
    headroom_max_nodes: int = 0
    headroom_memory: float = 0.0
    headroom_series: float = 0.0
    headroom_series_min: int = 0
    headroom_fit: bool = False
    headroom_series_window: float = 0.0


def settings(config: str, opts: AutoscaleOptions) -> ScalerSettings:
    if config == "gpupool":
        window = opts.headroom_window if opts.headroom_max_nodes > 0 else 0.0
        return ScalerSettings(
            opts.headroom_nodes,
            opts.headroom_gpus,
            opts.compaction_budget,
            "needs-node",
            window,
            max(opts.headroom_max_nodes, opts.headroom_nodes) if window > 0 else 0,
            opts.headroom_memory if window > 0 else 0.0,
            opts.headroom_series if window > 0 else 0.0,
            opts.headroom_series_min if window > 0 else 0,
            opts.headroom_fit and window > 0,
            opts.headroom_series_window if window > 0 else 0.0,
        )
    if config == "no-headroom":
        return ScalerSettings(0, 0, opts.compaction_budget, "needs-node")
    if config == "ray-like":
        return ScalerSettings(0, 0, 0, "all")
    raise ValueError(f"unknown autoscale configuration {config!r} (expected one of: {', '.join(CONFIGS)})")


def instance_types(gpus_per_node: int, boot_time: float) -> tuple[InstanceType, ...]:
    """8-GPU machines in two regions (AWS p3.16xlarge on-demand list prices, per hour)."""
    return (
        InstanceType(
            "p3.16xlarge",
            "V100",
            gpus_per_node,
            64_000,
            488 * GIB,
            region="us-east-1",
            hourly_cost=24.48,
            boot_time=boot_time,
        ),
        InstanceType(
            "p3.16xlarge-eu",
            "V100",
            gpus_per_node,
            64_000,
            488 * GIB,
            region="eu-west-1",
            hourly_cost=26.44,
            boot_time=boot_time,
        ),
    )


def quotas(trace: Trace, opts: AutoscaleOptions) -> dict[str, int]:
    """Tenant -> nodes of quota (at least one)."""
    return scaled_tenants(trace, opts.nodes_scale)


def pools(trace: Trace, config: str, opts: AutoscaleOptions) -> tuple[NodePool, ...]:
    s = settings(config, opts)
    cap = sum(quotas(trace, opts).values())
    return (
        NodePool(
            "gpu",
            instance_types(trace.gpus_per_node, opts.boot_time),
            min=min(opts.pool_min, cap),
            max=cap,
            headroom_nodes=s.headroom_nodes,
            headroom_gpus=s.headroom_gpus,
            idle_timeout=opts.idle_timeout,
            headroom_window=s.headroom_window,
            headroom_max_nodes=s.headroom_max_nodes,
            headroom_memory=s.headroom_memory,
            headroom_series=s.headroom_series,
            headroom_series_min=s.headroom_series_min,
            headroom_fit=s.headroom_fit,
            headroom_series_window=s.headroom_series_window,
        ),
    )


def partition_dict(tenants: dict[str, int], gpus_per_node: int, preemption_delay: float) -> dict[str, Any]:
    """``gpupool`` mode's configuration with each queue's max at its guarantee (its quota)."""
    cfg = modes.config_dict(SCHEDULER_MODE, tenants, gpus_per_node, preemption_delay)
    for part in cfg["partitions"]:  # type: ignore[attr-defined]
        for q in part["queues"][0]["queues"]:
            q["resources"]["max"] = dict(q["resources"]["guaranteed"])
    return cfg


@dataclass(slots=True)
class Provisioning:
    """Provisioned and used GPUs over time (step functions sampled where they change)."""

    times: list[float] = field(default_factory=list)
    provisioned: list[int] = field(default_factory=list)  # GPUs of nodes launched and not gone
    ready: list[int] = field(default_factory=list)  # GPUs of nodes that take work
    used: list[float] = field(default_factory=list)  # GPUs allocated (a share counts its part)

    def add(self, now: float, provisioned: int, ready: int, used: float) -> None:
        if self.times and self.times[-1] == now:
            self.times.pop()
            self.provisioned.pop()
            self.ready.pop()
            self.used.pop()
        if self.times and (self.provisioned[-1], self.ready[-1], self.used[-1]) == (provisioned, ready, used):
            return
        self.times.append(now)
        self.provisioned.append(provisioned)
        self.ready.append(ready)
        self.used.append(used)


@dataclass(slots=True)
class Totals:
    """The autoscaler's counters, frozen when the last job ended."""

    at: float = 0.0
    node_seconds: float = 0.0
    gpu_seconds: float = 0.0
    idle_gpu_seconds: float = 0.0
    cost: float = 0.0


class ElasticSimulation(Simulation):
    """A ``Simulation`` whose driver has an autoscaler; it also ticks when the pool needs it."""

    def __init__(
        self,
        driver_factory: Callable[[SimExecutor, SimJournal], Driver],
        watcher: Recorder,
        scaler: Autoscaler,
        cloud: SimCloud,
        expected_jobs: int,
        window_end: float,
        **kw: Any,
    ) -> None:
        super().__init__(driver_factory, watcher, **kw)
        self.scaler = scaler
        self.cloud = cloud
        self.recorder = watcher
        self.expected_jobs = expected_jobs
        self.series = Provisioning()
        self.window_end = window_end
        self.window_totals: Totals | None = None  # at the last arrival
        self.totals: Totals | None = None  # when the last job ended
        self._provider_due: set[float] = set()
        self._idle_timeout = {p.name: p.idle_timeout for p in scaler.pools}

    def _tick(self, now: float) -> None:
        Simulation._tick(self, now)
        scaler, core = self.scaler, self.driver.core
        provisioned = ready = 0
        for n in scaler.nodes.values():
            provisioned += n.instance_type.gpus
            if n.state == "ready":
                ready += n.instance_type.gpus
        used = gpus_from_milli(
            sum(q.allocated.get("gpu", 0) for q in core.queues.values() if q.parent is None)
        )
        self.series.add(now, provisioned, ready, used)
        if self.window_totals is None and now >= self.window_end:
            self.window_totals = self._totals(now)
        if self.totals is None and len(self.recorder.jobs) >= self.expected_jobs and not core.apps:
            self.totals = self._totals(now)
        # The provider's next event (a boot, a failed launch, a node gone) is a live event.
        due = self.cloud.next_time()
        if due is not None:
            due = max(due, now)
            if due not in self._provider_due:
                self._provider_due.add(due)
                self.events.push(due, lambda t: self._provider_due.discard(t), "provider")
        # Time-based pool rules: idle timeouts, compaction, blocked offers expiring.
        if self.events.live > 0:
            wake = [
                n.idle_since + self._idle_timeout[n.pool]
                for n in scaler.nodes.values()
                if n.state == "ready" and n.idle_since is not None
            ]
            wake += [until for until in scaler.blocked.values()]
            if scaler.compaction_budget and core.allocations:
                wake.append(scaler._next_compaction)
            later = [t for t in wake if t > now]
            if later:
                self._want_tick(min(later))

    def _totals(self, now: float) -> Totals:
        s = self.scaler
        return Totals(now, s.node_seconds, s.gpu_seconds, s.idle_gpu_seconds, s.cost)


@dataclass(slots=True)
class ElasticResult:
    """One configuration's elastic replay of a trace: figures, recorder, provisioning series, autoscaler."""

    config: str
    figures: dict[str, Any]
    recorder: Recorder
    series: Provisioning
    scaler: Autoscaler
    settings: dict[str, Any]


def build(
    trace: Trace, config: str, opts: AutoscaleOptions
) -> tuple[ElasticSimulation, Recorder, dict[str, Any]]:
    """The elastic simulation of ``trace`` under ``config``, every job's arrival queued."""
    s = settings(config, opts)
    tenants = quotas(trace, opts)
    gpn = trace.gpus_per_node
    part = parse_config(partition_dict(tenants, gpn, opts.preemption_delay)).partition(DEFAULT_PARTITION)
    node_pools = pools(trace, config, opts)
    cloud = SimCloud(
        seed=opts.seed, stockout_rate=opts.stockout_rate, boot_failure_rate=opts.boot_failure_rate
    )
    scaler = Autoscaler(
        node_pools,
        cloud,
        compaction_budget=s.compaction_budget,
        compaction_interval=opts.compaction_interval,
        compact_onto_empty=opts.compact_onto_empty,
        demand=s.demand,
    )

    def make_driver(executor: SimExecutor, journal: SimJournal) -> Driver:
        return Driver(Scheduler(part), executor, journal, autoscaler=scaler)

    jobs = [j for j in trace.jobs if j.tenant in tenants and j.gpus <= tenants[j.tenant] * gpn]
    over_quota = sum(1 for j in trace.jobs if j.tenant in tenants and j.gpus > tenants[j.tenant] * gpn)
    recorder = recorder_for(tenants, gpn, jobs)
    window = recorder.window
    ms = modes.settings(SCHEDULER_MODE)
    sim = ElasticSimulation(
        make_driver,
        recorder,
        scaler,
        cloud,
        len(jobs),
        window[1],
        retry=opts.retry,
        stop_delay=opts.stop_delay,
        resume_delay=opts.resume_delay,
        checkpoint_on_preempt=ms.checkpoint_on_preempt,
    )
    submit_jobs(sim, jobs, SCHEDULER_MODE, gpn, opts.checkpoint_interval, opts.grace)
    # Kick the pool at 0 so that its min and headroom boot before the first arrival.
    sim.events.push(0.0, lambda t: None, "provider")
    info = {
        "quota_nodes": tenants,
        "pool": asdict(node_pools[0]),
        "scaler": asdict(s),
        "over_quota_jobs": over_quota,
    }
    return sim, recorder, info


def run_elastic(
    trace: Trace,
    config: str,
    opts: AutoscaleOptions | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> ElasticResult:
    opts = opts or AutoscaleOptions()
    wall0 = time.perf_counter()
    sim, recorder, info = build(trace, config, opts)
    stats = sim.run(on_progress)
    seconds = time.perf_counter() - wall0
    totals = sim.totals or sim._totals(stats.end)
    window = sim.window_totals or totals
    summary = recorder.summary(sim.executor.stats.lost_by_workload)
    scaler = sim.scaler
    figures: dict[str, Any] = {
        "name": config,
        "label": LABELS[config],
        **_provisioning(window),
        "wait_s_p50": summary["wait_s_p50"],
        "wait_s_p95": summary["wait_s_p95"],
        "jct_s_mean": summary["jct_s_mean"],
        "preemptions": summary["preemptions"],
        "compaction_moves": scaler.moves,
        "lost_gpu_hours": summary["lost_gpu_hours"],
        "jobs": summary["jobs"],
        "outcomes": summary["outcomes"],
        "launches": sim.cloud.launches,
        "peak_gpus": max(sim.series.provisioned, default=0),
        "whole_run": _provisioning(totals),
        "sim_seconds": round(stats.end, 3),
        "ticks": stats.ticks,
        "seconds": round(seconds, 3),
    }
    return ElasticResult(config, figures, recorder, sim.series, scaler, {"config": config, **info})


def _provisioning(t: Totals) -> dict[str, Any]:
    idle_pct = 100.0 * t.idle_gpu_seconds / t.gpu_seconds if t.gpu_seconds else None
    return {
        "gpu_hours": round(t.gpu_seconds / 3600.0, 3),
        "idle_gpu_hours": round(t.idle_gpu_seconds / 3600.0, 3),
        "used_gpu_hours": round((t.gpu_seconds - t.idle_gpu_seconds) / 3600.0, 3),
        "idle_pct": round(idle_pct, 2) if idle_pct is not None else None,
        "node_hours": round(t.node_seconds / 3600.0, 3),
        "cost": round(t.cost, 2),
        "accounted_until_s": round(t.at, 3),
    }


# The targets, judged on the same run (issue 18): one definition each.
TARGET1_P95_RATIO = 0.7  # gpupool's p95 wait at most this times (a)'s ...
TARGET1_GPU_HOURS_RATIO = 1.05  # ... for at most this times (a)'s GPU-hours
TARGET2_IDLE_RATIO = 0.4  # idle GPU-hours at most this times (b)'s, at a p95 wait no worse


def _ratio(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return round(new / old, 4)


def targets(by_name: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The two targets of the elastic pool, with the figures they are judged on; None unless
    ``by_name`` holds all three configurations (``sim replay --configs`` may run fewer).

    * target 1, vs (a) no headroom: p95 wait at most 0.7x (a)'s, for at most 1.05x its
      GPU-hours (headroom pays for itself);
    * target 2, vs (b) Ray-like: idle GPU-hours (provisioned minus used) at most 0.4x (b)'s, at
      a p95 wait no worse than (b)'s.

    A ratio against a zero is undefined (None) and does not meet its target.
    """
    if any(c not in by_name for c in CONFIGS):
        return None
    g, a, b = by_name["gpupool"], by_name["no-headroom"], by_name["ray-like"]

    def change(new: float | None, old: float | None) -> float | None:
        if new is None or old is None or old == 0:
            return None
        return round(100.0 * (new - old) / old, 2)

    p95_ratio = _ratio(g["wait_s_p95"], a["wait_s_p95"])
    gpuh_ratio = _ratio(g["gpu_hours"], a["gpu_hours"])
    idle_ratio = _ratio(g["idle_gpu_hours"], b["idle_gpu_hours"])
    p95_ok_b = (
        g["wait_s_p95"] is not None and b["wait_s_p95"] is not None and g["wait_s_p95"] <= b["wait_s_p95"]
    )
    met_a = (
        p95_ratio is not None
        and gpuh_ratio is not None
        and p95_ratio <= TARGET1_P95_RATIO
        and gpuh_ratio <= TARGET1_GPU_HOURS_RATIO
    )
    met_b = idle_ratio is not None and idle_ratio <= TARGET2_IDLE_RATIO and p95_ok_b
    return {
        "vs_no_headroom": {
            "target": f"p95 wait at most {TARGET1_P95_RATIO:g}x (a)'s, for at most "
            f"{TARGET1_GPU_HOURS_RATIO:g}x its GPU-hours",
            "p95_ratio": p95_ratio,
            "gpu_hours_ratio": gpuh_ratio,
            "wait_p95_change_pct": change(g["wait_s_p95"], a["wait_s_p95"]),
            "gpu_hours_change_pct": change(g["gpu_hours"], a["gpu_hours"]),
            "met": met_a,
        },
        "vs_ray_like": {
            "target": f"idle GPU-hours at most {TARGET2_IDLE_RATIO:g}x (b)'s, at a p95 wait no worse",
            "idle_ratio": idle_ratio,
            "p95_ok": p95_ok_b,
            "idle_gpu_hours_change_pct": change(g["idle_gpu_hours"], b["idle_gpu_hours"]),
            "gpu_hours_change_pct": change(g["gpu_hours"], b["gpu_hours"]),
            "wait_p95_change_pct": change(g["wait_s_p95"], b["wait_s_p95"]),
            "met": met_b,
        },
    }


def target_fields(goals: dict[str, Any] | None) -> dict[str, Any]:
    """The targets' figures as flat fields (``sim replay --autoscale --json`` prints them at the
    top level): target 1's p95 and GPU-hour ratios to (a), target 2's idle ratio to (b) and
    whether its p95 is no worse, and whether each target holds (all None when not judged)."""
    if goals is None:
        keys = ("target1_p95_ratio", "target1_gpu_hours_ratio", "target1_met")
        return dict.fromkeys((*keys, "target2_idle_ratio", "target2_p95_ok", "target2_met"))
    t1, t2 = goals["vs_no_headroom"], goals["vs_ray_like"]
    return {
        "target1_p95_ratio": t1["p95_ratio"],
        "target1_gpu_hours_ratio": t1["gpu_hours_ratio"],
        "target1_met": t1["met"],
        "target2_idle_ratio": t2["idle_ratio"],
        "target2_p95_ok": t2["p95_ok"],
        "target2_met": t2["met"],
    }


def provisioning_figure(results: list[ElasticResult], end: float | None = None) -> Any:
    """One panel per configuration: GPUs provisioned (launched, booting included), ready, and used
    over time (means per time bucket)."""
    import numpy as np

    from gpupool.sim.plots import _plt, _resample, _time_axis

    plt = _plt()
    fig, axes = plt.subplots(len(results), 1, figsize=(9, 2.5 * len(results)), squeeze=False, sharex=True)
    t1 = end or max((r.series.times[-1] for r in results if r.series.times), default=1.0) or 1.0
    unit, label = _time_axis(t1)
    top = max((max(r.series.provisioned, default=0) for r in results), default=1) * 1.08 or 1.0
    for ax, r in zip((row[0] for row in axes), results, strict=True):
        s = r.series
        times = np.array(s.times, dtype=float)
        x, prov, _ = _resample(times, np.array(s.provisioned, dtype=float), 0.0, t1)
        _, ready, _ = _resample(times, np.array(s.ready, dtype=float), 0.0, t1)
        _, used, _ = _resample(times, np.array(s.used, dtype=float), 0.0, t1)
        ax.fill_between(x / unit, prov, step="post", alpha=0.25, color="#e6550d", label="provisioned")
        ax.step(x / unit, ready, where="post", color="#e6550d", lw=0.6, label="ready")
        ax.fill_between(x / unit, used, step="post", alpha=0.55, color="#3182bd", label="used")
        f = r.figures
        ax.set_title(
            f"{LABELS[r.config]}: {f['gpu_hours']:,.0f} GPU-h, {f['idle_gpu_hours']:,.0f} idle, "
            f"p95 wait {f['wait_s_p95'] or 0:,.0f} s",
            fontsize=8.5,
        )
        ax.set_ylim(0, top)
        ax.set_ylabel("GPUs", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper right")
    axes[-1][0].set_xlabel(label, fontsize=8)
    fig.suptitle("Provisioned vs used GPUs", fontsize=11)
    fig.tight_layout()
    return fig
