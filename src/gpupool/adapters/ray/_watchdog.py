"""``python -m gpupool.adapters.ray._watchdog RECORD``: stops a local Ray cluster nobody owns.

``LocalRayCluster`` starts one per cluster, in its own session, next to the nodes. Every
``POLL`` seconds it reads the cluster's record (``data_dir/ray/cluster.json``): while the
recorded owner (the control plane: pid and start time) lives, or a new owner has adopted the
cluster, nothing happens. Once the owner has been gone for the record's ``orphan_timeout``
seconds (a ``kill -9`` that no restart followed), or both the owner and the head node are gone,
it kills what the record lists, process group by process group, removes Ray's temp dir and
the record, and exits. It also exits when the record is removed or names another cluster (a
graceful stop). Only the standard library: it must cost next to nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from gpupool.adapters.ray import procs

POLL = 2.0


def main(record_path: Path) -> int:
    first = procs.read_record(record_path)
    if first is None:
        return 0
    cluster_id = first.get("id")
    owner_gone_since: float | None = None
    while True:
        time.sleep(POLL)
        record = procs.read_record(record_path)
        if record is None or record.get("id") != cluster_id:
            return 0
        head: dict[str, Any] = (record.get("nodes") or {}).get("head") or {}
        head_alive = bool(head) and procs.alive(int(head["pid"]), head.get("start"))
        owner = record.get("owner") or {}
        owner_alive = bool(owner) and procs.alive(int(owner.get("pid", 0)), owner.get("start"))
        now = time.monotonic()
        if owner_alive:
            owner_gone_since = None
        elif owner_gone_since is None:
            owner_gone_since = now
        timeout = float(record.get("orphan_timeout", 300.0))
        orphaned = owner_gone_since is not None and now - owner_gone_since >= timeout
        if orphaned or (not head_alive and not owner_alive):
            procs.stop_recorded(record, graceful=True, skip_watchdog=True)
            procs.remove_record(record_path, cluster_id)
            return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
