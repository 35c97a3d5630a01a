"""A local multi-node Ray cluster on this machine, whose nodes declare logical GPUs of named types.

``LocalRayCluster(spec, data_dir).start()`` runs one ``ray start --block`` process per node, each
in its own process group (so one node can be stopped or killed alone), all bound to 127.0.0.1:
a head node without GPUs and CPUs (it runs the GCS and the drivers) and one worker node per
entry of the spec, e.g. ``parse_cluster_spec("2xH100:4,1xA100:4")``. Nothing needs GPU
hardware: the GPUs are Ray's logical ``GPU`` resource, so Ray still assigns GPU ids.

A worker node is recognised by gpupool through the resources and labels in
``gpupool.adapters.ray.naming``: a stable gpupool name (``h100-0``) and its GPU type.

One cluster per data dir, and none left behind: the cluster records itself (GCS address, Ray's
temp dir, each node's process group and start time, its owner) in ``data_dir/ray/cluster.json``.
After a ``kill -9`` of the control plane, the next ``start`` on the same data dir adopts the
cluster if it still runs (so its jobs go on), else stops the recorded processes that are left and
starts afresh. A watchdog process stops a cluster whose owner died and that nobody adopted within
``orphan_timeout`` (``_watchdog``); ``procs`` signals only the processes the record names.

Budget for small machines: no dashboard, a 100 MB object store per node, no pre-started
workers, and fast node-failure detection (GCS health checks every second).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gpupool.adapters.ray import naming, procs
from gpupool.core.model import NodeSpec
from gpupool.core.resources import GPU_MILLI, GPU_TYPE_LABEL, QuantityError, parse_quantity

log = logging.getLogger(__name__)

GIB = 1024**3
DEFAULT_OBJECT_STORE_BYTES = 100 * 1000 * 1000
DEFAULT_ORPHAN_TIMEOUT = 300.0  # seconds a cluster waits to be adopted after its owner died
RECORD_FILE = "cluster.json"
START_RETRIES = 2  # more starts of a node whose Ray processes exited while starting

# Environment of every node's Ray processes (and so of Ray's workers and the jobs' drivers).
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray resolve 127.0.0.1 to itself: see _raystart.
NODE_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_enable_worker_prestart": "0",
    "RAY_prestart_worker_first_driver": "0",
    "RAY_num_workers_soft_limit": "1",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "4",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
}


class ClusterError(RuntimeError):
    """The local cluster could not start (or a node could not join)."""


@dataclass(frozen=True, slots=True)
class LocalNode:
    """One worker node: ``gpus`` logical GPUs of ``gpu_type``, ``cpus`` logical CPUs, ``memory`` bytes."""

    name: str
    gpu_type: str
    gpus: int
    cpus: int
    memory: int
    pool: str | None = None  # set for a node a node provider launched for a node pool

    def node_spec(self) -> NodeSpec:
        return NodeSpec(
            self.name,
            {"gpu": self.gpus * GPU_MILLI, "vcore": self.cpus * 1000, "memory": self.memory},
            {GPU_TYPE_LABEL: self.gpu_type} if self.gpu_type else {},
        )


_GROUP = re.compile(
    r"^(?:(\d+)\s*[xX]\s*)?([A-Za-z0-9][A-Za-z0-9_-]*)\s*:\s*(\d+)((?:\s*:\s*[a-z]+=[^:,]+)*)$"
)


def parse_cluster_spec(text: str, existing: list[LocalNode] | None = None) -> list[LocalNode]:
    """Parse ``"2xH100:4,1xA100:8"``: COUNTxTYPE:GPUS per group, comma separated.

    A group may add ``:cpu=N`` and ``:memory=QUANTITY`` (defaults: 8 CPUs and 64Gi per GPU).
    Nodes are named ``<type>-<i>`` in lower case (``h100-0``, ``h100-1``, ``a100-0``), numbering
    on from ``existing`` nodes of the same type.
    """
    nodes: list[LocalNode] = []
    taken = {n.name for n in existing or ()}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        m = _GROUP.match(part)
        if m is None:
            raise ValueError(
                f"invalid cluster spec part {part!r}\nHint: use COUNTxTYPE:GPUS, e.g. 2xH100:4,1xA100:8"
            )
        count = int(m.group(1) or 1)
        gpu_type, gpus = m.group(2), int(m.group(3))
        cpus, memory = max(4, 8 * gpus), max(16, 64 * gpus) * GIB
        for opt in filter(None, (o.strip() for o in m.group(4).split(":"))):
            key, _, value = opt.partition("=")
            try:
                if key == "cpu":
                    cpus = int(value)
                elif key == "memory":
                    memory = parse_quantity("memory", value.strip())
                else:
                    raise ValueError(
                        f"unknown option {key!r} in {part!r}\nHint: options are cpu= and memory="
                    )
            except (QuantityError, ValueError) as exc:
                raise ValueError(f"invalid cluster spec part {part!r}: {exc}") from exc
        i = 0
        for _ in range(count):
            while f"{gpu_type.lower()}-{i}" in taken:
                i += 1
            name = f"{gpu_type.lower()}-{i}"
            taken.add(name)
            nodes.append(LocalNode(name, gpu_type, gpus, cpus, memory))
    if not nodes:
        raise ValueError("empty cluster spec\nHint: e.g. 2xH100:4,1xA100:8")
    return nodes


def free_port() -> int:
    """A port free on 127.0.0.1 now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gcs_answers(address: str, timeout: float = 2.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _node_from_json(raw: dict[str, Any]) -> LocalNode:
    return LocalNode(
        str(raw["name"]),
        str(raw.get("gpu_type") or ""),
        int(raw["gpus"]),
        int(raw["cpus"]),
        int(raw["memory"]),
        raw.get("pool"),
    )


def _node_to_json(node: LocalNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "gpu_type": node.gpu_type,
        "gpus": node.gpus,
        "cpus": node.cpus,
        "memory": node.memory,
        "pool": node.pool,
    }


@dataclass(slots=True)
class _Proc:
    """A node's ``ray start`` process: started here (``popen``) or adopted from a record."""

    name: str
    pid: int  # leads the node's process group (and session)
    start: int | None  # its start time (procs.start_time), None if unknown
    out_path: Path
    popen: subprocess.Popen[bytes] | None = None
    out: IO[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return procs.alive(self.pid, self.start)

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None


class LocalRayCluster:
    """A Ray cluster of local processes: ``start() -> address``, ``stop()``, node helpers.

    ``spec`` is a spec string for ``parse_cluster_spec`` or a list of ``LocalNode``. Ray's temp
    dirs live in a short directory under /tmp (Unix socket paths are limited to ~107 bytes);
    the ``ray start`` output of each node goes to ``data_dir/ray/<node>.out``.
    Optional: ``object_store_bytes`` per node (default 100 MB), ``start_timeout`` seconds,
    ``orphan_timeout`` seconds (default 300) after which the watchdog stops a cluster whose
    owner died and that nobody adopted.

    One cluster per data dir: ``start`` records the cluster in ``data_dir/ray/cluster.json``
    (``procs``). When a record is there already (its owner was killed), ``start`` adopts the
    cluster if its head still runs and it has the same static nodes (it restarts static nodes
    that died; pool nodes still running are kept, see ``pool_nodes``); otherwise it stops what
    is left of the recorded processes, and only those, and starts a new cluster. ``recovery``
    says which happened. It refuses to start while the recorded owner still runs.
    """

    def __init__(
        self,
        spec: str | list[LocalNode],
        data_dir: str | Path,
        *,
        object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
        start_timeout: float = 90.0,
        orphan_timeout: float = DEFAULT_ORPHAN_TIMEOUT,
    ) -> None:
        self.spec: list[LocalNode] = parse_cluster_spec(spec) if isinstance(spec, str) else list(spec)
        self.data_dir = Path(data_dir)
        self.object_store_bytes = object_store_bytes
        self.start_timeout = start_timeout
        self.orphan_timeout = orphan_timeout
        self.address: str | None = None
        self.recovery = ""  # what start() found: "", "adopted ...", "replaced ..."
        self.adopted = False  # start() adopted a running cluster
        self._procs: dict[str, _Proc] = {}  # node name ("head" for the head) -> its ray start
        self._nodes: dict[str, LocalNode] = {}
        self._tmp: Path | None = None
        self._atexit = False
        self._id: str | None = None
        self._watchdog: tuple[int, int | None] | None = None
        self._record_lock = threading.RLock()
        self._spawn_args: dict[str, list[str]] = {}

    @property
    def record_path(self) -> Path:
        return self.data_dir / "ray" / RECORD_FILE

    @staticmethod
    def recorded_spec(data_dir: str | Path) -> list[LocalNode] | None:
        """The static nodes of the cluster recorded in ``data_dir``, if one is."""
        record = procs.read_record(Path(data_dir) / "ray" / RECORD_FILE)
        if record is None:
            return None
        return [_node_from_json(n) for n in record.get("spec") or []]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Adopt the cluster recorded in the data dir, or start the head and every node; return
        the GCS address ``127.0.0.1:<port>``."""
        if self.address is not None:
            return self.address
        (self.data_dir / "ray").mkdir(parents=True, exist_ok=True)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        record = procs.read_record(self.record_path)
        if record is not None:
            owner = record.get("owner") or {}
            if owner.get("pid") != os.getpid() and procs.alive(int(owner.get("pid", 0)), owner.get("start")):
                raise ClusterError(
                    f"the Ray cluster of {self.data_dir} is run by another process (pid {owner['pid']})\n"
                    "Hint: stop that `gpupool up` first, or use another --data-dir"
                )
            try:
                if self._adopt(record):
                    return str(self.address)
            except BaseException:
                self.stop()
                raise
        return self._start_fresh()

    def _start_fresh(self) -> str:
        self._tmp = Path(tempfile.mkdtemp(prefix="gpr-", dir="/tmp"))
        self._id = self._tmp.name
        port = free_port()
        head = [
            "--head",
            f"--port={port}",
            "--num-cpus=0",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            "--disable-usage-stats",
        ]
        try:
            self._spawn("head", head)
            self._wait_started(["head"])
            self.address = f"127.0.0.1:{port}"
            self._record()
            self._spawn_watchdog()
            for node in self.spec:
                self._spawn_node(node)
            self._wait_started([n.name for n in self.spec])
        except BaseException:
            self.stop()
            raise
        return self.address

    def _adopt(self, record: dict[str, Any]) -> bool:
        """Take over the recorded cluster if it still runs with our static nodes; else stop what
        is left of it. True if adopted."""
        nodes: dict[str, Any] = record.get("nodes") or {}
        head: dict[str, Any] = nodes.get("head") or {}
        address = str(record.get("address") or "")
        recorded = [_node_from_json(n) for n in record.get("spec") or []]
        same = recorded == self.spec
        head_alive = bool(head) and procs.alive(int(head["pid"]), head.get("start"))
        if not (same and head_alive and address and _gcs_answers(address)):
            left = procs.stop_recorded(record, graceful=False)
            with contextlib.suppress(FileNotFoundError):
                self.record_path.unlink()
            why = "its static nodes differ from --cluster" if not same and head_alive else "it was gone"
            self.recovery = (
                f"replaced the Ray cluster recorded in {self.record_path} ({why}; "
                f"stopped {left} process groups left of it)"
            )
            return False
        self._id = str(record["id"])
        self._tmp = Path(record["tmp"])
        self.address = address
        specs = {n["name"]: _node_from_json(n) for n in record.get("node_specs") or []}
        for name, raw in nodes.items():
            proc = _Proc(name, int(raw["pid"]), raw.get("start"), self.data_dir / "ray" / f"{name}.out")
            if not proc.alive():
                continue
            self._procs[name] = proc
            if name != "head" and name in specs:
                self._nodes[name] = specs[name]
        watchdog = record.get("watchdog") or {}
        if watchdog and procs.alive(int(watchdog.get("pid", 0)), watchdog.get("start")):
            self._watchdog = (int(watchdog["pid"]), watchdog.get("start"))
        self._record()  # the new owner, and only the processes still running
        if self._watchdog is None:
            self._spawn_watchdog()
        restarted = [n for n in self.spec if n.name not in self._procs]
        try:
            for node in restarted:
                self._spawn_node(node)
            self._wait_started([n.name for n in restarted])
        except BaseException:
            self.stop()
            raise
        self.adopted = True
        again = f"; restarted {', '.join(n.name for n in restarted)}" if restarted else ""
        pools = self.pool_nodes()
        kept = f"; pool nodes still running: {', '.join(n.name for n in pools)}" if pools else ""
        self.recovery = f"adopted the running Ray cluster at {address} (head pid {head['pid']}){again}{kept}"
        return True

    def stop(self) -> None:
        """Stop every node (workers first, then the head) and the watchdog, remove Ray's temp dir
        and the record. Idempotent."""
        self._terminate_many([n for n in self._procs if n != "head"], graceful=True)
        self._terminate_many(["head"], graceful=True)
        if self._watchdog is not None:
            procs.stop_groups([self._watchdog], graceful=False)
            self._watchdog = None
        self._nodes.clear()
        self.address = None
        if self._id is not None:
            procs.remove_record(self.record_path, self._id)
            self._id = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ nodes

    def nodes(self) -> list[NodeSpec]:
        """The worker nodes whose Ray processes run, as core NodeSpecs (the head is not one)."""
        procs_now = dict(self._procs)  # copies: a node provider adds and removes nodes from threads
        return [
            node.node_spec()
            for name, node in list(self._nodes.items())
            if name in procs_now and procs_now[name].alive()
        ]

    def pool_nodes(self) -> list[LocalNode]:
        """The nodes a node provider launched (``pool`` set) whose Ray processes run."""
        procs_now = dict(self._procs)
        return [
            node
            for name, node in sorted(self._nodes.items())
            if node.pool and name in procs_now and procs_now[name].alive()
        ]

    def add_node(self, node: LocalNode | str) -> list[str]:
        """Add nodes (a ``LocalNode`` or a spec string like ``1xA100:4``); wait until they run."""
        if self.address is None:
            raise ClusterError("the cluster is not started\nHint: call start() first")
        new = [node] if isinstance(node, LocalNode) else parse_cluster_spec(node, list(self._nodes.values()))
        for n in new:
            if n.name in self._procs:
                raise ClusterError(f"node {n.name!r} already runs")
            self._spawn_node(n)
        self._wait_started([n.name for n in new])
        return [n.name for n in new]

    def remove_node(self, name: str) -> None:
        """Stop a node gracefully (Ray marks it dead at once)."""
        self._terminate(name, graceful=True)
        self._nodes.pop(name, None)
        self._record()

    def kill_node(self, name: str) -> None:
        """Kill a node's processes with SIGKILL, as a machine failure would (Ray notices in ~5 s)."""
        self._terminate(name, graceful=False)

    def pids(self, name: str) -> list[int]:
        """The pids of a node's Ray processes (its process group)."""
        proc = self._procs.get(name)
        if proc is None:
            return []
        return procs.group_members(proc.pid)

    def recorded_pids(self) -> list[int]:
        """Every live process of the cluster's recorded process groups (nodes and watchdog)."""
        record = procs.read_record(self.record_path)
        if record is None:
            return []
        return sorted(pid for pgid, _ in procs.recorded_groups(record) for pid in procs.group_members(pgid))

    # ------------------------------------------------------------------ internals

    def _record(self) -> None:
        """Write the cluster's identity and its processes to ``data_dir/ray/cluster.json``."""
        if self._id is None or self.address is None:
            return
        with self._record_lock:
            record = {
                "version": procs.RECORD_VERSION,
                "id": self._id,
                "address": self.address,
                "tmp": str(self._tmp),
                "owner": {"pid": os.getpid(), "start": procs.start_time(os.getpid())},
                "orphan_timeout": self.orphan_timeout,
                "spec": [_node_to_json(n) for n in self.spec],
                "node_specs": [_node_to_json(n) for n in self._nodes.values()],
                "nodes": {name: {"pid": p.pid, "start": p.start} for name, p in list(self._procs.items())},
                "watchdog": (
                    {"pid": self._watchdog[0], "start": self._watchdog[1]} if self._watchdog else None
                ),
            }
            procs.write_record(self.record_path, record)

    def _spawn_watchdog(self) -> None:
        out = (self.data_dir / "ray" / "watchdog.out").open("ab")
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "gpupool.adapters.ray._watchdog", str(self.record_path.absolute())],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            out.close()
        self._watchdog = (popen.pid, procs.start_time(popen.pid))
        self._record()

    def _spawn_node(self, node: LocalNode) -> None:
        resources = {naming.node_resource(node.name): naming.NODE_RESOURCE_UNITS}
        labels = {naming.NODE_LABEL: node.name}
        if node.gpu_type:
            resources[naming.GPU_TYPE_RESOURCE_PREFIX + node.gpu_type] = node.gpus
            labels[naming.GPU_TYPE_LABEL] = node.gpu_type
        if node.pool:
            labels[naming.POOL_LABEL] = node.pool
        args = [
            f"--address={self.address}",
            f"--num-cpus={node.cpus}",
            f"--num-gpus={node.gpus}",
            f"--memory={node.memory}",
            f"--resources={json.dumps(resources)}",
            "--labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
        ]
        self._nodes[node.name] = node
        self._spawn(node.name, args)

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self._tmp is not None
        self._spawn_args[name] = args
        temp_dir = self._tmp / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "gpupool.adapters.ray._raystart",
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--node-name={name}",
            f"--temp-dir={temp_dir}",
            f"--object-store-memory={self.object_store_bytes}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            *args,
        ]
        out_path = self.data_dir / "ray" / f"{name}.out"
        out = out_path.open("wb")
        env = {**os.environ, **NODE_ENV}
        popen = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self._procs[name] = _Proc(name, popen.pid, procs.start_time(popen.pid), out_path, popen, out)
        self._record()

    def _wait_started(self, names: list[str]) -> None:
        deadline = time.perf_counter() + self.start_timeout  # for each go, so pushed on by a retry
        waiting = set(names)
        retries = dict.fromkeys(names, START_RETRIES)
        while waiting:
            for name in sorted(waiting):
                proc = self._procs[name]
                text = proc.out_path.read_text(errors="replace")
                if "Ray runtime started" in text:
                    waiting.discard(name)
                elif not proc.alive() and retries[name]:
                    # Ray gives a raylet fixed times to come up (30 s to register, a few seconds for
                    # its metrics agent): on a busy machine a node may need another go.
                    retries[name] -= 1
                    log.warning("Ray node %s exited while starting; starting it again", name)
                    self._terminate_many([name], graceful=False)
                    self._spawn(name, self._spawn_args[name])
                    deadline = time.perf_counter() + self.start_timeout
                elif not proc.alive():
                    tail = "\n".join(text.splitlines()[-15:])
                    raise ClusterError(
                        f"Ray node {name} exited with code {proc.exit_code()} while starting:\n{tail}\n"
                        f"Hint: see {proc.out_path}"
                    )
            if waiting and time.perf_counter() > deadline:
                raise ClusterError(
                    f"Ray nodes {sorted(waiting)} did not start within {self.start_timeout:.0f}s\n"
                    f"Hint: see {self.data_dir / 'ray'}"
                )
            if waiting:
                time.sleep(0.2)

    def _terminate(self, name: str, graceful: bool) -> None:
        self._terminate_many([name], graceful)

    def _terminate_many(self, names: list[str], graceful: bool, grace: float = 3.0) -> None:
        stopping = [p for p in (self._procs.pop(n, None) for n in names) if p is not None]
        # start_new_session: each ray start process leads its own group, which holds its node.
        procs.stop_groups([(p.pid, p.start) for p in stopping], graceful=graceful, grace=grace)
        for proc in stopping:
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5)
            if proc.out is not None:
                proc.out.close()
        if stopping:
            self._record()
