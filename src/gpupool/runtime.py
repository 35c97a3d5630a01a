"""The job side of gpupool: what a workload's entrypoint asks about its own run.

A workload's entrypoint runs as member 0 of its gang: on member 0's node, holding member 0's
CPUs, memory and GPUs (``CUDA_VISIBLE_DEVICES`` is set, ``gpu_ids()`` lists Ray's ids). The
other members' reservations are bundles 1..n-1 of ``placement_group()``; start work there with
``Task.options(**member_options("worker-0")).remote(...)`` (needs ``ray``).

Preemption: when the scheduler wants the GPUs back, ``checkpoint_requested()`` turns True. The
job then writes a checkpoint under ``checkpoint_dir()``, calls ``report_checkpoint(path)`` and
may exit (or keep going: it is stopped within its grace period either way). When it is placed
again, ``resume_from()`` gives the last checkpoint it reported. Checking is a file lookup, so
calling ``checkpoint_requested()`` every step costs next to nothing.

The supervisor that starts the entrypoint passes everything through environment variables
(``GPUPOOL_*``, below) and a node-local control directory. Outside gpupool, every call has a
harmless answer (nothing requested, no resume point, ``./checkpoints``). ``ray`` is imported
only by ``placement_group()`` and ``member_options()`` and when called inside a Ray task.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ENV_WORKLOAD_ID = "GPUPOOL_WORKLOAD_ID"
ENV_ATTEMPT = "GPUPOOL_ATTEMPT"
ENV_MEMBER = "GPUPOOL_MEMBER"
ENV_NODE = "GPUPOOL_NODE"
ENV_PLACEMENT = "GPUPOOL_PLACEMENT"  # JSON [[member, node], ...] in bundle order
ENV_PLACEMENT_GROUP_ID = "GPUPOOL_PLACEMENT_GROUP_ID"
ENV_GPU_IDS = "GPUPOOL_GPU_IDS"
ENV_CONTROL_DIR = "GPUPOOL_CONTROL_DIR"
ENV_CHECKPOINT_DIR = "GPUPOOL_CHECKPOINT_DIR"
ENV_CHECKPOINT_ROOT = "GPUPOOL_CHECKPOINT_ROOT"
ENV_RESUME_FROM = "GPUPOOL_RESUME_FROM"

REQUEST_FILE = "checkpoint.requested"
REPORT_FILE = "checkpoint.json"
LATEST_FILE = "latest.json"


def workload_id() -> str | None:
    """This workload's id, or None outside gpupool."""
    return os.environ.get(ENV_WORKLOAD_ID) or None


def attempt() -> int:
    """How many times this workload has been placed (1 on its first run; 0 outside gpupool)."""
    return int(os.environ.get(ENV_ATTEMPT, "0") or 0)


def node() -> str | None:
    """The gpupool node the entrypoint runs on."""
    return os.environ.get(ENV_NODE) or None


def placement() -> list[tuple[str, str]]:
    """(member, node) for every member, in bundle order: bundle i of ``placement_group()``."""
    raw = os.environ.get(ENV_PLACEMENT)
    return [(str(m), str(n)) for m, n in json.loads(raw)] if raw else []


def gpu_ids() -> list[int]:
    """Ray's GPU ids: of this Ray task/actor when called in one, else of the entrypoint (member 0)."""
    if "ray" in sys.modules:
        ray = sys.modules["ray"]
        if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            return [int(i) for i in ray.get_gpu_ids()]
    raw = os.environ.get(ENV_GPU_IDS, "")
    return [int(i) for i in raw.split(",") if i.strip()]


def checkpoint_requested() -> bool:
    """True once the scheduler asked this job to checkpoint (it is about to be stopped)."""
    control = os.environ.get(ENV_CONTROL_DIR)
    return bool(control) and (Path(control) / REQUEST_FILE).exists()


def checkpoint_dir() -> Path:
    """A directory of this attempt's own to write checkpoints into (created on demand)."""
    path = Path(os.environ.get(ENV_CHECKPOINT_DIR) or "checkpoints")
    path.mkdir(parents=True, exist_ok=True)
    return path


def report_checkpoint(path: str | os.PathLike[str]) -> None:
    """Record ``path`` as this workload's latest checkpoint (what the next attempt resumes from)."""
    record = json.dumps({"path": str(Path(path).absolute()), "attempt": attempt()})
    root = os.environ.get(ENV_CHECKPOINT_ROOT)
    if root:
        _write_atomic(Path(root) / LATEST_FILE, record)
    control = os.environ.get(ENV_CONTROL_DIR)
    if control:
        _write_atomic(Path(control) / REPORT_FILE, record)


def resume_from() -> Path | None:
    """The checkpoint to resume from when placed again after a preemption, else None."""
    raw = os.environ.get(ENV_RESUME_FROM)
    return Path(raw) if raw else None


def placement_group() -> Any:
    """This workload's Ray placement group (connects to Ray with ``ray.init()`` if needed)."""
    import ray
    from ray.util.placement_group import PlacementGroup

    pg_id = os.environ.get(ENV_PLACEMENT_GROUP_ID)
    if not pg_id:
        raise RuntimeError("not running as a gpupool workload\nHint: submit it with gpupool")
    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    return PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id)))


def member_options(member: str | int) -> dict[str, Any]:
    """``.options(...)`` for a Ray task or actor that fills ``member``'s whole reservation.

    ``member`` is a name (``worker-1``) or a bundle index. Bundle 0 is held by the entrypoint.
    """
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    members = [m for m, _ in placement()]
    index = member if isinstance(member, int) else members.index(member)
    pg = placement_group()
    bundle = pg.bundle_specs[index]
    options: dict[str, Any] = {
        "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index),
        "num_cpus": bundle.get("CPU", 0),
        "num_gpus": bundle.get("GPU", 0),
    }
    if bundle.get("memory"):
        options["memory"] = bundle["memory"]
    return options


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
