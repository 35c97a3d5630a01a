"""Builders and the case type of the translated yunikorn-core config-validator tests.

See ``test_yunikorn_configcheck.py`` for where the cases come from and how they were adjusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VT = "configvalidator_test.go"

# ---- builders -------------------------------------------------------------------------------


def q(name: str, *children: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """One queue: ``q("a", q("b"), resources={...})``."""
    out: dict[str, Any] = {"name": name, **keys}
    if children:
        out["queues"] = list(children)
    return out


def conf(*queues: dict[str, Any], root: dict[str, Any] | None = None, **partition: Any) -> dict[str, Any]:
    """A one-partition configuration: ``root`` (open to everyone) with the given children."""
    root_q: dict[str, Any] = {"name": "root", "submitacl": "*", **(root or {})}
    if queues:
        root_q["queues"] = list(queues)
    return {"partitions": [{"name": "default", "queues": [root_q], **partition}]}


def res(**kv: str) -> dict[str, str]:
    return dict(kv)


def user_limits(
    users: dict[str, Any], groups: dict[str, Any] | None = None, *, apps: bool = False
) -> list[Any]:
    """``createLimitMaxResources`` / ``createLimitMaxApplications``: one limit per user, then per group.

    A wildcard entry goes after the named ones (see the module docstring).
    """
    key = "maxapplications" if apps else "maxresources"
    out: list[dict[str, Any]] = []
    for kind, entries, label in (("users", users, "user-limit"), ("groups", groups or {}, "group-limit")):
        for who in sorted(entries, key=lambda n: n == "*"):
            out.append({"limit": label, kind: [who], key: entries[who]})
    return out


def app_limits(users: dict[str, int], groups: dict[str, int] | None = None) -> list[Any]:
    return user_limits(users, groups, apps=True)


# YuniKorn's resource maps used by TestCheckResourceConfigurationsForQueue
NEGATIVE = res(memory="-50", vcores="33")
SYNTAX_ERROR = res(memory="ten", vcores="")
HIGHER = res(memory="50", vcores="33")
UNDEF_VCORES = res(memory="20")
LOWER = res(memory="10", vcores="30")


def resources(guaranteed: dict[str, str] | None = None, max: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if guaranteed is not None:
        out["guaranteed"] = guaranteed
    if max is not None:
        out["max"] = max
    return {"resources": out}


# createQueueConfig / createPlacementRules of TestCheckPlacementRules
def placement_tree(users_is_parent: bool = True) -> list[dict[str, Any]]:
    users = q("users", parent=True) if users_is_parent else q("users")
    return [
        users,
        q("devs", q("yunikorn", parent=True), parent=True),
        q("default"),
        q("admins", parent=True),
    ]


def placement_rules() -> list[dict[str, Any]]:
    return [
        {
            "name": "user",
            "parent": {
                "name": "tag",
                "value": "namespace",
                "parent": {"name": "fixed", "value": "root.users"},
            },
        },
        {"name": "fixed", "value": "dev", "create": True, "parent": {"name": "fixed", "value": "admins"}},
    ]


def with_rules(rules: list[dict[str, Any]], users_is_parent: bool = True) -> dict[str, Any]:
    return conf(*placement_tree(users_is_parent), placementrules=rules)


def filter_rule(users: list[str], groups: list[str]) -> dict[str, Any]:
    rule = {
        "name": "fixed",
        "value": "root.default",
        "filter": {"type": "allow", "users": users, "groups": groups},
    }
    return conf(*placement_tree(), placementrules=[rule])


# ---- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    go: str  # Go test function
    sub: str  # its sub-case (t.Run name or comment)
    raw: dict[str, Any]
    refused: bool
    where: str = ""  # refused: a fragment the error must contain (the queue or rule at fault)
    marks: list[Any] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.go}/{self.sub}"


def ok(go: str, sub: str, raw: dict[str, Any]) -> Case:
    return Case(go, sub, raw, refused=False)


def bad(go: str, sub: str, raw: dict[str, Any], where: str) -> Case:
    return Case(go, sub, raw, refused=True, where=where)


def max_apps_tree(r: int, p: int, p1: int, c: int) -> dict[str, Any]:
    """createQueueWithMaxApplication([root, parent, parent1, child1])."""

    def m(n: int) -> dict[str, Any]:
        return {"maxapplications": n} if n else {}

    child = q("child1", **resources(guaranteed=res(memory="50")), **m(c))
    parent1 = q("parent1", child, **m(p1))
    parent = q("parent", parent1, **resources(guaranteed=res(memory="100")), **m(p))
    return conf(parent, root=m(r))
