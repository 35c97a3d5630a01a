"""Idle reclaim and lifetime of notebook sessions, live: the loop around ``core.sessions``.

``SessionReaper`` runs on a daemon thread of the control plane. Every
``ServiceSettings.session_check_interval`` seconds (15; ``gpupool up --session-check-interval``)
it reads each running session's Jupyter server (``adapters.jupyter_activity``: its kernels and last
activity, reads that are not activity themselves), feeds the session's ``IdleClock`` (the pure
rule: keep, warn, withdraw, reclaim), and acts on the decision: a warning or its withdrawal is
an event of the session's workload (``reclaim-warning``, ``reclaim-withdrawn``; `gpupool
notebook status` and the portal show events), a reclaim stops the session with ``stopped_by``
``idle`` or ``lifetime`` (``NotebookService.stop_session``: its files are kept, its GPUs freed).

Where NVML can be read, the utilisation of the session's GPUs is part of each reading: the
executor reads it on the node that holds them (``RunsNotebooks.gpu_utilisation``, one call per
session per round, bounded by ``NVML_TIMEOUT``); None there (no NVML) leaves the GPU condition out.

The clocks live in memory, one per attempt: after a control-plane restart a session's clock
starts again from its start, and the server's own last activity puts its idle time back; a
warning given before the restart is given again (a reclaim never comes without one).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from gpupool.adapters.jupyter_activity import JupyterActivityError, JupyterActivityReader
from gpupool.core.sessions import IdleClock, Reclaim, SessionPolicy, Warn, Withdraw, session_limits
from gpupool.engine.model import NOTEBOOK_KIND, Workload, WorkloadState, notebook_path
from gpupool.engine.ports import NotebookEndpoint
from gpupool.service.notebook_service import PendingReclaim

if TYPE_CHECKING:
    from gpupool.service.plane import ControlPlane

log = logging.getLogger(__name__)

NVML_TIMEOUT = 5.0  # seconds one read of a session's GPU utilisation may take (then: not read)
_LIFETIME_AGAIN = (
    "its max lifetime ends then: the session stops (its files are kept; `resume` starts it again)"
)


class SessionReaper:
    """Warns and reclaims idle sessions, and ends those at their lifetime (module docstring)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.interval = plane.settings.session_check_interval
        self.errors = 0
        self._clocks: dict[tuple[str, int], IdleClock] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpupool-sessions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # one failed round must not end the loop
                self.errors += 1
                log.exception("notebook session check failed")

    def check(self) -> list[str]:
        """One round over the running sessions; returns the names of those stopped."""
        with self.plane.lock:
            running = [
                (w, self._policy(w))
                for w in self.plane.driver.workloads.values()
                if w.spec.kind == NOTEBOOK_KIND and w.state == WorkloadState.RUNNING
            ]
            # A session no longer running took its warning with it (preemptions' are the driver's).
            warnings = self.plane.notebooks.warnings
            ids = {w.id for w, _ in running}
            for wid in [wid for wid, p in warnings.items() if p.why != "preemption" and wid not in ids]:
                del warnings[wid]
        live = {(w.id, w.attempt) for w, _ in running}
        self._clocks = {k: c for k, c in self._clocks.items() if k in live}
        stopped = []
        for w, policy in running:
            endpoint: NotebookEndpoint | None = self.plane.executor.notebook_endpoint(w)  # type: ignore[attr-defined]
            if endpoint is None or policy is None:
                continue
            if self._step(w, policy, endpoint):
                stopped.append(w.spec.name)
        if stopped:
            self.plane.wake()
        return stopped

    def _policy(self, w: Workload) -> SessionPolicy | None:
        """What the session runs under: its own timeout and lifetime (resolved at its start),
        its queue's warning lead and GPU threshold (call with the lock)."""
        nb = w.spec.notebook
        queue = self.plane.queue_of(w.id) or w.spec.queue
        if nb is None or nb.idle_timeout is None or nb.max_lifetime is None or queue is None:
            return None
        limits = session_limits(self.plane.driver.core.queues, queue)
        try:
            return SessionPolicy(nb.idle_timeout, nb.max_lifetime, limits.warning, limits.gpu_threshold)
        except ValueError:  # the queue's warning lead changed past the session's own timeouts
            log.warning("session %s: its timeouts do not fit its queue's warning lead", w.spec.name)
            return None

    def _step(self, w: Workload, policy: SessionPolicy, endpoint: NotebookEndpoint) -> bool:
        """Read the server, step the clock, act; True if the session was stopped."""
        # Read on the node that holds the GPUs, through the executor (None: no NVML there).
        utilisation = self.plane.executor.gpu_utilisation(w, NVML_TIMEOUT)  # type: ignore[attr-defined]
        now = self.plane.clock()
        try:
            with JupyterActivityReader(endpoint.url + notebook_path(w.spec.name), endpoint.token) as reader:
                observation = reader.read().observe(now, utilisation)
        except JupyterActivityError as exc:
            log.info("session %s: %s", w.spec.name, exc)
            return False
        key = (w.id, w.attempt)
        clock = self._clocks.get(key) or IdleClock.start(policy, w.started_at or now)
        clock, decision = clock.step(observation)
        self._clocks[key] = clock
        warnings = self.plane.notebooks.warnings
        if isinstance(decision, Warn):
            warnings[w.id] = PendingReclaim(decision.why, decision.reclaim_at, decision.message)
            self.plane.journal.event(w.id, now, "reclaim-warning", decision.message)
        elif isinstance(decision, Withdraw):
            pending = warnings.get(w.id)
            if pending is not None and pending.why == "idle":
                # the lifetime's warning, if one was given, still holds
                lifetime_at = clock.lifetime_reclaim_at
                if lifetime_at is not None:
                    warnings[w.id] = PendingReclaim("lifetime", lifetime_at, _LIFETIME_AGAIN)
                else:
                    warnings.pop(w.id, None)
            self.plane.journal.event(w.id, now, "reclaim-withdrawn", decision.message)
        elif isinstance(decision, Reclaim):
            warnings.pop(w.id, None)
            with self.plane.lock:
                if w.state != WorkloadState.RUNNING or w.attempt != key[1]:
                    return False  # stopped or moved meanwhile
                self.plane.notebooks.stop_session(w, decision.why, decision.message)
            self._clocks.pop(key, None)
            return True
        return False
