"""YuniKorn's cross-checks of a queue configuration, as plain functions (``configvalidator.go``).

The edge (``gpupool.config``) reads the keys of ``queues.yaml`` into drafts of the queue tree
(``QueueDraft``, each with where it came from); the functions here check what needs more than one
key, and return the issues they find, in the order YuniKorn would:

* ``check_tree``: guaranteed <= max; a child's max <= its parent's (effective) max; the children's
  guaranteed add up to no more than the parent's guaranteed and max; maxapplications of children
  and templates; limits fit their queue and the same user's (group's) limits above;
* ``check_limit_list``: no name twice in one limits list, the wildcard last, a wildcard group needs
  a named group;
* ``check_rule_paths``: the fixed part of a placement rule chain fits the configured queues.

Pure: standard library and ``gpupool.core`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gpupool.core.acl import WILDCARD
from gpupool.core.config import (
    ChildTemplate,
    Limit,
    PlacementRule,
    QueueConfig,
    SessionLimits,
    inherit_session_limits,
    session_limit_issues,
    typed_properties,
)
from gpupool.core.configerror import At, ConfigIssue
from gpupool.core.resources import TYPED_GPU_PREFIX, Resources, format_quantity

__all__ = [
    "QUEUE_NAME",
    "RECOVERY_QUEUE",
    "ROOT",
    "LimitDraft",
    "QueueDraft",
    "check_limit_list",
    "check_rule_paths",
    "check_tree",
]

ROOT = "root"
RECOVERY_QUEUE = "@recovery@"
QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_:#/@-]{1,64}$")


@dataclass
class LimitDraft:
    """A limit entry and where it was written."""

    limit: Limit
    at: At


@dataclass
class QueueDraft:
    """A queue while it is being validated; frozen into QueueConfig at the end."""

    name: str
    qpath: str
    at: At
    parent_flag: bool = False
    guaranteed: Resources | None = None
    max: Resources | None = None
    guaranteed_at: At | None = None
    max_at: At | None = None
    properties: dict[str, str] = field(default_factory=dict)
    properties_at: At | None = None
    submit_acl: str | None = None
    admin_acl: str | None = None
    max_applications: int | None = None
    max_applications_at: At | None = None
    limits: list[LimitDraft] = field(default_factory=list)
    limits_at: At | None = None
    child_template: ChildTemplate | None = None
    child_template_at: At | None = None
    children: list[QueueDraft] = field(default_factory=list)

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


def check_tree(root: QueueDraft) -> list[ConfigIssue]:
    """Every cross-queue issue of a partition's queue tree."""
    out: list[ConfigIssue] = []
    _validate_tree(out, root)
    return out


def check_limit_list(limits: list[LimitDraft]) -> list[ConfigIssue]:
    """The issues of one ``limits`` list (see ``_check_limit_list``)."""
    out: list[ConfigIssue] = []
    _check_limit_list(out, limits)
    return out


def check_rule_paths(rule: PlacementRule, at: At, root: QueueDraft) -> list[ConfigIssue]:
    """The issues of one placement rule chain against the configured queues."""
    out: list[ConfigIssue] = []
    _check_rule_paths(out, rule, at, root)
    return out


def _err(out: list[ConfigIssue], at: At, message: str, hint: str = "") -> None:
    out.append(at.issue(message, hint))


def _q(name: str, value: int) -> str:
    return format_quantity(name, value)


def _check_limit_list(out: list[ConfigIssue], limits: list[LimitDraft]) -> None:
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
                    _err(
                        out,
                        entry.at.key(key).index(j),
                        f"{what} `{name}` already has a limit in this list ({where})",
                        "list each name once",
                    )
                seen.setdefault(name, i)
                if name == WILDCARD:
                    wildcard = True
                elif wildcard:
                    _err(
                        out,
                        entry.at.key(key).index(j),
                        f"named {what} `{name}` comes after the wildcard {what} limit",
                        f"move the `*` {what} to the end of the list",
                    )
        if key == "groups" and WILDCARD in seen and len(seen) == 1:
            entry = limits[seen[WILDCARD]]
            _err(
                out,
                entry.at.key("groups"),
                "a wildcard group limit needs at least one limit for a named group",
                'a lone groups: ["*"] limit would equal the queue limit; add a named group limit, '
                'or use users: ["*"] for a per-user default',
            )


def _check_rule_paths(out: list[ConfigIssue], rule: PlacementRule, at: At, root: QueueDraft) -> None:
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
                _err(
                    out,
                    at,
                    f"rule chain {names}: only the first `fixed` rule may give a full path, got `{r.value}`",
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
        _err(
            out,
            at,
            f"placement rule ({names}) places applications in `{static}`, which is a parent queue; "
            "applications run only in leaf queues",
            "point the rule at a leaf queue, or make it the `parent` of a user, tag or provided rule",
        )
    elif kind == "leaf-parent":
        _err(
            out,
            at,
            f"placement rule ({names}) creates queues under `{static}`, which is a leaf queue",
            f"mark `{static}` with `parent: true`",
        )
    elif kind == "missing":
        _err(
            out,
            at,
            f"placement rule ({names}) refers to `{static}`, which is not configured, and create is false",
            "add the queue to the configuration, or set `create: true` on the rule",
        )
    else:
        _err(
            out,
            at,
            f"placement rule ({names}) needs `{static}` created under `{where}`, which is a leaf queue",
            f"mark `{where}` with `parent: true`",
        )


def _validate_tree(out: list[ConfigIssue], root: QueueDraft) -> None:
    _check_resources(out, root, {})
    _check_max_apps(out, root, None)
    _check_templates(out, root, {}, None)
    _check_queue_limits(out, root)
    _check_limit_inheritance(out, root, {}, {})
    _check_sessions(out, root, None)


def _check_sessions(out: list[ConfigIssue], q: QueueDraft, up: SessionLimits | None) -> None:
    """The ``session.*`` properties as ``q`` (and a queue made from its child template) inherits
    them: each default at most its maximum, the warning shorter than what it warns of."""
    own = typed_properties(q.properties, f"queue {q.qpath}")  # values already checked by the reader
    limits = inherit_session_limits(up, own)
    for key, message, hint in session_limit_issues(limits, own):
        _err(out, (q.properties_at or q.at).key(key), message, hint)
    template = q.child_template
    if template is not None:
        made = inherit_session_limits(limits, template.settings)
        for key, message, hint in session_limit_issues(made, template.settings):
            where = (q.child_template_at or q.at).key("properties").key(key)
            _err(out, where, message, hint)
    for child in q.children:
        _check_sessions(out, child, limits)


def _check_resources(
    out: list[ConfigIssue], q: QueueDraft, parent_max: dict[str, tuple[int, str]]
) -> Resources:
    """YuniKorn's checkQueueResource; returns the guaranteed this queue claims from its parent.

    ``parent_max`` is the effective max per type, with the queue path that sets it.
    """
    g = q.guaranteed or {}
    m = q.max or {}
    for t, v in g.items():
        if t in m and v > m[t]:
            _err(
                out,
                (q.guaranteed_at or q.at).key(t),
                f"guaranteed {t} {_q(t, v)} is more than max {t} {_q(t, m[t])} in queue {q.qpath}",
                f"lower guaranteed {t} to at most {_q(t, m[t])}, or raise max {t}",
            )
        if t.startswith(TYPED_GPU_PREFIX) and "gpu" in m and v > m["gpu"]:
            _err(
                out,
                (q.guaranteed_at or q.at).key(t),
                f"guaranteed {t} {_q(t, v)} is more than max gpu {_q('gpu', m['gpu'])} in queue {q.qpath}",
                f"{t} counts gpu on {t[len(TYPED_GPU_PREFIX) :]} nodes, so it can never exceed max gpu",
            )
        if t.startswith(TYPED_GPU_PREFIX) and "gpu" in g and v > g["gpu"]:
            _err(
                out,
                (q.guaranteed_at or q.at).key(t),
                f"guaranteed {t} {_q(t, v)} is more than guaranteed gpu {_q('gpu', g['gpu'])} "
                f"in queue {q.qpath}",
                f"{t} is part of the queue's gpu: lower it to at most {_q('gpu', g['gpu'])}, "
                "or raise guaranteed gpu",
            )
    for t, v in m.items():
        if t.startswith(TYPED_GPU_PREFIX) and "gpu" in m and v > m["gpu"]:
            _err(
                out,
                (q.max_at or q.at).key(t),
                f"max {t} {_q(t, v)} is more than max gpu {_q('gpu', m['gpu'])} in queue {q.qpath}",
                f"{t} is part of the queue's gpu: lower it to at most {_q('gpu', m['gpu'])}, "
                "or raise max gpu",
            )
    for t, v in m.items():
        if t in parent_max and v > parent_max[t][0]:
            limit, owner = parent_max[t]
            _err(
                out,
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
        for t, v in _check_resources(out, child, effective).items():
            children_g[t] = children_g.get(t, 0) + v
    if children_g:
        where = q.guaranteed_at or q.max_at or q.at
        if any(g.values()):
            for t, v in sorted(children_g.items()):
                if t in g and v > g[t]:
                    _err(
                        out,
                        (q.guaranteed_at or where).key(t),
                        f"the children of {q.qpath} are guaranteed {_q(t, v)} {t} in total, "
                        f"more than its own guaranteed {_q(t, g[t])}",
                        f"raise guaranteed {t} of {q.qpath} or lower its children's",
                    )
        for t, v in sorted(children_g.items()):
            if t in effective and v > effective[t][0]:
                limit, owner = effective[t]
                _err(
                    out,
                    (q.max_at or where).key(t) if t in m else where,
                    f"the children of {q.qpath} are guaranteed {_q(t, v)} {t} in total, "
                    f"more than max {t} {_q(t, limit)} of {owner}",
                    "guarantees must be reachable: lower the children's guaranteed or raise the max",
                )
    return dict(g) if any(g.values()) else children_g


def _check_max_apps(out: list[ConfigIssue], q: QueueDraft, parent: tuple[int, str] | None) -> None:
    """YuniKorn's checkQueueMaxApplications: under a parent that sets maxapplications, each
    child sets it too, and not above the parent's (``parent``: the direct parent's)."""
    if parent is not None:
        if q.max_applications is None:
            _err(
                out,
                q.at,
                f"queue {q.qpath} sets no maxapplications, but its parent {parent[1]} does "
                f"({parent[0]}); YuniKorn requires it on every child of such a parent",
                f"set maxapplications on {q.qpath} to at most {parent[0]}",
            )
        elif q.max_applications > parent[0]:
            _err(
                out,
                q.max_applications_at or q.at,
                f"maxapplications {q.max_applications} of queue {q.qpath} is more than "
                f"maxapplications {parent[0]} of {parent[1]}",
                f"lower it to at most {parent[0]}",
            )
    mine = (q.max_applications, q.qpath) if q.max_applications is not None else None
    for child in q.children:
        _check_max_apps(out, child, mine)


def _check_templates(
    out: list[ConfigIssue],
    q: QueueDraft,
    parent_max: dict[str, tuple[int, str]],
    apps: tuple[int, str] | None,
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
            _err(
                out,
                at,
                f"queue {q.qpath} is a leaf queue, so its childtemplate would never be used",
                "add `parent: true` to the queue, or remove the childtemplate",
            )
        for t, v in (tmpl.max or {}).items():
            if t in effective and v > effective[t][0]:
                _err(
                    out,
                    at.key("resources").key("max").key(t),
                    f"the template's max {t} {_q(t, v)} is more than max {t} "
                    f"{_q(t, effective[t][0])} of {effective[t][1]}",
                    f"lower it to at most {_q(t, effective[t][0])}",
                )
        if tmpl.max_applications is not None and apps is not None and tmpl.max_applications > apps[0]:
            _err(
                out,
                at.key("maxapplications"),
                f"the template's maxapplications {tmpl.max_applications} is more than "
                f"maxapplications {apps[0]} of {apps[1]}",
                f"lower it to at most {apps[0]}",
            )
    for child in q.children:
        _check_templates(out, child, effective, apps)


def _check_queue_limits(out: list[ConfigIssue], q: QueueDraft) -> None:
    """Each limit fits its own queue: maxapplications and (except on root) max resources."""
    for entry in q.limits:
        lim = entry.limit
        if (
            lim.max_applications is not None
            and q.max_applications is not None
            and lim.max_applications > q.max_applications
        ):
            _err(
                out,
                entry.at.key("maxapplications"),
                f"limit maxapplications {lim.max_applications} is more than maxapplications "
                f"{q.max_applications} of queue {q.qpath}",
                f"lower it to at most {q.max_applications}",
            )
        if q.qpath != ROOT and lim.max_resources and q.max:
            for t, v in lim.max_resources.items():
                if t in q.max and v > q.max[t]:
                    _err(
                        out,
                        entry.at.key("maxresources").key(t),
                        f"limit maxresources {t} {_q(t, v)} is more than max {t} {_q(t, q.max[t])} "
                        f"of queue {q.qpath}",
                        f"lower it to at most {_q(t, q.max[t])}",
                    )
    for child in q.children:
        _check_queue_limits(out, child)


def _check_limit_inheritance(
    out: list[ConfigIssue],
    q: QueueDraft,
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
                    _compare_limits(out, entry, name, key[:-1], table[name], q.qpath)
                elif WILDCARD in table:
                    # YuniKorn: a name without a limit above is held to the ancestors' wildcard limit
                    up, owner = table[WILDCARD]
                    _compare_limits(
                        out, entry, name, key[:-1], (up, f"{owner} (its wildcard limit)"), q.qpath
                    )
    for entry in q.limits:
        lim = entry.limit
        for key, table in (("users", users), ("groups", groups)):
            for name in getattr(lim, key):
                table[name] = (_tighter(lim, table.get(name)), q.qpath)
    for child in q.children:
        _check_limit_inheritance(out, child, users, groups)


def _compare_limits(
    out: list[ConfigIssue], entry: LimitDraft, name: str, what: str, ancestor: tuple[Limit, str], qpath: str
) -> None:
    lim, (up, owner) = entry.limit, ancestor
    label = "the wildcard " + what if name == WILDCARD else f"{what} `{name}`"
    apps, up_apps = lim.max_applications, up.max_applications
    if apps is not None and up_apps is not None and apps > up_apps:
        _err(
            out,
            entry.at.key("maxapplications"),
            f"{label} may run {apps} applications in {qpath} but only {up_apps} in its ancestor {owner}",
            f"lower it to at most {up_apps}",
        )
    if lim.max_resources and up.max_resources:
        for t, v in lim.max_resources.items():
            if t in up.max_resources and v > up.max_resources[t]:
                _err(
                    out,
                    entry.at.key("maxresources").key(t),
                    f"{label} is limited to {_q(t, v)} {t} in {qpath} but to "
                    f"{_q(t, up.max_resources[t])} in its ancestor {owner}",
                    f"lower it to at most {_q(t, up.max_resources[t])}",
                )


def _walk_placement(
    parts: list[str], create: bool, dynamic: bool, root: QueueDraft
) -> tuple[str, str] | None:
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
