"""The discrete-event simulator: an event heap, a simulated cluster and executor, and the run loop.

The simulator drives the engine's one ``Driver`` (and through it the one scheduling core) with a
simulated clock; it never schedules anything itself. Pieces:

* ``EventQueue``: a heap of events ordered by ``(time, seq)``; ``seq`` is the push order, so
  events at the same time run in the order they were created. Events can be cancelled.
* ``SimCluster``: nodes joining (after a boot delay) and leaving at given times, reported to the
  driver as ``NodeUp`` / ``NodeDown`` observations. Elastic scaling will plug in here.
* ``SimExecutor``: the engine's ``Executor`` port. A started workload runs for its remaining
  work (``spec.duration - work_done``) and reports ``Finished``. A preempted one stops after
  ``min(grace, stop_delay)`` and reports ``Stopped(work_done=kept)``: the work since its last
  periodic checkpoint (every ``spec.checkpoint_interval`` seconds of work; 0 = never) is lost,
  unless ``checkpoint_on_preempt`` lets it checkpoint on request (then it keeps everything). It
  resumes from the kept work when placed again (the driver requeues it), after ``resume_delay``
  seconds of restoring its checkpoint, on its GPUs, before its work goes on.
* ``Simulation``: pops all events at the next time, hands them to the cluster/executor/driver,
  then runs ``driver.tick(now)``: at every event time (``interval=0``) or on a grid of
  ``interval`` seconds. While asks wait, a tick also comes at least every ``retry`` seconds, so
  time-based rules (preemption delay, gang timeouts) fire without outside events.

Nothing here reads a clock or draws random numbers: the same inputs give the same run.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gpupool.core.model import NodeSpec
from gpupool.core.resources import whole_gpus
from gpupool.engine.driver import Driver
from gpupool.engine.model import TERMINAL, Transition, Workload, WorkloadSpec, WorkloadState
from gpupool.engine.ports import Executor, Finished, NodeDown, NodeUp, Observation, Started, Stopped
from gpupool.sim.options import DEFAULT_RETRY, DEFAULT_STOP_DELAY

# ---------------------------------------------------------------- events


@dataclass(slots=True)
class Event:
    """An action the simulator runs at ``time`` unless cancelled first; ``seq`` orders events at one time."""

    time: float
    seq: int
    action: Callable[[float], None]
    kind: str = ""
    cancelled: bool = False


class EventQueue:
    """Events ordered by (time, seq)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = 0
        self.live = 0  # events not cancelled and not of kind "tick"

    def push(self, time: float, action: Callable[[float], None], kind: str = "") -> Event:
        self._seq += 1
        ev = Event(time, self._seq, action, kind)
        heapq.heappush(self._heap, (time, self._seq, ev))
        if kind != "tick":
            self.live += 1
        return ev

    def cancel(self, ev: Event) -> None:
        if not ev.cancelled:
            ev.cancelled = True
            if ev.kind != "tick":
                self.live -= 1

    def peek_time(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, time: float) -> list[Event]:
        """Every live event at exactly ``time``, in seq order."""
        out: list[Event] = []
        while self._heap and self._heap[0][0] <= time:
            ev = heapq.heappop(self._heap)[2]
            if ev.cancelled:
                continue
            ev.cancelled = True  # consumed
            if ev.kind != "tick":
                self.live -= 1
            out.append(ev)
        return out

    def __len__(self) -> int:
        return len(self._heap)


# ---------------------------------------------------------------- the simulated cluster


class SimCluster:
    """Nodes that join (after a boot delay) or leave at given times; observed by the driver."""

    def __init__(self, events: EventQueue, outbox: list[Observation]) -> None:
        self.events = events
        self.outbox = outbox
        self.nodes: dict[str, NodeSpec] = {}
        self.booting: dict[str, float] = {}  # node -> when it will be up

    def add_node(self, spec: NodeSpec, at: float, boot_delay: float = 0.0) -> None:
        up = at + boot_delay
        self.booting[spec.name] = up

        def joined(now: float) -> None:
            self.booting.pop(spec.name, None)
            self.nodes[spec.name] = spec
            self.outbox.append(NodeUp(spec))

        self.events.push(up, joined, "node")

    def remove_node(self, name: str, at: float, message: str = "removed") -> None:
        def left(now: float) -> None:
            self.nodes.pop(name, None)
            self.outbox.append(NodeDown(name, message))

        self.events.push(at, left, "node")

    def gpus(self) -> int:
        return sum(whole_gpus(n.capacity) for n in self.nodes.values())


# ---------------------------------------------------------------- the simulated executor


@dataclass(slots=True)
class _Run:
    workload_id: str
    attempt: int
    gpus: float  # an int when whole
    started: float  # when this attempt began doing work
    base: float  # work kept from earlier attempts
    duration: float
    checkpoint_interval: float
    finish: Event | None = None
    stopping: bool = False


def kept_work(progress: float, checkpoint_interval: float) -> float:
    """Work kept by the last periodic checkpoint at ``progress`` seconds of work."""
    if checkpoint_interval <= 0:
        return 0.0
    return math.floor(progress / checkpoint_interval + 1e-9) * checkpoint_interval


@dataclass(slots=True)
class ExecutorStats:
    """What the simulated executor counts: preemption stops and the GPU-seconds of work they lost."""

    preempted: int = 0  # stops for preemption
    lost_gpu_seconds: float = 0.0
    lost_by_workload: dict[str, float] = field(default_factory=dict)


class SimExecutor(Executor):
    """Runs workloads on the simulated cluster; see the module docstring for the rules."""

    def __init__(
        self,
        events: EventQueue,
        *,
        stop_delay: float = DEFAULT_STOP_DELAY,
        start_delay: float = 0.0,
        checkpoint_on_preempt: bool = False,
        resume_delay: float = 0.0,
    ) -> None:
        self.events = events
        self.resume_delay = resume_delay
        self.stop_delay = stop_delay
        self.start_delay = start_delay
        self.checkpoint_on_preempt = checkpoint_on_preempt
        self.outbox: list[Observation] = []
        self.runs: dict[str, _Run] = {}
        self.stats = ExecutorStats()

    # Executor port -------------------------------------------------------------------

    def start(self, workload: Workload, now: float) -> None:
        run = self.runs.get(workload.id)
        if run is not None and run.attempt == workload.attempt:
            return
        spec = workload.spec
        if spec.duration is None:
            raise ValueError(f"workload {workload.id} has no duration: the simulator cannot run it")
        begin = now + self.start_delay
        # Restoring a checkpoint: the run holds its GPUs and its work does not move.
        restore = self.resume_delay if workload.work_done > 0 else 0.0
        run = _Run(
            workload.id,
            workload.attempt,
            spec.total_gpus(),
            begin,
            workload.work_done,
            spec.duration,
            spec.checkpoint_interval,
        )
        self.runs[workload.id] = run
        wid, attempt = workload.id, workload.attempt

        def started(t: float) -> None:
            self.outbox.append(Started(wid, attempt))

        def finished(t: float) -> None:
            if self.runs.get(wid) is run:
                del self.runs[wid]
            self.outbox.append(Finished(wid, attempt, True))

        self.events.push(begin, started, "exec")
        run.started = begin + restore
        run.finish = self.events.push(run.started + max(0.0, run.duration - run.base), finished, "exec")

    def preempt(self, workload: Workload, grace: float, now: float) -> None:
        run = self.runs.get(workload.id)
        if run is None or run.attempt != workload.attempt or run.stopping:
            return
        stop_at = now + min(grace, self.stop_delay)
        assert run.finish is not None
        if run.finish.time <= stop_at:
            return  # it finishes before it would have stopped
        run.stopping = True
        self.events.cancel(run.finish)
        progress = min(run.duration, run.base + max(0.0, now - run.started))
        can_checkpoint = run.checkpoint_interval > 0
        if self.checkpoint_on_preempt and can_checkpoint:
            kept = progress
        else:
            kept = max(run.base, kept_work(progress, run.checkpoint_interval))
        lost = (progress - kept) * run.gpus
        self.stats.preempted += 1
        self.stats.lost_gpu_seconds += lost
        self.stats.lost_by_workload[run.workload_id] = (
            self.stats.lost_by_workload.get(run.workload_id, 0.0) + lost
        )
        wid, attempt = run.workload_id, run.attempt
        checkpoint = f"sim://{wid}@{kept:g}s" if kept > 0 else None

        def stopped(t: float) -> None:
            if self.runs.get(wid) is run:
                del self.runs[wid]
            self.outbox.append(Stopped(wid, attempt, checkpoint=checkpoint, work_done=kept))

        self.events.push(stop_at, stopped, "exec")

    def cancel(self, workload: Workload, now: float) -> None:
        run = self.runs.pop(workload.id, None)
        if run is None or run.attempt != workload.attempt:
            return
        if run.finish is not None:
            self.events.cancel(run.finish)
        progress = min(run.duration, run.base + max(0.0, now - run.started))
        kept = max(run.base, kept_work(progress, run.checkpoint_interval))
        self.outbox.append(Stopped(workload.id, workload.attempt, work_done=kept))

    def poll(self, now: float) -> list[Observation]:
        out = list(self.outbox)
        self.outbox.clear()  # in place: the cluster appends its node observations to this list
        return out


# ---------------------------------------------------------------- the run


class Watcher(Protocol):
    """Hooks a simulation calls; the metrics recorder implements them."""

    def arriving(self, workload_id: str, spec: WorkloadSpec, tenant: str, now: float) -> None: ...

    def transition(self, workload: Workload, transition: Transition) -> None: ...

    def ticked(self, sim: Simulation, now: float) -> None: ...


class SimJournal:
    """The engine's journal port for the simulator: forwards transitions to the watcher."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def submitted(self, workload: Workload) -> None:
        return None

    def transition(self, workload: Workload, transition: Transition) -> None:
        self.watcher.transition(workload, transition)

    def event(self, workload_id: str | None, at: float, kind: str, message: str) -> None:
        return None


@dataclass(slots=True)
class RunStats:
    """What ``Simulation.run`` returns: ticks, events handled, the end time and the workloads left waiting."""

    ticks: int = 0
    events: int = 0
    end: float = 0.0
    stuck: list[str] = field(default_factory=list)  # workloads still waiting when nothing else could happen


class Simulation:
    """The simulated clock driving one ``Driver`` over a ``SimCluster`` and ``SimExecutor``."""

    def __init__(
        self,
        driver_factory: Callable[[SimExecutor, SimJournal], Driver],
        watcher: Watcher,
        *,
        interval: float = 0.0,
        retry: float | None = DEFAULT_RETRY,
        stop_delay: float = DEFAULT_STOP_DELAY,
        start_delay: float = 0.0,
        checkpoint_on_preempt: bool = False,
        resume_delay: float = 0.0,
        until: float | None = None,
    ) -> None:
        if interval < 0 or (retry is not None and retry <= 0):
            raise ValueError("the scheduling interval must be >= 0 and the retry interval > 0")
        self.events = EventQueue()
        self.executor = SimExecutor(
            self.events,
            stop_delay=stop_delay,
            start_delay=start_delay,
            checkpoint_on_preempt=checkpoint_on_preempt,
            resume_delay=resume_delay,
        )
        self.cluster = SimCluster(self.events, self.executor.outbox)
        self.watcher = watcher
        self.driver = driver_factory(self.executor, SimJournal(watcher))
        self.interval = interval
        self.retry = retry
        self.until = until
        self.now = 0.0
        self.stats = RunStats()
        self._next_tick: Event | None = None

    # Inputs ----------------------------------------------------------------------------

    def submit_at(self, at: float, spec: WorkloadSpec, workload_id: str, tenant: str) -> None:
        def arrive(now: float) -> None:
            self.watcher.arriving(workload_id, spec, tenant, now)
            self.driver.submit(spec, now, workload_id=workload_id)

        self.events.push(at, arrive, "arrival")

    # The loop --------------------------------------------------------------------------

    def _tick_time(self, t: float) -> float:
        if self.interval <= 0:
            return t
        return math.ceil(t / self.interval - 1e-9) * self.interval

    def _want_tick(self, at: float) -> None:
        if self._next_tick is not None and not self._next_tick.cancelled:
            if self._next_tick.time <= at:
                return
            self.events.cancel(self._next_tick)
        self._next_tick = self.events.push(at, self._tick, "tick")

    def _tick(self, now: float) -> None:
        if self._next_tick is not None:
            self.events.cancel(self._next_tick)
            self._next_tick = None
        self.driver.tick(now)
        self.stats.ticks += 1
        self.watcher.ticked(self, now)
        if self.retry is not None and self.driver.core.asks and self.events.live > 0:
            self._want_tick(self._tick_time(now + self.retry))

    def run(self, on_progress: Callable[[float], None] | None = None, progress_every: int = 5000) -> RunStats:
        """Run until nothing is left to happen (or ``until``); returns counters."""
        while True:
            t = self.events.peek_time()
            if t is None or (self.until is not None and t > self.until):
                break
            self.now = t
            due = self.events.pop_due(t)
            ticked = False
            for ev in due:
                if ev.kind == "tick":
                    ticked = True
                    continue
                self.stats.events += 1
                ev.action(t)
                if on_progress is not None and self.stats.events % progress_every == 0:
                    on_progress(t)
            if ticked or (due and self._tick_time(t) == t):
                self._tick(t)
            elif due:
                self._want_tick(self._tick_time(t))
            if self.events.live == 0 and (self._next_tick is None or self._next_tick.cancelled):
                break  # nothing left that could change anything: what still waits is stuck
        self.stats.end = self.now
        self.stats.stuck = sorted(w.id for w in self.driver.workloads.values() if w.state not in TERMINAL)
        return self.stats


def waiting(w: Workload) -> bool:
    return w.state in (WorkloadState.PENDING, WorkloadState.PREEMPTED)
