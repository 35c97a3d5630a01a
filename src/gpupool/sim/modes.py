"""The three ways of sharing a cluster that the simulator compares, as configs for the one core.

Every mode runs the same ``Scheduler`` and ``Driver``; only the queue configuration, the node
labels, the workload specs and the simulated executor's preemption behaviour differ.

* ``static``: per-tenant node pools. Each tenant's nodes carry ``gpu-type: <tenant>`` and its
  workloads may only use that GPU type, so a tenant never runs on another tenant's nodes; its
  queue's guarantee and max are its own GPUs. No preemption (nothing to take back). YuniKorn's
  default node order (``fair``) and no gang scheduling: a multi-node job's members are placed
  one by one as room appears (and hold it while the rest wait).
* ``quota``: one shared pool. Each tenant's queue is guaranteed its share (the GPUs of the nodes
  it would have owned) with max = the whole cluster; preemption takes GPUs back from queues
  above their guarantee for queues below it. Still YuniKorn's defaults otherwise: ``fair`` node
  order, no gangs, and a victim is killed at the end of its grace period, losing the work since
  its last periodic checkpoint.
* ``gpupool``: ``quota`` plus what gpupool adds: the scheduler's default node order (the
  ``gpupool`` scoring policy, docs/packing.md: least growth of GPU fragmentation), gangs
  admitted all or nothing (no partial hoarding), and checkpoint-aware preemption: a victim is
  asked to checkpoint and keeps all its work when it can checkpoint within its grace period.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.config import parse_config
from gpupool.config.queues import DEFAULT_PARTITION
from gpupool.core.config import DEFAULT_NODE_SORT_POLICY, DEFAULT_PREEMPTION_DELAY, PartitionConfig
from gpupool.core.model import NodeSpec
from gpupool.core.resources import GPU_MILLI, GPU_TYPE_LABEL, parse_quantity
from gpupool.engine.model import Disruption, TaskGroup, WorkloadSpec

MODES = ("static", "quota", "gpupool")
# A gang that waits longer than this falls back to one-by-one placement; "no gangs" is 0.
GANG_TIMEOUT = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class ModeSettings:
    """What a sharing mode sets for the one core: node order, preemption, gangs, checkpointing, own nodes."""

    mode: str
    node_sort: str  # a nodesortpolicy type (core/config.py NODE_SORT_POLICIES)
    preemption: bool
    gangs: bool
    checkpoint_on_preempt: bool
    own_nodes_only: bool


def settings(mode: str) -> ModeSettings:
    if mode == "static":
        return ModeSettings(mode, "fair", False, False, False, True)
    if mode == "quota":
        return ModeSettings(mode, "fair", True, False, False, False)
    if mode == "gpupool":
        return ModeSettings(mode, DEFAULT_NODE_SORT_POLICY, True, True, True, False)
    raise ValueError(f"unknown mode {mode!r} (expected one of: {', '.join(MODES)})")


def queue_path(tenant: str) -> str:
    return f"root.{tenant.lower()}"


def config_dict(
    mode: str, tenants: dict[str, int], gpus_per_node: int, preemption_delay: float = DEFAULT_PREEMPTION_DELAY
) -> dict[str, object]:
    """The YuniKorn-style configuration of ``mode`` for ``tenants`` (tenant -> nodes)."""
    s = settings(mode)
    cluster = sum(tenants.values()) * gpus_per_node
    queues = []
    for tenant, nodes in tenants.items():
        own = nodes * gpus_per_node
        queues.append(
            {
                "name": tenant.lower(),
                "resources": {
                    "guaranteed": {"gpu": own},
                    "max": {"gpu": own if s.own_nodes_only else cluster},
                },
                "properties": {"preemption.delay": f"{preemption_delay:g}s"},
            }
        )
    return {
        "partitions": [
            {
                "name": DEFAULT_PARTITION,
                "nodesortpolicy": {"type": s.node_sort},
                "preemption": {"enabled": s.preemption},
                "queues": [{"name": "root", "submitacl": "*", "queues": queues}],
            }
        ]
    }


def partition(
    mode: str, tenants: dict[str, int], gpus_per_node: int, preemption_delay: float = DEFAULT_PREEMPTION_DELAY
) -> PartitionConfig:
    config = parse_config(config_dict(mode, tenants, gpus_per_node, preemption_delay))
    return config.partition(DEFAULT_PARTITION)


def nodes(mode: str, tenants: dict[str, int], gpus_per_node: int) -> list[NodeSpec]:
    """The cluster: every tenant's nodes, labelled with their owner (its GPU type in ``static``)."""
    s = settings(mode)
    out = []
    for tenant, count in tenants.items():
        labels = {"owner": tenant}
        if s.own_nodes_only:
            labels[GPU_TYPE_LABEL] = tenant.lower()
        for i in range(count):
            out.append(NodeSpec(f"{tenant.lower()}-{i:03d}", {"gpu": gpus_per_node * GPU_MILLI}, labels))
    return out


def task_groups(gpus: float, gpus_per_node: int, gpu_types: tuple[str, ...]) -> tuple[TaskGroup, ...]:
    """A job of ``gpus`` GPUs: one member when it fits a node, else whole-node members plus the
    rest; a job below one GPU is one member with that share of a GPU (``0.25``)."""
    if gpus < 1:
        return (TaskGroup("worker", 1, {"gpu": parse_quantity("gpu", gpus)}, gpu_types),)
    if not isinstance(gpus, int):
        raise ValueError(f"a job of {gpus} GPUs is neither a share of one GPU nor whole GPUs")
    if gpus <= gpus_per_node:
        return (TaskGroup("worker", 1, {"gpu": gpus * GPU_MILLI}, gpu_types),)
    whole, rest = divmod(gpus, gpus_per_node)
    groups = [TaskGroup("worker", whole, {"gpu": gpus_per_node * GPU_MILLI}, gpu_types)]
    if rest:
        groups.append(TaskGroup("rest", 1, {"gpu": rest * GPU_MILLI}, gpu_types))
    return tuple(groups)


def workload_spec(
    mode: str,
    *,
    name: str,
    tenant: str,
    gpus: float,
    duration: float,
    gpus_per_node: int,
    checkpoint_interval: float,
    grace: float,
) -> WorkloadSpec:
    s = settings(mode)
    types = (tenant.lower(),) if s.own_nodes_only else ()
    return WorkloadSpec(
        name=name,
        task_groups=task_groups(gpus, gpus_per_node, types),
        queue=queue_path(tenant),
        user=tenant,
        gang_style="soft",
        gang_timeout=GANG_TIMEOUT if s.gangs else 0.0,
        disruption=Disruption("checkpoint", grace=grace),
        duration=duration,
        checkpoint_interval=checkpoint_interval,
    )
