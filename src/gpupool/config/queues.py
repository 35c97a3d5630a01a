"""Reading the queues of ``queues.yaml``: partitions, the queue tree, properties, ACLs, limits, rules.

``QueueReader`` reads each key as YuniKorn does (``pkg/common/configs/config.go``, the
``queue_config``, ``acls`` and ``placement_rules`` docs): a missing ``root`` queue is inserted, the
top-level queues becoming its children, and root may not have resources; queue names are at most
64 of ``[a-zA-Z0-9_:#/@-]``, no dots, unique among siblings ignoring case, and lower-cased
(``root.Team`` is ``root.team``); ``partitions[].limits`` are the root queue's limits. What needs
more than one key (quotas against their parents, limits against their ancestors, rule paths
against the tree) is checked by ``gpupool.core.configcheck``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from gpupool.config.reader import Reader
from gpupool.config.schema import (
    FilterKeys,
    LimitKeys,
    NodeSortKeys,
    PartitionKeys,
    PreemptionKeys,
    QueueKeys,
    RawField,
    ResourcesKeys,
    RuleKeys,
    TemplateKeys,
)
from gpupool.core.acl import ACL, GROUP_NAME, USER_NAME, WILDCARD, ACLError
from gpupool.core.config import (
    DEFAULT_NODE_SORT_POLICY,
    DEFAULT_PARTITION,
    NODE_SORT_POLICIES,
    ChildTemplate,
    Filter,
    Limit,
    NodeSortPolicy,
    PartitionConfig,
    PlacementRule,
    PropertyError,
    check_property,
)
from gpupool.core.configcheck import (
    QUEUE_NAME,
    RECOVERY_QUEUE,
    ROOT,
    LimitDraft,
    QueueDraft,
    check_limit_list,
    check_rule_paths,
    check_tree,
)
from gpupool.core.configerror import At
from gpupool.core.configerror import kind as _kind
from gpupool.core.resources import format_quantity

__all__ = ["DEFAULT_PARTITION", "MINIMAL_CONFIG", "RULE_NAMES", "QueueReader"]

RULE_NAMES = ("provided", "user", "fixed", "tag")
MINIMAL_CONFIG = "partitions: [{name: default, queues: [{name: root, submitacl: '*'}]}]"


class QueueReader(Reader):
    """Reads the ``partitions`` of a configuration into ``PartitionConfig`` (see the module doc)."""

    def partitions(self, f: RawField) -> list[PartitionConfig]:
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

    def partition(self, raw: object, at: At) -> PartitionConfig | None:
        fields = self.fields(raw, at, PartitionKeys, "a partition")
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
                _or_empty(fields["preemption"].value), fields["preemption"].at, PreemptionKeys, "preemption"
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
        rule_ats: list[At] = []
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

        partition_limits: list[LimitDraft] | None = None
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

        self.issues.extend(check_tree(root))
        for rule, rat in zip(rules, rule_ats, strict=True):
            self.issues.extend(check_rule_paths(rule, rat, root))

        return PartitionConfig(
            name=name,
            root=root.freeze(),
            placement_rules=tuple(rules),
            limits=tuple(x.limit for x in root.limits),
            node_sort_policy=node_sort,
            preemption_enabled=preemption_enabled,
            quota_preemption_enabled=quota_preemption,
        )

    def node_sort_policy(self, f: RawField) -> NodeSortPolicy:
        raw = f.value
        if raw is None:
            return NodeSortPolicy()
        if isinstance(raw, str):  # the docs show `nodesortpolicy: fair` as a shorthand
            raw = {"type": raw}
        fields = self.fields(raw, f.at, NodeSortKeys, "nodesortpolicy")
        if fields is None:
            return NodeSortPolicy()
        kind = DEFAULT_NODE_SORT_POLICY
        if "type" in fields:
            t = self.string(fields["type"], "nodesortpolicy.type")
            if t is not None:
                t = t.strip().lower() or DEFAULT_NODE_SORT_POLICY
                if t not in NODE_SORT_POLICIES:
                    self.error(
                        fields["type"].at,
                        f"unknown nodesortpolicy.type `{t}`",
                        "use one of " + ", ".join(f"`{p}`" for p in NODE_SORT_POLICIES),
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

    # ---- queues

    def root(self, f: RawField, pat: At) -> QueueDraft | None:
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
            root = QueueDraft(name=ROOT, qpath=ROOT, at=At(f"{base.path}.root", f.at.loc))
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

    def children(
        self, raw: list[object], parent: QueueDraft, list_loc: tuple[str | int, ...]
    ) -> list[QueueDraft]:
        out: list[QueueDraft] = []
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
        self, raw: object, base: At, loc: tuple[str | int, ...], parent: QueueDraft | None
    ) -> QueueDraft | None:
        index_at = At(f"{base.path}[{loc[-1]}]", loc)
        if not isinstance(raw, Mapping):
            self.error(index_at, f"a queue must be a mapping with at least a name, got {_kind(raw)}")
            return None
        name = _name_of(raw)
        if not name:
            self.error(index_at, "the queue has no name", "add `name: <queue name>`")
            self.fields(raw, index_at, QueueKeys, "a queue")
            return None
        qpath = f"{parent.qpath}.{name.lower()}" if parent else name.lower()
        at = At(f"{parent.at.path}.{name.lower()}" if parent else f"{base.path}.{name.lower()}", loc)
        fields = self.fields(raw, at, QueueKeys, f"queue {qpath}")
        if fields is None:
            return None
        name_ok = self.check_queue_name(name, fields["name"].at, parent)
        q = QueueDraft(name=name.lower(), qpath=qpath, at=at)

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
                _or_empty(fields["resources"].value), fields["resources"].at, ResourcesKeys, "resources"
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
            q.properties_at = fields["properties"].at
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

    def check_queue_name(self, name: str, at: At, parent: QueueDraft | None) -> bool:
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

    def acl(self, f: RawField, what: str) -> str | None:
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

    def properties(self, f: RawField) -> dict[str, str]:
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

    def property_value(self, key: str, text: str, at: At) -> str | None:
        """The normalised text of a property; the core's ``check_property`` says what is valid."""
        try:
            return check_property(key, text)[0]
        except PropertyError as exc:
            self.error(at, exc.message, exc.hint)
            return None

    def child_template(self, f: RawField) -> ChildTemplate | None:
        fields = self.fields(_or_empty(f.value), f.at, TemplateKeys, "childtemplate")
        if fields is None:
            return None
        max_apps = None
        if "maxapplications" in fields:
            max_apps = self.count(fields["maxapplications"], "childtemplate.maxapplications")
        props = self.properties(fields["properties"]) if "properties" in fields else {}
        guaranteed = maximum = None
        if "resources" in fields:
            rf = self.fields(
                _or_empty(fields["resources"].value), fields["resources"].at, ResourcesKeys, "resources"
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

    # ---- limits

    def limits(self, f: RawField) -> list[LimitDraft]:
        raw = f.value
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(f.at, f"limits must be a list of limit entries, got {_kind(raw)}")
            return []
        out: list[LimitDraft] = []
        for i, item in enumerate(raw):
            lim = self.limit(item, f.at.index(i))
            if lim is not None:
                out.append(LimitDraft(lim, f.at.index(i)))
        self.issues.extend(check_limit_list(out))
        return out

    def limit(self, raw: object, at: At) -> Limit | None:
        fields = self.fields(raw, at, LimitKeys, "a limit")
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

    # ---- placement rules

    def rule(self, raw: object, at: At) -> PlacementRule | None:
        fields = self.fields(raw, at, RuleKeys, "a placement rule")
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
                fields.get("value", RawField(None, at)).at,
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

    def filter(self, f: RawField) -> Filter | None:
        fields = self.fields(f.value, f.at, FilterKeys, "a rule filter")
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


def _q(name: str, value: int) -> str:
    return format_quantity(name, value)


_SPECIAL = re.compile(r"[\^$*+?()\[{}|]")


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


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
