"""Prometheus metrics of one control plane, on its own registry (``GET /metrics``).

Gauges are read from the scheduling core when scraped (per queue: guaranteed, max, allocated,
pending by resource, and allocated by workload kind, serving or batch; per node: GPU capacity
and use; workloads by state). Counters and the scheduling-latency histogram are fed by every
transition the driver journals; the idle GPU-hours reclaimed from notebook sessions are summed
from the database when scraped. Every counter's name ends in ``_total`` (Prometheus' rule); the
driver's tick errors are one too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpupool.core.resources import is_gpu
from gpupool.engine.model import Transition, Workload, WorkloadState

if TYPE_CHECKING:
    from gpupool.service.plane import ControlPlane

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Counters are exposed as ``<name>_total`` only: no ``<name>_created`` gauge beside each one.
disable_created_metrics()
_LATENCY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


class Metrics:
    """The control plane's Prometheus registry: counters fed by each transition, gauges read when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.preemptions = Counter(
            "gpupool_queue_preemptions", "Workloads preempted, by queue", ["queue"], registry=self.registry
        )
        self.transitions = Counter(
            "gpupool_workload_transitions",
            "Workload state changes, by new state",
            ["state"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gpupool_scheduling_latency_seconds",
            "Time from submission (or requeue) to admission",
            ["queue"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def attach(self, plane: ControlPlane) -> None:
        self.registry.register(_PlaneCollector(plane))

    def on_transition(self, workload: Workload, transition: Transition, queue: str | None) -> None:
        label = queue or workload.spec.queue or ""
        self.transitions.labels(transition.new.value).inc()
        if transition.new == WorkloadState.PREEMPTING:
            self.preemptions.labels(label).inc()
        elif transition.new == WorkloadState.ADMITTED:
            earlier = workload.history[-2].at if len(workload.history) >= 2 else workload.submitted_at
            self.latency.labels(label).observe(max(0.0, transition.at - earlier))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PlaneCollector(Collector):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(
                f"gpupool_queue_{name}", f"Queue {name}, by resource", labels=["queue", "resource"]
            )
            for name in ("guaranteed", "max", "allocated", "pending")
        }
        running = GaugeMetricFamily(
            "gpupool_queue_running_applications", "Running workloads", labels=["queue"]
        )
        by_kind = GaugeMetricFamily(
            "gpupool_queue_allocated_by_kind",
            "Queue allocated, by resource and workload kind (serving: model deployments; batch: the rest)",
            labels=["queue", "resource", "kind"],
        )
        for q in self.plane.cluster.queues():
            for name, family in families.items():
                for resource, value in getattr(q, name).items():
                    family.add_metric([q.path, resource], value)
            for kind in ("serving", "batch"):
                for resource, value in getattr(q, kind).items():
                    by_kind.add_metric([q.path, resource, kind], value)
            running.add_metric([q.path], q.running_apps)
        yield from families.values()
        yield by_kind
        yield running
        capacity = GaugeMetricFamily("gpupool_node_gpus", "GPUs of a node", labels=["node", "gpu_type"])
        used = GaugeMetricFamily(
            "gpupool_node_gpus_used", "GPUs allocated on a node", labels=["node", "gpu_type"]
        )
        node_state = GaugeMetricFamily(
            "gpupool_node_state", "1 for the state a node is in", labels=["node", "gpu_type", "state"]
        )
        lost = GaugeMetricFamily(
            "gpupool_node_lost_timestamp_seconds",
            "When a node was lost (it died or left without being scaled down), until it returns",
            labels=["node", "gpu_type", "reason"],
        )
        for n in self.plane.cluster.nodes():
            node_state.add_metric([n.name, n.gpu_type or "", n.state], 1)
            if n.state == "lost":
                lost.add_metric([n.name, n.gpu_type or "", n.lost_reason or ""], n.lost_at or 0)
            if n.state in ("booting", "lost"):
                continue  # not (or no longer) in the cluster
            # The wire's NodeOut has its GPU quantities in GPUs already.
            capacity.add_metric(
                [n.name, n.gpu_type or ""], sum(v for k, v in n.capacity.items() if is_gpu(k))
            )
            used.add_metric([n.name, n.gpu_type or ""], sum(v for k, v in n.allocated.items() if is_gpu(k)))
        yield capacity
        yield used
        yield node_state
        yield lost
        states = GaugeMetricFamily("gpupool_workloads", "Workloads by state", labels=["state"])
        for state, count in sorted(self.plane.workloads.state_counts().items()):
            states.add_metric([state], count)
        yield states
        yield from self._deployments()
        # Summed from the database when scraped (as the workload counts are), so a restart keeps it.
        reclaimed = CounterMetricFamily(
            "gpupool_session_idle_gpu_hours_reclaimed",
            "GPU-hours given back by idle reclaims of notebook sessions (until resumed, at most lifetime)",
            labels=["queue"],
        )
        for queue, hours in sorted(self.plane.notebooks.reclaimed_gpu_hours(self.plane.clock()).items()):
            reclaimed.add_metric([queue], hours)
        yield reclaimed
        # A count since start: a counter, exposed as gpupool_driver_tick_errors_total.
        yield CounterMetricFamily(
            "gpupool_driver_tick_errors", "Driver ticks that raised", value=self.plane.tick_errors
        )

    def _deployments(self) -> Iterator[Metric]:
        """Per live deployment (by name and revision): replicas wanted, placed and ready, requests
        in flight and queued, and its front's requests and errors since it started."""
        labels = ["deployment", "queue", "revision"]
        replicas = GaugeMetricFamily(
            "gpupool_deployment_replicas", "Replicas of a deployment", labels=[*labels, "state"]
        )
        ongoing = GaugeMetricFamily(
            "gpupool_deployment_ongoing_requests", "Requests in flight or queued", labels=[*labels, "where"]
        )
        requests = CounterMetricFamily(
            "gpupool_deployment_requests", "Requests answered by its front", labels=[*labels, "outcome"]
        )
        driver = self.plane.driver
        with self.plane.lock:
            for wid, track in sorted(driver.scaling.tracks.items()):
                w = driver.workloads.get(wid)
                if w is None or w.terminal or w.spec.serving is None:
                    continue
                key = [
                    w.spec.name,
                    self.plane.queue_of(wid) or w.spec.queue or "",
                    str(w.spec.serving.revision),
                ]
                replicas.add_metric([*key, "desired"], track.desired)
                replicas.add_metric([*key, "placed"], len(w.placement))
                replicas.add_metric([*key, "draining"], len(track.draining))
                last = track.last
                if last is None:
                    continue
                replicas.add_metric([*key, "ready"], last.ready)
                ongoing.add_metric([*key, "in_flight"], last.in_flight)
                ongoing.add_metric([*key, "queued"], last.queued)
                requests.add_metric([*key, "ok"], last.requests - last.errors)
                requests.add_metric([*key, "error"], last.errors)
        yield replicas
        yield ongoing
        yield requests
