"""``RayExecutor``: the engine's Executor port on a Ray cluster.

One workload attempt on Ray is:

* a detached placement group ``gpupool.pg.<workload>.<attempt>`` with one bundle per member
  (its CPUs, GPUs and memory), each bundle pinned to the node the scheduling core chose by a
  sliver of that node's ``gpupool.node.<name>`` resource (``naming``); Ray decides nothing;
* a detached supervisor actor ``gpupool.job.<workload>.<attempt>`` in bundle 0 that runs the
  entrypoint as member 0 (``supervisor``), the job's side being ``gpupool.runtime``. It holds
  bundle 0's GPUs (so Ray gives the entrypoint its GPU ids) and leaves its CPUs and memory to
  the job's own tasks;
* for an elastic workload, one more placement group per extra member
  (``gpupool.pgx.<workload>.<attempt>.<member>``), made and removed by ``resize`` as the
  scheduler grows and shrinks it; the job reads its current members from the supervisor.

Bundles have the shape the scheduling core assigned each member (a size that fell back to
another shape runs with that shape's GPUs).

Work stays inside the reservation: the job's driver is captured in its placement group
(``gpupool.runtime.capture_hook``); ``poll`` stops a job whose tasks or actors hold GPUs outside
it (``Finished`` failed, saying what escaped where), as ``raystate.EscapeWatch`` finds them.

Failures: an entrypoint that cannot start (no such working_dir, a NUL byte) is reported as
``StartFailed(retry=False)`` with the cause in plain words; Ray's error texts lose their ANSI
colour codes.

Every call returns at once: Ray's creation calls are asynchronous, and ``poll`` looks at the
pending calls with ``ray.wait(timeout=0)`` and turns what finished into observations.

Preemption: ``preempt`` asks the supervisor to request a checkpoint (a Ray call, so it works on
a multi-machine cluster; the supervisor tells the job through a node-local file). ``poll`` waits
for the reported path until the grace period (in the driver's ``now``) ends, then stops the job
(SIGTERM, SIGKILL after ``term_timeout``), removes the placement group and reports
``Stopped(checkpoint=...)``. Checkpoints live under ``data_dir/checkpoints`` (shared storage on
a multi-machine cluster); the next attempt gets the last one as ``resume_from()``.

Nodes: ``poll`` reads Ray's node table (at most every ``node_poll_interval`` seconds) and reports
``NodeUp``/``NodeDown`` by gpupool node name. A node with the ``gpupool.io/pool`` label was
launched by a node provider (``provider.LocalRayProvider``) for a node pool: the autoscaler
reports it to the driver, with its pool labels, once it has booted, and reports it gone, so
the executor never does (nor lists it in ``nodes()``); it still pins bundles to it.

Restart: supervisors and placement groups are detached, so after a control-plane restart
``adopt(workload)`` re-attaches to a running attempt by name, and ``reap_orphans`` removes what
no workload owns any more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from gpupool.adapters.ray import naming, notebooks
from gpupool.adapters.ray.deployments import DeploymentRuns
from gpupool.adapters.ray.raystate import (
    EscapeWatch,
    RayNode,
    named_pg,
    pg_from_hex,
    read_node_table,
    short,
)
from gpupool.adapters.ray.runs import Run, read_logs
from gpupool.adapters.ray.supervisor import JobSupervisor
from gpupool.core.model import NodeSpec
from gpupool.core.resources import GPU_MILLI, gpu_milli
from gpupool.engine.model import DEPLOYMENT_KIND, NOTEBOOK_KIND, Workload, WorkloadState
from gpupool.engine.ports import (
    Adoptable,
    Executor,
    Finished,
    NodeDown,
    NodeUp,
    Observation,
    ReapsOrphans,
    Resizable,
    RunsDeployments,
    ServingLoad,
    Started,
    StartFailed,
    Stopped,
)

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost")


class RayExecutor(Executor, Adoptable, Resizable, ReapsOrphans, RunsDeployments, notebooks.SessionPort):
    """Runs admitted workloads on the Ray cluster at ``address``; files under ``data_dir``.

    Optional arguments (defaults): ``start_timeout`` (120 s for a reservation to be granted and
    the entrypoint to start, else StartFailed and requeue), ``term_timeout`` (5 s from SIGTERM
    to SIGKILL), ``node_poll_interval`` (1 s), ``lost_grace`` (30 s: how long a vanished
    supervisor waits for its node to be declared dead before the job counts as failed).
    """

    def __init__(
        self,
        address: str,
        data_dir: str | Path,
        *,
        start_timeout: float = 120.0,
        term_timeout: float = 5.0,
        node_poll_interval: float = 1.0,
        lost_grace: float = 30.0,
    ) -> None:
        self.address = address
        self.data_dir = Path(data_dir).absolute()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.term_timeout = term_timeout
        self.node_poll_interval = node_poll_interval
        self.lost_grace = lost_grace
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._outbox: list[Observation] = []
        self._table: dict[str, RayNode] = {}
        self._reported: dict[str, bool] = {}  # node -> alive, as last reported by poll
        self._last_nodes: float | None = None
        self._owns_connection = False
        self._deployments = DeploymentRuns(start_timeout=start_timeout)  # workloads of kind deployment
        self._sessions = notebooks.Sessions(self.data_dir)  # workloads of kind notebook
        self._connect()

    # ------------------------------------------------------------------ connection

    def _connect(self) -> None:
        host = self.address.removeprefix("ray://").rsplit(":", 1)[0]
        if host in LOOPBACK:
            # A local cluster lives on 127.0.0.1: keep Ray from resolving that to this machine's
            # IP (see cluster._raystart); child processes inherit the setting.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        import ray
        from ray._private import ray_constants

        if host in LOOPBACK:
            ray_constants.ENABLE_RAY_CLUSTER = False
        if not ray.is_initialized():
            ray.init(
                address=self.address,
                namespace=naming.NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self._owns_connection = True
        elif not self.address.startswith("ray://"):
            # Ray keeps one connection per process: using it would silently run on another cluster.
            at = ray.get_runtime_context().gcs_address
            if at != self.address:
                raise RuntimeError(f"this process is connected to Ray at {at}, not at {self.address}")
        self._ray = ray
        self._supervisor = ray.remote(JobSupervisor)
        self._escapes = EscapeWatch(ray, self.node_poll_interval)

    def close(self) -> None:
        """Disconnect from Ray. Running jobs keep running (they are detached): ``adopt`` them later."""
        with self._lock:
            self._runs.clear()
            if self._owns_connection and self._ray.is_initialized():
                self._ray.shutdown()
            self._owns_connection = False

    # ------------------------------------------------------------------ Executor port

    def start(self, workload: Workload, now: float) -> None:
        with self._lock:
            if workload.spec.kind == DEPLOYMENT_KIND:
                return self._deployments.start(workload, now)
            run = self._runs.get(workload.id)
            if run is not None:
                if run.attempt == workload.attempt:
                    return
                self._cleanup(run)  # an older attempt still around: never two at once
            self._kill_stale(workload.id, keep=workload.attempt)
            try:
                self._start(workload, now)
            except Exception as exc:  # Ray refused the request itself
                log.exception("could not start %s", workload.id)
                self._outbox.append(StartFailed(workload.id, workload.attempt, short(exc), retry=False))

    def _start(self, w: Workload, now: float) -> None:
        members = w.spec.members()
        self._refresh_nodes(now, force=True)
        placement: list[tuple[str, str]] = []
        bundles: list[dict[str, float]] = []
        for member, group in members:
            node_name = w.placement.get(member)
            node = self._table.get(node_name or "")
            if node is None or not node.alive:
                where = f"node {node_name!r}" if node_name else "no node"
                self._outbox.append(
                    StartFailed(
                        w.id, w.attempt, f"member {member} was placed on {where}, not a live Ray node"
                    )
                )
                return
            bundles.append(self._bundle(node, w.assigned.get(member) or group.resources))
            placement.append((member, node.name))
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = placement_group(
            bundles, strategy="PACK", name=naming.pg_name(w.id, w.attempt), lifetime="detached"
        )
        first = bundles[0]
        entrypoint, env = self._sessions.launch(w)  # a session's is its Jupyter server
        config = {
            "workload_id": w.id,
            "attempt": w.attempt,
            "entrypoint": entrypoint,
            "working_dir": w.spec.working_dir,
            "env": env,
            "data_dir": str(self.data_dir),
            "resume_from": self._latest(w),
            "placement": placement,
            "placement_group_id": pg.id.hex(),
            # The GPU indices the core chose for member 0: what its process sees.
            "gpu_ids": list(w.gpu_ids.get(members[0][0], ())),
        }
        options: dict[str, Any] = {
            "name": naming.actor_name(w.id, w.attempt),
            "namespace": naming.NAMESPACE,
            "lifetime": "detached",
            "max_restarts": 0,
            "max_concurrency": 8,
            # The GPUs, for their ids; bundle 0's CPUs and memory stay free for the job's tasks.
            "num_cpus": 0,
            "num_gpus": first.get("GPU", 0),
            "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0),
        }
        run = Run(
            w.id,
            w.attempt,
            tuple(sorted({n for _, n in placement})),
            pg,
            None,
            has_entrypoint=bool(entrypoint),
            start_deadline=now + self.start_timeout,
            bundles=bundles,
            placement=placement,
        )
        self._sync_extras(run, w)
        config["members"] = self._member_rows(run)
        run.actor = self._supervisor.options(**options).remote(config)
        run.launch_ref = run.actor.launch.remote()
        self._runs[w.id] = run

    def _bundle(self, node: RayNode, res: dict[str, int]) -> dict[str, float]:
        bundle: dict[str, float] = {node.pin: naming.PIN_AMOUNT}
        if res.get("vcore"):
            bundle["CPU"] = res["vcore"] / 1000
        if gpu_milli(res):
            bundle["GPU"] = gpu_milli(res) / GPU_MILLI
        if res.get("memory"):
            bundle["memory"] = float(res["memory"])
        return bundle

    def resize(self, workload: Workload, now: float) -> None:
        """An elastic workload grew or shrank (``workload.placement``): make or remove the
        placement groups of its extra members and tell the job its members."""
        with self._lock:
            if workload.spec.kind == DEPLOYMENT_KIND:
                return self._deployments.resize(workload, now)
            run = self._current(workload)
            if run is None or run.phase not in ("starting", "running"):
                return
            self._refresh_nodes(now, force=True)
            self._sync_extras(run, workload)
            with contextlib.suppress(Exception):
                run.actor.set_members.remote(self._member_rows(run))

    def _sync_extras(self, run: Run, w: Workload) -> None:
        from ray.util.placement_group import placement_group

        gang = {m for m, _ in run.placement}
        want = {m: n for m, n in w.placement.items() if m not in gang}
        for member in list(run.extras):
            if want.get(member) != run.extras[member][1]:
                self._remove_pg(run.extras.pop(member)[0])
        groups = dict(w.spec.extra_members())
        for member, node_name in sorted(want.items()):
            node = self._table.get(node_name)
            if member in run.extras or member not in groups or node is None or not node.alive:
                continue
            bundle = self._bundle(node, w.assigned.get(member) or groups[member].resources)
            name = naming.extra_pg_name(w.id, w.attempt, member)
            run.extras[member] = (placement_group([bundle], name=name, lifetime="detached"), node_name)

    def _member_rows(self, run: Run) -> list[list[Any]]:
        """What the job reads as its members: (member, node, placement group id, bundle index)."""
        rows: list[list[Any]] = [[m, n, run.pg.id.hex(), i] for i, (m, n) in enumerate(run.placement)]
        rows += [[m, n, pg.id.hex(), 0] for m, (pg, n) in sorted(run.extras.items())]
        return rows

    def preempt(self, workload: Workload, grace: float, now: float) -> None:
        with self._lock:
            if workload.spec.kind == DEPLOYMENT_KIND:
                return self._deployments.stop(workload, ending=False)
            run = self._current(workload)
            if run is None:
                self._outbox.append(Stopped(workload.id, workload.attempt, self._latest(workload)))
            elif run.phase in ("starting", "lost"):
                self._finish_stop(run, workload)
            elif run.phase == "running":
                if not run.has_entrypoint:
                    self._begin_stop(run, now)
                    return
                run.requested = True
                run.ckpt_ref = run.actor.request_checkpoint.remote(max(grace, 0.0))
                run.preempt_deadline = now + grace
                run.phase = "checkpointing"

    def cancel(self, workload: Workload, now: float) -> None:
        with self._lock:
            if workload.spec.kind == DEPLOYMENT_KIND:
                return self._deployments.stop(workload, ending=True)
            run = self._current(workload)
            if run is None:
                self._outbox.append(Stopped(workload.id, workload.attempt, self._latest(workload)))
            elif run.phase in ("starting", "lost"):
                self._finish_stop(run, workload)
            elif run.phase in ("running", "checkpointing"):
                self._begin_stop(run, now)

    def poll(self, now: float) -> list[Observation]:
        with self._lock:
            self._refresh_nodes(now)
            pending = [r for run in self._runs.values() for r in run.pending()]
            ready: set[Any] = set()
            if pending:
                done, _ = self._ray.wait(pending, num_returns=len(pending), timeout=0)
                ready = set(done)
            for run in list(self._runs.values()):
                self._advance(run, now, ready)
            self._check_escapes(now)
            out, self._outbox = self._outbox, []
            return out + self._deployments.poll(now)

    # ------------------------------------------------------------------ deployments (RunsDeployments)

    def check_deployment(self, import_path: str, env: dict[str, str], working_dir: str | None) -> str:
        with self._lock:
            self._deployments.runner()  # Serve up before the first replica (once; seconds)
        return self._deployments.check(import_path, env, working_dir)  # a Ray task: not under the lock

    def serving_load(self, workload: Workload) -> ServingLoad | None:
        with self._lock:
            return self._deployments.load(workload)

    def deployment_url(self, workload: Workload) -> str | None:
        with self._lock:
            return self._deployments.url(workload)

    # ------------------------------------------------------------------ beyond the port

    def nodes(self) -> list[NodeSpec]:
        """The live gpupool nodes of the Ray cluster, as core NodeSpecs, by name."""
        with self._lock:
            self._refresh_nodes(None, force=True)
            return [
                n.spec
                for n in sorted(self._table.values(), key=lambda n: n.name)
                if n.alive and not n.managed
            ]

    def logs(self, workload_id: str) -> str:
        """The entrypoint's output, every attempt in order (headed ``--- attempt N ---`` if several)."""
        with self._lock:
            run = self._runs.get(workload_id)
        return read_logs(self._ray, self.data_dir, workload_id, run)

    def adopt(self, workload: Workload) -> bool:
        """Re-attach to the running attempt of ``workload`` after a restart; False if it is gone.

        For an admitted/running/preempting workload of the database. True: ``poll`` goes on
        reporting it (``Started`` again if it had not been; ``Finished`` if it ended meanwhile;
        a preemption goes on against ``workload.preempt_deadline``). False: nothing of it runs
        any more (what was left is removed), so the driver can requeue it.
        """
        ray = self._ray
        with self._lock:
            if workload.spec.kind == DEPLOYMENT_KIND:
                return self._deployments.adopt(workload)
            if self._current(workload) is not None:
                return True
            try:
                actor = ray.get_actor(
                    naming.actor_name(workload.id, workload.attempt), namespace=naming.NAMESPACE
                )
            except ValueError:
                actor = None
            pg = named_pg(self._ray, naming.pg_name(workload.id, workload.attempt))
            info: dict[str, Any] | None = None
            if actor is not None:
                try:
                    info = ray.get(actor.info.remote(), timeout=15)
                except Exception:
                    info = None
            if actor is None or info is None or pg is None:
                self._kill_actor(actor)
                self._remove_pg(pg)
                return False
            run = Run(
                workload.id,
                workload.attempt,
                tuple(sorted(set(workload.placement.values()))),
                pg,
                actor,
                has_entrypoint=bool(workload.spec.entrypoint) or workload.spec.kind == NOTEBOOK_KIND,
            )
            gang = {m for m, _ in workload.spec.members()}
            for member, node in workload.placement.items():
                extra = named_pg(self._ray, naming.extra_pg_name(workload.id, workload.attempt, member))
                if member not in gang and extra is not None:
                    run.extras[member] = (extra, node)
            run.launch_ref = actor.launch.remote()  # idempotent: answers at once if launched
            if workload.state == WorkloadState.PREEMPTING:
                run.requested = True
                run.preempt_deadline = workload.preempt_deadline
            self._runs[workload.id] = run
            return True

    def reap_orphans(self, keep: set[str]) -> list[str]:
        """Remove supervisors and placement groups of workloads not in ``keep`` nor followed here.

        For the service after a restart, once every live workload was adopted. Returns the names
        removed.
        """
        ray = self._ray
        removed: list[str] = []
        with self._lock:
            live = {(r.workload_id, r.attempt) for r in self._runs.values()}
            for entry in ray.util.list_named_actors(all_namespaces=True):
                if entry.get("namespace") != naming.NAMESPACE:
                    continue
                parsed = naming.parse_actor_name(entry["name"])
                if parsed is None or parsed in live or parsed[0] in keep:
                    continue
                with contextlib.suppress(ValueError):
                    self._kill_actor(ray.get_actor(entry["name"], namespace=naming.NAMESPACE))
                    removed.append(entry["name"])
            live_pgs = {naming.pg_name(w, a) for w, a in live}
            for r in self._runs.values():
                live_pgs |= {naming.extra_pg_name(r.workload_id, r.attempt, m) for m in r.extras}
            for pg_id, info in ray.util.placement_group_table().items():
                name = info.get("name") or ""
                wid = naming.pg_workload(name)
                if wid is None or info.get("state") == "REMOVED" or name in live_pgs:
                    continue
                if wid in keep:
                    continue
                self._remove_pg(pg_from_hex(self._ray, pg_id))
                removed.append(name)
            removed += self._deployments.reap(keep)
        return removed

    # ------------------------------------------------------------------ the state machine

    def _advance(self, run: Run, now: float, ready: set[Any]) -> None:
        if run.phase == "starting":
            if run.start_deadline is None:
                run.start_deadline = now + self.start_timeout
            if run.launch_ref in ready:
                try:
                    info = self._ray.get(run.launch_ref)
                except Exception as exc:
                    self._lost_or_failed(run, now, f"its supervisor could not start: {short(exc)}")
                    return
                run.launch_ref = None
                if info.get("error"):
                    self._cleanup(run)
                    self._outbox.append(StartFailed(run.workload_id, run.attempt, info["error"], retry=False))
                    return
                run.shared_fs = Path(info["log_path"]).exists()
                run.exit_ref = run.actor.wait_exit.remote(with_log=not run.shared_fs)
                run.phase = "checkpointing" if run.requested else "running"
                if run.requested:
                    run.ckpt_ref = run.actor.request_checkpoint.remote(3600.0)
                self._outbox.append(Started(run.workload_id, run.attempt))
            elif now >= run.start_deadline:
                self._cleanup(run)
                self._outbox.append(
                    StartFailed(
                        run.workload_id,
                        run.attempt,
                        f"its reservation on {', '.join(run.nodes)} was not ready"
                        f" within {self.start_timeout:.0f}s",
                    )
                )
            return
        if run.phase in ("running", "checkpointing"):
            if run.exit_ref in ready:
                try:
                    result = self._ray.get(run.exit_ref)
                except Exception as exc:
                    self._lost_or_failed(run, now, f"its supervisor was lost: {short(exc)}")
                    return
                self._keep_log(run, result)
                code = result.get("code")
                reported = self._reported_checkpoint(run, ready)
                self._cleanup(run)
                if run.failure is not None:
                    self._outbox.append(Finished(run.workload_id, run.attempt, False, run.failure))
                elif run.phase == "checkpointing" and reported:
                    self._outbox.append(Stopped(run.workload_id, run.attempt, reported))
                elif code == 0:
                    self._outbox.append(Finished(run.workload_id, run.attempt, True, "its job exited 0"))
                else:
                    self._outbox.append(
                        Finished(run.workload_id, run.attempt, False, f"its job exited with code {code}")
                    )
                return
            if run.phase == "checkpointing":
                if run.ckpt_ref in ready:
                    run.checkpoint = self._reported_checkpoint(run, ready)
                    run.ckpt_ref = None
                    if run.checkpoint is not None:
                        self._begin_stop(run, now)
                        return
                if run.preempt_deadline is None or now >= run.preempt_deadline:
                    self._begin_stop(run, now)
            return
        if run.phase == "stopping":
            if run.stop_ref in ready or (run.stop_deadline is not None and now >= run.stop_deadline):
                if run.stop_ref in ready:
                    with contextlib.suppress(Exception):
                        self._keep_log(run, self._ray.get(run.stop_ref))
                self._finish_stop(run, None)
            return
        if run.phase == "lost":
            dead = [n for n in run.nodes if not self._alive(n)]
            if not dead and run.lost_since is not None and now - run.lost_since >= self.lost_grace:
                self._cleanup(run)
                self._outbox.append(
                    Finished(run.workload_id, run.attempt, False, "its supervisor was lost (no node died)")
                )
            # With a dead node, the driver hears NodeDown and cancels it: nothing to report here.

    def _lost_or_failed(self, run: Run, now: float, message: str) -> None:
        self._refresh_nodes(now, force=True)
        if any(not self._alive(n) for n in run.nodes):
            run.phase = "lost"
            run.lost_since = now
            run.launch_ref = run.exit_ref = run.ckpt_ref = run.stop_ref = None
            return
        if run.phase == "starting":
            self._cleanup(run)
            self._outbox.append(StartFailed(run.workload_id, run.attempt, message))
            return
        run.phase = "lost"
        run.lost_since = now
        run.launch_ref = run.exit_ref = run.ckpt_ref = run.stop_ref = None

    def _begin_stop(self, run: Run, now: float) -> None:
        run.ckpt_ref = None
        run.stop_ref = run.actor.stop.remote(self.term_timeout, with_log=not run.shared_fs)
        run.stop_deadline = now + self.term_timeout + 15
        run.phase = "stopping"

    def _finish_stop(self, run: Run, workload: Workload | None) -> None:
        checkpoint = run.checkpoint or naming.latest_checkpoint(self.data_dir, run.workload_id)
        if checkpoint is None and workload is not None:
            checkpoint = workload.checkpoint
        self._cleanup(run)
        if run.failure is not None:
            self._outbox.append(Finished(run.workload_id, run.attempt, False, run.failure))
            return
        self._outbox.append(Stopped(run.workload_id, run.attempt, checkpoint))

    def _reported_checkpoint(self, run: Run, ready: set[Any]) -> str | None:
        if run.checkpoint is not None:
            return run.checkpoint
        if run.ckpt_ref is not None and run.ckpt_ref in ready:
            with contextlib.suppress(Exception):
                path = self._ray.get(run.ckpt_ref)
                return str(path) if path else None
        return None

    def _cleanup(self, run: Run) -> None:
        self._kill_actor(run.actor)
        self._remove_pg(run.pg)
        for pg, _node in run.extras.values():
            self._remove_pg(pg)
        run.extras.clear()
        run.launch_ref = run.exit_ref = run.ckpt_ref = run.stop_ref = None
        if self._runs.get(run.workload_id) is run:
            del self._runs[run.workload_id]

    def _current(self, workload: Workload) -> Run | None:
        run = self._runs.get(workload.id)
        return run if run is not None and run.attempt == workload.attempt else None

    def _latest(self, workload: Workload) -> str | None:
        """The newest checkpoint of any earlier attempt (latest.json), else the one last reported to
        us. A first attempt has no earlier one: a latest.json there is another's (a reused id)."""
        newest = naming.latest_checkpoint(self.data_dir, workload.id) if workload.attempt > 1 else None
        return newest or workload.checkpoint

    def _keep_log(self, run: Run, result: dict[str, Any]) -> None:
        """Copy a log shipped back from another machine into our own data_dir."""
        text = result.get("log") if isinstance(result, dict) else None
        if text is None:
            return
        path = naming.log_path(self.data_dir, run.workload_id, run.attempt)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    # ------------------------------------------------------------------ escapes

    def _check_escapes(self, now: float) -> None:
        """Stop a job whose tasks or actors hold GPUs outside its placement groups."""
        runs = {
            r.workload_id: r
            for r in self._runs.values()
            if r.phase in ("running", "checkpointing") and r.has_entrypoint
        }
        escapes = self._escapes.check(now, {wid: r.actor for wid, r in runs.items()}, self._table)
        for wid, what in escapes.items():
            run = runs[wid]
            if run.failure is None and run.phase in ("running", "checkpointing"):
                run.failure = (
                    f"its job started {what} outside its reservation; stopped"
                    " (Ray work must stay in the workload's placement group: see docs/runtime.md)"
                )
                log.warning("%s: %s", run.workload_id, run.failure)
                self._begin_stop(run, now)

    # ------------------------------------------------------------------ Ray objects

    def _kill_actor(self, actor: Any) -> None:
        if actor is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(actor, no_restart=True)

    def _remove_pg(self, pg: Any) -> None:
        if pg is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):
                remove_placement_group(pg)

    def _kill_stale(self, workload_id: str, keep: int) -> None:
        """Kill supervisors of other attempts of this workload (left by a crash, say)."""
        for entry in self._ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") != naming.NAMESPACE:
                continue
            parsed = naming.parse_actor_name(entry["name"])
            if parsed is not None and parsed[0] == workload_id and parsed[1] != keep:
                with contextlib.suppress(ValueError):
                    self._kill_actor(self._ray.get_actor(entry["name"], namespace=naming.NAMESPACE))
                pg = named_pg(self._ray, naming.pg_name(workload_id, parsed[1]))
                self._remove_pg(pg)

    # ------------------------------------------------------------------ nodes

    def _alive(self, name: str) -> bool:
        node = self._table.get(name)
        return node is not None and node.alive

    def _refresh_nodes(self, now: float | None, force: bool = False) -> None:
        recent = (
            now is not None
            and self._last_nodes is not None
            and now - self._last_nodes < self.node_poll_interval
        )
        if recent and not force:
            return
        table = read_node_table(self._ray.nodes(), self._table)
        self._table = table
        if now is None:
            return
        self._last_nodes = now
        for name, node in sorted(table.items()):
            if node.managed:
                continue
            was = self._reported.get(name)
            if node.alive and was is not True:
                self._outbox.append(NodeUp(node.spec))
            elif not node.alive and was is True:
                self._outbox.append(NodeDown(name, node.message or "its Ray node died"))
            self._reported[name] = node.alive
