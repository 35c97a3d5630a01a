"""What the use-case services need of the control plane, as Protocols.

``WorkloadService`` and ``ClusterService`` are handed the ``ControlPlane``; typing them against
``Plane`` instead of the class keeps the service package free of import circles (the plane
builds the services, the services never import the plane).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from gpupool.core.config import Config
from gpupool.core.model import NodeSpec
from gpupool.core.queues import Queue
from gpupool.engine.driver import Driver
from gpupool.engine.model import Workload
from gpupool.engine.ports import Executor
from gpupool.service.journal import DbJournal
from gpupool.service.settings import ServiceSettings


class ServiceExecutor(Executor, Protocol):
    """What the control plane needs of a cluster: the engine's Executor port plus these."""

    def logs(self, workload_id: str) -> str:
        """The job's output so far (may be called from any thread, without the plane's lock)."""

    def adopt(self, workload: Workload) -> bool:
        """Re-attach a workload that was admitted before a restart; False if its job is gone."""

    def nodes(self) -> list[NodeSpec]:
        """The cluster's nodes now (the driver then follows NodeUp / NodeDown observations)."""

    def close(self) -> None: ...


class Plane(Protocol):
    """The control plane as the services see it: its state, its lock and a few operations."""

    settings: ServiceSettings
    config: Config
    executor: ServiceExecutor
    journal: DbJournal
    driver: Driver
    clock: Callable[[], float]
    lock: threading.RLock

    def wake(self) -> None:
        """Run a tick soon."""

    def queue(self, path: str | None) -> Queue | None:
        """The core's queue at ``path`` (None if there is none)."""

    def revoke_tokens(self, hashes: set[str]) -> None: ...

    def queue_of(self, workload_id: str) -> str | None:
        """The leaf queue the core placed a workload in."""

    def next_id(self) -> str:
        """A new workload id (call with the lock held)."""

    def apply_config(self, config: Config, why: str) -> list[str]:
        """Take a new configuration in place; returns the core's structural changes."""
