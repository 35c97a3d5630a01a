"""A Ray node killed under a running gang, twice, on the real local cluster, through the driver.

The gang is requeued as a whole each time and resumes from its newest checkpoint, whichever
attempt wrote it (the second loss resumes from attempt 2's, not attempt 1's); no two attempts
ever run at once; the lost nodes stay known to the driver with when and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from raytest_support import clock, python, write

from gpupool.adapters.ray.cluster import LocalRayCluster
from gpupool.adapters.ray.executor import RayExecutor
from gpupool.config import parse_config
from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.engine.model import TaskGroup, WorkloadSpec, WorkloadState

CONFIG = {
    "partitions": [
        {
            "name": "default",
            "queues": [{"name": "root", "submitacl": "*", "queues": [{"name": "a"}]}],
        }
    ]
}

# Checkpoints every step (reporting it), and logs a heartbeat line per step to a shared ledger:
# "<attempt> <time> <step>". Resumed, it goes on from the checkpoint's step. It exits 0 once the
# file named by its second argument exists (the test says when).
STEPPER = """
import json, os, sys, time
from gpupool import runtime

ledger = open(sys.argv[1], "a")
step = 0
if runtime.resume_from() is not None:
    step = json.loads(runtime.resume_from().read_text())["step"]
ledger.write(f"resume {runtime.attempt()} {step}\\n"); ledger.flush()
while not os.path.exists(sys.argv[2]):
    step += 1
    path = runtime.checkpoint_dir() / f"step-{step}.json"
    path.write_text(json.dumps({"step": step}))
    runtime.report_checkpoint(path)
    ledger.write(f"beat {runtime.attempt()} {time.time():.3f} {step}\\n"); ledger.flush()
    time.sleep(0.2)
"""


def test_a_gang_survives_two_node_losses_resuming_from_its_newest_checkpoint(
    cluster: LocalRayCluster, executor: RayExecutor, tmp_path: Path
):
    added = cluster.add_node("2xL4:2")
    driver = Driver(Scheduler(parse_config(CONFIG).partition("default")), executor)
    t0 = clock()

    def tick_until(done: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = clock() + timeout
        while not done():
            assert clock() < deadline, (
                [driver.why(w) for w in driver.workloads],
                [[(t.new.value, t.reason) for t in w.history] for w in driver.workloads.values()],
                ledger.read_text()[-2000:] if ledger.exists() else "",
            )
            driver.tick(clock() - t0)
            time.sleep(0.2)

    tick_until(lambda: all(n in driver.core.nodes for n in added))
    ledger, finish = tmp_path / "ledger", tmp_path / "finish"
    gang = driver.submit(
        WorkloadSpec(
            name="gang",
            queue="root.a",
            task_groups=(TaskGroup("worker", 2, {"gpu": 1000, "vcore": 1000}, gpu_types=("L4",)),),
            entrypoint=python(write(tmp_path, "stepper", STEPPER), str(ledger), str(finish)),
        ),
        now=clock() - t0,
    )

    def beats(attempt: int) -> list[tuple[float, int]]:
        if not ledger.exists():
            return []
        rows = [line.split() for line in ledger.read_text().splitlines()]
        return [(float(r[2]), int(r[3])) for r in rows if r[0] == "beat" and int(r[1]) == attempt]

    lost = []
    for attempt in (1, 2):
        tick_until(lambda a=attempt: gang.state == WorkloadState.RUNNING and len(beats(a)) >= 8)
        node = gang.placement["worker-0"]  # where the entrypoint runs
        cluster.kill_node(node)
        lost.append(node)
        if attempt == 1:
            added += cluster.add_node("1xL4:2")  # room for the third attempt
        tick_until(lambda a=attempt: gang.attempt > a and gang.state == WorkloadState.RUNNING, timeout=120)
        assert any(f"node {node} was lost; requeued as a whole" in t.reason for t in gang.history)
    tick_until(lambda: gang.state == WorkloadState.RUNNING and len(beats(3)) >= 3)
    finish.touch()
    tick_until(lambda: gang.terminal, timeout=120)
    assert gang.state == WorkloadState.SUCCEEDED, gang.reason
    assert gang.attempt == 3

    resumed = {
        int(r[1]): int(r[2])
        for r in (line.split() for line in ledger.read_text().splitlines())
        if r[0] == "resume"
    }
    # Each attempt resumed from the newest checkpoint any attempt reported before it.
    assert resumed[1] == 0
    assert resumed[2] >= beats(1)[-1][1] - 1 and resumed[2] >= 8
    assert resumed[3] >= beats(2)[-1][1] - 1 and resumed[3] > beats(1)[-1][1]
    # Never two attempts at once: each attempt's last heartbeat precedes the next one's first.
    assert beats(1)[-1][0] < beats(2)[0][0] and beats(2)[-1][0] < beats(3)[0][0]
    assert set(lost) <= set(driver.lost) and all(driver.lost[n].reason for n in lost)
    for name in added:
        if name not in lost:
            cluster.remove_node(name)
