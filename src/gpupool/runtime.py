"""The job side of gpupool: what a workload's entrypoint asks about its own run.

A workload's entrypoint runs as member 0 of its gang: on member 0's node, holding member 0's
GPUs (``CUDA_VISIBLE_DEVICES`` is set, ``gpu_ids()`` lists them: the GPU indices the scheduler
chose, a share's being the one GPU it shares). The other members'
reservations are bundles 1..n-1 of ``placement_group()``; start work there with
``Task.options(**member_options("worker-1")).remote(...)`` (needs ``ray``; member 0 is the
entrypoint itself: ``member_options`` of it is refused at once, it would wait forever).

Work stays inside the reservation: a Ray task or actor the job starts without naming a
placement group runs in this workload's placement group (Ray's
``placement_group_capture_child_tasks``, applied to the job's driver when it calls
``ray.init``), in any bundle with room. Work that names another strategy escapes: the control
plane sees it within a tick, stops the job and says so in its events. ``docs/runtime.md``.

Elastic workloads: members beyond ``members`` (up to ``max_members``) come and go while the job
runs; ``placement()`` lists the current ones, and each extra member has a placement group of
its own (``member_options`` knows which).

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
ENV_CAPTURE = "GPUPOOL_CAPTURE"  # "0" in a workload's env: its driver's tasks are not captured
ENV_NEXT_HOOK = "GPUPOOL_NEXT_RUNTIME_ENV_HOOK"  # the job's own RAY_RUNTIME_ENV_HOOK, chained
RAY_HOOK_ENV = "RAY_RUNTIME_ENV_HOOK"  # Ray calls it in ray.init (ray._private.worker)
CAPTURE_HOOK = "gpupool.runtime.capture_hook"

REQUEST_FILE = "checkpoint.requested"
REPORT_FILE = "checkpoint.json"
MEMBERS_FILE = "members.json"  # the current members while an elastic workload grows and shrinks
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
    """(member, node) for every current member: the gang's in bundle order (bundle i of
    ``placement_group()``), then an elastic workload's extra members."""
    return [(m, n) for m, n, _, _ in _members()]


def _members() -> list[tuple[str, str, str, int]]:
    """(member, node, placement group id, bundle index) of every current member."""
    control = os.environ.get(ENV_CONTROL_DIR)
    if control:
        try:
            rows = json.loads((Path(control) / MEMBERS_FILE).read_text())
            return [(str(m), str(n), str(pg), int(i)) for m, n, pg, i in rows]
        except (OSError, ValueError):
            pass
    raw = os.environ.get(ENV_PLACEMENT)
    pg_id = os.environ.get(ENV_PLACEMENT_GROUP_ID, "")
    return [(str(m), str(n), pg_id, i) for i, (m, n) in enumerate(json.loads(raw))] if raw else []


def gpu_ids() -> list[int]:
    """In a Ray task or actor: Ray's GPU ids for it. In the entrypoint (member 0): the GPU
    indices of its node the scheduler chose (a share: the one GPU it shares), as in
    ``CUDA_VISIBLE_DEVICES``."""
    if "ray" in sys.modules:
        ray = sys.modules["ray"]
        if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            return [int(i) for i in ray.get_gpu_ids()]
    raw = os.environ.get(ENV_GPU_IDS, "")
    return [int(i) for i in raw.split(",") if i.strip()]


def checkpoint_requested() -> bool:
    """True once the scheduler asked this job to checkpoint (it is about to be stopped)."""
    control = os.environ.get(ENV_CONTROL_DIR)
    return control is not None and control != "" and (Path(control) / REQUEST_FILE).exists()


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


def placement_group(member: str | int | None = None) -> Any:
    """This workload's Ray placement group (of ``member`` if given: an extra member has its own).

    Connects to Ray with ``ray.init()`` if needed.
    """
    import ray
    from ray.util.placement_group import PlacementGroup

    pg_id = os.environ.get(ENV_PLACEMENT_GROUP_ID)
    if not pg_id:
        raise RuntimeError("not running as a gpupool workload\nHint: submit it with gpupool")
    if member is not None:
        pg_id = _member(member)[2]
    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    return PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id)))


def _member(member: str | int) -> tuple[str, str, str, int]:
    rows = _members()
    names = [m for m, _, _, _ in rows]
    if isinstance(member, int):
        if not 0 <= member < len(rows):
            raise ValueError(f"no member {member}: this workload has members 0..{len(rows) - 1} ({names})")
        return rows[member]
    for row in rows:
        if row[0] == member:
            return row
    raise ValueError(f"no member {member!r}: this workload's members are {names}")


def member_options(member: str | int) -> dict[str, Any]:
    """``.options(...)`` for a Ray task or actor that fills ``member``'s whole reservation.

    ``member`` is a name (``worker-1``) or an index into ``placement()``. Member 0 is the
    entrypoint itself (its GPUs are this process's, ``gpu_ids()``): asking for it raises
    ValueError at once instead of waiting forever for GPUs it already holds.
    """
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    name, _node, _pg, index = _member(member)
    if _members()[0][0] == name:
        raise ValueError(
            f"{name} is the member this entrypoint runs as: its GPUs are this process's own"
            f" (gpupool.runtime.gpu_ids()); start Ray work on the other members"
            f" ({', '.join(m for m, _ in placement()[1:]) or 'there are none'})"
        )
    pg = placement_group(name)
    bundle = pg.bundle_specs[index]
    options: dict[str, Any] = {
        "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index),
        "num_cpus": bundle.get("CPU", 0),
        "num_gpus": bundle.get("GPU", 0),
    }
    if bundle.get("memory"):
        options["memory"] = bundle["memory"]
    return options


def capture_hook(runtime_env: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ray's ``RAY_RUNTIME_ENV_HOOK`` in a job's driver: capture its tasks in its placement group.

    The supervisor sets it in the entrypoint's environment, so it runs when the job's driver
    calls ``ray.init``. From then on, a task or actor of this driver that names no placement
    group (nor another scheduling strategy) goes to this workload's placement group, exactly as
    a child of a task started with ``placement_group_capture_child_tasks=True`` would. A hook the
    job had set itself is called after it.
    """
    pg_id = os.environ.get(ENV_PLACEMENT_GROUP_ID)
    if pg_id and os.environ.get(ENV_CAPTURE, "1") != "0":
        _capture_driver(pg_id)
    chained = os.environ.get(ENV_NEXT_HOOK)
    if chained:
        from ray._common.utils import load_class

        return load_class(chained)(runtime_env)
    return runtime_env


def _capture_driver(pg_id: str) -> None:
    import ray
    from ray._private import worker as ray_worker

    cls = ray_worker.Worker
    if getattr(cls, "_gpupool_captured", False):
        return
    own_pg, own_capture = cls.placement_group_id, cls.should_capture_child_tasks_in_placement_group
    captured = ray.PlacementGroupID(bytes.fromhex(pg_id))

    def placement_group_id(self: Any) -> Any:
        return captured if self.mode == ray_worker.SCRIPT_MODE else own_pg.fget(self)  # type: ignore[attr-defined]

    def should_capture(self: Any) -> bool:
        return True if self.mode == ray_worker.SCRIPT_MODE else bool(own_capture.fget(self))  # type: ignore[attr-defined]

    cls.placement_group_id = property(placement_group_id)  # type: ignore[method-assign,assignment]
    cls.should_capture_child_tasks_in_placement_group = property(should_capture)  # type: ignore[method-assign,assignment]
    cls._gpupool_captured = True  # type: ignore[attr-defined]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
