"""The structure of ``queues.yaml`` as pydantic models: which keys each object of the file takes.

One model per kind of object (the configuration, a partition, a queue, a limit, a placement rule,
a node pool, a size...). Its fields are the keys the object accepts, in lower case and in the
order the readers report them; ``extra="forbid"`` refuses every other key. ``read_keys`` applies
a model to a mapping of the file the way YuniKorn reads keys: case-insensitively (``submitACL`` is
``submitacl``), a key given twice in different cases is an error, and an unknown key is reported
with a hint (the right place for a misplaced key, or the closest known key). What the values mean
is read by ``gpupool.config.reader`` and the modules beside it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gpupool.core.configerror import At, ConfigIssue
from gpupool.core.configerror import kind as _kind

__all__ = ["KEY_HINTS", "Keys", "RawField", "read_keys"]


@dataclass(frozen=True, slots=True)
class RawField:
    """The value of one key as written in the file, and where."""

    value: object
    at: At


# Keys people often write in the wrong place, with what to do instead.
KEY_HINTS = {
    "guaranteed": "guaranteed and max go under `resources:`, e.g. resources: {guaranteed: {gpu: 4}}",
    "max": "guaranteed and max go under `resources:`, e.g. resources: {max: {gpu: 8}}",
    "maxapps": "the key is `maxapplications`",
    "maxrunningapps": "the key is `maxapplications`",
    "acl": "use `submitacl` (who may submit) or `adminacl` (who may administer)",
    "children": "child queues go under `queues:`",
    "placement_rules": "the key is `placementrules`",
    "node_sort_policy": "the key is `nodesortpolicy`",
    "child_template": "the key is `childtemplate`",
    "max_applications": "the key is `maxapplications`",
    "submit_acl": "the key is `submitacl`",
    "admin_acl": "the key is `adminacl`",
    "gputypes": "the key is `gpu_types`",
}


class Keys(BaseModel):
    """The keys of one kind of object; every field is one accepted key (lower case).

    ``hints``: what to do instead of an unknown key that people often write.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    hints: ClassVar[dict[str, str]] = KEY_HINTS

    @classmethod
    def allowed(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)


class ConfigKeys(Keys):
    """The top level: YuniKorn's keys plus gpupool's ``sizes``, ``nodepools`` and ``compaction``."""

    partitions: Any = None
    checksum: Any = None
    sizes: Any = None
    nodepools: Any = None
    compaction: Any = None


class CompactionKeys(Keys):
    """The keys of gpupool's top-level ``compaction:``: how many workloads a round may move, how often."""

    budget: Any = None
    interval: Any = None


class PoolKeys(Keys):
    """The keys of one entry of gpupool's ``nodepools:``: bounds, headroom, idle timeout, machines."""

    name: Any = None
    min: Any = None
    max: Any = None
    headroom: Any = None
    idletimeout: Any = None
    instancetypes: Any = None
    transfercost: Any = None


class HeadroomKeys(Keys):
    """The keys of a node pool's ``headroom:``: the warm nodes or GPUs it keeps, fixed or burst-sized."""

    nodes: Any = None
    gpus: Any = None
    window: Any = None
    maxnodes: Any = None
    memory: Any = None
    series: Any = None
    seriesmin: Any = None
    serieswindow: Any = None
    fit: Any = None


class InstanceKeys(Keys):
    """The keys of a machine in a pool's ``instancetypes:``: GPUs, CPU, memory, region, cost, boot time."""

    name: Any = None
    gputype: Any = None
    gpus: Any = None
    vcore: Any = None
    memory: Any = None
    region: Any = None
    hourlycost: Any = None
    boottime: Any = None


class PartitionKeys(Keys):
    """The keys of one entry of ``partitions:`` (YuniKorn's ``PartitionConfig``).

    ``statedumpfilepath`` and ``usergroupresolver`` are accepted for compatibility and only type-checked.
    """

    name: Any = None
    queues: Any = None
    placementrules: Any = None
    limits: Any = None
    preemption: Any = None
    nodesortpolicy: Any = None
    statedumpfilepath: Any = None
    usergroupresolver: Any = None


class QueueKeys(Keys):
    """The keys of one queue of the tree (YuniKorn's ``QueueConfig``); its children go under ``queues``."""

    name: Any = None
    parent: Any = None
    resources: Any = None
    maxapplications: Any = None
    properties: Any = None
    adminacl: Any = None
    submitacl: Any = None
    childtemplate: Any = None
    queues: Any = None
    limits: Any = None


class ResourcesKeys(Keys):
    """The keys of a queue's or a child template's ``resources:`` (YuniKorn's ``Resources``)."""

    guaranteed: Any = None
    max: Any = None


class TemplateKeys(Keys):
    """The keys of a parent queue's ``childtemplate:`` (YuniKorn's ``ChildTemplate``), for dynamic queues."""

    maxapplications: Any = None
    properties: Any = None
    resources: Any = None


class LimitKeys(Keys):
    """The keys of one entry of a queue's or partition's ``limits:`` (YuniKorn's ``Limit``)."""

    limit: Any = None
    users: Any = None
    groups: Any = None
    maxresources: Any = None
    maxapplications: Any = None


class RuleKeys(Keys):
    """The keys of one placement rule (YuniKorn's ``PlacementRule``); ``parent`` nests another rule."""

    name: Any = None
    create: Any = None
    filter: Any = None
    parent: Any = None
    value: Any = None


class FilterKeys(Keys):
    """The keys of a placement rule's ``filter:`` (YuniKorn's ``Filter``): whom the rule allows or denies."""

    type: Any = None
    users: Any = None
    groups: Any = None


class PreemptionKeys(Keys):
    """The keys of a partition's ``preemption:`` (YuniKorn's ``PartitionPreemptionConfig``)."""

    enabled: Any = None
    quotapreemptionenabled: Any = None


class NodeSortKeys(Keys):
    """The keys of a partition's ``nodesortpolicy:`` (YuniKorn's ``NodeSortingPolicy``)."""

    type: Any = None
    resourceweights: Any = None


class SizeKeys(Keys):
    """The keys of one standard size under gpupool's ``sizes:`` (a bare list of shapes is accepted too)."""

    description: Any = None
    shapes: Any = None


class ShapeKeys(Keys):
    """The keys of one shape of a standard size: per-member ``resources`` and the allowed ``gpu_types``."""

    resources: Any = None
    gpu_types: Any = None


def read_keys(
    model: type[Keys], raw: object, at: At, what: str, issues: list[ConfigIssue]
) -> dict[str, RawField] | None:
    """The keys of a mapping, lower-cased, checked against ``model``; None if it is no mapping.

    Every problem is added to ``issues`` in the order of the keys in the file: a key that is not a
    string, a key the model refuses (with a hint), a key given twice ignoring case.
    """
    if not isinstance(raw, Mapping):
        issues.append(at.issue(f"{what} must be a mapping (key: value), got {_kind(raw)}"))
        return None
    lowered = {k.lower(): v for k, v in raw.items() if isinstance(k, str)}
    try:
        model.model_validate(lowered)
        unknown: set[str] = set()
    except ValidationError as exc:
        unknown = {str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden" and e["loc"]}
    allowed = model.allowed()
    out: dict[str, RawField] = {}
    for raw_key, value in raw.items():
        if not isinstance(raw_key, str):
            issues.append(at.issue(f"key {raw_key!r} in {what} must be a string"))
            continue
        key = raw_key.lower()
        kat = at.key(key, raw_key)
        if key in unknown:
            hint = model.hints.get(key, "")
            if not hint:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean `{close[0]}`?" if close else ""
            hint = hint or "known keys: " + ", ".join(allowed)
            issues.append(kat.issue(f"unknown key `{raw_key}` in {what}", hint))
            continue
        if key in out:
            issues.append(
                kat.issue(f"key `{raw_key}` appears twice in {what} (keys ignore case)", "keep one")
            )
            continue
        out[key] = RawField(value, kat)
    return out
