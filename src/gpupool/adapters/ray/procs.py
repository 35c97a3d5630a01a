"""Processes of a local Ray cluster, by pid and start time, and the record that lists them.

A local cluster (``cluster.LocalRayCluster``) writes its identity to ``data_dir/ray/cluster.json``
when it starts and whenever a node comes or goes: its GCS address, Ray's temp dir, its owner
(the control plane's pid), its watchdog, and per node the ``ray start`` process that leads the
node's process group (every Ray process of that node is in it) with its start time. A process
is "the one recorded" only if its pid *and* its start time (``/proc/<pid>/stat``) match, so a
reused pid is never mistaken for it and never signalled.

Only the standard library: the watchdog imports this too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

RECORD_VERSION = 1


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None if it does not exist (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] == "Z":
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def alive(pid: int, start: int | None) -> bool:
    """Whether ``pid`` runs and is the process that started at ``start`` (any, if None)."""
    if pid <= 0:
        return False
    now = start_time(pid)
    return now is not None and (start is None or now == start)


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def ours(pid: int, start: int | None) -> bool:
    """Whether process group ``pid`` is still the one recorded: its leader is the recorded process,
    or the leader is gone and members are left (Linux never hands out a pid still used as a
    group id, so they are the leader's). A leader pid reused by another process is not ours."""
    now = start_time(pid)
    if now is not None:
        return start is None or now == start
    return bool(group_members(pid))


def signal_group(pid: int, start: int | None, sig: int) -> bool:
    """Send ``sig`` to the recorded process group led by ``pid``; False if nothing of it is left."""
    if not ours(pid, start):
        return False
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_gone(groups: list[tuple[int, int | None]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(ours(pid, start) for pid, start in groups):
            return
        time.sleep(0.1)


def stop_groups(groups: list[tuple[int, int | None]], *, graceful: bool, grace: float = 3.0) -> None:
    """SIGTERM the groups (if ``graceful``), wait up to ``grace`` seconds, then SIGKILL what is left."""
    if graceful:
        live = [g for g in groups if signal_group(*g, signal.SIGTERM)]
        wait_gone(live, grace)
    live = [g for g in groups if signal_group(*g, signal.SIGKILL)]
    wait_gone(live, 5.0)


def recorded_groups(record: dict[str, Any], *, skip_watchdog: bool = False) -> list[tuple[int, int | None]]:
    """Every process group the record lists: worker nodes first, then the head, then the watchdog."""
    nodes = record.get("nodes") or {}
    order = [n for n in nodes if n != "head"] + (["head"] if "head" in nodes else [])
    groups = [(int(nodes[n]["pid"]), nodes[n].get("start")) for n in order]
    watchdog = record.get("watchdog")
    if watchdog and not skip_watchdog:
        groups.append((int(watchdog["pid"]), watchdog.get("start")))
    return groups


def stop_recorded(record: dict[str, Any], *, graceful: bool, skip_watchdog: bool = False) -> int:
    """Stop every process the record lists (only those) and remove Ray's temp dir.

    Returns how many recorded process groups still had processes."""
    groups = recorded_groups(record, skip_watchdog=skip_watchdog)
    left = sum(1 for g in groups if ours(*g))
    stop_groups(groups, graceful=graceful)
    tmp = record.get("tmp")
    if tmp and Path(tmp).name.startswith("gpr-"):
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return left


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return None
    return record


def write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)


def remove_record(path: Path, cluster_id: str | None) -> None:
    """Remove the record if it still describes cluster ``cluster_id``."""
    record = read_record(path)
    if record is not None and record.get("id") == cluster_id:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
