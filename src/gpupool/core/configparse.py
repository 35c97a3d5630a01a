"""Parse and validate the queue configuration: Apache YuniKorn's ``queues.yaml`` plus gpupool's additions.

``parse_config(raw)`` takes the plain mapping that ``yaml.safe_load`` returns and builds the
frozen dataclasses of ``gpupool.core.config``. Every problem it can find is collected into one
``ConfigError`` (a ``ValueError``) carrying ``ConfigIssue`` items: where (a readable path such as
``partitions[0].queues.root.a.resources.max.gpu`` plus the raw key path ``loc``, which the YAML
edge turns into a line number), what, and a hint on what to do.

Semantics follow YuniKorn (``pkg/common/configs/config.go`` and ``configvalidator.go``, the
``queue_config``, ``acls`` and ``placement_rules`` docs):

* keys are case-insensitive (``submitACL``, ``maxApplications``, rule name ``Provided``);
  unknown keys are errors;
* a missing ``root`` queue is inserted, the top-level queues becoming its children; root may not
  have resources;
* queue names: at most 64 of ``[a-zA-Z0-9_:#/@-]``, no dots, unique among siblings ignoring case,
  and lower-cased as YuniKorn does (``NewConfiguredQueue``), so ``root.Team`` is ``root.team``;
* guaranteed <= max; a child's max <= its parent's (effective) max; the children's guaranteed add
  up to no more than the parent's guaranteed and max; the same per user / group for ``limits``;
* ``partitions[].limits`` are the root queue's limits.

gpupool's additions: ``gpu/<TYPE>`` resources (per-GPU-type quota) and the top-level ``sizes``
catalog (``DEFAULT_SIZES`` when absent). ``parse_duration`` parses Go durations
(``preemption.delay``). Pure: standard library and ``gpupool.core`` only, no I/O.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpupool.core.acl import ACL, GROUP_NAME, USER_NAME, WILDCARD, ACLError
from gpupool.core.config import (
    PROP_APP_SORT_POLICY,
    PROP_APP_SORT_PRIORITY,
    PROP_PREEMPTION_DELAY,
    PROP_PREEMPTION_POLICY,
    PROP_PRIORITY_OFFSET,
    PROP_PRIORITY_POLICY,
    ChildTemplate,
    Config,
    Filter,
    InstanceType,
    Limit,
    NodePool,
    NodeSortPolicy,
    PartitionConfig,
    PlacementRule,
    QueueConfig,
    Shape,
    Size,
)
from gpupool.core.resources import (
    TYPED_GPU_PREFIX,
    QuantityError,
    Resources,
    format_quantity,
    gpu_count,
    parse_quantity,
)

__all__ = [
    "ACL",
    "DEFAULT_SIZES",
    "MINIMAL_CONFIG",
    "ConfigError",
    "ConfigIssue",
    "DurationError",
    "parse_config",
    "parse_duration",
]

ROOT = "root"
DEFAULT_PARTITION = "default"
RECOVERY_QUEUE = "@recovery@"
QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_:#/@-]{1,64}$")
RULE_NAMES = ("provided", "user", "fixed", "tag")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

MINIMAL_CONFIG = "partitions: [{name: default, queues: [{name: root, submitacl: '*'}]}]"

# Accepted keys per object (lower case). YuniKorn's own keys plus gpupool's `sizes`.
_TOP_KEYS = ("partitions", "checksum", "sizes", "nodepools", "compaction")
_COMPACTION_KEYS = ("budget", "interval")
_POOL_KEYS = ("name", "min", "max", "headroom", "idletimeout", "instancetypes", "transfercost")
_HEADROOM_KEYS = ("nodes", "gpus", "window", "maxnodes", "memory", "series", "seriesmin", "fit")
_INSTANCE_KEYS = ("name", "gputype", "gpus", "vcore", "memory", "region", "hourlycost", "boottime")
_PARTITION_KEYS = (
    "name",
    "queues",
    "placementrules",
    "limits",
    "preemption",
    "nodesortpolicy",
    "statedumpfilepath",
    "usergroupresolver",
)
_QUEUE_KEYS = (
    "name",
    "parent",
    "resources",
    "maxapplications",
    "properties",
    "adminacl",
    "submitacl",
    "childtemplate",
    "queues",
    "limits",
)
_RESOURCES_KEYS = ("guaranteed", "max")
_TEMPLATE_KEYS = ("maxapplications", "properties", "resources")
_LIMIT_KEYS = ("limit", "users", "groups", "maxresources", "maxapplications")
_RULE_KEYS = ("name", "create", "filter", "parent", "value")
_FILTER_KEYS = ("type", "users", "groups")
_PREEMPTION_KEYS = ("enabled", "quotapreemptionenabled")
_NODESORT_KEYS = ("type", "resourceweights")
_SIZE_KEYS = ("description", "shapes")
_SHAPE_KEYS = ("resources", "gpu_types")

# Keys people often write in the wrong place, with what to do instead.
_KEY_HINTS = {
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

_SORT_POLICIES = {"fifo": "fifo", "fair": "fair", "stateaware": "fifo"}
_ENUM_PROPERTIES = {
    PROP_APP_SORT_PRIORITY: ("enabled", "disabled"),
    PROP_PRIORITY_POLICY: ("default", "fence"),
    PROP_PREEMPTION_POLICY: ("default", "fence", "disabled"),
}

_GI = 2**30


def _default_sizes() -> dict[str, Size]:
    # Each size falls back across GPU types in order of preference, ending with "any type".
    # Small jobs prefer the cheap inference GPU (L4); big gangs prefer the fastest (H100).
    def size(name: str, gpus: int, preference: tuple[str, ...], description: str) -> Size:
        res = {"gpu": gpus, "vcore": 8000 * gpus, "memory": 64 * _GI * gpus}
        shapes = tuple(Shape(resources=dict(res), gpu_types=(t,)) for t in preference)
        return Size(name=name, shapes=(*shapes, Shape(resources=dict(res))), description=description)

    return {
        "small": size("small", 1, ("L4", "A100"), "1 GPU, 8 vcore, 64Gi: notebooks, inference, debugging"),
        "medium": size("medium", 2, ("A100", "H100"), "2 GPUs, 16 vcore, 128Gi: fine-tuning"),
        "large": size("large", 4, ("H100", "A100"), "4 GPUs, 32 vcore, 256Gi: training on half a node"),
        "xlarge": size("xlarge", 8, ("H100", "A100"), "8 GPUs, 64 vcore, 512Gi: a whole 8-GPU node"),
    }


DEFAULT_SIZES: dict[str, Size] = _default_sizes()


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration.

    ``path`` is the readable location (queues by their path), ``loc`` the raw key path into the
    input mapping (keys as written, list indices as ints), ``line`` the 1-based source line when
    the edge could find it.
    """

    path: str
    message: str
    hint: str = ""
    loc: tuple[str | int, ...] = ()
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """An invalid configuration: every issue found, with where, what and what to do."""

    def __init__(self, issues: Iterable[ConfigIssue], source: str = "<config>") -> None:
        self.issues: list[ConfigIssue] = list(issues)
        self.source = source
        super().__init__(self.render())

    def lines(self) -> list[str]:
        """One ``SOURCE: path: message`` line per issue, each followed by its ``Hint:`` if any."""
        out: list[str] = []
        for issue in self.issues:
            where = f"{issue.path}: " if issue.path else ""
            line = f" (line {issue.line})" if issue.line is not None else ""
            out.append(f"{self.source}: {where}{issue.message}{line}")
            if issue.hint:
                out.append(f"  Hint: {issue.hint}")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())


class DurationError(ValueError):
    """A string that is not a Go duration."""


# --------------------------------------------------------------------------------------------
# Go durations

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION_UNIT = r"(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"^[+-]?(?:{_DURATION_NUMBER}{_DURATION_UNIT})+$")
_DURATION_PART = re.compile(rf"({_DURATION_NUMBER})({_DURATION_UNIT})")


def parse_duration(text: str) -> float:
    """Parse a Go duration (``30s``, ``1m30s``, ``500ms``, ``2h``, ``1.5h``) into seconds.

    As Go's ``time.ParseDuration``: a sequence of numbers each with a unit (ns, us, ms, s, m, h),
    optionally signed; ``0`` is the only number allowed without a unit. Raises DurationError.
    """
    if not isinstance(text, str):
        raise DurationError(f"{text!r} is not a duration (expected a string such as 30s, 1m30s, 500ms)")
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if not _DURATION.match(s):
        if re.fullmatch(r"[+-]?[0-9]+(?:\.[0-9]*)?", s):
            raise DurationError(f"{text!r} has no unit (write e.g. {s}s for seconds)")
        raise DurationError(
            f"{text!r} is not a duration (use a number with a unit ns, us, ms, s, m or h, "
            "e.g. 30s, 1m30s, 500ms, 2h)"
        )
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(s))
    return -seconds if s.startswith("-") else seconds


# --------------------------------------------------------------------------------------------
# Locations


@dataclass(frozen=True, slots=True)
class _At:
    path: str
    loc: tuple[str | int, ...] = ()

    def key(self, name: str, raw_key: str | None = None) -> _At:
        sep = "." if self.path else ""
        return _At(self.path + sep + name, (*self.loc, raw_key if raw_key is not None else name))

    def index(self, i: int) -> _At:
        return _At(f"{self.path}[{i}]", (*self.loc, i))


@dataclass(frozen=True, slots=True)
class _Field:
    value: object
    at: _At


@dataclass
class _Limit:
    limit: Limit
    at: _At


@dataclass
class _Queue:
    """A queue while it is being validated; frozen into QueueConfig at the end."""

    name: str
    qpath: str
    at: _At
    parent_flag: bool = False
    guaranteed: Resources | None = None
    max: Resources | None = None
    guaranteed_at: _At | None = None
    max_at: _At | None = None
    properties: dict[str, str] = field(default_factory=dict)
    submit_acl: str | None = None
    admin_acl: str | None = None
    max_applications: int | None = None
    max_applications_at: _At | None = None
    limits: list[_Limit] = field(default_factory=list)
    limits_at: _At | None = None
    child_template: ChildTemplate | None = None
    child_template_at: _At | None = None
    children: list[_Queue] = field(default_factory=list)

    @property
    def is_parent(self) -> bool:
        return self.parent_flag or bool(self.children)

    def freeze(self) -> QueueConfig:
        return QueueConfig(
            name=self.name,
            parent=self.is_parent,
            guaranteed=self.guaranteed,
            max=self.max,
            properties=self.properties,
            submit_acl=self.submit_acl,
            admin_acl=self.admin_acl,
            max_applications=self.max_applications,
            limits=tuple(x.limit for x in self.limits),
            child_template=self.child_template,
            queues=tuple(c.freeze() for c in self.children),
        )


def _q(name: str, value: int) -> str:
    return format_quantity(name, value)


# --------------------------------------------------------------------------------------------
# The parser


def parse_config(raw: object, source: str = "<config>") -> Config:
    """Build and validate a Config from a plain mapping (what ``yaml.safe_load`` returns).

    Raises ConfigError listing every issue found.
    """
    parser = _Parser()
    config = parser.config(raw)
    if parser.issues or config is None:
        raise ConfigError(parser.issues, source)
    return config


class _Parser:
    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def error(self, at: _At, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(at.path, message, hint, at.loc))

    # ---- generic readers ---------------------------------------------------------------------

    def fields(self, raw: object, at: _At, allowed: tuple[str, ...], what: str) -> dict[str, _Field] | None:
        """The keys of a mapping, lower-cased; unknown and case-duplicated keys are reported."""
        if not isinstance(raw, Mapping):
            self.error(at, f"{what} must be a mapping (key: value), got {_kind(raw)}")
            return None
        out: dict[str, _Field] = {}
        for raw_key, value in raw.items():
            if not isinstance(raw_key, str):
                self.error(at, f"key {raw_key!r} in {what} must be a string")
                continue
            key = raw_key.lower()
            kat = at.key(key, raw_key)
            if key not in allowed:
                hint = _KEY_HINTS.get(key, "")
                if not hint:
                    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                    hint = f"did you mean `{close[0]}`?" if close else ""
                hint = hint or "known keys: " + ", ".join(allowed)
                self.error(kat, f"unknown key `{raw_key}` in {what}", hint)
                continue
            if key in out:
                self.error(kat, f"key `{raw_key}` appears twice in {what} (keys ignore case)", "keep one")
                continue
            out[key] = _Field(value, kat)
        return out

    def string(self, f: _Field, what: str, *, scalar_ok: bool = False) -> str | None:
        v = f.value
        if isinstance(v, str):
            return v
        if scalar_ok and isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        self.error(f.at, f"{what} must be a string, got {_kind(v)}")
        return None

    def boolean(self, f: _Field, what: str) -> bool | None:
        if isinstance(f.value, bool):
            return f.value
        self.error(f.at, f"{what} must be true or false, got {_kind(f.value)}")
        return None

    def count(self, f: _Field, what: str) -> int | None:
        """A positive integer (maxapplications)."""
        v = f.value
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if not isinstance(v, int) or isinstance(v, bool):
            self.error(f.at, f"{what} must be a whole number >= 1, got {_kind(f.value)}")
            return None
        if v < 1:
            self.error(
                f.at,
                f"{what} is {v}; it must be at least 1 (0 would block every application)",
                f"remove `{what}` for no limit",
            )
            return None
        return v

    def names(self, f: _Field, what: str) -> list[str] | None:
        """A list of strings; a single string is taken as a one-element list."""
        v = f.value
        if v is None:
            return []
        if isinstance(v, str):
            return [v]
        if not isinstance(v, list):
            self.error(f.at, f"{what} must be a list of names, got {_kind(v)}")
            return None
        out: list[str] = []
        for i, item in enumerate(v):
            if isinstance(item, str):
                out.append(item)
            else:
                self.error(f.at.index(i), f"{what} entries must be strings, got {_kind(item)}")
        return out

    def resources(self, f: _Field, what: str) -> Resources | None:
        """A resource map; an empty map or null is None (no setting)."""
        raw = f.value
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.error(f.at, f"{what} must be a map of resource: quantity, got {_kind(raw)}")
            return None
        out: Resources = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not name.strip():
                self.error(f.at, f"resource name {name!r} in {what} must be a non-empty string")
                continue
            rat = f.at.key(name)
            if name.startswith(TYPED_GPU_PREFIX) and not name[len(TYPED_GPU_PREFIX) :]:
                self.error(rat, "`gpu/` needs a GPU type", "write e.g. gpu/H100: 4 (per-GPU-type quota)")
                continue
            try:
                out[name] = parse_quantity(name, value)
            except QuantityError as exc:
                hint = "vcore takes m for milli-cores (500m); memory takes Ki, Mi, Gi, Ti or k, M, G, T"
                if name not in ("vcore", "cpu", "memory"):
                    hint = f"{name} is counted in whole units, e.g. {name}: 4"
                self.error(rat, f"invalid quantity: {exc}", hint)
        return out or None

    # ---- top level ---------------------------------------------------------------------------

    def config(self, raw: object) -> Config | None:
        top = _At("")
        if raw is None:
            self.error(top, "the configuration is empty", f"a minimal configuration: {MINIMAL_CONFIG}")
            return None
        fields = self.fields(raw, top, _TOP_KEYS, "the configuration")
        if fields is None:
            return None
        if "checksum" in fields and not isinstance(fields["checksum"].value, str | None):
            self.error(fields["checksum"].at, "checksum must be a string")
        partitions: list[PartitionConfig] = []
        if "partitions" not in fields:
            self.error(top, "`partitions` is missing", f"a minimal configuration: {MINIMAL_CONFIG}")
        else:
            partitions = self.partitions(fields["partitions"])
        sizes = dict(DEFAULT_SIZES)
        if "sizes" in fields:
            sizes = self.sizes(fields["sizes"])
        pools: list[NodePool] = []
        if "nodepools" in fields:
            pools = self.nodepools(fields["nodepools"])
        budget, interval = 0, 300.0
        if "compaction" in fields:
            cf = self.fields(
                fields["compaction"].value, fields["compaction"].at, _COMPACTION_KEYS, "compaction"
            )
            if cf is not None:
                if "budget" in cf:
                    budget = self.amount(cf["budget"], "compaction.budget") or 0
                if "interval" in cf:
                    interval = self.seconds(cf["interval"], "compaction.interval") or 0.0
                    if interval <= 0 and "budget" in cf:
                        self.error(
                            cf["interval"].at, "compaction.interval must be above 0", "e.g. interval: 5m"
                        )
        return Config(
            partitions=tuple(partitions),
            sizes=sizes,
            nodepools=tuple(pools),
            compaction_budget=budget,
            compaction_interval=interval,
        )

    def partitions(self, f: _Field) -> list[PartitionConfig]:
        if not isinstance(f.value, list) or not f.value:
            self.error(f.at, f"partitions must be a non-empty list, got {_kind(f.value)}", MINIMAL_CONFIG)
            return []
        out: list[PartitionConfig] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(f.value):
            at = f.at.index(i)
            p = self.partition(raw, at)
            if p is None:
                continue
            if p.name.lower() in seen:
                self.error(
                    at.key("name"),
                    f"partition `{p.name}` is defined twice (also partitions[{seen[p.name.lower()]}])",
                    "partition names must be unique (ignoring case)",
                )
                continue
            seen[p.name.lower()] = i
            out.append(p)
        return out

    def partition(self, raw: object, at: _At) -> PartitionConfig | None:
        fields = self.fields(raw, at, _PARTITION_KEYS, "a partition")
        if fields is None:
            return None
        name = DEFAULT_PARTITION
        if "name" in fields:
            n = self.string(fields["name"], "partition name")
            if n is not None and n.strip():
                name = DEFAULT_PARTITION if n.strip().lower() == DEFAULT_PARTITION else n.strip()

        for key in ("statedumpfilepath",):
            if key in fields and not isinstance(fields[key].value, str | None):
                self.error(fields[key].at, f"{key} must be a string")
        if "usergroupresolver" in fields and not isinstance(
            fields["usergroupresolver"].value, Mapping | None
        ):
            self.error(
                fields["usergroupresolver"].at, "usergroupresolver must be a mapping (e.g. {type: os})"
            )

        preemption_enabled, quota_preemption = True, False
        if "preemption" in fields:
            pf = self.fields(
                _or_empty(fields["preemption"].value), fields["preemption"].at, _PREEMPTION_KEYS, "preemption"
            )
            if pf:
                if "enabled" in pf:
                    preemption_enabled = _default(self.boolean(pf["enabled"], "preemption.enabled"), True)
                if "quotapreemptionenabled" in pf:
                    quota_preemption = _default(
                        self.boolean(pf["quotapreemptionenabled"], "preemption.quotapreemptionenabled"), False
                    )

        node_sort = NodeSortPolicy()
        if "nodesortpolicy" in fields:
            node_sort = self.node_sort_policy(fields["nodesortpolicy"])

        rules: list[PlacementRule] = []
        rule_ats: list[_At] = []
        if "placementrules" in fields:
            rf = fields["placementrules"]
            if rf.value is None:
                pass
            elif not isinstance(rf.value, list):
                self.error(rf.at, f"placementrules must be a list of rules, got {_kind(rf.value)}")
            else:
                for i, raw_rule in enumerate(rf.value):
                    rule = self.rule(raw_rule, rf.at.index(i))
                    if rule is not None:
                        rules.append(rule)
                        rule_ats.append(rf.at.index(i))

        partition_limits: list[_Limit] | None = None
        if "limits" in fields:
            partition_limits = self.limits(fields["limits"])

        if "queues" not in fields:
            self.error(
                at, "the partition has no `queues`", "add at least: queues: [{name: root, submitacl: '*'}]"
            )
            return None
        root = self.root(fields["queues"], at)
        if root is None:
            return None

        if partition_limits:  # an empty list sets nothing (YuniKorn)
            if root.limits and [x.limit for x in root.limits] != [x.limit for x in partition_limits]:
                self.error(
                    fields["limits"].at,
                    "the partition limits and the root queue limits are both set and differ",
                    "partition limits are the root queue's limits: keep only one of them",
                )
            elif not root.limits:
                root.limits = partition_limits
                root.limits_at = fields["limits"].at

        self.validate_tree(root)
        for rule, rat in zip(rules, rule_ats, strict=True):
            self.check_rule_paths(rule, rat, root)

        return PartitionConfig(
            name=name,
            root=root.freeze(),
            placement_rules=tuple(rules),
            limits=tuple(x.limit for x in root.limits),
            node_sort_policy=node_sort,
            preemption_enabled=preemption_enabled,
            quota_preemption_enabled=quota_preemption,
        )

    def node_sort_policy(self, f: _Field) -> NodeSortPolicy:
        raw = f.value
        if raw is None:
            return NodeSortPolicy()
        if isinstance(raw, str):  # the docs show `nodesortpolicy: fair` as a shorthand
            raw = {"type": raw}
        fields = self.fields(raw, f.at, _NODESORT_KEYS, "nodesortpolicy")
        if fields is None:
            return NodeSortPolicy()
        kind = "fair"
        if "type" in fields:
            t = self.string(fields["type"], "nodesortpolicy.type")
            if t is not None:
                t = t.strip().lower() or "fair"
                if t not in ("fair", "binpacking"):
                    self.error(
                        fields["type"].at,
                        f"unknown node sort policy `{t}`",
                        "use `binpacking` (fill nodes first) or `fair` (spread load)",
                    )
                else:
                    kind = t
        weights: dict[str, float] | None = None
        if "resourceweights" in fields and fields["resourceweights"].value is not None:
            wf = fields["resourceweights"]
            if not isinstance(wf.value, Mapping):
                self.error(wf.at, f"resourceweights must be a map of resource: weight, got {_kind(wf.value)}")
            else:
                weights = {}
                for name, w in wf.value.items():
                    wat = wf.at.key(str(name), name if isinstance(name, str) else str(name))
                    if not isinstance(name, str) or not name:
                        self.error(wf.at, f"resource name {name!r} in resourceweights must be a string")
                    elif isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
                        self.error(wat, f"weight must be a number, got {_kind(w)}")
                    elif w < 0:
                        self.error(wat, f"weight {w} is negative", "weights must be 0 or more")
                    else:
                        weights[name] = float(w)
        return NodeSortPolicy(type=kind, resource_weights=weights)

    # ---- queues ------------------------------------------------------------------------------

    def root(self, f: _Field, pat: _At) -> _Queue | None:
        raw = f.value
        if not isinstance(raw, list) or not raw:
            self.error(f.at, f"queues must be a non-empty list of queues, got {_kind(raw)}")
            return None
        base = pat.key("queues")
        if len(raw) == 1 and isinstance(raw[0], Mapping) and _name_of(raw[0]).lower() == ROOT:
            root = self.queue(raw[0], base, (*f.at.loc, 0), None)
            if root is None:
                return None
        else:
            # YuniKorn inserts the root queue; the listed queues become its children.
            root = _Queue(name=ROOT, qpath=ROOT, at=_At(f"{base.path}.root", f.at.loc))
            root.children = self.children(raw, root, f.at.loc)
        root.parent_flag = True
        for what, res_at in (("guaranteed", root.guaranteed_at), ("max", root.max_at)):
            if res_at is not None:
                self.error(
                    res_at,
                    f"the root queue cannot have {what} resources",
                    "root's max is the whole cluster; put quotas on the queues below root",
                )
        root.guaranteed = root.max = None
        return root

    def children(self, raw: list[object], parent: _Queue, list_loc: tuple[str | int, ...]) -> list[_Queue]:
        out: list[_Queue] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(raw):
            q = self.queue(item, parent.at.key("queues"), (*list_loc, i), parent)
            if q is None:
                continue
            if q.name in seen:
                self.error(
                    q.at.key("name"),
                    f"queue `{q.qpath}` is defined twice under `{parent.qpath}`",
                    "sibling queue names must be unique (names ignore case)",
                )
                continue
            seen[q.name] = q.qpath
            out.append(q)
        return out

    def queue(
        self, raw: object, base: _At, loc: tuple[str | int, ...], parent: _Queue | None
    ) -> _Queue | None:
        index_at = _At(f"{base.path}[{loc[-1]}]", loc)
        if not isinstance(raw, Mapping):
            self.error(index_at, f"a queue must be a mapping with at least a name, got {_kind(raw)}")
            return None
        name = _name_of(raw)
        if not name:
            self.error(index_at, "the queue has no name", "add `name: <queue name>`")
            self.fields(raw, index_at, _QUEUE_KEYS, "a queue")
            return None
        qpath = f"{parent.qpath}.{name.lower()}" if parent else name.lower()
        at = _At(f"{parent.at.path}.{name.lower()}" if parent else f"{base.path}.{name.lower()}", loc)
        fields = self.fields(raw, at, _QUEUE_KEYS, f"queue {qpath}")
        if fields is None:
            return None
        name_ok = self.check_queue_name(name, fields["name"].at, parent)
        q = _Queue(name=name.lower(), qpath=qpath, at=at)

        if "parent" in fields:
            flag = self.boolean(fields["parent"], "parent")
            q.parent_flag = bool(flag)
            if flag is False and fields.get("queues") and fields["queues"].value:
                self.error(
                    fields["parent"].at,
                    f"queue {qpath} says `parent: false` but has child queues",
                    "remove `parent: false`: a queue with children is always a parent",
                )
        if "resources" in fields:
            rf = self.fields(
                _or_empty(fields["resources"].value), fields["resources"].at, _RESOURCES_KEYS, "resources"
            )
            if rf:
                if "guaranteed" in rf:
                    q.guaranteed = self.resources(rf["guaranteed"], "resources.guaranteed")
                    q.guaranteed_at = rf["guaranteed"].at
                if "max" in rf:
                    q.max = self.resources(rf["max"], "resources.max")
                    q.max_at = rf["max"].at
        if "maxapplications" in fields:
            q.max_applications = self.count(fields["maxapplications"], "maxapplications")
            q.max_applications_at = fields["maxapplications"].at
        if "properties" in fields:
            q.properties = self.properties(fields["properties"])
        for key in ("submitacl", "adminacl"):
            if key in fields:
                acl = self.acl(fields[key], key)
                if key == "submitacl":
                    q.submit_acl = acl
                else:
                    q.admin_acl = acl
        if "limits" in fields:
            q.limits = self.limits(fields["limits"])
            q.limits_at = fields["limits"].at
        if "childtemplate" in fields:
            q.child_template = self.child_template(fields["childtemplate"])
            q.child_template_at = fields["childtemplate"].at
        if "queues" in fields:
            cf = fields["queues"]
            if cf.value is None:
                pass
            elif not isinstance(cf.value, list):
                self.error(cf.at, f"queues must be a list of queues, got {_kind(cf.value)}")
            else:
                q.children = self.children(cf.value, q, cf.at.loc)
        return q if name_ok else None

    def check_queue_name(self, name: str, at: _At, parent: _Queue | None) -> bool:
        if "." in name:
            head, rest = name.split(".", 1)
            self.error(
                at,
                f"queue name `{name}` contains a dot; dots separate the levels of a queue path",
                f"nest the queues instead: name: {head}, queues: [{{name: {rest}}}]",
            )
            return False
        if len(name) > 64:
            self.error(at, f"queue name `{name[:20]}...` is {len(name)} characters long", "use at most 64")
            return False
        if not QUEUE_NAME.match(name):
            bad = sorted({c for c in name if not re.match(r"[a-zA-Z0-9_:#/@-]", c)})
            self.error(
                at,
                f"queue name `{name}` contains {', '.join(repr(c) for c in bad)}",
                "use letters, digits and _ : # / @ - only",
            )
            return False
        if parent is not None and parent.qpath == ROOT and name.lower() == RECOVERY_QUEUE:
            self.error(at, "`root.@recovery@` is reserved for recovered applications", "choose another name")
            return False
        return True

    def acl(self, f: _Field, what: str) -> str | None:
        if f.value is None:
            return ""
        text = self.string(f, what, scalar_ok=True)
        if text is None:
            return None
        try:
            ACL.parse(text)
        except ACLError as exc:
            self.error(f.at, f"invalid {what}: {exc}")
            return None
        return text

    def properties(self, f: _Field) -> dict[str, str]:
        raw = f.value
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.error(f.at, f"properties must be a map of name: value, got {_kind(raw)}")
            return {}
        out: dict[str, str] = {}
        for raw_key, value in raw.items():
            if not isinstance(raw_key, str):
                self.error(f.at, f"property name {raw_key!r} must be a string")
                continue
            key = raw_key.lower()
            pat = f.at.key(key, raw_key)
            if key in out:
                self.error(pat, f"property `{raw_key}` appears twice (names ignore case)", "keep one")
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str | int | float):
                text = str(value)
            else:
                self.error(pat, f"property `{raw_key}` must have a plain value, got {_kind(value)}")
                continue
            checked = self.property_value(key, text, pat)
            if checked is not None:
                out[key] = checked
        return out

    def property_value(self, key: str, text: str, at: _At) -> str | None:
        value = text.strip()
        if key == PROP_APP_SORT_POLICY:
            policy = _SORT_POLICIES.get(value.lower())
            if policy is None:
                self.error(at, f"unknown application sort policy `{text}`", "use `fifo` or `fair`")
            return policy
        if key in _ENUM_PROPERTIES:
            allowed = _ENUM_PROPERTIES[key]
            if value.lower() not in allowed:
                self.error(at, f"unknown {key} `{text}`", "use one of: " + ", ".join(allowed))
                return None
            return value.lower()
        if key == PROP_PRIORITY_OFFSET:
            if not re.fullmatch(r"[+-]?[0-9]+", value):
                self.error(
                    at, f"priority.offset `{text}` is not a whole number", 'write e.g. priority.offset: "10"'
                )
                return None
            if not INT32_MIN <= int(value) <= INT32_MAX:
                self.error(at, f"priority.offset {value} is out of range", f"use {INT32_MIN} .. {INT32_MAX}")
                return None
            return str(int(value))
        if key == PROP_PREEMPTION_DELAY:
            try:
                seconds = parse_duration(value)
            except DurationError as exc:
                self.error(at, f"invalid preemption.delay: {exc}")
                return None
            if seconds <= 0:
                self.error(
                    at, f"preemption.delay must be more than 0, got `{text}`", "e.g. 30s (the default)"
                )
                return None
            return value
        return text

    def child_template(self, f: _Field) -> ChildTemplate | None:
        fields = self.fields(_or_empty(f.value), f.at, _TEMPLATE_KEYS, "childtemplate")
        if fields is None:
            return None
        max_apps = None
        if "maxapplications" in fields:
            max_apps = self.count(fields["maxapplications"], "childtemplate.maxapplications")
        props = self.properties(fields["properties"]) if "properties" in fields else {}
        guaranteed = maximum = None
        if "resources" in fields:
            rf = self.fields(
                _or_empty(fields["resources"].value), fields["resources"].at, _RESOURCES_KEYS, "resources"
            )
            if rf:
                if "guaranteed" in rf:
                    guaranteed = self.resources(rf["guaranteed"], "childtemplate.resources.guaranteed")
                if "max" in rf:
                    maximum = self.resources(rf["max"], "childtemplate.resources.max")
                if guaranteed and maximum:
                    for t, v in guaranteed.items():
                        if t in maximum and v > maximum[t]:
                            self.error(
                                rf["guaranteed"].at.key(t),
                                f"the template's guaranteed {t} {_q(t, v)} is more than "
                                f"its max {_q(t, maximum[t])}",
                                f"lower guaranteed {t} or raise max {t}",
                            )
        return ChildTemplate(max_applications=max_apps, properties=props, guaranteed=guaranteed, max=maximum)

    # ---- limits ------------------------------------------------------------------------------

    def limits(self, f: _Field) -> list[_Limit]:
        raw = f.value
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(f.at, f"limits must be a list of limit entries, got {_kind(raw)}")
            return []
        out: list[_Limit] = []
        for i, item in enumerate(raw):
            lim = self.limit(item, f.at.index(i))
            if lim is not None:
                out.append(_Limit(lim, f.at.index(i)))
        self.check_limit_list(out)
        return out

    def limit(self, raw: object, at: _At) -> Limit | None:
        fields = self.fields(raw, at, _LIMIT_KEYS, "a limit")
        if fields is None:
            return None
        description = ""
        if "limit" in fields and fields["limit"].value is not None:
            description = self.string(fields["limit"], "limit (the description)", scalar_ok=True) or ""
        lists: dict[str, tuple[str, ...]] = {"users": (), "groups": ()}
        for key, pattern, what in (("users", USER_NAME, "user"), ("groups", GROUP_NAME, "group")):
            if key not in fields:
                continue
            names = self.names(fields[key], key)
            if names is None:
                continue
            for i, name in enumerate(names):
                if name != WILDCARD and not pattern.match(name):
                    self.error(fields[key].at.index(i), f"`{name}` is not a valid {what} name")
            lists[key] = tuple(names)
        if not lists["users"] and not lists["groups"]:
            self.error(
                at, "the limit applies to nobody: it has no users and no groups", 'add users: ["*"] or groups'
            )
        max_res = None
        if "maxresources" in fields:
            max_res = self.resources(fields["maxresources"], "maxresources")
            if max_res is not None and not any(max_res.values()):
                self.error(
                    fields["maxresources"].at,
                    "every resource in maxresources is 0",
                    "at least one resource must be above 0 (a 0 only forbids that one resource)",
                )
        max_apps = None
        if "maxapplications" in fields:
            max_apps = self.count(fields["maxapplications"], "maxapplications")
        if "maxresources" not in fields and "maxapplications" not in fields:
            self.error(at, "the limit limits nothing", "set maxresources, maxapplications or both")
        return Limit(
            description=description,
            users=lists["users"],
            groups=lists["groups"],
            max_resources=max_res,
            max_applications=max_apps,
        )

    def check_limit_list(self, limits: list[_Limit]) -> None:
        """YuniKorn's list rules (configvalidator.go checkLimit): no name twice, in one entry or
        across entries; the wildcard after every named one (it may end an entry that lists named
        ones: ``users: [alice, "*"]``); a wildcard group needs a named group."""
        for key in ("users", "groups"):
            what = key[:-1]
            seen: dict[str, int] = {}
            wildcard = False
            for i, entry in enumerate(limits):
                for j, name in enumerate(getattr(entry.limit, key)):
                    if name in seen:
                        where = "this entry" if seen[name] == i else f"entry {seen[name]}"
                        self.error(
                            entry.at.key(key).index(j),
                            f"{what} `{name}` already has a limit in this list ({where})",
                            "list each name once",
                        )
                    seen.setdefault(name, i)
                    if name == WILDCARD:
                        wildcard = True
                    elif wildcard:
                        self.error(
                            entry.at.key(key).index(j),
                            f"named {what} `{name}` comes after the wildcard {what} limit",
                            f"move the `*` {what} to the end of the list",
                        )
            if key == "groups" and WILDCARD in seen and len(seen) == 1:
                entry = limits[seen[WILDCARD]]
                self.error(
                    entry.at.key("groups"),
                    "a wildcard group limit needs at least one limit for a named group",
                    'a lone groups: ["*"] limit would equal the queue limit; add a named group limit, '
                    'or use users: ["*"] for a per-user default',
                )

    # ---- placement rules ---------------------------------------------------------------------

    def rule(self, raw: object, at: _At) -> PlacementRule | None:
        fields = self.fields(raw, at, _RULE_KEYS, "a placement rule")
        if fields is None:
            return None
        if "name" not in fields:
            self.error(at, "the placement rule has no name", "use one of: " + ", ".join(RULE_NAMES))
            return None
        name = self.string(fields["name"], "rule name")
        if name is None:
            return None
        name = name.strip().lower()
        if name not in RULE_NAMES:
            self.error(
                fields["name"].at, f"unknown placement rule `{name}`", "use one of: " + ", ".join(RULE_NAMES)
            )
            return None
        value = ""
        if "value" in fields and fields["value"].value is not None:
            value = (self.string(fields["value"], "rule value", scalar_ok=True) or "").strip()
        if name in ("fixed", "tag") and not value:
            example = "root.shared" if name == "fixed" else "namespace"
            self.error(
                fields.get("value", _Field(None, at)).at,
                f"the `{name}` rule needs a `value`",
                f"e.g. value: {example}"
                + (" (a queue name or path)" if name == "fixed" else " (an app tag)"),
            )
        if name == "fixed" and value:
            parts = value.split(".")
            for part in parts:
                if not QUEUE_NAME.match(part):
                    self.error(fields["value"].at, f"`{value}` is not a valid queue path (bad part `{part}`)")
                    break
        create = False
        if "create" in fields:
            create = bool(self.boolean(fields["create"], "create"))
        parent = None
        if "parent" in fields and fields["parent"].value is not None:
            parent = self.rule(fields["parent"].value, fields["parent"].at)
        filt = None
        if "filter" in fields and fields["filter"].value is not None:
            filt = self.filter(fields["filter"])
        return PlacementRule(name=name, value=value, create=create, parent=parent, filter=filt)

    def filter(self, f: _Field) -> Filter | None:
        fields = self.fields(f.value, f.at, _FILTER_KEYS, "a rule filter")
        if fields is None:
            return None
        kind = "allow"
        if "type" in fields and fields["type"].value is not None:
            t = self.string(fields["type"], "filter type")
            if t is not None:
                t = t.strip().lower() or "allow"
                if t not in ("allow", "deny"):
                    self.error(fields["type"].at, f"unknown filter type `{t}`", "use `allow` or `deny`")
                else:
                    kind = t
        lists: dict[str, tuple[str, ...]] = {"users": (), "groups": ()}
        for key, pattern in (("users", USER_NAME), ("groups", GROUP_NAME)):
            if key not in fields:
                continue
            names = self.names(fields[key], f"filter {key}")
            if names is None:
                continue
            # One entry is a name or a regexp; in longer lists bad names are ignored (YuniKorn).
            one = names[0] if len(names) == 1 else None
            if one is not None and not pattern.match(one) and not (_SPECIAL.search(one) and _compiles(one)):
                self.error(
                    fields[key].at,
                    f"`{one}` is neither a valid name nor a regular expression",
                    f"list names ({key}: [a, b]) or give one regexp such as ^team-.*$",
                )
            lists[key] = tuple(names)
        return Filter(type=kind, users=lists["users"], groups=lists["groups"])

    def check_rule_paths(self, rule: PlacementRule, at: _At, root: _Queue) -> None:
        """The static (fixed) part of a rule chain must fit the configured queues, as in YuniKorn."""
        chain: list[PlacementRule] = []
        r: PlacementRule | None = rule
        while r is not None:
            chain.append(r)
            r = r.parent
        chain.reverse()
        names = "->".join(x.name for x in chain)
        static = ""
        dynamic = False
        for r in chain:
            if dynamic:
                continue
            if r.name != "fixed":
                dynamic = True
                continue
            if not r.value:
                return
            value = r.value.lower()
            if value == ROOT or value.startswith(ROOT + "."):
                if static:
                    self.error(
                        at,
                        f"rule chain {names}: only the first `fixed` rule may give a full path, "
                        f"got `{r.value}`",
                        "give the inner fixed rule a plain queue name",
                    )
                    return
                static = value
            else:
                static = (static or ROOT) + "." + value
        if not static:
            return
        parts = static.split(".")
        problem = _walk_placement(parts[1:], rule.create, dynamic, root)
        if problem is None:
            return
        kind, where = problem
        if kind == "parent-target":
            self.error(
                at,
                f"placement rule ({names}) places applications in `{static}`, which is a parent queue; "
                "applications run only in leaf queues",
                "point the rule at a leaf queue, or make it the `parent` of a user, tag or provided rule",
            )
        elif kind == "leaf-parent":
            self.error(
                at,
                f"placement rule ({names}) creates queues under `{static}`, which is a leaf queue",
                f"mark `{static}` with `parent: true`",
            )
        elif kind == "missing":
            self.error(
                at,
                f"placement rule ({names}) refers to `{static}`, which is not configured, "
                "and create is false",
                "add the queue to the configuration, or set `create: true` on the rule",
            )
        else:
            self.error(
                at,
                f"placement rule ({names}) needs `{static}` created under `{where}`, which is a leaf queue",
                f"mark `{where}` with `parent: true`",
            )

    # ---- node pools (gpupool) -----------------------------------------------------------------

    def amount(self, f: _Field, what: str, *, minimum: int = 0) -> int | None:
        """A whole number >= ``minimum``."""
        v = f.value
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            self.error(f.at, f"{what} must be a whole number >= {minimum}, got {_kind(f.value)}")
            return None
        return v

    def cost(self, f: _Field, what: str) -> float:
        """A price per hour: a number >= 0."""
        v = f.value
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        self.error(f.at, f"{what} must be a number >= 0, got {_kind(v)}", "write a price per hour, e.g. 2.5")
        return 0.0

    def seconds(self, f: _Field, what: str) -> float | None:
        v = f.value
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except DurationError as exc:
                self.error(f.at, f"{what}: {exc}", "write a duration such as 90s, 5m or 1h30m")
                return None
        self.error(f.at, f"{what} must be a duration such as 90s or 5m, got {_kind(v)}")
        return None

    def series_headroom(
        self, name: str, hf: dict[str, _Field], window: float
    ) -> tuple[float, float, int, bool]:
        """A pool's ``headroom.memory``, ``series``, ``seriesMin`` and ``fit`` (see
        ``capacity.series_headroom``): all need the burst-sized headroom's ``window``."""
        memory = series = 0.0
        series_min = 0
        fit = False
        if "memory" in hf:
            memory = self.seconds(hf["memory"], "headroom.memory") or 0.0
        if "series" in hf:
            v = hf["series"].value
            if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1:
                series = float(v)
            else:
                self.error(
                    hf["series"].at,
                    f"node pool `{name}`: headroom.series must be a share between 0 and 1, got {_kind(v)}",
                    "e.g. series: 0.25 (a quarter of a queue's recent burst peak)",
                )
        if "seriesmin" in hf:
            series_min = self.amount(hf["seriesmin"], "headroom.seriesMin") or 0
        if "fit" in hf:
            fit = bool(self.boolean(hf["fit"], "headroom.fit"))
        for key in ("memory", "series", "seriesmin", "fit"):
            if key in hf and not window:
                self.error(
                    hf[key].at,
                    f"node pool `{name}`: headroom.{key.replace('min', 'Min')} needs headroom.window",
                    "add window: 15m and maxNodes: 4",
                )
                break
        if (memory > 0) != (series > 0):
            missing = "series" if memory > 0 else "memory"
            self.error(
                hf["memory" if memory > 0 else "series"].at,
                f"node pool `{name}`: series headroom needs both headroom.memory and headroom.series",
                f"add {missing}: " + ("0.25" if missing == "series" else "4h"),
            )
        return memory, series, series_min, fit

    def nodepools(self, f: _Field) -> list[NodePool]:
        if not isinstance(f.value, list):
            self.error(f.at, f"nodepools must be a list of pools, got {_kind(f.value)}")
            return []
        out: list[NodePool] = []
        names: set[str] = set()
        for i, raw in enumerate(f.value):
            at = f.at.index(i)
            fields = self.fields(raw, at, _POOL_KEYS, "a node pool")
            if fields is None:
                continue
            name = self.string(fields["name"], "name") if "name" in fields else None
            if not name:
                self.error(at, "the node pool has no name", "add name: gpu-pool")
                continue
            if name in names:
                self.error(fields["name"].at, f"node pool `{name}` is defined twice")
                continue
            names.add(name)
            lo = self.amount(fields["min"], "min") if "min" in fields else 0
            hi = self.amount(fields["max"], "max") if "max" in fields else 10
            if lo is not None and hi is not None and lo > hi:
                self.error(at, f"node pool `{name}`: min {lo} is above max {hi}", "make min <= max")
            headroom_nodes = headroom_gpus = headroom_max = series_min = 0
            window = memory = series = 0.0
            fit = False
            if "headroom" in fields:
                hf = self.fields(fields["headroom"].value, fields["headroom"].at, _HEADROOM_KEYS, "headroom")
                if hf is not None:
                    headroom_nodes = (self.amount(hf["nodes"], "headroom.nodes") or 0) if "nodes" in hf else 0
                    headroom_gpus = (self.amount(hf["gpus"], "headroom.gpus") or 0) if "gpus" in hf else 0
                    if "window" in hf:
                        window = self.seconds(hf["window"], "headroom.window") or 0.0
                    if "maxnodes" in hf:
                        headroom_max = self.amount(hf["maxnodes"], "headroom.maxNodes") or 0
                    if window and not headroom_max:
                        self.error(
                            hf["window"].at,
                            f"node pool `{name}`: headroom.window needs headroom.maxNodes, the most "
                            "nodes a burst may keep warm",
                            "add maxNodes: 4 next to window",
                        )
                    elif headroom_max and not window:
                        self.error(
                            hf["maxnodes"].at,
                            f"node pool `{name}`: headroom.maxNodes caps the burst-sized headroom, "
                            "which needs headroom.window",
                            "add window: 15m (arrivals of the last 15 minutes size the headroom)",
                        )
                    elif headroom_max and headroom_max < headroom_nodes:
                        self.error(
                            hf["maxnodes"].at,
                            f"node pool `{name}`: headroom.maxNodes {headroom_max} is below "
                            f"headroom.nodes {headroom_nodes}",
                            "make maxNodes >= nodes",
                        )
                    memory, series, series_min, fit = self.series_headroom(name, hf, window)
            idle = self.seconds(fields["idletimeout"], "idletimeout") if "idletimeout" in fields else 300.0
            transfer = self.cost(fields["transfercost"], "transfercost") if "transfercost" in fields else 0.0
            types: list[InstanceType] = []
            listed = fields["instancetypes"].value if "instancetypes" in fields else None
            if not isinstance(listed, list) or not listed:
                self.error(at, f"node pool `{name}` needs instancetypes: a list", "see docs/elastic.md")
            else:
                itf = fields["instancetypes"]
                for j, item in enumerate(listed):
                    it = self.instance_type(_Field(item, itf.at.index(j)))
                    if it is not None:
                        types.append(it)
            if types:
                out.append(
                    NodePool(
                        name=name,
                        instance_types=tuple(types),
                        min=lo or 0,
                        max=hi if hi is not None else 10,
                        headroom_nodes=headroom_nodes,
                        headroom_gpus=headroom_gpus,
                        idle_timeout=idle if idle is not None else 300.0,
                        headroom_window=window,
                        headroom_max_nodes=headroom_max,
                        headroom_memory=memory,
                        headroom_series=series,
                        headroom_series_min=series_min,
                        headroom_fit=fit,
                        transfer_cost=transfer,
                    )
                )
        return out

    def instance_type(self, f: _Field) -> InstanceType | None:
        fields = self.fields(f.value, f.at, _INSTANCE_KEYS, "an instance type")
        if fields is None:
            return None
        name = self.string(fields["name"], "name") if "name" in fields else None
        if not name:
            self.error(f.at, "the instance type has no name", "add name: h100x8")
            return None
        gpus = self.amount(fields["gpus"], "gpus") if "gpus" in fields else 0
        gpu_type = self.string(fields["gputype"], "gputype", scalar_ok=True) if "gputype" in fields else None
        if gpus and not gpu_type:
            self.error(f.at, f"instance type `{name}` has GPUs but no gputype", "add gputype: H100")
        quantities: dict[str, int] = {}
        for key, resource, default in (("vcore", "vcore", 8000), ("memory", "memory", 64 * 2**30)):
            quantities[key] = default
            if key in fields:
                try:
                    quantities[key] = parse_quantity(resource, fields[key].value)
                except QuantityError as exc:
                    self.error(fields[key].at, str(exc))
        cost = self.cost(fields["hourlycost"], "hourlycost") if "hourlycost" in fields else 0.0
        boot = self.seconds(fields["boottime"], "boottime") if "boottime" in fields else 60.0
        region = self.string(fields["region"], "region") if "region" in fields else "local"
        return InstanceType(
            name=name,
            gpu_type=gpu_type,
            gpus=gpus or 0,
            vcore=quantities["vcore"],
            memory=quantities["memory"],
            region=region or "local",
            hourly_cost=cost,
            boot_time=boot if boot is not None else 60.0,
        )

    # ---- sizes -------------------------------------------------------------------------------

    def sizes(self, f: _Field) -> dict[str, Size]:
        raw = f.value
        if not isinstance(raw, Mapping):
            self.error(f.at, f"sizes must be a map of size name: shapes, got {_kind(raw)}")
            return {}
        out: dict[str, Size] = {}
        for name, spec in raw.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                self.error(f.at, f"size name {name!r} must be a word (letters, digits, _ . -)")
                continue
            sat = f.at.key(name)
            description = ""
            shapes_field = _Field(spec, sat)
            if isinstance(spec, Mapping):
                fields = self.fields(spec, sat, _SIZE_KEYS, f"size {name}")
                if fields is None:
                    continue
                if "description" in fields and fields["description"].value is not None:
                    description = self.string(fields["description"], "description") or ""
                if "shapes" not in fields:
                    self.error(sat, f"size `{name}` has no shapes", "add shapes: [{resources: {gpu: 1}}]")
                    continue
                shapes_field = fields["shapes"]
            shapes = self.shapes(shapes_field, name)
            if shapes:
                out[name] = Size(name=name, shapes=tuple(shapes), description=description)
        return out

    def shapes(self, f: _Field, size: str) -> list[Shape]:
        if not isinstance(f.value, list) or not f.value:
            self.error(
                f.at,
                f"size `{size}` must list one or more shapes, got {_kind(f.value)}",
                "e.g. [{resources: {gpu: 1, vcore: 8, memory: 64Gi}, gpu_types: [H100]}]",
            )
            return []
        out: list[Shape] = []
        for i, raw in enumerate(f.value):
            at = f.at.index(i)
            fields = self.fields(raw, at, _SHAPE_KEYS, "a shape")
            if fields is None:
                continue
            if "resources" not in fields:
                self.error(
                    at, "the shape has no resources", "add resources: {gpu: 1, vcore: 8, memory: 64Gi}"
                )
                continue
            before = len(self.issues)
            res = self.resources(fields["resources"], "resources")
            if res is None or not any(res.values()):
                if len(self.issues) == before:
                    self.error(
                        fields["resources"].at, "the shape asks for nothing", "give at least one resource > 0"
                    )
                continue
            types: tuple[str, ...] = ()
            if "gpu_types" in fields:
                names = self.names(fields["gpu_types"], "gpu_types")
                if names is not None:
                    types = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
                    if types and not gpu_count(res):
                        self.error(
                            fields["gpu_types"].at,
                            "gpu_types is set but the shape asks for no GPU",
                            "add gpu: N to the resources, or drop gpu_types",
                        )
            out.append(Shape(resources=res, gpu_types=types))
        return out

    # ---- cross-queue validation ----------------------------------------------------------------

    def validate_tree(self, root: _Queue) -> None:
        self.check_resources(root, {})
        self.check_max_apps(root, None)
        self.check_templates(root, {}, None)
        self.check_queue_limits(root)
        self.check_limit_inheritance(root, {}, {})

    def check_resources(self, q: _Queue, parent_max: dict[str, tuple[int, str]]) -> Resources:
        """YuniKorn's checkQueueResource; returns the guaranteed this queue claims from its parent.

        ``parent_max`` is the effective max per type, with the queue path that sets it.
        """
        g = q.guaranteed or {}
        m = q.max or {}
        for t, v in g.items():
            if t in m and v > m[t]:
                self.error(
                    (q.guaranteed_at or q.at).key(t),
                    f"guaranteed {t} {_q(t, v)} is more than max {t} {_q(t, m[t])} in queue {q.qpath}",
                    f"lower guaranteed {t} to at most {_q(t, m[t])}, or raise max {t}",
                )
            if t.startswith(TYPED_GPU_PREFIX) and "gpu" in m and v > m["gpu"]:
                self.error(
                    (q.guaranteed_at or q.at).key(t),
                    f"guaranteed {t} {v} is more than max gpu {m['gpu']} in queue {q.qpath}",
                    f"{t} counts gpu on {t[len(TYPED_GPU_PREFIX) :]} nodes, so it can never exceed max gpu",
                )
            if t.startswith(TYPED_GPU_PREFIX) and "gpu" in g and v > g["gpu"]:
                self.error(
                    (q.guaranteed_at or q.at).key(t),
                    f"guaranteed {t} {v} is more than guaranteed gpu {g['gpu']} in queue {q.qpath}",
                    f"{t} is part of the queue's gpu: lower it to at most {g['gpu']}, "
                    "or raise guaranteed gpu",
                )
        for t, v in m.items():
            if t.startswith(TYPED_GPU_PREFIX) and "gpu" in m and v > m["gpu"]:
                self.error(
                    (q.max_at or q.at).key(t),
                    f"max {t} {v} is more than max gpu {m['gpu']} in queue {q.qpath}",
                    f"{t} is part of the queue's gpu: lower it to at most {m['gpu']}, or raise max gpu",
                )
        for t, v in m.items():
            if t in parent_max and v > parent_max[t][0]:
                limit, owner = parent_max[t]
                self.error(
                    (q.max_at or q.at).key(t),
                    f"max {t} {_q(t, v)} of queue {q.qpath} is more than max {t} {_q(t, limit)} of {owner}",
                    f"a queue can never use more than its parents allow: lower it to at most {_q(t, limit)}",
                )
        effective = dict(parent_max)
        for t, v in m.items():
            if t not in effective or v < effective[t][0]:
                effective[t] = (v, q.qpath)
        children_g: Resources = {}
        for child in q.children:
            for t, v in self.check_resources(child, effective).items():
                children_g[t] = children_g.get(t, 0) + v
        if children_g:
            where = q.guaranteed_at or q.max_at or q.at
            if any(g.values()):
                for t, v in sorted(children_g.items()):
                    if t in g and v > g[t]:
                        self.error(
                            (q.guaranteed_at or where).key(t),
                            f"the children of {q.qpath} are guaranteed {_q(t, v)} {t} in total, "
                            f"more than its own guaranteed {_q(t, g[t])}",
                            f"raise guaranteed {t} of {q.qpath} or lower its children's",
                        )
            for t, v in sorted(children_g.items()):
                if t in effective and v > effective[t][0]:
                    limit, owner = effective[t]
                    self.error(
                        (q.max_at or where).key(t) if t in m else where,
                        f"the children of {q.qpath} are guaranteed {_q(t, v)} {t} in total, "
                        f"more than max {t} {_q(t, limit)} of {owner}",
                        "guarantees must be reachable: lower the children's guaranteed or raise the max",
                    )
        return dict(g) if any(g.values()) else children_g

    def check_max_apps(self, q: _Queue, parent: tuple[int, str] | None) -> None:
        """YuniKorn's checkQueueMaxApplications: under a parent that sets maxapplications, each
        child sets it too, and not above the parent's (``parent``: the direct parent's)."""
        if parent is not None:
            if q.max_applications is None:
                self.error(
                    q.at,
                    f"queue {q.qpath} sets no maxapplications, but its parent {parent[1]} does "
                    f"({parent[0]}); YuniKorn requires it on every child of such a parent",
                    f"set maxapplications on {q.qpath} to at most {parent[0]}",
                )
            elif q.max_applications > parent[0]:
                self.error(
                    q.max_applications_at or q.at,
                    f"maxapplications {q.max_applications} of queue {q.qpath} is more than "
                    f"maxapplications {parent[0]} of {parent[1]}",
                    f"lower it to at most {parent[0]}",
                )
        mine = (q.max_applications, q.qpath) if q.max_applications is not None else None
        for child in q.children:
            self.check_max_apps(child, mine)

    def check_templates(
        self, q: _Queue, parent_max: dict[str, tuple[int, str]], apps: tuple[int, str] | None
    ) -> None:
        effective = dict(parent_max)
        for t, v in (q.max or {}).items():
            if t not in effective or v < effective[t][0]:
                effective[t] = (v, q.qpath)
        if q.max_applications is not None and (apps is None or q.max_applications < apps[0]):
            apps = (q.max_applications, q.qpath)
        tmpl = q.child_template
        if tmpl is not None and q.child_template_at is not None:
            at = q.child_template_at
            if not q.is_parent:
                self.error(
                    at,
                    f"queue {q.qpath} is a leaf queue, so its childtemplate would never be used",
                    "add `parent: true` to the queue, or remove the childtemplate",
                )
            for t, v in (tmpl.max or {}).items():
                if t in effective and v > effective[t][0]:
                    self.error(
                        at.key("resources").key("max").key(t),
                        f"the template's max {t} {_q(t, v)} is more than max {t} "
                        f"{_q(t, effective[t][0])} of {effective[t][1]}",
                        f"lower it to at most {_q(t, effective[t][0])}",
                    )
            if tmpl.max_applications is not None and apps is not None and tmpl.max_applications > apps[0]:
                self.error(
                    at.key("maxapplications"),
                    f"the template's maxapplications {tmpl.max_applications} is more than "
                    f"maxapplications {apps[0]} of {apps[1]}",
                    f"lower it to at most {apps[0]}",
                )
        for child in q.children:
            self.check_templates(child, effective, apps)

    def check_queue_limits(self, q: _Queue) -> None:
        """Each limit fits its own queue: maxapplications and (except on root) max resources."""
        for entry in q.limits:
            lim = entry.limit
            if (
                lim.max_applications is not None
                and q.max_applications is not None
                and lim.max_applications > q.max_applications
            ):
                self.error(
                    entry.at.key("maxapplications"),
                    f"limit maxapplications {lim.max_applications} is more than maxapplications "
                    f"{q.max_applications} of queue {q.qpath}",
                    f"lower it to at most {q.max_applications}",
                )
            if q.qpath != ROOT and lim.max_resources and q.max:
                for t, v in lim.max_resources.items():
                    if t in q.max and v > q.max[t]:
                        self.error(
                            entry.at.key("maxresources").key(t),
                            f"limit maxresources {t} {_q(t, v)} is more than max {t} {_q(t, q.max[t])} "
                            f"of queue {q.qpath}",
                            f"lower it to at most {_q(t, q.max[t])}",
                        )
        for child in q.children:
            self.check_queue_limits(child)

    def check_limit_inheritance(
        self,
        q: _Queue,
        users: dict[str, tuple[Limit, str]],
        groups: dict[str, tuple[Limit, str]],
    ) -> None:
        """A user's (group's) limit on a queue may not exceed the same user's limit on an ancestor."""
        users, groups = dict(users), dict(groups)
        for entry in q.limits:
            lim = entry.limit
            for key, table in (("users", users), ("groups", groups)):
                for name in getattr(lim, key):
                    if name in table:
                        self.compare_limits(entry, name, key[:-1], table[name], q.qpath)
                    elif WILDCARD in table:
                        # YuniKorn: a name without a limit above is held to the ancestors' wildcard limit
                        up, owner = table[WILDCARD]
                        self.compare_limits(
                            entry, name, key[:-1], (up, f"{owner} (its wildcard limit)"), q.qpath
                        )
        for entry in q.limits:
            lim = entry.limit
            for key, table in (("users", users), ("groups", groups)):
                for name in getattr(lim, key):
                    table[name] = (_tighter(lim, table.get(name)), q.qpath)
        for child in q.children:
            self.check_limit_inheritance(child, users, groups)

    def compare_limits(
        self, entry: _Limit, name: str, what: str, ancestor: tuple[Limit, str], qpath: str
    ) -> None:
        lim, (up, owner) = entry.limit, ancestor
        label = "the wildcard " + what if name == WILDCARD else f"{what} `{name}`"
        apps, up_apps = lim.max_applications, up.max_applications
        if apps is not None and up_apps is not None and apps > up_apps:
            self.error(
                entry.at.key("maxapplications"),
                f"{label} may run {apps} applications in {qpath} but only {up_apps} in its ancestor {owner}",
                f"lower it to at most {up_apps}",
            )
        if lim.max_resources and up.max_resources:
            for t, v in lim.max_resources.items():
                if t in up.max_resources and v > up.max_resources[t]:
                    self.error(
                        entry.at.key("maxresources").key(t),
                        f"{label} is limited to {_q(t, v)} {t} in {qpath} but to "
                        f"{_q(t, up.max_resources[t])} in its ancestor {owner}",
                        f"lower it to at most {_q(t, up.max_resources[t])}",
                    )


# --------------------------------------------------------------------------------------------
# Helpers

_SPECIAL = re.compile(r"[\^$*+?()\[{}|]")


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _walk_placement(parts: list[str], create: bool, dynamic: bool, root: _Queue) -> tuple[str, str] | None:
    """YuniKorn's checkQueueHierarchyForPlacement below root; returns (problem, queue) or None."""
    node = root
    for i, part in enumerate(parts):
        if not node.children:
            if not node.is_parent:
                return ("leaf-below", node.qpath)
            return None if create else ("missing", node.qpath)
        found = next((c for c in node.children if c.name == part), None)
        if found is None:
            return None if create else ("missing", node.qpath)
        node = found
        if i == len(parts) - 1:
            if dynamic:
                return None if node.is_parent else ("leaf-parent", node.qpath)
            return ("parent-target", node.qpath) if node.is_parent else None
    if not parts:  # the rule points at root itself
        return None if dynamic else ("parent-target", ROOT)
    return None


def _tighter(lim: Limit, other: tuple[Limit, str] | None) -> Limit:
    if other is None:
        return lim
    up = other[0]
    apps = lim.max_applications
    if up.max_applications is not None:
        apps = up.max_applications if apps is None else min(apps, up.max_applications)
    res: Resources | None = dict(up.max_resources or {}) or None
    if lim.max_resources:
        res = dict(res or {})
        for t, v in lim.max_resources.items():
            res[t] = min(v, res.get(t, v))
    return Limit(max_resources=res, max_applications=apps)


def _name_of(raw: Mapping[object, object]) -> str:
    for k, v in raw.items():
        if isinstance(k, str) and k.lower() == "name":
            if isinstance(v, str):
                return v.strip()
            if isinstance(v, int | float) and not isinstance(v, bool):
                return str(v)
    return ""


def _or_empty(value: object) -> object:
    return {} if value is None else value


def _default(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
