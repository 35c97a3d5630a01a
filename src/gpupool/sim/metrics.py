"""What a simulation measures: per-job waits and completion times, GPU use over time, guarantees.

``Recorder`` watches a ``Simulation`` (arrivals, the driver's transitions, and the core's queue
usage after every tick) and integrates step functions between ticks. Definitions:

* wait: first admission minus arrival, over jobs that started;
* JCT (job completion time): end minus arrival, over jobs that succeeded;
* GPU utilisation: allocated GPU-seconds over capacity GPU-seconds between the first and the
  last arrival (the period the trace covers; the drain after the last arrival is left out);
* guarantee attainment of a queue: of the time its demand (GPUs of its unfinished jobs, running
  or waiting) was at least its guarantee, the percent during which its allocation was at least
  its guarantee; ``guarantee_attainment_pct`` averages it over the queues whose demand ever
  reached their guarantee;
* lost GPU-hours: GPU-time of work thrown away by preemption (since the victim's last checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.core.resources import gpus_from_milli
from gpupool.engine.model import TERMINAL, Transition, Workload, WorkloadSpec, WorkloadState

if TYPE_CHECKING:
    from gpupool.sim.engine import Simulation


@dataclass(slots=True)
class JobRecord:
    """A job as ``Recorder`` follows it: tenant, GPUs, arrival, duration, start, end, outcome, preemptions."""

    tenant: str
    gpus: float  # an int when whole; a share counts its part
    arrival: float
    duration: float
    first_start: float | None = None
    end: float | None = None
    outcome: str | None = None
    preemptions: int = 0


@dataclass(slots=True)
class Series:
    """Step functions sampled where they change: times, per-queue allocation and demand."""

    times: list[float] = field(default_factory=list)
    alloc: dict[str, list[float]] = field(default_factory=dict)
    demand: dict[str, list[float]] = field(default_factory=dict)
    used: list[float] = field(default_factory=list)


class Recorder:
    """Implements the simulation's watcher hooks and turns them into figures."""

    def __init__(
        self, tenants: dict[str, str], guarantees: dict[str, int], window: tuple[float, float]
    ) -> None:
        """``tenants``: tenant -> queue path; ``guarantees``: tenant -> guaranteed GPUs."""
        self.tenants = tenants
        self.guarantees = guarantees
        self.window = window
        self.jobs: dict[str, JobRecord] = {}
        self.demand: dict[str, float] = dict.fromkeys(tenants, 0)
        self.series = Series(alloc={t: [] for t in tenants}, demand={t: [] for t in tenants})
        self._last_t: float | None = None
        self._alloc: dict[str, float] = dict.fromkeys(tenants, 0)  # GPUs (a share counts its part)
        self._dem: dict[str, float] = dict.fromkeys(tenants, 0)
        self._used = 0.0
        self._capacity = 0.0
        self.used_gpu_s = 0.0  # within the window
        self.capacity_gpu_s = 0.0  # within the window
        self.alloc_gpu_s: dict[str, float] = dict.fromkeys(tenants, 0.0)  # whole run
        self.att_demand_s: dict[str, float] = dict.fromkeys(tenants, 0.0)
        self.att_ok_s: dict[str, float] = dict.fromkeys(tenants, 0.0)
        self.transitions = 0

    # watcher hooks ---------------------------------------------------------------------

    def arriving(self, workload_id: str, spec: WorkloadSpec, tenant: str, now: float) -> None:
        gpus = spec.total_gpus()
        self.jobs[workload_id] = JobRecord(tenant, gpus, now, float(spec.duration or 0.0))
        self.demand[tenant] += gpus

    def transition(self, workload: Workload, transition: Transition) -> None:
        self.transitions += 1
        rec = self.jobs.get(workload.id)
        if rec is None:
            return
        new = transition.new
        if new == WorkloadState.ADMITTED and rec.first_start is None:
            rec.first_start = transition.at
        elif new == WorkloadState.PREEMPTED:
            rec.preemptions += 1
        if new in TERMINAL and rec.end is None:
            rec.end = transition.at
            rec.outcome = new.value
            self.demand[rec.tenant] -= rec.gpus

    def ticked(self, sim: Simulation, now: float) -> None:
        self.advance(now)
        core = sim.driver.core
        changed = False
        used = 0.0
        for tenant, path in self.tenants.items():
            q = core.queues.get(path)
            a = gpus_from_milli(q.allocated.get("gpu", 0)) if q is not None else 0
            used += a
            d = self.demand[tenant]
            if a != self._alloc[tenant] or d != self._dem[tenant]:
                changed = True
            self._alloc[tenant] = a
            self._dem[tenant] = d
        self._used = used
        self._capacity = gpus_from_milli(core.capacity.get("gpu", 0))
        if changed or not self.series.times:
            s = self.series
            if s.times and s.times[-1] == now:
                s.times.pop()
                s.used.pop()
                for t in self.tenants:
                    s.alloc[t].pop()
                    s.demand[t].pop()
            s.times.append(now)
            s.used.append(used)
            for t in self.tenants:
                s.alloc[t].append(self._alloc[t])
                s.demand[t].append(self._dem[t])

    def advance(self, now: float) -> None:
        """Integrate the step functions from the last tick up to ``now``."""
        last = self._last_t
        self._last_t = now
        if last is None or now <= last:
            return
        dt = now - last
        w0, w1 = self.window
        overlap = max(0.0, min(now, w1) - max(last, w0))
        if overlap > 0:
            self.used_gpu_s += self._used * overlap
            self.capacity_gpu_s += self._capacity * overlap
        for t in self.tenants:
            a = self._alloc[t]
            self.alloc_gpu_s[t] += a * dt
            g = self.guarantees[t]
            if g > 0 and self._dem[t] >= g:
                self.att_demand_s[t] += dt
                if a >= g:
                    self.att_ok_s[t] += dt

    # results ---------------------------------------------------------------------------

    def waits(self, tenant: str | None = None) -> np.ndarray:
        return np.array(
            [
                r.first_start - r.arrival
                for r in self.jobs.values()
                if r.first_start is not None and (tenant is None or r.tenant == tenant)
            ],
            dtype=float,
        )

    def jcts(self, tenant: str | None = None) -> np.ndarray:
        return np.array(
            [
                r.end - r.arrival
                for r in self.jobs.values()
                if r.outcome == "succeeded" and r.end is not None and (tenant is None or r.tenant == tenant)
            ],
            dtype=float,
        )

    def attainment(self, tenant: str) -> float | None:
        d = self.att_demand_s[tenant]
        return 100.0 * self.att_ok_s[tenant] / d if d > 0 else None

    def summary(self, lost_by_workload: dict[str, float]) -> dict[str, Any]:
        """The figures of benchmarks.md section 3 (less mode and timing), plus per-queue detail."""
        waits = self.waits()
        jcts = self.jcts()
        per_queue: dict[str, Any] = {}
        lost_by_tenant: dict[str, float] = dict.fromkeys(self.tenants, 0.0)
        for wid, lost in lost_by_workload.items():
            rec = self.jobs.get(wid)
            if rec is not None:
                lost_by_tenant[rec.tenant] += lost
        attained = []
        for tenant, path in self.tenants.items():
            jobs = [r for r in self.jobs.values() if r.tenant == tenant]
            w = self.waits(tenant)
            j = self.jcts(tenant)
            att = self.attainment(tenant)
            if att is not None:
                attained.append(att)
            per_queue[path] = {
                "guaranteed_gpus": self.guarantees[tenant],
                "jobs": len(jobs),
                "wait_s_p50": _pct(w, 50),
                "wait_s_p95": _pct(w, 95),
                "jct_s_mean": _mean(j),
                "gpu_hours": round(self.alloc_gpu_s[tenant] / 3600.0, 3),
                "preemptions": sum(r.preemptions for r in jobs),
                "lost_gpu_hours": round(lost_by_tenant[tenant] / 3600.0, 3),
                "guarantee_attainment_pct": _round(att),
                "demand_at_guarantee_hours": round(self.att_demand_s[tenant] / 3600.0, 3),
            }
        outcomes: dict[str, int] = {}
        for r in self.jobs.values():
            key = r.outcome or "unfinished"
            outcomes[key] = outcomes.get(key, 0) + 1
        util = 100.0 * self.used_gpu_s / self.capacity_gpu_s if self.capacity_gpu_s > 0 else None
        return {
            "jobs": len(self.jobs),
            "gpu_utilization_pct": _round(util),
            "wait_s_p50": _pct(waits, 50),
            "wait_s_p95": _pct(waits, 95),
            "jct_s_mean": _mean(jcts),
            "preemptions": sum(r.preemptions for r in self.jobs.values()),
            "lost_gpu_hours": round(sum(lost_by_workload.values()) / 3600.0, 3),
            "guarantee_attainment_pct": _round(sum(attained) / len(attained) if attained else None),
            "per_queue": per_queue,
            "outcomes": dict(sorted(outcomes.items())),
        }


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 3) if len(values) else None


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
