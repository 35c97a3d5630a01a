"""The engine's driver loop with the Ray executor, end to end on the local cluster:
submit -> run -> preempted with a checkpoint -> requeued -> resumed -> succeeded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from raytest_support import CHECKPOINTING, clock, python, write

from gpupool.adapters.ray.executor import RayExecutor
from gpupool.config import parse_config
from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.engine.model import Disruption, TaskGroup, WorkloadSpec, WorkloadState

CONFIG = {
    "partitions": [
        {
            "name": "default",
            "queues": [
                {
                    "name": "root",
                    "submitacl": "*",
                    "queues": [
                        {"name": "a", "resources": {"guaranteed": {"gpu": 4}, "max": {"gpu": 12}}},
                        {
                            "name": "b",
                            "resources": {"guaranteed": {"gpu": 4}, "max": {"gpu": 12}},
                            "properties": {"preemption.delay": "1s"},
                        },
                    ],
                }
            ],
        }
    ]
}


def test_driver_submit_run_preempt_resume(executor: RayExecutor, tmp_path: Path):
    driver = Driver(Scheduler(parse_config(CONFIG).partition("default")), executor)
    t0 = clock()

    def tick_until(done: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = clock() + timeout
        while not done():
            assert clock() < deadline, [driver.why(w) for w in driver.workloads]
            driver.tick(clock() - t0)
            time.sleep(0.2)

    script = write(tmp_path, "ckpt", CHECKPOINTING)
    h100 = TaskGroup("worker", 2, {"gpu": 4000, "vcore": 2000}, gpu_types=("H100",))
    hog = driver.submit(
        WorkloadSpec(
            name="hog",
            queue="root.a",
            task_groups=(h100,),
            entrypoint=python(script),
            disruption=Disruption("checkpoint", grace=30),
        ),
        now=clock() - t0,
    )
    tick_until(lambda: hog.state == WorkloadState.RUNNING)
    assert sorted(hog.placement.values()) == ["h100-0", "h100-1"]

    fair = driver.submit(
        WorkloadSpec(
            name="fair",
            queue="root.b",
            task_groups=(TaskGroup("worker", 1, {"gpu": 4000}, gpu_types=("H100",)),),
            entrypoint="sleep 2",
        ),
        now=clock() - t0,
    )
    tick_until(lambda: hog.state == WorkloadState.PREEMPTING)
    tick_until(lambda: hog.state != WorkloadState.PREEMPTING)
    assert hog.state in (WorkloadState.PREEMPTED, WorkloadState.ADMITTED, WorkloadState.RUNNING)
    assert hog.preemptions == 1 and hog.checkpoint is not None and hog.checkpoint.endswith("state.json")
    tick_until(lambda: fair.state == WorkloadState.SUCCEEDED)
    tick_until(lambda: hog.state == WorkloadState.SUCCEEDED)
    assert hog.attempt == 2
    logs = executor.logs(hog.id)
    assert "checkpointed at step" in logs and "resumed from step" in logs and "done at step" in logs
    assert [t.new.value for t in hog.history] == [
        "admitted",
        "running",
        "preempting",
        "preempted",
        "admitted",
        "running",
        "succeeded",
    ]
    assert not driver.core.allocations
