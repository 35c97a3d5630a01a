"""``gpupool bench serve --only ray_serve``, live and brief: a local Ray cluster of its own (one
node of three fake T4), Ray Serve's autoscaler on the demo model, 30 s of load that a replica
can take without queueing (4 requests/s at its peak, 1 s each, 5 at once per replica).

The figures are printed for the record (``-s``); only that the run answered every request and
reported its figures is asserted, never how fast.
"""

from __future__ import annotations

import json

import ray
from typer.testing import CliRunner

from gpupool.cli.main import app

KEYS = {"p50_ms", "p99_ms", "requests", "errors", "gpu_seconds", "peak_replicas", "scale_up_s"}


def test_bench_serve_ray_serve_run_answers_every_request_and_reports_its_figures() -> None:
    ray.shutdown()  # the session's connection, if a test before made one: the run makes its own
    args = ["bench", "serve", "--only", "ray_serve", "--json", "--cluster", "1xT4:3:cpu=2:memory=8Gi"]
    args += ["--max-replicas", "3", "--low-rate", "1", "--peak-rate", "4"]
    args += ["--low-seconds", "5", "--peak-seconds", "20", "--tail-seconds", "5"]
    args += ["--upscale-delay", "2", "--downscale-delay", "5"]
    result = CliRunner().invoke(app, args)
    print("\nbench serve (ray_serve, brief):", result.stdout[:2000], result.stderr[-2000:])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["gpupool"] is None and out["queue_max_replicas"] == 3
    run = out["ray_serve"]
    assert set(run) >= KEYS, run
    assert run["requests"] > 0 and run["errors"] == 0, run
    assert run["p50_ms"] >= 1000 and run["p99_ms"] >= run["p50_ms"]  # each request works 1 s
    assert 1 <= run["peak_replicas"] <= 3 and run["gpu_seconds"] > 0
    assert not ray.is_initialized()  # the run disconnected; its cluster is stopped
