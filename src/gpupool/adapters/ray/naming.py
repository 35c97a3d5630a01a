"""How gpupool names, pins and recognises things in Ray, and where it keeps files.

Nodes: a gpupool node declares the custom resource ``gpupool.node.<name>`` (1000 units) and
``gpu.<TYPE>`` (one per GPU), and the labels ``gpupool.io/node`` and ``gpupool.io/gpu-type``.
Every placement-group bundle asks for ``PIN_AMOUNT`` of its node's resource, which pins it to
the node the scheduling core chose (many bundles fit on one node: 1000 / 0.001). A node of a
foreign Ray cluster without that resource is named by its Ray node name and pinned by Ray's
own ``node:<ip>`` resource (enough when there is one node per IP).

Files under the executor's ``data_dir`` (the same path on every node of a local cluster; on a
multi-machine cluster ``checkpoints/`` must be shared storage, like Ray Train's storage path):

* ``jobs/<workload>/attempt-<n>/output.log``: the entrypoint's stdout and stderr;
* ``jobs/<workload>/attempt-<n>/control/``: the node-local mailbox between a job's supervisor
  and the job (``checkpoint.requested``, ``checkpoint.json``);
* ``checkpoints/<workload>/attempt-<n>/``: where attempt n writes its checkpoints;
  ``checkpoints/<workload>/latest.json``: the last one reported, by any attempt (the newest:
  the next attempt resumes from it).

No ``ray`` import here: the runtime and the cluster helpers use it too.
"""

from __future__ import annotations

import json
from pathlib import Path

NAMESPACE = "gpupool"
NODE_RESOURCE_PREFIX = "gpupool.node."
GPU_TYPE_RESOURCE_PREFIX = "gpu."
NODE_LABEL = "gpupool.io/node"
GPU_TYPE_LABEL = "gpupool.io/gpu-type"
POOL_LABEL = "gpupool.io/pool"  # on nodes a node provider launched: the autoscaler reports them
NODE_RESOURCE_UNITS = 1000
PIN_AMOUNT = 0.001
PG_PREFIX = "gpupool.pg."
EXTRA_PG_PREFIX = "gpupool.pgx."


def node_resource(name: str) -> str:
    return NODE_RESOURCE_PREFIX + name


def actor_name(workload_id: str, attempt: int) -> str:
    return f"gpupool.job.{workload_id}.{attempt}"


def pg_name(workload_id: str, attempt: int) -> str:
    return f"{PG_PREFIX}{workload_id}.{attempt}"


def extra_pg_name(workload_id: str, attempt: int, member: str) -> str:
    """The placement group of one extra member of an elastic workload (a bundle of its own)."""
    return f"{EXTRA_PG_PREFIX}{workload_id}.{attempt}.{member}"


def pg_workload(name: str) -> str | None:
    """The workload a placement group name of ours belongs to; None for other names."""
    if name.startswith(EXTRA_PG_PREFIX):
        rest = name.removeprefix(EXTRA_PG_PREFIX).rpartition(".")[0]  # drop the member
        return rest.rpartition(".")[0] or None  # drop the attempt
    if name.startswith(PG_PREFIX):
        return name.removeprefix(PG_PREFIX).rpartition(".")[0] or None
    return None


def parse_actor_name(name: str) -> tuple[str, int] | None:
    """``gpupool.job.<workload>.<attempt>`` -> (workload, attempt); None for other names."""
    prefix = "gpupool.job."
    if not name.startswith(prefix):
        return None
    wid, _, attempt = name[len(prefix) :].rpartition(".")
    return (wid, int(attempt)) if wid and attempt.isdigit() else None


def attempt_dir(data_dir: Path, workload_id: str, attempt: int) -> Path:
    return data_dir / "jobs" / workload_id / f"attempt-{attempt}"


def log_path(data_dir: Path, workload_id: str, attempt: int) -> Path:
    return attempt_dir(data_dir, workload_id, attempt) / "output.log"


def control_dir(data_dir: Path, workload_id: str, attempt: int) -> Path:
    return attempt_dir(data_dir, workload_id, attempt) / "control"


def checkpoint_root(data_dir: Path, workload_id: str) -> Path:
    return data_dir / "checkpoints" / workload_id


def latest_checkpoint(data_dir: Path, workload_id: str) -> str | None:
    """The last checkpoint any attempt of the workload reported, if one was."""
    try:
        record = json.loads((checkpoint_root(data_dir, workload_id) / "latest.json").read_text())
    except (OSError, ValueError):
        return None
    path = record.get("path") if isinstance(record, dict) else None
    return str(path) if path else None
