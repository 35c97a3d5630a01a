"""The two runs of ``gpupool bench serve`` and its plot: the same load, two autoscalers.

* ``run_ray_serve``: Ray Serve's own autoscaling, no gpupool. A local Ray cluster
  (``LocalRayCluster`` on 127.0.0.1, stopped after by its own ``stop()``), Serve on it
  (``HeadOnly`` proxy on 127.0.0.1), and the demo model ``serve.run`` with an
  ``autoscaling_config`` of the load's min/max/target/delays/look-back and ``num_gpus`` per
  replica (logical GPUs). Replicas are all those ``serve.status()`` lists (starting, running or
  stopping: each holds its GPUs), as the gpupool run counts its placed and draining ones.
* ``run_gpupool``: ``gpupool up`` as a subprocess on a fresh data dir (its own Ray cluster, a
  queue configuration of two queues, ``root.serving`` and ``root.batch``), the demo deployed
  with the SDK into ``root.serving`` with the same settings, the load sent to the deployment's
  URL. ``gpupool up`` is stopped with SIGINT and shuts its cluster down. With a batch backlog,
  ``root.batch`` is first filled with sleeping jobs; the GPUs batch holds are sampled too.

Everything the gpupool run asks of the platform's deployments goes through one function,
``gpupool_deployment``. A run that cannot be made raises ``RunError`` with one line saying why
(a refused deployment among them): the command reports it for that run, not as a traceback.

This module, a benchmark, imports ``ray`` (lazily, for the Ray Serve run) outside the Ray
adapter: Ray Serve's own autoscaler is what it measures against.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gpupool.adapters.ray.cluster import free_port
from gpupool.bench.serve import LoadResult, ServeLoad, drive, figures

SERVE_APP = "bench"
ROUTE = "/bench"
SERVING_QUEUE = "root.serving"
BATCH_QUEUE = "root.batch"
DEPLOYMENT = "bench-serve"
DEFAULT_CLUSTER = "2xT4:4:cpu=4:memory=16Gi"
REPLICA_CPU = 0.5
REPLICA_MEMORY = "1Gi"
ENDED = ("failed", "cancelled", "succeeded")  # workload states of a deployment that is over
START_TIMEOUT = 300.0  # seconds for a cluster, Serve, `gpupool up` or the first replica


class RunError(RuntimeError):
    """One run could not be made; the message (one line) says why."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def cluster_gpus(spec: str) -> float:
    """The GPUs of a cluster spec (``2xT4:4`` -> 8); ``RunError`` if the spec is bad."""
    from gpupool.adapters.ray.cluster import parse_cluster_spec

    try:
        return float(sum(n.gpus for n in parse_cluster_spec(spec)))
    except ValueError as exc:
        raise RunError(f"--cluster {spec!r}: {_one_line(exc)}") from None


def _wait(what: str, ready: Callable[[], bool], timeout: float | None = None, every: float = 0.5) -> None:
    timeout = START_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RunError(f"{what} within {timeout:g} s")
        time.sleep(every)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


# ------------------------------------------------------------------------------ Ray Serve


def run_ray_serve(
    load: ServeLoad, cluster_spec: str, workdir: Path, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Run the load against the demo under Ray Serve's own autoscaling; the run's figures."""
    from gpupool.adapters.ray.cluster import ClusterError, LocalRayCluster

    cluster_gpus(cluster_spec)
    cluster = LocalRayCluster(cluster_spec, workdir / "ray-serve")
    try:
        echo(f"ray_serve: starting a local Ray cluster ({cluster_spec}) ...")
        try:
            address = cluster.start()
        except ClusterError as exc:
            raise RunError(f"the local Ray cluster did not start: {_one_line(exc)}") from None
        ray = _connect(address)
        try:
            url, running = _serve_demo(load)
            echo(f"ray_serve: the demo answers at {url}; sending the load ({load.seconds:g} s) ...")
            result = drive(url, load, sample=running)
        finally:
            with contextlib.suppress(Exception):
                from ray import serve

                serve.shutdown()
            ray.shutdown()
    finally:
        cluster.stop()
    return figures(result, load)


def _connect(address: str) -> Any:
    """Connect this process to the local cluster at ``address`` (kept on 127.0.0.1, as the
    executor does); ``RunError`` if it is connected to a Ray already."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        raise RunError("this process is connected to a Ray cluster already; run the benchmark on its own")
    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    return ray


def _serve_demo(load: ServeLoad) -> tuple[str, Callable[[], int]]:
    """Serve on the connected cluster and the demo on it, autoscaled by Serve; its URL and a
    function counting its running replicas."""
    from ray import serve

    from gpupool.serving_demo import WORK_ENV, Demo

    port = free_port()
    quiet = logging.getLogger("ray.serve")  # Serve's progress lines: before and after its start,
    quiet.setLevel(logging.WARNING)  # which sets the logger up again
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    quiet.setLevel(logging.WARNING)
    app = Demo.options(  # type: ignore[attr-defined]
        max_ongoing_requests=load.max_ongoing_requests,
        autoscaling_config={
            "min_replicas": load.min_replicas,
            "max_replicas": load.max_replicas,
            "target_ongoing_requests": load.target_ongoing_requests,
            "upscale_delay_s": load.upscale_delay,
            "downscale_delay_s": load.downscale_delay,
            "look_back_period_s": load.look_back,
        },
        ray_actor_options={
            "num_cpus": 0,
            "num_gpus": load.gpus,
            "runtime_env": {"env_vars": {WORK_ENV: f"{load.work_ms:g}"}},
        },
    ).bind()
    try:
        serve.run(app, name=SERVE_APP, route_prefix=ROUTE)
    except Exception as exc:  # Serve's own message: a replica that failed to start, a bad option
        raise RunError(f"Ray Serve did not run the demo: {_one_line(exc)[:500]}") from None
    url = f"http://127.0.0.1:{port}{ROUTE}"
    _wait("Serve's proxy did not answer the demo's /healthz", lambda: _answers(f"{url}/healthz"))

    def running() -> int:
        app_status = serve.status().applications.get(SERVE_APP)
        if app_status is None:
            return 0
        # Every replica that exists (starting, running or stopping) holds its GPUs, as a
        # gpupool replica placed or draining does: the two runs count alike.
        return sum(n for dep in app_status.deployments.values() for n in dep.replica_states.values())

    return url, running


# ------------------------------------------------------------------------------ gpupool


def queues_yaml(load: ServeLoad, total_gpus: float) -> str:
    """The queue configuration of the gpupool run: the deployment's queue, guaranteed
    ``guaranteed_replicas`` (by default what the peak needs: batch may borrow them while the
    deployment does not use them, and gives them back when it scales up) and capped at its max
    replicas, and a batch queue that may fill the whole cluster."""
    guaranteed = load.guaranteed_replicas * load.gpus
    cap = load.max_replicas * load.gpus
    return f"""# gpupool bench serve: the deployment's queue and a batch queue
partitions:
  - name: default
    placementrules: [{{name: provided}}]
    preemption: {{enabled: true}}
    queues:
      - name: root
        submitacl: "*"
        queues:
          - name: serving
            properties: {{preemption.delay: 5s}}
            resources: {{guaranteed: {{gpu: {guaranteed:g}}}, max: {{gpu: {cap:g}}}}}
          - name: batch
            resources: {{max: {{gpu: {total_gpus:g}}}}}
"""


def queue_max_replicas(load: ServeLoad) -> int:
    """How many replicas the deployment's queue allows: its max (``queues_yaml``) is exactly
    ``max_replicas`` replicas' GPUs."""
    return load.max_replicas


@contextlib.contextmanager
def gpupool_platform(
    load: ServeLoad, cluster_spec: str, workdir: Path, echo: Callable[[str], None]
) -> Iterator[Any]:
    """``gpupool up`` on a fresh data dir under ``workdir``, as a subprocess; yields an SDK
    ``Client`` of it, and stops it with SIGINT (it stops its own cluster) on the way out."""
    from gpupool.client import Client

    data = workdir / "gpupool"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "queues.yaml"
    config.write_text(queues_yaml(load, cluster_gpus(cluster_spec)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "gpupool-up.log"
    echo(f"gpupool: starting `gpupool up` ({cluster_spec}) on {url} ...")
    with log_path.open("ab") as log:
        cmd = [sys.executable, "-m", "gpupool.cli.main", "up", "--data-dir", str(data), "--port", str(port)]
        cmd += ["--cluster", cluster_spec, "--config", str(config)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
                last = lines[-1] if lines else "no output"
                raise RunError(f"`gpupool up` exited with {proc.returncode}: {_one_line(last)}")
            return _answers(f"{url}/healthz")

        _wait("`gpupool up` did not answer /healthz", up)
        token = (data / "admin.token").read_text().strip()
        with Client(url, token) as client:
            yield client
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (Ctrl-C: `gpupool up` stops its cluster), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 180.0), (signal.SIGTERM, 30.0), (signal.SIGKILL, 30.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


@contextlib.contextmanager
def gpupool_deployment(
    client: Any, load: ServeLoad, name: str = DEPLOYMENT
) -> Iterator[tuple[str, Callable[[], int]]]:
    """Deploy the demo into ``root.serving`` with the load's settings, wait until it answers,
    yield (its URL, a function counting its replicas that take requests), undeploy after.

    The one place that speaks to the platform's deployments: ``Client.deploy``, then
    ``client.deployment(name)`` every 0.5 s until ``url`` is set and a replica takes requests
    (``ready``); the count it yields is of the replicas holding GPUs (placed or draining)."""
    from gpupool.client import ApiError
    from gpupool.serving_demo import WORK_ENV

    gpus: int | float = int(load.gpus) if float(load.gpus).is_integer() else load.gpus
    try:
        client.deploy(
            name,
            import_path="gpupool.serving_demo:app",
            queue=SERVING_QUEUE,
            gpus=gpus,
            cpu=REPLICA_CPU,
            memory=REPLICA_MEMORY,
            min_replicas=load.min_replicas,
            max_replicas=load.max_replicas,
            target_ongoing_requests=load.target_ongoing_requests,
            max_ongoing_requests=load.max_ongoing_requests,
            upscale_delay=load.upscale_delay,
            downscale_delay=load.downscale_delay,
            look_back=load.look_back,
            env={WORK_ENV: f"{load.work_ms:g}"},
        )
    except ApiError as exc:
        raise RunError(
            f"gpupool refused the deployment: {_one_line(exc.message)} [{exc.status} {exc.code}]"
        ) from None

    def replicas(d: Any) -> int:
        # Replicas holding GPUs: placed (starting or serving) and draining ones, as the ray_serve
        # run counts every replica that exists.
        return sum(1 for r in d.replicas if r.state in ("placed", "draining"))

    try:
        last: list[Any] = [None]

        def serving() -> bool:
            d = last[0] = client.deployment(name)
            if d.state in ENDED:
                raise RunError(f"the deployment ended {d.state}: {_one_line(d.reason)}")
            return bool(d.url) and d.ready >= 1

        try:
            _wait("the deployment did not answer", serving)
        except RunError as exc:
            d = last[0]
            if d is None or d.state in ENDED or not (d.held or d.reason):
                raise
            raise RunError(f"{exc} ({_one_line(d.held or d.reason)})") from None
        url = str(last[0].url).rstrip("/")
        yield url, lambda: replicas(client.deployment(name))
    finally:
        with contextlib.suppress(ApiError):
            client.undeploy(name)


def _queue_gpus(client: Any, path: str = BATCH_QUEUE) -> float:
    for q in client.queues():
        if q.path == path:
            return float(q.allocated.get("gpu", 0))
    return 0.0


@contextlib.contextmanager
def batch_backlog(client: Any, jobs: int, seconds: float, total_gpus: float) -> Iterator[list[str]]:
    """``jobs`` one-GPU jobs sleeping ``seconds`` in ``root.batch`` (preemptible, 1 s grace);
    waits (120 s at most) until batch holds every GPU the deployment's queue does not, yields
    their ids, cancels them after."""
    from gpupool.client import ApiError

    ids: list[str] = []
    try:
        for i in range(jobs):
            try:
                w = client.submit(
                    f"bench-batch-{i}",
                    entrypoint=f"sleep {math.ceil(seconds)}",
                    queue=BATCH_QUEUE,
                    task_groups=[{"name": "worker", "gpus": 1, "cpu": REPLICA_CPU, "memory": REPLICA_MEMORY}],
                    grace=1.0,  # preempted, a sleeping job has nothing to save: give its GPU back at once
                )
            except ApiError as exc:
                msg = f"gpupool refused a batch job: {_one_line(exc.message)} [{exc.status} {exc.code}]"
                raise RunError(msg) from None
            ids.append(w.id)
        room = min(float(jobs), total_gpus - _queue_gpus(client, SERVING_QUEUE))
        with contextlib.suppress(RunError):  # the load runs anyway; the figures show what batch held
            _wait("batch did not fill the cluster", lambda: _queue_gpus(client) >= room, timeout=120.0)
        yield ids
    finally:
        for wid in ids:
            with contextlib.suppress(ApiError):
                client.cancel(wid)


def run_gpupool(
    load: ServeLoad,
    cluster_spec: str,
    workdir: Path,
    echo: Callable[[str], None],
    *,
    backlog: bool = False,
) -> dict[str, Any]:
    """Run the load against the demo deployed on gpupool (after filling ``root.batch`` with a
    backlog, if asked); the run's figures, with the batch GPUs when there is a backlog."""
    total = cluster_gpus(cluster_spec)
    with gpupool_platform(load, cluster_spec, workdir, echo) as client:
        echo(f"gpupool: deploying the demo into {SERVING_QUEUE} ...")
        with gpupool_deployment(client, load) as (url, replicas):
            batch: list[tuple[float, float]] = []
            with contextlib.ExitStack() as stack:
                sample = replicas
                if backlog:
                    jobs = math.ceil(total)
                    echo(f"gpupool: filling {BATCH_QUEUE} with {jobs} one-GPU jobs ...")
                    stack.enter_context(batch_backlog(client, jobs, load.seconds + START_TIMEOUT, total))
                    sample = _with_batch(client, replicas, batch)
                echo(f"gpupool: the deployment answers at {url}; sending the load ({load.seconds:g} s) ...")
                result = drive(url, load, sample=sample)
    out = figures(result, load)
    if backlog:
        out.update(_batch_figures(batch, result, load))
    return out


def _with_batch(
    client: Any, replicas: Callable[[], int], batch: list[tuple[float, float]]
) -> Callable[[], int]:
    """``replicas``, also noting the GPUs ``root.batch`` holds at each sample."""
    start = time.perf_counter()

    def sample() -> int:
        n = replicas()
        batch.append((time.perf_counter() - start, _queue_gpus(client)))
        return n

    return sample


def _batch_figures(batch: list[tuple[float, float]], result: LoadResult, load: ServeLoad) -> dict[str, Any]:
    from gpupool.bench.serve import gpu_seconds

    end = max(load.seconds, result.elapsed)
    held = [g for _, g in batch]
    return {
        "batch_gpus_peak": max(held, default=0.0),
        "batch_gpus_min": min(held, default=0.0),
        "batch_gpu_seconds": round(gpu_seconds(batch, 1.0, end), 1),
        "min_replicas_kept": min((n for _, n in result.samples), default=0) >= load.min_replicas,
    }


# ------------------------------------------------------------------------------ plot


def write_plot(directory: Path, runs: dict[str, dict[str, Any] | None], load: ServeLoad) -> Path:
    """A PNG of each run's replicas over time and the request rate sent: ``DIR/bench-serve.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench-serve.png"
    colours = {"gpupool": "#2b6cb0", "ray_serve": "#c05621"}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, run in runs.items():
        if not run or not run.get("timeline"):
            continue
        xs = [t for t, _ in run["timeline"]]
        ys = [n for _, n in run["timeline"]]
        top.step(xs, ys, where="post", label=name, color=colours.get(name))
        sent = run.get("sent_per_s") or []
        smooth = [
            sum(sent[max(0, i - 4) : i + 1]) / len(sent[max(0, i - 4) : i + 1]) for i in range(len(sent))
        ]
        bottom.plot(range(len(sent)), smooth, label=name, color=colours.get(name), alpha=0.8)
    top.axhline(load.needed_replicas, color="grey", linestyle=":", label="needed at the peak")
    top.axhline(queue_max_replicas(load), color="black", linestyle="--", linewidth=0.8, label="queue max")
    for ax in (top, bottom):
        ax.axvspan(load.peak_start, load.peak_start + load.peak_seconds, color="#f6e05e", alpha=0.15)
    top.set_ylabel("replicas")
    top.legend(loc="upper right", fontsize="small")
    bottom.set_ylabel("requests sent / s\n(mean of 5 s)")
    bottom.set_xlabel("seconds from the start of the load")
    bottom.legend(loc="upper right", fontsize="small")
    fig.suptitle("gpupool bench serve: replicas and load (peak shaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ both

RUNS = ("gpupool", "ray_serve")
FIGURES = ("p50_ms", "p99_ms", "requests", "errors", "gpu_seconds", "peak_replicas", "scale_up_s")


def run_both(
    load: ServeLoad,
    cluster_spec: str,
    runs: list[str],
    *,
    echo: Callable[[str], None],
    backlog: bool = False,
    keep: bool = False,
) -> dict[str, Any]:
    """Make each of ``runs`` in turn; ``{"gpupool": {...} | None, "ray_serve": ..., "queue_max_replicas":
    N, "settings": {...}}``. A run that failed holds ``error`` (one line) and its figures as None.
    The data dirs and logs go in a fresh temporary directory, removed after unless ``keep`` or
    a run failed (its path is then echoed)."""
    import tempfile
    from dataclasses import asdict

    from gpupool.bench.api import BenchError

    workdir = Path(tempfile.mkdtemp(prefix="gpupool-bench-serve-"))
    out: dict[str, Any] = dict.fromkeys(RUNS)
    out["queue_max_replicas"] = queue_max_replicas(load)
    out["settings"] = {**asdict(load), "cluster": cluster_spec, "batch_backlog": backlog}
    failed = False
    try:
        for name in runs:
            try:
                if name == "gpupool":
                    out[name] = run_gpupool(load, cluster_spec, workdir, echo, backlog=backlog)
                else:
                    out[name] = run_ray_serve(load, cluster_spec, workdir, echo)
            except (RunError, BenchError) as exc:
                out[name], failed = {"error": _one_line(exc), **dict.fromkeys(FIGURES)}, True
            except Exception as exc:  # an unforeseen failure of one run: said in one line, logs kept
                why = f"{type(exc).__name__}: {_one_line(exc)[:500]}"
                out[name], failed = {"error": why, **dict.fromkeys(FIGURES)}, True
    finally:
        if keep or failed:
            echo(f"Data dirs and logs of the runs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return out
