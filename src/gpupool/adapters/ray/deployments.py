"""``DeploymentRuns``: the Ray executor's part for model deployments (workloads of kind ``deployment``).

``RayExecutor`` hands every call about a deployment here. Each placed member of the workload is
one replica, run by ``serving.ServeRunner`` as a Serve application pinned to the node and GPUs the
scheduling core gave it; the deployment answers on its front (``front.Front``), one per deployment
*name*: its URL stays the same across attempts and across revisions (a rolling update's new
replicas join the front of the old ones, which drain once the new ones run), and the front stops
when the last workload of that name ends.

What is reported to the driver, as for jobs (errors as data, every call returns at once):

* ``Started`` once every replica placed when the attempt started runs (its min replicas: a
  rolling update stops the revision before only then);
* ``StartFailed(retry=False)`` with Serve's message when a replica fails before that (its
  application raised in its constructor, say), ``StartFailed`` (retried) when none runs within
  ``start_timeout``;
* ``MemberStopped`` when a replica taken out of the placement (scale-down, preemption of that
  replica) has drained: the front stopped sending it requests at once, and Serve deleted it
  once its requests in flight were answered (or after its graceful shutdown timeout);
* ``Stopped`` when every replica of a preempted or cancelled attempt has drained and gone;
* ``Finished(ok=False)`` when a running replica fails (Serve's message).

Serve itself is started on first need (``check`` at deploy time, ``start``, or ``adopt``), with
its proxy on 127.0.0.1 and a free port.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.adapters.ray.cluster import free_port
from gpupool.adapters.ray.serving import (
    ReplicaSpec,
    ReplicaState,
    ReplicaStatus,
    ServeRunner,
    ServingError,
    check_import_path,
    replica_key,
)
from gpupool.core.resources import GPU_MILLI, gpu_milli
from gpupool.engine.model import Workload
from gpupool.engine.ports import (
    DeploymentProblem,
    Finished,
    MemberStopped,
    Observation,
    ServingLoad,
    Started,
    StartFailed,
    Stopped,
)


@dataclass(slots=True)
class _Deployment:
    """One attempt of one deployment: its replicas by member, the ones draining, its phase."""

    workload_id: str
    attempt: int
    revision: int
    start_deadline: float
    front: str  # the deployment's name: its front, shared by its revisions
    members: dict[str, str] = field(default_factory=dict)  # member -> replica key
    draining: dict[str, str] = field(default_factory=dict)  # member -> replica key
    phase: str = "starting"  # starting | running | stopping
    ending: bool = False  # cancelled: its front goes too once stopped


class DeploymentRuns:
    """Runs deployments' replicas on Ray Serve for ``RayExecutor`` (called under its lock)."""

    def __init__(self, *, start_timeout: float = 120.0, hold_timeout: float = 60.0) -> None:
        self.start_timeout = start_timeout
        self.hold_timeout = hold_timeout
        self._runner: ServeRunner | None = None
        self._runs: dict[str, _Deployment] = {}
        self._outbox: list[Observation] = []
        self._adopted = False

    # ------------------------------------------------------------------ Serve

    def runner(self) -> ServeRunner:
        """Serve, started (or found running) on first use."""
        if self._runner is None:
            runner = ServeRunner(free_port(), front_hold_timeout=self.hold_timeout)
            runner.start()
            self._runner = runner
        return self._runner

    def check(self, import_path: str, env: dict[str, str], working_dir: str | None) -> str:
        """The application's ingress deployment name; ``DeploymentProblem`` if it does not import."""
        try:
            return check_import_path(import_path, env=env, working_dir=working_dir)
        except ServingError as exc:
            raise DeploymentProblem(str(exc)) from None

    # ------------------------------------------------------------------ the port

    def start(self, w: Workload, now: float) -> None:
        serving = w.spec.serving
        assert serving is not None
        run = self._runs.get(w.id)
        if run is not None and run.attempt == w.attempt:
            return
        try:
            ingress = serving.deployment_name or self.check(
                serving.import_path, dict(w.spec.env), w.spec.working_dir
            )
            self.runner()
        except (DeploymentProblem, ServingError) as exc:
            self._outbox.append(StartFailed(w.id, w.attempt, str(exc), retry=False))
            return
        run = _Deployment(w.id, w.attempt, serving.revision, now + self.start_timeout, w.spec.name)
        self._runs[w.id] = run
        self._sync(run, w, ingress)

    def resize(self, w: Workload, now: float) -> None:
        run = self._current(w)
        if run is None or run.phase == "stopping":
            return
        serving = w.spec.serving
        assert serving is not None
        self._sync(run, w, serving.deployment_name or "")

    def stop(self, w: Workload, *, ending: bool) -> None:
        """Preempt (``ending`` False: its front stays for the next attempt) or cancel it: every
        replica drains, then ``Stopped``."""
        run = self._current(w)
        if run is None:
            if ending:
                self._end_front(w.spec.name, w.id)
            self._outbox.append(Stopped(w.id, w.attempt))
            return
        run.ending = run.ending or ending
        if run.phase == "stopping":
            return
        run.phase = "stopping"
        for member in list(run.members):
            self._drain(run, member)

    def poll(self, now: float) -> list[Observation]:
        runner = self._runner
        if runner is not None and (self._runs or runner.has_replicas()):
            statuses = runner.replicas()  # also deletes what drained, followed here or not
            for run in list(self._runs.values()):
                self._advance(run, statuses, now)
            followed = self._followed()
            for key, st in statuses.items():
                if st.state == ReplicaState.GONE and key not in followed:
                    runner.forget(key)
        out, self._outbox = self._outbox, []
        return out

    def load(self, w: Workload) -> ServingLoad | None:
        """The load at the deployment's front (with no replica too: a request waiting there
        wakes a deployment scaled to zero)."""
        if self._runner is None or not self._runner.has_front(w.spec.name):
            return None
        load = self._runner.load(w.spec.name)
        stats = self._runner.stats(w.spec.name)
        return ServingLoad(
            in_flight=float(load["in_flight"]),
            queued=float(load["queued"]),
            ready=int(load["ready"]),
            requests=int(stats["requests"]),
            errors=int(stats["errors"]),
            p50_ms=stats["p50_ms"],
            p99_ms=stats["p99_ms"],
        )

    def url(self, w: Workload) -> str | None:
        if self._runner is None or not self._runner.has_front(w.spec.name):
            return None
        return self._runner.front(w.spec.name)

    def adopt(self, w: Workload) -> bool:
        """After a restart: re-attach to the replicas of ``w``'s placement, running on Serve."""
        if self._current(w) is not None:
            return True
        keys = self._adopt_all()
        serving = w.spec.serving
        assert serving is not None
        members = {m: replica_key(w.id, serving.revision, m) for m in w.placement}
        if not members or any(k not in keys for k in members.values()):
            return False
        run = _Deployment(w.id, w.attempt, serving.revision, float("inf"), w.spec.name, members=members)
        self._runs[w.id] = run
        return True

    def reap(self, keep: set[str]) -> list[str]:
        """Drain the replicas of deployments not in ``keep`` nor followed; returns their keys."""
        if self._runner is None:
            return []
        followed = self._followed()
        removed = []
        for key, st in self._runner.replicas().items():
            if st.deployment not in keep and key not in followed and st.state != ReplicaState.GONE:
                self._runner.remove_replica(key, grace=0.0)
                removed.append(key)
        return removed

    # ------------------------------------------------------------------ internals

    def _adopt_all(self) -> set[str]:
        if not self._adopted:
            self._adopted = True
            self.runner().adopt()
        return set(self.runner().replicas())

    def _followed(self) -> set[str]:
        return {k for r in self._runs.values() for k in (*r.members.values(), *r.draining.values())}

    def _current(self, w: Workload) -> _Deployment | None:
        run = self._runs.get(w.id)
        return run if run is not None and run.attempt == w.attempt else None

    def _sync(self, run: _Deployment, w: Workload, ingress: str) -> None:
        """Start the replicas of members newly placed; drain those no longer placed."""
        runner = self.runner()
        for member in [m for m in run.members if m not in w.placement]:
            self._drain(run, member)
        for member, node in sorted(w.placement.items()):
            if member in run.members:
                continue
            spec = self._replica(w, member, node, ingress, run.revision)
            if spec.key in run.draining.values():
                continue  # the same replica still drains: placed again once it is gone
            runner.forget(spec.key)  # one of an attempt that is over, if gone
            runner.add_replica(spec)
            run.members[member] = spec.key

    def _replica(self, w: Workload, member: str, node: str, ingress: str, revision: int) -> ReplicaSpec:
        serving = w.spec.serving
        assert serving is not None
        shape = w.assigned.get(member) or w.spec.task_groups[0].resources
        return ReplicaSpec(
            deployment=w.id,
            member=member,
            import_path=serving.import_path,
            node=node,
            ingress=ingress,
            gpus=gpu_milli(shape) / GPU_MILLI,
            cpus=shape.get("vcore", 0) / 1000,
            memory=int(shape.get("memory", 0)),
            gpu_ids=tuple(w.gpu_ids.get(member, ())),
            revision=revision,
            env=dict(w.spec.env),
            working_dir=w.spec.working_dir,
            max_ongoing_requests=serving.max_ongoing_requests,
            graceful_shutdown_timeout_s=serving.graceful_shutdown_timeout,
            front=w.spec.name,
        )

    def _drain(self, run: _Deployment, member: str) -> None:
        key = run.members.pop(member)
        run.draining[member] = key
        self.runner().remove_replica(key)

    def _advance(self, run: _Deployment, statuses: dict[str, ReplicaStatus], now: float) -> None:
        runner = self.runner()
        for member, key in list(run.draining.items()):
            st = statuses.get(key)
            if st is None or st.state == ReplicaState.GONE:
                del run.draining[member]
                runner.forget(key)
                if run.phase != "stopping":
                    self._outbox.append(MemberStopped(run.workload_id, run.attempt, member))
        if run.phase == "stopping":
            if not run.draining:
                del self._runs[run.workload_id]
                if run.ending:
                    self._end_front(run.front, run.workload_id)
                self._outbox.append(Stopped(run.workload_id, run.attempt))
            return
        states = {m: statuses[k] for m, k in run.members.items() if k in statuses}
        failed = [(m, st) for m, st in sorted(states.items()) if st.state == ReplicaState.FAILED]
        if failed:
            member, st = failed[0]
            said = _first_line(st.message) or "no message from Serve"
            why = f"replica {member} on {st.node} failed: {said}"
            self._give_up(run)
            if run.phase == "starting":
                self._outbox.append(StartFailed(run.workload_id, run.attempt, why, retry=False))
            else:
                self._outbox.append(Finished(run.workload_id, run.attempt, False, why))
            return
        if run.phase == "starting":
            if states and all(states.get(m) and states[m].state == ReplicaState.RUNNING for m in run.members):
                run.phase = "running"
                self._outbox.append(Started(run.workload_id, run.attempt))
            elif now >= run.start_deadline:
                self._give_up(run)
                self._outbox.append(
                    StartFailed(
                        run.workload_id,
                        run.attempt,
                        f"no replica was running within {self.start_timeout:.0f}s",
                    )
                )

    def _end_front(self, front: str, workload_id: str) -> None:
        """Stop a deployment's front unless another of its revisions still runs behind it."""
        if self._runner is not None and not any(
            r.front == front and r.workload_id != workload_id for r in self._runs.values()
        ):
            self._runner.stop_front(front)

    def _give_up(self, run: _Deployment) -> None:
        """Remove every replica of a failed attempt at once (nothing to drain: it failed)."""
        runner = self.runner()
        for key in [*run.members.values(), *run.draining.values()]:
            runner.remove_replica(key, grace=0.0)
        self._runs.pop(run.workload_id, None)
        self._end_front(run.front, run.workload_id)


def _first_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    # Serve's messages end with the exception's own line: the most telling one.
    return lines[-1] if lines else ""
