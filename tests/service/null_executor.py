"""An executor that starts nothing: workloads are admitted and reported running, and no command
ever runs. For the API fuzzing, where entrypoints are random text that must never reach a shell,
and for model deployments (it declares ``RunsDeployments``: their replicas are "run" as nothing)."""

from __future__ import annotations

from gpupool.core.model import NodeSpec
from gpupool.engine.ports import Observation, RunsDeployments, Started, Stopped

from .executors import default_nodes


class NullExecutor(RunsDeployments):
    def __init__(self) -> None:
        self.outbox: list[Observation] = []

    def start(self, workload, now):
        self.outbox.append(Started(workload.id, workload.attempt))

    def preempt(self, workload, grace, now):
        self.outbox.append(Stopped(workload.id, workload.attempt))

    def cancel(self, workload, now):
        self.outbox.append(Stopped(workload.id, workload.attempt))

    def poll(self, now):
        out, self.outbox = self.outbox, []
        return out

    def logs(self, workload_id: str) -> str:
        return ""

    def adopt(self, workload) -> bool:
        return False

    def nodes(self) -> list[NodeSpec]:
        return default_nodes()

    def close(self) -> None:
        self.outbox.clear()
