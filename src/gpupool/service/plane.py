"""The control plane: the driver, its lock and its thread, recovery; the use cases hang off it.

One ``ControlPlane`` owns one engine ``Driver`` (scheduling core + executor + journal). Every
call that touches the driver holds ``lock``, and so does every driver tick, which runs on a
background thread every ``tick_interval`` seconds or as soon as a submission wakes it. A tick's
journal writes are one transaction, committed before each executor or provider call
(``_JournalFirst``), so the database is never behind a decision that was acted on. The use cases
are ``plane.workloads`` (``service.workload_service``) and ``plane.cluster``
(``service.cluster_service``); reads of stored workloads go to the database (``service.store``)
without the lock.

Recovery (``start``): the driver is rebuilt from the database. Pending and preempted workloads are
submitted again under their own ids; admitted, running and preempting ones are put back on the
nodes they hold (``Scheduler.submit(forced=True)`` + ``Scheduler.restore``) and re-attached with
``executor.adopt``; one the executor no longer knows is requeued. A workload is never started
twice at once: the executor is asked to start only what the core admits, and a restored
workload is admitted already.

A configuration reload updates the core in place.

Node pools: given a node provider (``gpupool up`` gives its local Ray cluster's) and a config with
``nodepools:``, the plane makes one ``Autoscaler`` that every driver it builds uses, so the pools
grow and shrink live; a reload takes the new pools (``apply_config``). ``plane.cluster`` shows
its state.
On recovery the autoscaler first adopts the pool nodes the provider still runs
(``Autoscaler.adopt``), before the workloads are restored, so work that ran on a pool node goes
back onto it and the node keeps counting against its pool's max and scales down when idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from gpupool.core.config import Config, InstanceType
from gpupool.core.queues import Queue
from gpupool.core.scheduler import Scheduler
from gpupool.engine.autoscaler import Autoscaler
from gpupool.engine.driver import Driver
from gpupool.engine.model import NOTEBOOK_KIND, Transition, Workload, WorkloadState
from gpupool.engine.ports import (
    NodeProvider,
    Observation,
    ProviderEvent,
    ProviderNode,
    ReapsOrphans,
    RunsNotebooks,
)
from gpupool.service.clock import wall_clock
from gpupool.service.cluster_service import ClusterService
from gpupool.service.context import ServiceExecutor
from gpupool.service.db import Database
from gpupool.service.deployment_service import DeploymentService
from gpupool.service.errors import Unauthorized
from gpupool.service.journal import DbJournal, workload_from_row
from gpupool.service.notebook_service import NotebookService
from gpupool.service.security import Principal, authenticate, create_token, hash_token
from gpupool.service.settings import DEFAULT_CONFIG, ServiceSettings, load_queue_config
from gpupool.service.store import WorkloadStore
from gpupool.service.workload_service import WorkloadService

log = logging.getLogger("gpupool.service")

TICK_GAP = 0.2  # seconds: the least time between the starts of two ticks (at most the tick interval)
TICK_PAUSE = 0.02  # seconds: the least time between the end of a tick and the start of the next
TOKEN_CACHE = 4096  # principals of tokens seen, kept in memory (tokens never change once made)


class ControlPlane:
    """One control plane: the driver, its lock and its loop, recovery, and the use cases.

    The use cases are ``workloads`` (``WorkloadService``), ``deployments``
    (``DeploymentService``) and ``cluster`` (``ClusterService``);
    they share this object's lock, driver, journal and clock.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        config: Config,
        db: Database,
        executor: ServiceExecutor,
        *,
        clock: Callable[[], float] = wall_clock,
        on_transition: Callable[[Workload, Transition, str | None], None] | None = None,
        provider: NodeProvider | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.db = db
        self.executor = executor
        self.provider = provider
        self.journal = DbJournal(db, queue_of=self.queue_of)
        self.autoscaler: Autoscaler | None = None
        self._sync_pools(config)
        self.clock = clock
        self.lock = threading.RLock()
        self._on_transition = on_transition
        self.driver = self._new_driver(config)
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_errors = 0
        self.recovered: dict[str, str] = {}  # workload -> what recovery did with it
        # Token -> its principal: a token is stored once and never altered, so a hit is final.
        self._principals: dict[str, Principal] = {}
        self.store = WorkloadStore(db)
        self.cluster = ClusterService(self)
        self.workloads = WorkloadService(self, self.store, self.cluster)
        self.deployments = DeploymentService(self, self.store, self.workloads)
        self.notebooks = NotebookService(
            self, self.store, self.workloads, lambda user, groups: create_token(self.db, user, groups)
        )
        if isinstance(executor, RunsNotebooks):
            executor.set_session_env(self.notebooks.session_env)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover from the database, then run the driver loop on a background thread."""
        with self.lock:
            self._recover(self.clock())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpupool-driver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def checkpoint_running(self, timeout: float) -> dict[str, str]:
        """Before the cluster goes away with the control plane (a graceful stop of ``gpupool up``
        on its own local cluster): ask every running workload that may be disrupted to
        checkpoint and stop, and tick until each has stopped (within its grace) or ``timeout``
        seconds have passed. Each is then stored as preempted with its checkpoint, so the next
        start resumes it from there. Nothing starts meanwhile: the nodes are cordoned and the
        autoscaler paused. Call it after ``stop``. Returns the workloads asked and their state.
        """
        with self.lock:
            driver = self.driver
            now = self.clock()
            for name in list(driver.core.nodes):
                driver.core.set_schedulable(name, False)
            driver.autoscaler = None
            asked = [
                w
                for w in driver.workloads.values()
                if w.state == WorkloadState.RUNNING and w.spec.disruption.policy != "never"
            ]
            for w in asked:
                driver.move(w.id, now, "the control plane is stopping: checkpoint and requeue")
        deadline = time.monotonic() + timeout
        while any(w.state == WorkloadState.PREEMPTING for w in asked) and time.monotonic() < deadline:
            time.sleep(0.2)
            self.tick()
        if asked:
            log.info("checkpointed before stopping: %s", Counter(w.state.value for w in asked))
        return {w.id: w.state.value for w in asked}

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.tick_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            began = time.monotonic()
            self.tick()
            # A burst of submissions shares the next tick instead of one tick each: every tick
            # walks all waiting work under the lock, which API calls then wait for. Ticks begin
            # at least TICK_GAP (or the tick interval, if shorter) apart, so a decision still
            # comes within that of a submission; and the API has the lock for at least
            # TICK_PAUSE between two ticks.
            gap = min(TICK_GAP, self.settings.tick_interval)
            self._stop.wait(max(TICK_PAUSE, gap - (time.monotonic() - began)))

    def tick(self) -> None:
        try:
            # One transaction for the tick's writes, committed before each executor call
            # (``_JournalFirst``) and at the end, instead of one per transition.
            with self.lock, self.journal.batch(on_error="commit"):
                self.driver.tick(self.clock())
        except Exception:  # the loop must outlive one bad tick; the error is logged and counted
            self.tick_errors += 1
            log.exception("driver tick failed")

    # ------------------------------------------------------------------ building the driver

    def _new_driver(self, config: Config) -> Driver:
        core = Scheduler(config.partition(self.settings.partition))
        executor = _JournalFirst(self.executor, self.journal)
        return Driver(core, executor, _Observed(self.journal, self), autoscaler=self.autoscaler)

    def _sync_pools(self, config: Config) -> None:
        """The autoscaler follows the configured node pools and compaction settings (none
        without a provider)."""
        if self.provider is None or not config.nodepools:
            if self.autoscaler is not None:
                self.autoscaler.pools = ()  # keeps its nodes until they idle out; launches nothing
                self.autoscaler.compaction_budget = 0
            return
        if self.autoscaler is None:
            self.autoscaler = Autoscaler(config.nodepools, _ProviderJournalFirst(self.provider, self.journal))
        else:
            self.autoscaler.pools = config.nodepools
        self.autoscaler.compaction_budget = config.compaction_budget
        self.autoscaler.compaction_interval = config.compaction_interval

    def _recover(self, now: float) -> None:
        # Before the first tick: the autoscaler has launched nothing yet, so the executor's
        # nodes and the pool nodes the provider still runs (adopted below; the executor does not
        # list pool nodes: they are the autoscaler's) are all the nodes there are.
        driver = self._new_driver(self.config)
        self.driver = driver
        for node in self.executor.nodes():
            if node.name not in driver.core.nodes:
                driver.core.add_node(node)
        if driver.autoscaler is not None:
            # The pool nodes launched before the restart still run: take them back from the
            # provider first, so that work restored onto them finds its node in the core.
            adopted = driver.adopt_pool_nodes(now)
            if adopted:
                log.info("adopted %d pool nodes: %s", len(adopted), ", ".join(adopted))
        self._seq = self.store.max_seq()
        for row in self.journal.active():
            w = workload_from_row(row)
            self.recovered[w.id] = self._restore(driver, w, row.queue, now, adopt=True)
        if isinstance(self.executor, ReapsOrphans):  # jobs of workloads the database no longer calls live
            self.executor.reap_orphans(keep={w.id for w in driver.workloads.values() if not w.terminal})
        if self.recovered:
            log.info("recovered %d workloads: %s", len(self.recovered), Counter(self.recovered.values()))

    def _restore(self, driver: Driver, w: Workload, queue: str | None, now: float, *, adopt: bool) -> str:
        """Put ``w`` back into ``driver`` as it was; returns what happened, for the log."""
        return driver.restore(w, now, queue=queue, adopt=adopt)

    # ------------------------------------------------------------------ for the use-case services

    def queue(self, path: str | None) -> Queue | None:
        """The core's queue at ``path`` (None if there is none)."""
        return self.driver.core.queues.get(path) if path else None

    def queue_of(self, workload_id: str) -> str | None:
        """The leaf queue the core placed a workload in (None if the core does not know it)."""
        core = self.driver.core
        return core.queue_of(workload_id) if workload_id in core.apps else None

    def next_id(self) -> str:
        """A new workload id (call with the lock held)."""
        self._seq += 1
        return f"w-{self._seq:06d}"

    def apply_config(self, config: Config, why: str) -> list[str]:
        """Take a new configuration in place; returns the core's structural changes."""
        with self.lock:
            now = self.clock()
            # The core takes the new configuration in place: nothing running, waiting or
            # reserved is lost, and queues no longer configured stay while they hold work.
            changes = self.driver.core.update_config(config.partition(self.settings.partition))
            self.config = config
            self._sync_pools(config)
            self.driver.autoscaler = self.autoscaler
            summary = "; ".join(changes) if changes else "no structural change"
            self.journal.event(None, now, "config-reloaded", f"{why}: {summary}")
        self.wake()
        return changes

    def revoke_tokens(self, hashes: set[str]) -> None:
        """Revoke the tokens with these hashes: deleted, and forgotten by the cache at once."""
        if hashes:
            self.journal.delete_tokens(hashes)
            self._principals = {t: p for t, p in self._principals.items() if hash_token(t) not in hashes}

    def known_principal(self, token: str | None) -> Principal | None:
        """The principal of a token already authenticated (no I/O); None if not seen yet."""
        return self._principals.get(token) if token else None

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized(
                "missing API token", hint="send `Authorization: Bearer <token>`; see `gpupool token create`"
            )
        cached = self._principals.get(token)
        if cached is not None:
            return cached
        principal = authenticate(self.db, token)
        if principal is not None:
            if len(self._principals) >= TOKEN_CACHE:
                self._principals.clear()
            self._principals[token] = principal
        if principal is None:
            raise Unauthorized(
                "unknown API token", hint="check GPUPOOL_TOKEN or create one with `gpupool token create`"
            )
        return principal


class _JournalFirst:
    """The executor as the driver sees it: every call first commits the journal writes the
    calling thread has batched (a driver tick's), so nothing reaches the cluster before the
    transitions it acts on are stored. Optional hooks (``adopt``, ``resize``) stay optional."""

    def __init__(self, executor: ServiceExecutor, journal: DbJournal) -> None:
        self._executor = executor
        self._journal = journal

    def start(self, workload: Workload, now: float) -> None:
        self._journal.flush()
        self._executor.start(workload, now)

    def preempt(self, workload: Workload, grace: float, now: float) -> None:
        self._journal.flush()
        self._executor.preempt(workload, grace, now)

    def cancel(self, workload: Workload, now: float) -> None:
        self._journal.flush()
        self._executor.cancel(workload, now)

    def poll(self, now: float) -> list[Observation]:
        self._journal.flush()
        return self._executor.poll(now)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._executor, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._journal.flush()
            return attr(*args, **kwargs)

        return call


class _ProviderJournalFirst:
    """The node provider as the autoscaler sees it: as ``_JournalFirst``, the batched journal
    writes are committed before each call (the provider's own store writes to the database too)."""

    def __init__(self, provider: NodeProvider, journal: DbJournal) -> None:
        self._provider = provider
        self._journal = journal

    def launch(self, pool: str, itype: InstanceType, name: str, now: float) -> None:
        self._journal.flush()
        self._provider.launch(pool, itype, name, now)

    def terminate(self, name: str, now: float) -> None:
        self._journal.flush()
        self._provider.terminate(name, now)

    def poll(self, now: float) -> list[ProviderEvent]:
        self._journal.flush()
        return self._provider.poll(now)

    def next_time(self) -> float | None:
        return self._provider.next_time()

    def inventory(self) -> list[ProviderNode]:
        self._journal.flush()
        return self._provider.inventory()


class _Observed:
    """The journal the driver writes to: the database, then the plane's observers (metrics)."""

    def __init__(self, journal: DbJournal, plane: ControlPlane) -> None:
        self.journal = journal
        self.plane = plane

    def submitted(self, workload: Workload) -> None:
        self.journal.submitted(workload)

    def transition(self, workload: Workload, transition: Transition) -> None:
        self.journal.transition(workload, transition)
        hook = self.plane._on_transition
        if hook is not None:
            try:
                hook(workload, transition, self.plane.queue_of(workload.id))
            except Exception:
                log.exception("transition observer failed")
        if workload.spec.kind == NOTEBOOK_KIND:
            self.plane.notebooks.on_transition(workload, transition)

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None:
        self.journal.event(workload_id, at, kind, message)


__all__ = [
    "DEFAULT_CONFIG",
    "ControlPlane",
    "ServiceExecutor",
    "load_queue_config",
]
