"""The engine's ports: what it needs from the cluster and from whoever keeps its records.

The driver (``gpupool.engine.driver``) talks only to these protocols. The simulator plugs in a
simulated executor; the live control plane plugs in the Ray executor and a database-backed
journal. Semantics every implementation keeps:

* Executor calls return fast and never raise for the cluster's own failures: what happened is
  reported later by ``poll`` as observations (errors as data).
* ``start``, ``preempt`` and ``cancel`` are idempotent: calling one twice for the same attempt
  does nothing more.
* The journal is written before the executor acts: the driver records a transition, then
  calls the executor, so a restart never loses a decision it already acted on.

Optional executor capabilities are protocols an executor declares by subclassing them (and that
the driver checks with ``isinstance``): ``Adoptable`` (re-attach to a job after a restart),
``Resizable`` (an elastic job grows or shrinks while it runs), ``ReapsOrphans`` (stop jobs the
journal no longer calls live), ``RunsDeployments`` (run workloads of kind ``deployment``: an
executor without it is never handed one; it checks an application, reports a deployment's load
as ``ServingLoad`` and its URL, and reports a removed replica as ``MemberStopped`` once it has
drained). The node provider (``NodeProvider``), through which the
autoscaler launches and terminates pool machines, and the events it reports live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gpupool.core.config import InstanceType
from gpupool.core.model import NodeSpec
from gpupool.engine.model import DEPLOYMENT_KIND, NOTEBOOK_KIND, Transition, Workload


@dataclass(frozen=True, slots=True)
class Started:
    """The workload's job runs (all members on their reserved nodes)."""

    workload_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The workload's job ended on its own: ``ok`` or failed with ``message``."""

    workload_id: str
    attempt: int
    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class Stopped:
    """A preempted (or cancelled) workload stopped and its reservation is free."""

    workload_id: str
    attempt: int
    checkpoint: str | None = None  # where the checkpoint it wrote lives, if it wrote one
    work_done: float | None = None  # seconds of work kept by that checkpoint (simulation)


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The job could not be started; ``retry`` says whether to requeue it."""

    workload_id: str
    attempt: int
    message: str
    retry: bool = True


@dataclass(frozen=True, slots=True)
class NodeUp:
    """A node joined the cluster (or came back) and can take work."""

    node: NodeSpec


@dataclass(frozen=True, slots=True)
class NodeDown:
    """A node died or left: its workloads are requeued, it takes no more work."""

    name: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class MemberStopped:
    """One replica of a running deployment, removed by a scale-down or a preemption of that
    replica alone, has finished its requests in flight and stopped: its room may be freed."""

    workload_id: str
    attempt: int
    member: str


Observation = Started | Finished | Stopped | StartFailed | NodeUp | NodeDown | MemberStopped


class Executor(Protocol):
    """Runs admitted workloads on a cluster (Ray, or the simulated one)."""

    def start(self, workload: Workload, now: float) -> None:
        """Start ``workload`` on ``workload.placement`` (member -> node), attempt ``workload.attempt``."""

    def preempt(self, workload: Workload, grace: float, now: float) -> None:
        """Ask it to checkpoint; stop it by ``now + grace`` at the latest; report ``Stopped``."""

    def cancel(self, workload: Workload, now: float) -> None:
        """Stop it now; report ``Stopped``."""

    def poll(self, now: float) -> list[Observation]:
        """What happened since the last poll."""


@runtime_checkable
class Adoptable(Protocol):
    """An executor that can re-attach to a workload's job after a control-plane restart."""

    def adopt(self, workload: Workload) -> bool:
        """Re-attach to ``workload``'s running job; False if the job (or a member) is gone."""
        ...


@runtime_checkable
class Resizable(Protocol):
    """An executor whose running jobs can grow or shrink (elastic workloads' extra members)."""

    def resize(self, workload: Workload, now: float) -> None:
        """``workload.placement`` changed while it runs: start or stop the members it names."""
        ...


@runtime_checkable
class ReapsOrphans(Protocol):
    """An executor that can find and stop jobs no live workload owns (after a restart)."""

    def reap_orphans(self, keep: set[str]) -> list[str]:
        """Remove the jobs of workloads not in ``keep`` (nor followed); returns what was removed."""
        ...


# What an API refusal and a workload's failure say when the executor cannot run deployments.
NO_DEPLOYMENT_RUNNER = (
    "model deployments need an executor that runs Ray Serve (the Ray executor of `gpupool up`); "
    "this control plane's executor does not (see docs/serving.md)"
)


@runtime_checkable
class RunsDeployments(Protocol):
    """An executor that can run workloads of kind ``deployment`` (model deployments' replicas).

    Declared by subclassing. An executor without it is never handed a deployment: the API
    refuses to create one and the driver fails one it restores (``can_run_deployments``).
    """

    # A runtime-checkable protocol without members would match every object: these methods are
    # what ``isinstance`` looks for (through wrappers that forward attributes, too).
    def runs_deployments(self) -> bool:
        """True if it can run deployments now (an executor may say no at run time)."""
        return True

    def check_deployment(self, import_path: str, env: dict[str, str], working_dir: str | None) -> str:
        """The name of the application's ingress deployment; raises ``DeploymentProblem`` with
        what is wrong (an import path that does not import, say). May take seconds."""
        return ""

    def serving_load(self, workload: Workload) -> ServingLoad | None:
        """The deployment's load now, as its HTTP entry counts it (None: nothing to say)."""
        return None

    def deployment_url(self, workload: Workload) -> str | None:
        """Where the deployment answers HTTP requests (None: not serving)."""
        return None


class DeploymentProblem(ValueError):
    """A deployment's application cannot be run as given (the message says why)."""


@dataclass(frozen=True, slots=True)
class ServingLoad:
    """A deployment's load and answers, as its HTTP entry counted them when asked.

    ``in_flight`` requests are being answered by replicas, ``queued`` wait at the entry,
    ``ready`` replicas take requests; ``requests`` and ``errors`` count since it started,
    ``p50_ms``/``p99_ms`` are over its recent requests (None before any).
    """

    in_flight: float
    queued: float
    ready: int
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None


def can_run_deployments(executor: object) -> bool:
    """Whether ``executor`` declares ``RunsDeployments`` and says yes."""
    return isinstance(executor, RunsDeployments) and bool(executor.runs_deployments())


# What an API refusal and a session's failure say when the executor cannot run notebooks.
NO_NOTEBOOK_RUNNER = (
    "notebook sessions need an executor that runs Jupyter servers (the Ray executor of `gpupool up`); "
    "this control plane's executor does not (see docs/notebooks.md)"
)


@dataclass(frozen=True, slots=True)
class NotebookEndpoint:
    """Where a session's Jupyter server answers (``url``: scheme, host and port; its base path is
    the session's proxy path) and the token it takes, known only to the control plane."""

    url: str
    token: str


@runtime_checkable
class RunsNotebooks(Protocol):
    """An executor that can run workloads of kind ``notebook`` (a Jupyter server per session).

    Declared by subclassing. ``set_session_env`` gives it what a session's processes need to
    reach the control plane (``GPUPOOL_URL``, ``GPUPOOL_TOKEN``), asked once per start.
    """

    def runs_notebooks(self) -> bool:
        """True if it can run notebook sessions now."""
        return True

    def set_session_env(self, provide: Callable[[Workload], dict[str, str]]) -> None:
        """Use ``provide(workload)`` for the environment a session adds for its user."""

    def notebook_endpoint(self, workload: Workload) -> NotebookEndpoint | None:
        """The session's Jupyter server once it answers (None: not yet, or not running)."""
        return None

    def gpu_utilisation(self, workload: Workload, timeout: float) -> float | None:
        """The highest utilisation (percent) of the running session's GPUs, read on the node that
        holds them within ``timeout`` seconds; None when it cannot be read (no NVML there, no
        GPUs, no answer in time)."""
        return None


def can_run_notebooks(executor: object) -> bool:
    """Whether ``executor`` declares ``RunsNotebooks`` and says yes."""
    return isinstance(executor, RunsNotebooks) and bool(executor.runs_notebooks())


def cannot_run(kind: str, executor: object) -> str | None:
    """Why ``executor`` cannot run a workload of ``kind`` (None if it can): a deployment or a
    notebook session needs an executor that declares it runs them."""
    if kind == DEPLOYMENT_KIND and not can_run_deployments(executor):
        return NO_DEPLOYMENT_RUNNER
    if kind == NOTEBOOK_KIND and not can_run_notebooks(executor):
        return NO_NOTEBOOK_RUNNER
    return None


class Journal(Protocol):
    """Records submissions and transitions (the database in live mode; a list in simulation)."""

    def submitted(self, workload: Workload) -> None: ...

    def transition(self, workload: Workload, transition: Transition) -> None: ...

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None: ...


@dataclass(slots=True)
class MemoryJournal:
    """A journal in memory: the simulator's, and the tests'."""

    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    events: list[tuple[str | None, float, str, str]] = field(default_factory=list)
    keep_events: bool = True

    def submitted(self, workload: Workload) -> None:
        return None

    def transition(self, workload: Workload, transition: Transition) -> None:
        self.transitions.append((workload.id, transition))

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None:
        if self.keep_events:
            self.events.append((workload_id, at, kind, message))


# ---------------------------------------------------------------------- node provider


@dataclass(frozen=True, slots=True)
class Booted:
    """A launched node is up and can take work."""

    name: str


@dataclass(frozen=True, slots=True)
class LaunchFailed:
    """A launch did not give a node: ``kind`` is ``stockout`` or ``boot-failure``."""

    name: str
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Terminated:
    """A node the autoscaler let go is gone."""

    name: str


ProviderEvent = Booted | LaunchFailed | Terminated


@dataclass(frozen=True, slots=True)
class ProviderNode:
    """A node the provider launched and has not terminated, as its ``inventory`` lists it."""

    name: str
    pool: str
    instance_type: str  # the instance type's name
    state: str  # "booting" (no Booted reported yet) | "ready"
    launched_at: float


class NodeProvider(Protocol):
    """Launches and terminates machines of a pool. Calls return fast; outcomes come from poll."""

    def launch(self, pool: str, itype: InstanceType, name: str, now: float) -> None: ...

    def terminate(self, name: str, now: float) -> None: ...

    def poll(self, now: float) -> list[ProviderEvent]: ...

    def next_time(self) -> float | None:
        """When the next event is due (the simulator ticks then); None if none is pending."""

    def inventory(self) -> list[ProviderNode]:
        """The nodes launched and not terminated (a restarted control plane adopts them)."""
