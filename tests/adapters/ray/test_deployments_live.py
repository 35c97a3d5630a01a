"""Model deployments end to end, the way a user runs them: ``gpupool up`` (its own local Ray
cluster: two nodes with two T4 each), the CLI and the SDK, and HTTP requests to the URL it prints.

The application is a small Serve app written into a working directory here: it answers after a
pause (so that a replica is the bottleneck), with the node and the GPU ids it sees, and fails in
its constructor when asked to. Queues: ``root.serve`` (guaranteed 1 GPU, max 3) and
``root.batch`` (guaranteed 3 GPUs). The tests run in order on one platform:

1. a deployment answers from the replica the core placed (its node, its GPU);
2. load grows it to the queue's max and not above, and it shrinks back after the downscale
   delay; no request fails, on the client's side or in the front's count;
3. batch jobs within their queue's guarantee take back only the replicas above min, under load,
   and no request fails;
4. a rolling update under load (new settings for the same name): the new revision comes up,
   the one before drains, the URL stays, and no request fails;
5. scale to zero: an idle deployment with min 0 frees its GPUs; the next request waits while a
   replica starts, and is answered;
6. bad input: an import path that does not import (422 naming it, nothing stored), an app that
   fails to start (the CLI says why, exit 1, nothing held), a live name of another user's
   (403), replicas above the queue's max (422);
7. undeploy frees every GPU and the URL stops answering.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from raytest_support import clock

from gpupool.client import ApiError, Client

QUEUES = """
partitions:
  - name: default
    queues:
      - name: root
        submitacl: "*"
        queues:
          - name: serve
            resources: {guaranteed: {gpu: 1}, max: {gpu: 3}}
          - name: batch
            resources: {guaranteed: {gpu: 3}, max: {gpu: 4}}
"""

APP = """
import asyncio, os
from ray import serve
from starlette.requests import Request


@serve.deployment
class Slow:
    def __init__(self) -> None:
        if os.environ.get("SLOW_FAIL"):
            raise RuntimeError("model weights not found: /models/missing")

    async def __call__(self, request: Request) -> dict:
        await asyncio.sleep(float(request.query_params.get("s", "0.3")))
        return {"node": os.environ.get("GPUPOOL_NODE"), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}


app = Slow.bind()
"""

GPUPOOL = str(Path(sys.executable).parent / "gpupool")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = clock() + timeout
    while True:
        value = what()
        if value:
            return value
        if clock() > deadline:
            raise AssertionError(f"{message} within {timeout:g}s (last: {value!r})")
        threading.Event().wait(0.3)


class Platform:
    """``gpupool up`` on a data dir of its own, stopped (SIGTERM: it stops its cluster) at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.data = work / "data"
        self.app_dir = work / "app"
        self.app_dir.mkdir(parents=True)
        (self.app_dir / "slowapp.py").write_text(APP)
        (work / "queues.yaml").write_text(QUEUES)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / "up.log").open("ab")
        cmd = [GPUPOOL, "up", "--data-dir", str(self.data), "--port", str(self.port)]
        cmd += ["--config", str(work / "queues.yaml"), "--cluster", "2xT4:2:cpu=4:memory=6Gi"]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def wait_up(self, timeout: float = 240.0) -> None:
        def answers() -> bool:
            assert self.proc.poll() is None, f"gpupool up exited with {self.proc.returncode}"
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False).status_code == 200
            return False

        wait_for(answers, timeout, "gpupool up did not answer")

    def client(self) -> Client:
        return Client(self.url, (self.data / "admin.token").read_text().strip())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GPUPOOL_DATA_DIR": str(self.data), "COLUMNS": "200"}
        return subprocess.run(
            [GPUPOOL, *args], capture_output=True, text=True, env=env, timeout=600, check=False
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=180)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = Platform(tmp_path_factory.mktemp("deployments-live"))
    try:
        p.wait_up()
        yield p
    finally:
        p.stop()


class Load:
    """``clients`` threads sending requests in a loop to ``url`` until stopped (at most
    ``limit`` seconds): an answer's status code, or the error's name, is counted."""

    def __init__(self, url: str, clients: int, limit: float = 120.0) -> None:
        self.codes: collections.Counter[int | str] = collections.Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._end = clock() + limit
        self._threads = [threading.Thread(target=self._run, args=(url,)) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self, url: str) -> None:
        with httpx.Client(timeout=60, trust_env=False) as c:
            while not self._stop.is_set() and clock() < self._end:
                try:
                    code: int | str = c.get(f"{url}/?s=0.3").status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with self._lock:
                    self.codes[code] += 1

    def stop(self) -> collections.Counter[int | str]:
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.codes


def deploy_slow(p: Platform, name: str = "slow", *extra: str) -> subprocess.CompletedProcess[str]:
    return p.cli(
        "deploy", name, "--import-path", "slowapp:app", "-q", "root.serve", "--gpus", "1",
        "--memory", "1Gi", "--max-replicas", "3", "--target-ongoing-requests", "1",
        "--upscale-delay", "0s", "--downscale-delay", "6s", "--look-back", "2s",
        "--working-dir", str(p.app_dir), *extra,
    )  # fmt: skip


def serving_gpus(p: Platform) -> float:
    with p.client() as gp:
        (q,) = [q for q in gp.queues() if q.path == "root.serve"]
    return float(q.allocated.get("gpu", 0))


def test_a_deployment_answers_from_the_replica_the_core_placed(platform: Platform) -> None:
    out = deploy_slow(platform)
    assert out.returncode == 0, out.stdout + out.stderr
    with platform.client() as gp:
        d = gp.deployment("slow")
    assert d.state == "running" and d.url is not None and d.url in out.stdout
    (replica,) = [r for r in d.replicas if r.state == "placed"]
    answer = httpx.get(d.url, timeout=30, trust_env=False).json()
    assert answer == {"node": replica.node, "gpus": ",".join(map(str, replica.gpu_ids))}
    status = platform.cli("deployment", "status", "slow")
    assert f"url: {d.url}" in status.stdout and "ready 1" in status.stdout


def test_load_grows_it_to_the_queue_max_and_no_further_and_it_shrinks_back(platform: Platform) -> None:
    with platform.client() as gp:
        url = gp.deployment("slow").url
        assert url is not None
        load = Load(url, clients=6)
        seen: list[int] = []
        try:

            def grown() -> bool:
                d = gp.deployment("slow")
                seen.append(d.running)
                return d.ready == 3

            wait_for(grown, 90, "three replicas did not take requests")
        finally:
            codes = load.stop()
        assert max(seen) <= 3 and serving_gpus(platform) <= 3
        wait_for(lambda: gp.deployment("slow").running == 1, 60, "it did not shrink back to one replica")
        d = gp.deployment("slow")
    assert set(codes) == {200} and codes[200] > 50, codes
    assert d.stats is not None and d.stats.errors == 0 and d.stats.requests >= codes[200]
    # How many steps the way up and down takes depends on how fast the load readings arrive
    # (1->3 or 1->2->3): the newest decisions are a chain of increases from one replica to three,
    # then of decreases back to one, and nothing ever went above three.
    steps = [(x.old, x.new) for x in d.decisions]
    down = list(itertools.takewhile(lambda s: s[0] > s[1], reversed(steps)))[::-1]
    up = list(itertools.takewhile(lambda s: s[0] < s[1], reversed(steps[: len(steps) - len(down)])))[::-1]
    assert up and down and (up[0][0], up[-1][1], down[0][0], down[-1][1]) == (1, 3, 3, 1), steps
    assert all(a[1] == b[0] for a, b in itertools.pairwise(up + down)), steps
    assert max(n for _, n in steps) == 3, steps
    # The two replicas drained hold their GPUs until Serve has deleted them.
    wait_for(lambda: serving_gpus(platform) == 1, 60, "the drained replicas' GPUs were not freed")


def test_a_batch_queue_within_its_guarantee_takes_back_only_replicas_above_min(platform: Platform) -> None:
    with platform.client() as gp:
        url = gp.deployment("slow").url
        assert url is not None
        load = Load(url, clients=6)
        try:
            wait_for(lambda: gp.deployment("slow").ready == 3, 90, "three replicas did not take requests")
            started = gp.deployment("slow").started_at
            jobs = [
                gp.submit(
                    "batch",
                    entrypoint="sleep 60",
                    queue="root.batch",
                    task_groups=[{"gpus": n, "memory": "1Gi"}],
                )
                for n in (2, 1)
            ]
            for job in jobs:
                wait_for(
                    lambda j=job.id: gp.get(j).state == "running", 90, f"batch job {job.id} did not start"
                )
            d = gp.deployment("slow")
            assert d.state == "running" and d.running == 1 and d.started_at == started, d  # min stayed
            assert d.held is not None and "replicas wait" in d.held
        finally:
            codes = load.stop()
        for job in jobs:
            gp.cancel(job.id)
    assert set(codes) == {200}, codes


def test_a_rolling_update_under_load_keeps_the_url_and_fails_no_request(platform: Platform) -> None:
    with platform.client() as gp:
        before = gp.deployment("slow")
        assert before.url is not None
        load = Load(before.url, clients=3)
        try:
            wait_for(lambda: load.codes[200] > 10, 30, "the load did not start")
            out = deploy_slow(platform, "slow", "--env", "MODEL_VERSION=2")  # waits until it serves
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"rolling update: revision 2 replaces {before.id}" in out.stdout
            wait_for(
                lambda: gp.get(before.id).state == "cancelled", 60, "the revision before was not stopped"
            )
            after = gp.deployment("slow")
            served = load.codes[200]
            wait_for(lambda: load.codes[200] > served + 10, 30, "the new revision does not answer")
        finally:
            codes = load.stop()
    assert (after.revision, after.replaces, after.url) == (2, before.id, before.url)
    assert after.env == {"MODEL_VERSION": "2"}
    assert set(codes) == {200}, codes
    with platform.client() as gp:
        wait_for(lambda: serving_gpus(platform) == gp.deployment("slow").running, 60, "revision 1 holds GPUs")


def test_scaled_to_zero_it_frees_its_gpus_and_the_first_request_is_answered(platform: Platform) -> None:
    out = deploy_slow(platform, "idle", "--min-replicas", "0", "--scale-to-zero-after", "3s")
    assert out.returncode == 0, out.stdout + out.stderr
    with platform.client() as gp:
        d = gp.deployment("idle")
        assert d.url is not None and d.min_replicas == 0
        wait_for(lambda: gp.deployment("idle").state == "preempted", 60, "it did not scale to zero")
        assert gp.deployment("idle").reason.startswith("scaled to zero")
        assert [r for r in gp.deployment("idle").replicas if r.state == "placed"] == []
        t0 = clock()
        answer = httpx.get(d.url, params={"s": "0"}, timeout=120, trust_env=False)
        waited = clock() - t0
        assert answer.status_code == 200, answer.text
        assert gp.deployment("idle").state == "running"
        assert gp.undeploy("idle").state == "cancelled"
    print(f"\nfirst request after scale to zero answered in {waited:.1f}s")


def test_bad_input_is_refused_and_nothing_is_left_half_made(platform: Platform) -> None:
    with platform.client() as gp:
        before = len(gp.deployments(include_finished=True))
        with pytest.raises(ApiError) as exc:
            gp.deploy("nope", "nosuchmodule:app", "root.serve", gpus=1)
        assert exc.value.status == 422 and "No module named 'nosuchmodule'" in exc.value.message
        assert exc.value.fields[0][0] == "body.import_path"
        assert len(gp.deployments(include_finished=True)) == before
    # A live name is someone's: another user may not deploy a new revision of it.
    bob = json.loads(platform.cli("token", "create", "--json", "bob").stdout)["token"]
    with Client(platform.url, bob) as other, pytest.raises(ApiError) as taken:
        other.deploy("slow", "slowapp:app", "root.serve", gpus=1, working_dir=str(platform.app_dir))
    assert taken.value.status == 403 and taken.value.message == "bob may not update slow: it belongs to admin"
    with platform.client() as gp:
        with pytest.raises(ApiError) as over:
            gp.deploy("big", "slowapp:app", "root.serve", gpus=1, max_replicas=4)
        assert over.value.status == 422 and over.value.message.startswith("max_replicas: 4 replicas")
    failing = deploy_slow(platform, "failing", "--env", "SLOW_FAIL=1")
    assert failing.returncode == 1
    (line,) = [ln for ln in failing.stdout.splitlines() if ln.startswith("Error:")]
    assert "failing failed" in line and "RuntimeError: model weights not found" in line, line
    wait_for(lambda: serving_gpus(platform) == 1, 60, "more than slow's min replica holds GPUs")


def test_undeploy_frees_every_gpu_and_the_url_stops_answering(platform: Platform) -> None:
    with platform.client() as gp:
        url = gp.deployment("slow").url
        assert url is not None
        assert gp.undeploy("slow").state == "cancelled"
        wait_for(lambda: serving_gpus(platform) == 0, 60, "its GPUs were not freed")

    def refused() -> bool:
        try:
            httpx.get(url, timeout=5, trust_env=False)
        except httpx.ConnectError:
            return True
        return False

    wait_for(refused, 30, "its URL still answers")
