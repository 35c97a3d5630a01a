"""The model-deployment use cases of the control plane: deploy, list, status, undeploy.

A deployment is stored as a workload of kind ``deployment`` (``engine.model.DeploymentSpec``):
one elastic task group ``replica``. ``DeploymentService`` checks a request before anything is
stored (an executor that can run deployments, else 501; the name free among live deployments,
the queue, the replicas' shape and count against the queue's max, a node that could hold a
replica), then hands the workload to the driver through ``WorkloadService.store_new``. Names
are unique among live deployments.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from gpupool.api import (
    LIST_MAX,
    DeploymentOut,
    DeploymentSeriesOut,
    DeployRequest,
    ReplicaOut,
    ScaleDecisionOut,
    SeriesPointOut,
    ServingStatsOut,
    TransitionOut,
    gpu_milli_of,
)
from gpupool.core.resources import (
    Resources,
    format_resources,
    gpu_milli,
    gpus_from_milli,
    in_gpus,
    over_max,
    parse_quantity,
)
from gpupool.engine.model import (
    DEPLOYMENT_KIND,
    DeploymentSpec,
    ServingSpec,
    TaskGroup,
    Workload,
    WorkloadSpec,
    WorkloadState,
    deployment_of,
)
from gpupool.engine.ports import NO_DEPLOYMENT_RUNNER, DeploymentProblem, can_run_deployments
from gpupool.service.errors import Conflict, Forbidden, Invalid, NotFound, Unsupported
from gpupool.service.journal import spec_from_json
from gpupool.service.security import Principal, administers, may_see
from gpupool.service.store import WorkloadStore
from gpupool.service.views import history_out
from gpupool.service.workload_service import WorkloadService

if TYPE_CHECKING:
    from gpupool.service.context import Plane

KIND = DEPLOYMENT_KIND
_LIVE = frozenset(
    {
        WorkloadState.PENDING,
        WorkloadState.ADMITTED,
        WorkloadState.RUNNING,
        WorkloadState.PREEMPTING,
        WorkloadState.PREEMPTED,
    }
)


class DeploymentService:
    """Deployments for the API: create (refusing bad input before anything is stored), read, list, remove."""

    def __init__(self, plane: Plane, store: WorkloadStore, workloads: WorkloadService) -> None:
        self.plane = plane
        self.store = store
        self.workloads = workloads

    # ------------------------------------------------------------------ create

    def deploy(self, principal: Principal, req: DeployRequest) -> DeploymentOut:
        """Create a deployment; 409 if a live one has the name, 422/403 for bad input, 501 if
        the executor cannot run deployments (``RunsDeployments``)."""
        if not can_run_deployments(self.plane.executor):
            raise Unsupported(NO_DEPLOYMENT_RUNNER)  # one line, no hint: the message says it all
        with self.plane.lock:
            # The cheap checks first: a refusal costs no Ray call.
            spec, notice, live = self._checked(principal, req)
            if live is not None and _same(spec, live.spec):
                out = self._out(live, self.plane.queue_of(live.id) or live.spec.queue)
                out.notice = (
                    f"unchanged: {live.id} (revision {_revision(live.spec)}) already runs these settings"
                )
                return out
        ingress = self._ingress(req)  # imports the app on the cluster: seconds, not under the lock
        with self.plane.lock:
            spec, notice, again = self._checked(principal, req)  # again: things may have moved meanwhile
            if (again and again.id) != (live and live.id):
                raise Conflict(
                    f"name: deployment {req.name!r} changed while this request was checked; send it again",
                    fields=[("body.name", "changed meanwhile")],
                )
            assert spec.serving is not None
            serving = dataclasses.replace(spec.serving, deployment_name=ingress)
            if live is not None:  # a rolling update: the new revision replaces the live one once it runs
                serving = dataclasses.replace(serving, revision=_revision(live.spec) + 1, replaces=live.id)
            spec = dataclasses.replace(spec, serving=serving)
            w, queue = self.workloads.store_new(spec, notice)
            out = self._out(w, queue or spec.queue)
        self.plane.wake()
        if live is not None:
            notice = f"rolling update: revision {serving.revision} replaces {live.id} once it runs" + (
                f"; {notice}" if notice else ""
            )
        out.notice = notice
        return out

    def _checked(
        self, principal: Principal, req: DeployRequest
    ) -> tuple[WorkloadSpec, str | None, Workload | None]:
        """The workload of a request that passed every check but the import, and the live
        deployment of that name it would replace (call with the lock)."""
        lives = self._lives(req.name)
        if len(lives) > 1:
            raise Conflict(
                f"name: a rolling update of {req.name!r} is in progress ({lives[0].id} -> {lives[-1].id})",
                fields=[("body.name", "a rolling update is in progress")],
                hint=f"wait until it is done (`gpupool deployment status {req.name}`), then deploy again",
            )
        live = lives[0] if lives else None
        if live is not None:
            row = self.store.row(live.id)
            owner = row.user if row is not None else live.spec.user
            if owner != principal.user and not administers(
                principal, self.plane.queue(row.queue if row else None)
            ):
                raise Forbidden(
                    f"{principal.user} may not update {req.name}: it belongs to {owner}",
                    hint="only its owner and admins of its queue may deploy a new revision of it",
                )
        dep = self._spec(principal, req)
        spec = dep.workload()
        path, _notice = self.workloads.route(principal, spec)
        self._check_replicas(dep, path)
        notice = self.workloads.check_submit(principal, spec, group_field="body.gpus")
        return spec, notice, live

    def _ingress(self, req: DeployRequest) -> str:
        """The app's ingress deployment, as the executor finds it by importing the app; a 422
        naming ``import_path`` when it does not import."""
        try:
            name: str = self.plane.executor.check_deployment(  # type: ignore[attr-defined]
                req.import_path, dict(req.env), req.working_dir
            )
        except DeploymentProblem as exc:
            message = f"import_path: {exc}"
            raise Invalid(
                message,
                fields=[("body.import_path", str(exc))],
                hint="give module:attribute of a Serve application (Deployment.bind()) that imports "
                "from working_dir or the cluster's Python",
            ) from None
        return name

    def _spec(self, principal: Principal, req: DeployRequest) -> DeploymentSpec:
        if (req.size is None) == (req.gpus is None):
            raise Invalid(
                "give exactly one of size or gpus for a replica",
                fields=[("body.gpus", "give exactly one of `size` (a standard size) or `gpus`")],
                hint="--size S, or --gpus G [--gpu-type T]",
            )
        if req.size is not None and req.gpu_type is not None:
            raise Invalid(
                "gpu_type goes with gpus, not with a size (a size names its GPU types)",
                fields=[("body.gpu_type", "give gpu_type only with gpus")],
            )
        max_replicas = req.max_replicas if req.max_replicas is not None else max(req.min_replicas, 1)
        serving = ServingSpec(
            import_path=req.import_path,
            target_ongoing_requests=req.target_ongoing_requests,
            upscale_delay=req.upscale_delay,
            downscale_delay=req.downscale_delay,
            look_back=req.look_back,
            scale_to_zero_after=req.scale_to_zero_after,
            max_ongoing_requests=req.max_ongoing_requests,
        )
        try:
            serving.policy(req.min_replicas, max_replicas)
        except ValueError as exc:
            problem = str(exc)  # policy_problem's words: the field's name first
            raise Invalid(problem, fields=[(f"body.{problem.split()[0]}", problem)]) from None
        if req.size is not None:
            replica = self.workloads.sized_group(req.size)
        else:
            resources = {"vcore": round(req.cpu * 1000), "memory": parse_quantity("memory", req.memory)}
            milli = gpu_milli_of(req.gpus)
            if milli:
                resources["gpu"] = milli
            replica = TaskGroup("replica", 1, resources, (req.gpu_type,) if req.gpu_type else ())
        return DeploymentSpec(
            name=req.name,
            queue=req.queue,
            replica=replica,
            serving=serving,
            min_replicas=req.min_replicas,
            max_replicas=max_replicas,
            size=req.size,
            working_dir=req.working_dir,
            env=dict(req.env),
            user=principal.user,
            groups=principal.groups,
        )

    def _check_replicas(self, dep: DeploymentSpec, path: str) -> None:
        """Refuse min or max replicas whose GPUs (in every shape a replica may take) are above
        the max of the queue or of an ancestor: they could never all run."""
        leaf = self.workloads.bounding_queue(path)
        if leaf is None:
            return
        shapes: list[Resources] = [dep.replica.resources, *(r for r, _ in dep.replica.alternatives)]
        for field, n in (("min_replicas", dep.min_replicas), ("max_replicas", dep.max_replicas)):
            for q in leaf.ancestors():
                needs = [{k: v * n for k, v in shape.items()} for shape in shapes]
                if all(over_max({}, need, q.max) for need in needs):
                    message = (
                        f"{field}: {n} replicas of {format_resources(shapes[0])} need "
                        f"{format_resources(needs[0])}, more than the max of {q.path} "
                        f"({format_resources(q.max or {})})"
                    )
                    raise Invalid(
                        message,
                        fields=[(f"body.{field}", message)],
                        hint=f"lower {field}, give a replica fewer GPUs, or use a queue with a larger max",
                    )

    def _lives(self, name: str) -> list[Workload]:
        """The live deployments named ``name``, oldest first: two during a rolling update (call
        with the lock held)."""
        found = [
            w
            for w in self.plane.driver.workloads.values()
            if w.spec.kind == KIND and w.spec.name == name and w.state in _LIVE
        ]
        return sorted(found, key=lambda w: (w.submitted_at, w.id))

    def _live(self, name: str) -> Workload | None:
        """The newest live deployment named ``name`` (call with the lock held)."""
        lives = self._lives(name)
        return lives[-1] if lives else None

    # ------------------------------------------------------------------ read

    def listed(self, principal: Principal, *, include_finished: bool = False) -> list[DeploymentOut]:
        """The deployments the principal may see, newest first; live ones only unless asked."""
        states = None if include_finished else [s.value for s in _LIVE]
        rows = self.workloads.list_rows(principal, kind=KIND, states=states, limit=LIST_MAX)
        return [self._read(row, []) for row in rows]

    def get(self, principal: Principal, name: str) -> DeploymentOut:
        """The live deployment named ``name``, else the newest one of that name."""
        row = self._row(principal, name)
        return self._read(row, history_out(self.store.history(row.id)))

    def _row(self, principal: Principal, name: str) -> Any:
        with self.plane.lock:
            live = self._live(name)
        if live is not None:
            row = self.store.row(live.id)
        else:
            rows = self.workloads.list_rows(principal, kind=KIND, name=name, limit=1)
            row = rows[0] if rows else None
        if row is None or not may_see(principal, row.user, self.plane.queue(row.queue)):
            raise NotFound(f"no deployment {name!r}", hint="list them with `gpupool deployments`")
        return row

    def _read(self, row: Any, history: list[TransitionOut]) -> DeploymentOut:
        with self.plane.lock:
            w = self.plane.driver.workloads.get(row.id)
            if w is not None and not w.terminal:
                out = self._out(w, row.queue)
                out.history = history
                return out
        spec = spec_from_json(row.spec)
        out = _spec_out(row.id, spec, row.queue, row.state, row.reason, row.submitted_at)
        out.started_at, out.finished_at, out.history = row.started_at, row.finished_at, history
        return out

    def _out(self, w: Workload, queue: str | None) -> DeploymentOut:
        """A deployment in memory on the wire, with its replicas (call with the lock held)."""
        out = _spec_out(w.id, w.spec, queue, w.state.value, w.reason, w.submitted_at)
        out.started_at, out.finished_at = w.started_at, w.finished_at
        if w.terminal:
            return out
        core = self.plane.driver.core
        track = self.plane.driver.scaling.track(w)
        draining = track.draining if track is not None else set()
        required = {m for m, _ in w.spec.members()}
        replicas = []
        for member, _group in [*w.spec.members(), *w.spec.extra_members()]:
            ask_id = f"{w.id}/{member}"
            alloc = core.allocations.get(ask_id)
            if alloc is not None and member in draining:
                replicas.append(
                    ReplicaOut(
                        member=member,
                        state="draining",
                        node=alloc.node.name,
                        gpu_ids=list(alloc.gpu_ids or ()),
                        extra=member not in required,
                    )
                )
            elif alloc is not None:
                replicas.append(
                    ReplicaOut(
                        member=member,
                        state="placed",
                        node=alloc.node.name,
                        gpu_ids=list(alloc.gpu_ids or ()),
                        extra=member not in required,
                    )
                )
            elif ask_id in core.asks:
                why = str(core.explain(ask_id))
                replicas.append(
                    ReplicaOut(member=member, state="waiting", extra=member not in required, why=why)
                )
        out.replicas = replicas
        if track is not None:
            out.desired, out.scale_reason = track.desired, track.reason
            out.decisions = [
                ScaleDecisionOut(at=x.at, old=x.old, new=x.new, reason=x.reason) for x in track.decisions
            ]
            last = track.last
            if last is not None and w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING):
                out.ready = last.ready
                out.stats = ServingStatsOut(
                    in_flight=last.in_flight,
                    queued=last.queued,
                    requests=last.requests,
                    errors=last.errors,
                    p50_ms=last.p50_ms,
                    p99_ms=last.p99_ms,
                )
        if w.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING):
            out.running = sum(1 for r in replicas if r.state == "placed")
        out.url = self.plane.executor.deployment_url(w)  # type: ignore[attr-defined]
        waiting = [r for r in replicas if r.state == "waiting"]
        if waiting:
            wanted = len(replicas) - sum(1 for r in replicas if r.state == "draining")
            out.held = f"{len(waiting)} of {wanted} replicas wait: {waiting[0].why or 'not tried yet'}"
        return out

    # ------------------------------------------------------------------ series

    def series(self, principal: Principal, name: str, since: float | None = None) -> DeploymentSeriesOut:
        """The samples of the live (else newest) deployment named ``name`` after ``since``."""
        row = self._row(principal, name)
        spec = spec_from_json(row.spec)
        dep = deployment_of(spec)
        assert dep is not None
        gpus = gpus_from_milli(gpu_milli(dep.replica.resources))
        with self.plane.lock:
            track = self.plane.driver.scaling.tracks.get(row.id)
            points = list(track.series) if track is not None else []
        return DeploymentSeriesOut(
            name=spec.name,
            id=row.id,
            gpus=gpus,
            points=[SeriesPointOut(**dataclasses.asdict(p)) for p in points if since is None or p.at > since],
        )

    # ------------------------------------------------------------------ remove

    def undeploy(self, principal: Principal, name: str) -> DeploymentOut:
        """Stop the live deployment named ``name``: its replicas stop and their GPUs are freed."""
        with self.plane.lock:
            live = self._live(name)
        if live is None:
            raise NotFound(f"no live deployment {name!r}", hint="list them with `gpupool deployments`")
        row = self.store.row(live.id)
        if row is None or not may_see(principal, row.user, self.plane.queue(row.queue)):
            raise NotFound(f"no live deployment {name!r}", hint="list them with `gpupool deployments`")
        if row.user != principal.user and not administers(principal, self.plane.queue(row.queue)):
            raise Forbidden(
                f"{principal.user} may not undeploy {name}: it belongs to {row.user}",
                hint="only its owner and admins of its queue may undeploy it",
            )
        with self.plane.lock:
            for w in self._lives(name):  # during a rolling update, both revisions
                self.plane.driver.cancel(w.id, self.plane.clock(), reason=f"undeployed by {principal.user}")
        self.plane.wake()
        return self.get(principal, name)


def _spec_out(
    wid: str, spec: WorkloadSpec, queue: str | None, state: str, reason: str, at: float
) -> DeploymentOut:
    dep = deployment_of(spec)
    assert dep is not None and spec.serving is not None, f"{wid} is not a deployment"
    s = spec.serving
    return DeploymentOut(
        id=wid,
        name=spec.name,
        user=spec.user,
        queue=queue or spec.queue,
        state=state,  # type: ignore[arg-type]
        reason=reason,
        import_path=s.import_path,
        size=spec.size,
        gpus=gpus_from_milli(gpu_milli(dep.replica.resources)),
        gpu_types=list(dep.replica.gpu_types),
        resources=in_gpus(dep.replica.resources),
        min_replicas=dep.min_replicas,
        max_replicas=dep.max_replicas,
        target_ongoing_requests=s.target_ongoing_requests,
        upscale_delay=s.upscale_delay,
        downscale_delay=s.downscale_delay,
        look_back=s.look_back,
        scale_to_zero_after=s.scale_to_zero_after,
        max_ongoing_requests=s.max_ongoing_requests,
        working_dir=spec.working_dir,
        env=dict(spec.env),
        revision=s.revision,
        replaces=s.replaces,
        submitted_at=at,
    )


def _revision(spec: WorkloadSpec) -> int:
    return spec.serving.revision if spec.serving is not None else 1


def _same(new: WorkloadSpec, live: WorkloadSpec) -> bool:
    """Whether a request asks for exactly what the live revision runs (so nothing to roll)."""

    def settings(spec: WorkloadSpec) -> WorkloadSpec:
        assert spec.serving is not None
        serving = dataclasses.replace(spec.serving, deployment_name=None, revision=1, replaces=None)
        return dataclasses.replace(spec, serving=serving, user="", groups=())

    return settings(new) == settings(live)
