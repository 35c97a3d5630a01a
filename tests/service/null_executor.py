"""An executor that starts nothing: workloads are admitted and reported running, and no command
ever runs. For the API fuzzing, where entrypoints are random text that must never reach a shell,
for model deployments (it declares ``RunsDeployments``: their replicas are "run" as nothing,
and report the load set in ``load``), and for notebook sessions (it declares ``RunsNotebooks``:
a session's server is ``endpoint``, None until a test sets one)."""

from __future__ import annotations

from gpupool.core.model import NodeSpec
from gpupool.engine.ports import (
    MemberStopped,
    NotebookEndpoint,
    Observation,
    Resizable,
    RunsDeployments,
    RunsNotebooks,
    ServingLoad,
    Started,
    Stopped,
)

from .executors import default_nodes


class NullExecutor(RunsDeployments, RunsNotebooks, Resizable):
    def __init__(self) -> None:
        self.endpoint: NotebookEndpoint | None = None
        self.utilisation: float | None = None  # what a session's GPUs read (None: no NVML)
        self.utilisation_reads = 0
        self.outbox: list[Observation] = []
        self.members: dict[str, set[str]] = {}
        self.load: dict[str, float] = {}  # deployment name -> requests in flight it reports

    def start(self, workload, now):
        self.members[workload.id] = set(workload.placement)
        self.outbox.append(Started(workload.id, workload.attempt))

    def resize(self, workload, now):
        # A removed replica has nothing in flight: it stops at once.
        now_members = set(workload.placement)
        for member in sorted(self.members.get(workload.id, set()) - now_members):
            self.outbox.append(MemberStopped(workload.id, workload.attempt, member))
        self.members[workload.id] = now_members

    def serving_load(self, workload):
        ready = len(self.members.get(workload.id, ()))
        return ServingLoad(in_flight=self.load.get(workload.spec.name, 0.0), queued=0, ready=ready)

    def notebook_endpoint(self, workload):
        return self.endpoint

    def gpu_utilisation(self, workload, timeout):
        self.utilisation_reads += 1
        return self.utilisation

    def preempt(self, workload, grace, now):
        self.members.pop(workload.id, None)
        self.outbox.append(Stopped(workload.id, workload.attempt))

    def cancel(self, workload, now):
        self.members.pop(workload.id, None)
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
