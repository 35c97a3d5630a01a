"""The keys of each part of a scenario file, as pydantic models (see ``gpupool.config.schema``).

Case-insensitive, unknown keys refused with a hint, as in the queue configuration; the values
are read by ``gpupool.scenario`` with the configuration's readers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gpupool.config.schema import Keys

_HINTS = {
    "gpus": "an ask's or allocation's size goes under `resources:`, e.g. resources: {gpu: 1}",
    "gpu": "an ask's or allocation's size goes under `resources:`, e.g. resources: {gpu: 1}",
}


class ScenarioKeys(Keys):
    """The keys of a scenario file's top level (``docs/scenarios.md``)."""

    name: Any = None
    description: Any = None
    config: Any = None
    nodes: Any = None
    apps: Any = None
    running: Any = None
    pending: Any = None
    run: Any = None
    expect: Any = None


class NodeKeys(Keys):
    """The keys of one node of a scenario's ``nodes:``."""

    name: Any = None
    capacity: Any = None
    labels: Any = None
    schedulable: Any = None


class AppKeys(Keys):
    """The keys of one app of a scenario's ``apps:``."""

    id: Any = None
    queue: Any = None
    user: Any = None
    groups: Any = None
    tags: Any = None
    gang: Any = None


class GangKeys(Keys):
    """The keys of an app's ``gang:`` in a scenario."""

    style: Any = None
    timeout: Any = None
    span_regions: Any = None


class RunningKeys(Keys):
    """The keys of one allocation of a scenario's ``running:``."""

    hints: ClassVar[dict[str, str]] = _HINTS
    id: Any = None
    app: Any = None
    queue: Any = None
    node: Any = None
    resources: Any = None
    priority: Any = None
    age: Any = None
    preemptible: Any = None
    originator: Any = None
    elastic: Any = None


class PendingKeys(Keys):
    """The keys of one ask of a scenario's ``pending:``."""

    hints: ClassVar[dict[str, str]] = _HINTS
    id: Any = None
    app: Any = None
    resources: Any = None
    gpu_types: Any = None
    priority: Any = None
    queue: Any = None
    age: Any = None
    preempt_others: Any = None
    node: Any = None


class RunKeys(Keys):
    """The keys of a scenario's ``run:``: how many simulated seconds to go on after t=0."""

    seconds: Any = None


class ExpectKeys(Keys):
    """The keys of a scenario's ``expect:``: the outcomes the runner checks."""

    placed: Any = None
    pending: Any = None
    preempted: Any = None
    preempted_count: Any = None
    placed_count: Any = None
    rejected: Any = None
    queue: Any = None
    state: Any = None
    gpus: Any = None  # ask or allocation -> the GPU indices it holds on its node
    why: Any = None  # pending ask -> text its waiting reason contains


class CountKeys(Keys):
    """The keys of ``expect.preempted_count``: how many victims, among which allocations."""

    count: Any = None
    among: Any = None
