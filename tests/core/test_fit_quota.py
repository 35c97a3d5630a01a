"""The allocation phase's quota check per GPU type (``fit.typed_quota_blocker``) answers as the
general one does on the typed resources (``fit.quota_blocker(leaf, typed(...))``)."""

from __future__ import annotations

import random

import pytest

from gpupool.core.config import PartitionConfig, QueueConfig
from gpupool.core.fit import quota_blocker, typed_quota_blocker
from gpupool.core.resources import typed
from gpupool.core.scheduler import Scheduler

KEYS = ("gpu", "vcore", "memory", "gpu/H100", "gpu/A100")


def _limits(rng: random.Random) -> dict[str, int] | None:
    if rng.random() < 0.3:
        return None
    return {k: rng.randint(0, 8) * 1000 for k in KEYS if rng.random() < 0.5}


@pytest.mark.parametrize("seed", range(30))
def test_typed_quota_blocker_is_quota_blocker_on_the_typed_resources(seed: int) -> None:
    rng = random.Random(seed)
    leaf_cfg = QueueConfig(name="leaf", max=_limits(rng))
    mid = QueueConfig(name="mid", max=_limits(rng), queues=(leaf_cfg,), parent=True)
    root = QueueConfig(name="root", submit_acl="*", queues=(mid,), parent=True)
    sched = Scheduler(PartitionConfig(name="default", root=root))
    leaf = sched.queues["root.mid.leaf"]
    for _ in range(200):
        for q in leaf.ancestors():
            q.allocated = {k: rng.randint(0, 8) * 1000 for k in KEYS if rng.random() < 0.6}
        res = {k: rng.randint(0, 3) * 1000 for k in ("gpu", "vcore", "memory") if rng.random() < 0.8}
        if rng.random() < 0.1:
            res["gpu/H100"] = rng.randint(0, 3) * 1000  # a typed key in the ask itself
        gpu_type = rng.choice((None, "", "H100", "A100"))
        gpus = res.get("gpu", 0)
        expected = quota_blocker(leaf, typed(res, gpu_type, gpus))
        assert typed_quota_blocker(leaf, res, gpu_type, gpus) is expected, (res, gpu_type)
