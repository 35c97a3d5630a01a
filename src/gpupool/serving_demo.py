"""The demo model for deployments: a Ray Serve application that needs no download and runs on CPU.

``gpupool.serving_demo:app`` is one Serve deployment, ``Demo``. At start it trains a
scikit-learn logistic regression on the iris data set scikit-learn ships, then answers:

* ``POST <route>/predict`` with ``{"features": [f1, f2, f3, f4]}`` (or a list of such rows as
  ``{"features": [[...], ...]}``): the predicted class, its name and probabilities, plus where the
  replica runs: the gpupool node, ``ray.get_gpu_ids()`` and ``CUDA_VISIBLE_DEVICES``;
* ``GET <route>/healthz``: ``{"ok": true, ...}`` with the same whereabouts.

``?sleep=S`` (at most 30 seconds) holds a request that long before answering, so tests and
benchmarks can keep requests in flight. The deployment takes no CPU of its own
(``num_cpus=0``): gpupool's placement gives each replica its CPUs, GPUs and memory.

**Simulated inference time.** ``GPUPOOL_DEMO_WORK_MS`` (in the replica's environment; default
0, nothing added) makes every ``/predict`` take that many more milliseconds, so that replicas,
not the proxy, are what a load runs out of (``gpupool bench serve``). The wait is an
``asyncio.sleep``: a replica works on up to ``max_ongoing_requests`` requests at once, each
taking the work time, as a model server batching the requests it holds does; its capacity is
``max_ongoing_requests / work time`` requests/s, and the requests above it wait in Serve's
router (or gpupool's front), which is the queue the autoscalers read. ``/healthz`` is never
slowed, so health checks do not depend on the load.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from gpupool.adapters.ray.naming import NODE_LABEL

MAX_SLEEP_S = 30.0
WORK_ENV = "GPUPOOL_DEMO_WORK_MS"
MAX_WORK_MS = 60_000.0


def work_seconds() -> float:
    """The simulated inference time of one ``/predict`` (``GPUPOOL_DEMO_WORK_MS``), in seconds."""
    raw = os.environ.get(WORK_ENV, "").strip()
    try:
        ms = float(raw or 0)
    except ValueError:
        raise ValueError(f"{WORK_ENV}={raw!r}: expected milliseconds, e.g. 200") from None
    if not 0 <= ms <= MAX_WORK_MS:
        raise ValueError(f"{WORK_ENV}={raw!r}: expected 0 to {MAX_WORK_MS:g} milliseconds")
    return ms / 1000


def _node_name() -> str | None:
    """The gpupool node this process runs on (its ``gpupool.io/node`` label), if it has one."""
    me = ray.get_runtime_context().get_node_id()
    for n in ray.nodes():
        if n.get("NodeID") == me:
            labels = n.get("Labels") or {}
            return labels.get(NODE_LABEL) or n.get("NodeName")
    return None


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Demo:
    """Iris classifier trained at start; answers ``/predict`` and ``/healthz``."""

    def __init__(self) -> None:
        self.work_s = work_seconds()  # first: a bad value fails the replica before the training
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        iris = load_iris()
        self.classes = [str(c) for c in iris.target_names]
        self.model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
        self.accuracy = float(self.model.score(iris.data, iris.target))
        self.where = {
            "node": _node_name(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "pid": os.getpid(),
        }

    async def __call__(self, request: Request) -> JSONResponse:
        sleep = min(float(request.query_params.get("sleep", "0") or 0), MAX_SLEEP_S)
        if sleep > 0:
            await asyncio.sleep(sleep)
        path = request.url.path.rstrip("/")
        if path.endswith("/healthz") and request.method == "GET":
            return JSONResponse({"ok": True, "train_accuracy": self.accuracy, **self.where})
        if path.endswith("/predict") and request.method == "POST":
            if self.work_s > 0:
                await asyncio.sleep(self.work_s)
            return self._predict(await request.body())
        return JSONResponse({"error": "use POST /predict or GET /healthz"}, status_code=404)

    def _predict(self, body: bytes) -> JSONResponse:
        try:
            features: Any = json.loads(body or b"{}")["features"]
            rows = features if features and isinstance(features[0], list) else [features]
            if not rows or any(len(r) != 4 for r in rows):
                raise ValueError("each row needs 4 numbers (sepal and petal length and width, cm)")
            x = [[float(v) for v in r] for r in rows]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            msg = f'expected {{"features": [4 numbers]}}: {exc}'
            return JSONResponse({"error": msg}, status_code=422)
        labels = [int(v) for v in self.model.predict(x)]
        probs = self.model.predict_proba(x).round(4).tolist()
        out = [
            {"prediction": y, "label": self.classes[y], "probabilities": p}
            for y, p in zip(labels, probs, strict=True)
        ]
        body_out: dict[str, Any] = out[0] if not isinstance(features[0], list) else {"predictions": out}
        return JSONResponse({**body_out, **self.where})


app = Demo.bind()  # type: ignore[attr-defined]
