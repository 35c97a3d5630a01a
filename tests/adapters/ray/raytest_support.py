"""Helpers for the Ray adapter's tests: a watcher polling an executor on the real clock,
workload builders, and the job scripts the tests run as entrypoints."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from gpupool.adapters.ray.executor import RayExecutor
from gpupool.engine.model import TaskGroup, Workload, WorkloadSpec
from gpupool.engine.ports import Observation
from jobs import checkpointing_job


def clock() -> float:
    return time.perf_counter()


class Watcher:
    """Polls an executor on the real clock; ``until`` consumes observations in order."""

    def __init__(self, executor: RayExecutor) -> None:
        self.executor = executor
        self.seen: list[Observation] = []
        self.cursor = 0

    def until(self, predicate: Callable[[Observation], bool], timeout: float = 60.0) -> Observation:
        deadline = clock() + timeout
        while True:
            for i in range(self.cursor, len(self.seen)):
                if predicate(self.seen[i]):
                    self.cursor = i + 1
                    return self.seen[i]
            if clock() > deadline:
                raise AssertionError(f"no matching observation within {timeout}s; saw {self.seen}")
            self.seen.extend(self.executor.poll(clock()))
            time.sleep(0.1)


def workload(
    wid: str,
    placement: dict[str, str],
    entrypoint: str | None,
    gpus: int = 1,
    attempt: int = 1,
    groups: tuple[tuple[str, int], ...] = (("worker", 1),),
) -> Workload:
    spec = WorkloadSpec(
        name=wid,
        task_groups=tuple(
            TaskGroup(name, n, {"gpu": gpus * 1000, "vcore": 1000, "memory": 1 << 30}) for name, n in groups
        ),
        entrypoint=entrypoint,
    )
    return Workload(wid, spec, submitted_at=0.0, attempt=attempt, placement=placement)


def python(script: Path, *args: str) -> str:
    return " ".join([sys.executable, str(script), *args])


CHECKPOINTING = checkpointing_job(0.1)

# Shows where the gang landed: its own GPUs, then a Ray task in every other member's bundle.
GANG = """
import json, os, ray
from gpupool import runtime

ray.init()

@ray.remote
def where():
    me = ray.get_runtime_context().get_node_id()
    labels = next(n["Labels"] for n in ray.nodes() if n["NodeID"] == me)
    return {"node": labels.get("gpupool.io/node"), "gpus": runtime.gpu_ids()}

out = {"entry": {"node": runtime.node(), "gpus": runtime.gpu_ids(),
                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")},
       "members": {}}
for i, (member, node) in enumerate(runtime.placement()):
    if i:
        out["members"][member] = ray.get(where.options(**runtime.member_options(member)).remote())
print("GANG " + json.dumps(out), flush=True)
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(text)
    return path
