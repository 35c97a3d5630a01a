"""The option dataclasses of the simulator's experiments, and their defaults, defined once.

``SimOptions`` (every replay), ``AutoscaleOptions`` (``sim replay --autoscale``) and
``ConvergeOptions`` (``sim converge``) live here, apart from the modules that run them, so that
``gpupool sim ...`` takes its option defaults from them without importing the simulator.
Defaults that configure the core (grace, preemption delay) come from ``core/config.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core.config import (
    DEFAULT_BURST_HEADROOM,
    DEFAULT_COMPACTION_INTERVAL,
    DEFAULT_GRACE,
    DEFAULT_PREEMPTION_DELAY,
)

DEFAULT_STOP_DELAY = 30.0  # a preempted workload stops after min(grace, this) seconds
DEFAULT_RETRY = 30.0  # while asks wait, tick at least this often (preemption delay, gang timeouts)


@dataclass(frozen=True, slots=True)
class SimOptions:
    """The knobs of ``gpupool sim replay`` shared by every mode; times are simulated seconds."""

    interval: float = 0.0  # scheduling grid in seconds; 0 = a tick at every event time
    retry: float = DEFAULT_RETRY  # while asks wait, tick at least this often
    stop_delay: float = DEFAULT_STOP_DELAY  # a preempted job stops after min(grace, stop_delay)
    resume_delay: float = 0.0  # a job resumed from a checkpoint restores it this long first
    grace: float = DEFAULT_GRACE  # the workloads' preemption grace period
    checkpoint_interval: float = 3600.0  # seconds of work between periodic checkpoints; 0 = none
    preemption_delay: float = DEFAULT_PREEMPTION_DELAY  # queue property preemption.delay
    nodes_scale: float = 1.0  # scale every tenant's node count (at least one node each)
    boot_delay: float = 0.0  # nodes present at the start join after this delay
    until: float | None = None  # stop the simulation at this simulated second


_SIM = SimOptions()  # the simulator's own defaults, shared by every experiment


@dataclass(frozen=True, slots=True)
class AutoscaleOptions:
    """The knobs of ``gpupool sim replay --autoscale``: headroom, pool, simulated cloud, simulator.

    The headroom options are the ``gpupool`` configuration's only; ``settings`` derives what each
    compared configuration's autoscaler gets.
    """

    headroom_nodes: int = 0  # warm idle nodes the gpupool configuration always keeps
    headroom_gpus: int = 0
    # Burst-sized headroom of the gpupool configuration (``DEFAULT_BURST_HEADROOM``, the same
    # policy a config pool's ``headroom: {window, maxNodes}`` gets): as many warm GPUs as the
    # arrivals of the last ``headroom_window`` seconds asked, at most ``headroom_max_nodes``
    # nodes' worth (0 = fixed headroom), free GPUs of ready nodes counting (``headroom_fit``);
    # plus series headroom (``capacity.series_headroom_gpus``): ``headroom_series`` of the burst
    # peak (GPUs asked within ``headroom_series_window`` seconds) of each queue whose peak reached
    # ``headroom_series_min`` GPUs in the last ``headroom_memory`` seconds (0 = off).
    headroom_window: float = DEFAULT_BURST_HEADROOM.window
    headroom_max_nodes: int = DEFAULT_BURST_HEADROOM.max_nodes
    headroom_memory: float = DEFAULT_BURST_HEADROOM.memory
    headroom_series: float = DEFAULT_BURST_HEADROOM.series
    headroom_series_min: int = DEFAULT_BURST_HEADROOM.series_min
    headroom_series_window: float = DEFAULT_BURST_HEADROOM.series_window
    headroom_fit: bool = DEFAULT_BURST_HEADROOM.fit
    idle_timeout: float = 600.0  # an empty node goes after this long (all configurations)
    boot_time: float = 240.0  # seconds from launch until a node takes work
    compaction_budget: int = 4  # workloads one compaction round may move (gpupool and (a))
    compaction_interval: float = DEFAULT_COMPACTION_INTERVAL
    compact_onto_empty: bool = False  # see Autoscaler.compact_onto_empty
    pool_min: int = 0
    nodes_scale: float = _SIM.nodes_scale  # scales every tenant's quota (and so the pool's max)
    seed: int = 1  # the simulated cloud's seed (stockouts, boot failures)
    stockout_rate: float = 0.0
    boot_failure_rate: float = 0.0
    # The simulator's own options, as in ``SimOptions``.
    retry: float = _SIM.retry
    stop_delay: float = _SIM.stop_delay
    resume_delay: float = _SIM.resume_delay  # a resumed job (a compaction move) restores its checkpoint
    grace: float = _SIM.grace
    checkpoint_interval: float = _SIM.checkpoint_interval
    preemption_delay: float = _SIM.preemption_delay


@dataclass(frozen=True, slots=True)
class ConvergeOptions:
    """The set-up of the convergence experiment: queues, cluster, job size, when the others submit."""

    queues: int = 5
    nodes_per_queue: int = 2
    gpus_per_node: int = 8
    job_gpus: int = 4
    others_at: float = 600.0  # when the other queues submit (seconds)
    duration: float = 6 * 3600.0  # every job's length: long enough that nothing ends on its own
    fill_pct: float = 95.0  # how much of the cluster the first queue takes
