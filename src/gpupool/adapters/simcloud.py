"""A simulated cloud: a node provider with boot delays, stockouts and boot failures, seeded.

It stands in for a cloud API, which cannot exist here; it is a small real implementation of the
``NodeProvider`` port, not a mock. Launches complete after the instance type's boot time; a
stockout (a scripted window for an instance type and region, or a seeded chance) fails a launch
after ``stockout_delay``; a boot failure (a seeded chance) fails it after the boot time.

The cloud outlives a control plane: ``inventory`` lists the nodes launched and not terminated
(booting until their ``Booted`` has been polled, then ready), so a restarted autoscaler over the
same ``SimCloud`` adopts them; events still due are delivered to whoever polls next.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field, replace

from gpupool.core.config import InstanceType
from gpupool.engine.ports import (
    Booted,
    LaunchFailed,
    ProviderEvent,
    ProviderNode,
    Terminated,
)


@dataclass(frozen=True, slots=True)
class Stockout:
    """No capacity of ``instance_type`` in ``region`` between ``start`` and ``end``."""

    instance_type: str
    region: str
    start: float = 0.0
    end: float = math.inf


@dataclass(slots=True)
class SimCloud:
    """A seeded fake cloud for the node provider: launches boot after a delay, may stock out or fail."""

    seed: int = 0
    stockouts: tuple[Stockout, ...] = ()
    stockout_rate: float = 0.0
    boot_failure_rate: float = 0.0
    stockout_delay: float = 5.0
    launches: int = 0
    _rng: random.Random = field(init=False)
    _events: list[tuple[float, int, ProviderEvent]] = field(default_factory=list)
    _seq: int = 0
    _nodes: dict[str, ProviderNode] = field(default_factory=dict)  # launched, not terminated

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def launch(self, pool: str, itype: InstanceType, name: str, now: float) -> None:
        self.launches += 1
        self._nodes[name] = ProviderNode(name, pool, itype.name, "booting", now)
        scripted = any(
            s.instance_type == itype.name and s.region == itype.region and s.start <= now < s.end
            for s in self.stockouts
        )
        if scripted or self._rng.random() < self.stockout_rate:
            self._push(
                now + self.stockout_delay,
                LaunchFailed(name, "stockout", f"no {itype.name} capacity in {itype.region}"),
            )
        elif self._rng.random() < self.boot_failure_rate:
            self._push(now + itype.boot_time, LaunchFailed(name, "boot-failure", "the node did not come up"))
        else:
            self._push(now + itype.boot_time, Booted(name))

    def terminate(self, name: str, now: float) -> None:
        self._nodes.pop(name, None)
        self._push(now, Terminated(name))

    def poll(self, now: float) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        while self._events and self._events[0][0] <= now:
            event = heapq.heappop(self._events)[2]
            node = self._nodes.get(event.name)
            if isinstance(event, Booted) and node is not None:
                self._nodes[event.name] = replace(node, state="ready")
            elif isinstance(event, LaunchFailed):
                self._nodes.pop(event.name, None)
            out.append(event)
        return out

    def inventory(self) -> list[ProviderNode]:
        return sorted(self._nodes.values(), key=lambda n: n.name)

    def next_time(self) -> float | None:
        return self._events[0][0] if self._events else None

    def _push(self, at: float, event: ProviderEvent) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, event))
