"""A local multi-node Ray cluster on this machine, whose nodes declare logical GPUs of named types.

``LocalRayCluster(spec, data_dir).start()`` runs one ``ray start --block`` process per node, each
in its own process group (so one node can be stopped or killed alone), all bound to 127.0.0.1:
a head node without GPUs and CPUs (it runs the GCS and the drivers) and one worker node per
entry of the spec, e.g. ``parse_cluster_spec("2xH100:4,1xA100:4")``. Nothing needs GPU
hardware: the GPUs are Ray's logical ``GPU`` resource, so Ray still assigns GPU ids.

A worker node is recognised by gpupool through the resources and labels in
``gpupool.adapters.ray.naming``: a stable gpupool name (``h100-0``) and its GPU type.

Budget for small machines: no dashboard, a 100 MB object store per node, no pre-started
workers, and fast node-failure detection (GCS health checks every second).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gpupool.adapters.ray import naming
from gpupool.core.model import NodeSpec
from gpupool.core.resources import GPU_TYPE_LABEL, QuantityError, parse_quantity

GIB = 1024**3
DEFAULT_OBJECT_STORE_BYTES = 100 * 1000 * 1000

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
            {"gpu": self.gpus, "vcore": self.cpus * 1000, "memory": self.memory},
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    out_path: Path
    out: IO[bytes]


class LocalRayCluster:
    """A Ray cluster of local processes: ``start() -> address``, ``stop()``, node helpers.

    ``spec`` is a spec string for ``parse_cluster_spec`` or a list of ``LocalNode``. Ray's temp
    dirs live in a short directory under /tmp (Unix socket paths are limited to ~107 bytes);
    the ``ray start`` output of each node goes to ``data_dir/ray/<node>.out``.
    Optional: ``object_store_bytes`` per node (default 100 MB), ``start_timeout`` seconds.
    """

    def __init__(
        self,
        spec: str | list[LocalNode],
        data_dir: str | Path,
        *,
        object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
        start_timeout: float = 90.0,
    ) -> None:
        self.spec: list[LocalNode] = parse_cluster_spec(spec) if isinstance(spec, str) else list(spec)
        self.data_dir = Path(data_dir)
        self.object_store_bytes = object_store_bytes
        self.start_timeout = start_timeout
        self.address: str | None = None
        self._procs: dict[str, _Proc] = {}  # node name ("head" for the head) -> its ray start
        self._nodes: dict[str, LocalNode] = {}
        self._tmp: Path | None = None
        self._atexit = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Start the head and every node; return the GCS address ``127.0.0.1:<port>``."""
        if self.address is not None:
            return self.address
        (self.data_dir / "ray").mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="gpr-", dir="/tmp"))
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        port = _free_port()
        head = [
            "--head",
            f"--port={port}",
            "--num-cpus=0",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--dashboard-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",
            "--disable-usage-stats",
        ]
        try:
            self._spawn("head", head)
            self._wait_started(["head"])
            self.address = f"127.0.0.1:{port}"
            for node in self.spec:
                self._spawn_node(node)
            self._wait_started([n.name for n in self.spec])
        except BaseException:
            self.stop()
            raise
        return self.address

    def stop(self) -> None:
        """Stop every node (workers first, then the head) and remove Ray's temp dir. Idempotent."""
        self._terminate_many([n for n in self._procs if n != "head"], graceful=True)
        self._terminate_many(["head"], graceful=True)
        self._nodes.clear()
        self.address = None
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
        procs = dict(self._procs)  # copies: a node provider adds and removes nodes from threads
        return [
            node.node_spec()
            for name, node in list(self._nodes.items())
            if name in procs and procs[name].popen.poll() is None
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

    def kill_node(self, name: str) -> None:
        """Kill a node's processes with SIGKILL, as a machine failure would (Ray notices in ~5 s)."""
        self._terminate(name, graceful=False)

    def pids(self, name: str) -> list[int]:
        """The pids of a node's Ray processes (its process group)."""
        proc = self._procs.get(name)
        if proc is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(proc.popen.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    # ------------------------------------------------------------------ internals

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
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
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
        self._procs[name] = _Proc(name, popen, out_path, out)

    def _wait_started(self, names: list[str]) -> None:
        deadline = time.perf_counter() + self.start_timeout
        waiting = set(names)
        while waiting:
            for name in sorted(waiting):
                proc = self._procs[name]
                text = proc.out_path.read_text(errors="replace")
                if "Ray runtime started" in text:
                    waiting.discard(name)
                elif proc.popen.poll() is not None:
                    tail = "\n".join(text.splitlines()[-15:])
                    raise ClusterError(
                        f"Ray node {name} exited with code {proc.popen.returncode} while starting:\n{tail}\n"
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
        procs = [p for p in (self._procs.pop(n, None) for n in names) if p is not None]
        # start_new_session: each ray start process leads its own group, which holds its node.
        if graceful:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
            deadline = time.perf_counter() + grace
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=max(0.0, deadline - time.perf_counter()))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
            proc.out.close()
