"""yunikorn-core's own config-validator tests, translated into ``gpupool config check`` verdicts.

Source: apache/yunikorn-core ``pkg/common/configs/configvalidator_test.go``, and the sub-cases of
``pkg/scheduler/placement/*_rule_test.go`` whose rule chain YuniKorn refuses when it loads the
configuration (the rest of those tests are the ``yk-place-*`` scenarios). Every case below names
its Go test and sub-case. Each builds a complete ``queues.yaml`` and runs it through
``load_config_text`` (the function behind ``gpupool config check``; a sample of cases also goes
through the CLI itself) and asserts the verdict: accepted, or refused with a clear one-line error
that names the queue (or rule) at fault.

Adjustments, so that YuniKorn's full validator (``Validate``) would give the same verdict as the
single check function the Go test calls:

* The Go tests hand a bare ``QueueConfig`` (often named ``parent`` or unnamed) to one check
  function. Here that queue sits under ``root`` (YuniKorn forbids resources on ``root``); unnamed
  queues get the names ``parent``, ``child1``, ``child2``.
* ``createLimitMaxResources`` / ``createLimitMaxApplications`` build the limits from a Go map, in
  random order; here a wildcard entry always comes after the named ones (YuniKorn's ``checkLimits``
  refuses a named user or group after the wildcard, and a group wildcard as the first group limit).
* ``createQueueWithSumGuaranteedHigherThanParentMax`` names both children ``child1``; the second is
  ``child2`` here (``checkQueues`` refuses duplicate names).
* ``TestCheckPlacementRule``'s "valid rule name start with underscore" (``_fixed``) passes
  ``checkPlacementRule`` (an identifier), but YuniKorn's placement manager then refuses the unknown
  rule when it builds the partition, so the configuration as a whole is refused; so does gpupool.
* ``TestCheckQueueHierarchyForPlacement`` calls the path walker directly; here each case is a
  placement rule over the same queue tree (``createQueueConfig``), with ``users`` a leaf where the
  Go case sets ``Parent = false``.
* ``TestCheckLimitsStructure``'s "top queue is not root" errs in ``checkLimitsStructure`` alone, but
  ``Validate`` first inserts a ``root`` above a top queue that is not ``root``, so YuniKorn accepts
  the configuration; so must gpupool.
* ``TestCheckLimits`` cases with no ``maxapplications`` on the queue are given none; cases that
  set both a queue ``maxapplications`` and the Go test's ``MaxApplications: 0`` on a limit write
  the limit without ``maxapplications`` (YuniKorn's zero value means "not set").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.config import ConfigError
from gpupool.configfile import load_config_text

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


R = "TestCheckResourceConfigurationsForQueue"
RESOURCE_CASES = [
    bad(
        R, "Negative guaranteed resource", conf(q("parent", **resources(guaranteed=NEGATIVE))), "root.parent"
    ),
    bad(R, "Negative max resource", conf(q("parent", **resources(max=NEGATIVE))), "root.parent"),
    ok(R, "Nil guaranteed resource", conf(q("parent", **resources(max=LOWER)))),
    ok(R, "Nil max resource", conf(q("parent", **resources(guaranteed=LOWER)))),
    bad(
        R,
        "Syntax error in guaranteed resource",
        conf(q("parent", **resources(guaranteed=SYNTAX_ERROR))),
        "root.parent",
    ),
    bad(R, "Syntax error in max resource", conf(q("parent", **resources(max=SYNTAX_ERROR))), "root.parent"),
    bad(
        R,
        "Higher guaranteed resource in child queues",
        conf(q("parent", q("child1", **resources(guaranteed=HIGHER)), **resources(guaranteed=LOWER))),
        "root.parent",
    ),
    bad(
        R,
        "Higher sum of guaranteed resource in child queues than the parent's guaranteed",
        conf(
            q(
                "parent",
                q("child1", **resources(guaranteed=LOWER, max=LOWER)),
                q("child2", **resources(guaranteed=LOWER, max=LOWER)),
                **resources(guaranteed=LOWER, max=HIGHER),
            )
        ),
        "root.parent",
    ),
    bad(
        R,
        "Higher sum of guaranteed resource in child queues than the parent's Max when guaranteed is "
        "undefined",
        conf(
            q(
                "parent",
                q("child1", **resources(guaranteed=LOWER, max=LOWER)),
                q("child2", **resources(guaranteed=LOWER, max=LOWER)),
                **resources(guaranteed=UNDEF_VCORES, max=HIGHER),
            )
        ),
        "root.parent",
    ),
    bad(
        R,
        "Higher max resource in child queues",
        conf(q("parent", q("child1", **resources(max=HIGHER)), **resources(max=LOWER))),
        "root.parent.child1",
    ),
    bad(
        R,
        "Higher guaranteed than max resource",
        conf(q("parent", **resources(guaranteed=HIGHER, max=LOWER))),
        "root.parent",
    ),
    ok(R, "Valid configuration", conf(q("parent", **resources(guaranteed=LOWER, max=HIGHER)))),
    bad(
        R,
        "One level skipped while setting max resource",
        conf(
            q(
                "parent",
                q("parent1", q("child1", **resources(max=res(memory="150")))),
                **resources(max=res(memory="100")),
            )
        ),
        "root.parent.parent1.child1",
    ),
    bad(
        R,
        "Sum of child guaranteed higher than parent max",
        conf(
            q(
                "parent",
                q(
                    "parent1",
                    q("child1", **resources(guaranteed=res(memory="50"))),
                    q("child2", **resources(guaranteed=res(memory="40"))),
                    **resources(max=res(memory="80")),
                ),
                **resources(max=res(memory="100")),
            )
        ),
        "root.parent.parent1",
    ),
    bad(
        R,
        "One level skipped while setting guaranteed resource",
        conf(
            q(
                "parent",
                q("parent1", q("child1", **resources(guaranteed=res(memory="150")))),
                **resources(guaranteed=res(memory="100")),
            )
        ),
        "root.parent",
    ),
    ok(
        R,
        "Parent with undefined guaranteed resources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    **resources(guaranteed=res(memory="50", vcores="50"), max=res(memory="80", vcores="80")),
                ),
                q(
                    "child2",
                    **resources(guaranteed=res(memory="50", vcores="50"), max=res(memory="80", vcores="80")),
                ),
                **resources(guaranteed=res(memory="100"), max=res(memory="100", vcores="100")),
            )
        ),
    ),
    ok(
        R,
        "Nil guaranteed resources for both parent and child",
        conf(q("parent", q("child1", **resources(max=LOWER)), **resources(max=HIGHER))),
    ),
    ok(
        R,
        "Empty guaranteed resources for both parent and child",
        conf(
            q(
                "parent",
                q("child1", **resources(guaranteed={}, max=LOWER)),
                **resources(guaranteed={}, max=HIGHER),
            )
        ),
    ),
]

M = "TestCheckQueueMaxApplicationsForQueue"
MAXAPPS_CASES = [
    bad(
        M,
        "Parent maxRunningApps must be larger than child maxRunningApps",
        max_apps_tree(1, 2, 3, 4),
        "root.parent",
    ),
    ok(
        M,
        "Valid maxApplication settings: Parent maxRunningApps larger than child maxRunningApps",
        max_apps_tree(4, 3, 2, 1),
    ),
    ok(M, "Valid maxApplication settings: Parent maxRunningApps can be 0", max_apps_tree(0, 3, 2, 1)),
    bad(
        M,
        "InValid maxApplication settings: child maxRunningApps cannot be 0",
        max_apps_tree(4, 3, 2, 0),
        "root.parent.parent1.child1",
    ),
]

P = "TestCheckPlacementRules"
H = "TestCheckQueueHierarchyForPlacement"
L = "TestGetLongestPlacementPath"
PLACEMENT_CASES = [
    ok(P, "default case, no error", with_rules(placement_rules())),
    bad(
        P,
        "referencing root.users, but users is a leaf",
        with_rules([{"name": "fixed", "value": "root.users"}]),
        "root.users",
    ),
    bad(
        P,
        "referencing root.admins.dev which doesn't exist but create is false",
        with_rules([placement_rules()[0], {**placement_rules()[1], "create": False}]),
        "root.admins.dev",
    ),
    bad(
        P,
        "referencing root.default.leaf, default is a leaf",
        with_rules([{"name": "fixed", "value": "root.default.leaf"}]),
        "root.default",
    ),
    bad(
        P,
        "two fixed rules in a chain both fully qualified",
        with_rules(
            [
                {
                    "name": "fixed",
                    "value": "root.default.leaf",
                    "parent": {"name": "fixed", "value": "root.default"},
                }
            ]
        ),
        "root.default.leaf",
    ),
    bad(
        L,
        "illegal: two fixed with fully qualified path",
        with_rules(
            [
                {
                    "name": "fixed",
                    "value": "root.dev",
                    "create": True,
                    "parent": {"name": "fixed", "value": "root.admins"},
                }
            ]
        ),
        "root.dev",
    ),
    bad(
        H,
        "case #1 referring to existing queue which is a parent",
        with_rules([{"name": "fixed", "value": "root.users"}]),
        "root.users",
    ),
    ok(
        H,
        "case #2 referring to an existing queue which is a leaf",
        with_rules([{"name": "fixed", "value": "root.default", "create": True}]),
    ),
    ok(
        H,
        "case #3 incomplete path, users is parent, create = true",
        with_rules([{"name": "fixed", "value": "root.users.alice", "create": True}]),
    ),
    bad(
        H,
        "case #4 incomplete path, users is parent, create = false",
        with_rules([{"name": "fixed", "value": "root.users.alice"}]),
        "root.users.alice",
    ),
    bad(
        H,
        "case #5 incomplete path, users is leaf, create = true",
        with_rules([{"name": "fixed", "value": "root.users.alice", "create": True}], users_is_parent=False),
        "users",
    ),
    bad(
        H,
        "case #6 incomplete path, users is leaf, create = false",
        with_rules([{"name": "fixed", "value": "root.users.alice"}], users_is_parent=False),
        "users",
    ),
    ok(
        H,
        "case #7 long enough, no matching queue, create = true",
        with_rules([{"name": "fixed", "value": "root.devs.test", "create": True}]),
    ),
    bad(
        H,
        "case #8 long enough, no matching queue, create = false",
        with_rules([{"name": "fixed", "value": "root.devs.test"}]),
        "root.devs.test",
    ),
    bad(
        H,
        "case #9 rule chain ends with a dynamic part, last queue is a leaf",
        with_rules(
            [{"name": "user", "create": True, "parent": {"name": "fixed", "value": "root.users"}}],
            users_is_parent=False,
        ),
        "root.users",
    ),
    ok(
        H,
        "case #10 rule chain ends with a dynamic part, last queue is a parent",
        with_rules([{"name": "user", "create": True, "parent": {"name": "fixed", "value": "root.users"}}]),
    ),
]

PR = "TestCheckPlacementRule"


def single_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return conf(q("default", q("leaf"), parent=True), placementrules=[rule])


RULE_CASES = [
    ok(PR, "valid rule name with a-z", single_rule({"name": "fixed", "value": "root.default.leaf"})),
    bad(
        PR,
        "valid rule name start with underscore (refused as an unknown rule)",
        single_rule({"name": "_fixed", "value": "root.default.leaf"}),
        "_fixed",
    ),
    bad(
        PR,
        "invalid rule name contain pound sign",
        single_rule({"name": "#fixed", "value": "root.default.leaf"}),
        "#fixed",
    ),
    bad(
        PR,
        "invalid rule name with number",
        single_rule({"name": "1234", "value": "root.default.leaf"}),
        "1234",
    ),
    ok(
        PR,
        "valid parent's rule name with a-z",
        single_rule({"name": "fixed", "value": "leaf", "parent": {"name": "fixed", "value": "root.default"}}),
    ),
    bad(
        PR,
        "invalid parent's rule name with commercial at",
        single_rule(
            {"name": "fixed", "value": "leaf", "parent": {"name": "@fixed", "value": "root.default"}}
        ),
        "@fixed",
    ),
    bad(
        PR,
        "invalid nested parent's rule name with commercial at",
        single_rule(
            {
                "name": "fixed",
                "value": "leaf",
                "parent": {
                    "name": "fixed",
                    "value": "default",
                    "parent": {"name": "@fixed", "value": "root"},
                },
            }
        ),
        "@fixed",
    ),
    ok(
        PR,
        "valid rule name and filter",
        single_rule(
            {"name": "fixed", "value": "root.default.leaf", "filter": {"users": ["username"], "groups": []}}
        ),
    ),
    bad(
        PR,
        "invalid rule filter user list",
        single_rule(
            {"name": "fixed", "value": "root.default.leaf", "filter": {"users": [""], "groups": ["ok"]}}
        ),
        "filter",
    ),
    bad(
        PR,
        "invalid rule filter group list",
        single_rule(
            {
                "name": "fixed",
                "value": "root.default.leaf",
                "filter": {"users": ["ok"], "groups": ["groupname "]},
            }
        ),
        "filter",
    ),
]

FILTER_NAMES = (
    [
        ("TestUserName", "users", name, True)
        for name in [
            "username-allowed_99",
            "username",
            "username*regexp",
            "user_name",
            "user@name@",
            "username$$",
        ]
    ]
    + [
        ("TestUserName", "users", name, False)
        for name in ["username rejected", "", "rejected!name", "!rejected", " rejected "]
    ]
    + [
        ("TestGroupName", "groups", name, True)
        for name in ["groupname-allowed_99", "groupname", "groupname*regexp", "group_name", "group-name"]
    ]
    + [
        ("TestGroupName", "groups", name, False)
        for name in ["groupname ", "group@name", "group name", " groupname ", "!groupname"]
    ]
    + [
        ("TestServiceAccountUserName", "users", name, True)
        for name in [
            "system:serviceaccounts:username:username-77",
            "system:serviceaccounts:username:regexp*",
            "system:serviceaccounts:username.12:username-77-11",
            "system:serviceaccounts:username:username",
        ]
    ]
    + [
        ("TestServiceAccountUserName", "users", name, False)
        for name in [
            "system:serviceaccounts:username!:username",
            "system:serviceaccounts:username xyz:username",
            "system:serviceaccounts: :username",
            "system:serviceaccounts: username:username",
            "system:\\:username",
            " system:serviceaccounts:username:username",
        ]
    ]
    + [
        ("TestServiceAccountGroupName", "groups", name, True)
        for name in [
            "system:authenticated",
            "system:unauthenticated",
            "system:serviceaccounts:groupname",
            "system:serviceaccounts:groupname.12",
            "system:serviceaccounts:groupname-1-test.test",
        ]
    ]
    + [
        ("TestServiceAccountGroupName", "groups", name, False)
        for name in [
            "system:\\:groupname",
            "system:serviceaccounts: groupname",
            "system:!:groupname",
            "system:&:groupname",
            " system:authenticated",
        ]
    ]
)


def filter_case(go: str, kind: str, name: str, allowed: bool) -> Case:
    users, groups = ([name], ["ok"]) if kind == "users" else (["ok"], [name])
    raw = filter_rule(users, groups)
    return ok(go, repr(name), raw) if allowed else bad(go, repr(name), raw, "filter")


FILTER_CASES = [filter_case(*c) for c in FILTER_NAMES]

LR = "TestCheckLimitResource"
MEM = "memory"


def lr(users: dict[str, str] | None, groups: dict[str, str] | None) -> list[Any]:
    return user_limits(
        {u: {MEM: v} for u, v in (users or {}).items()}, {g: {MEM: v} for g, v in (groups or {}).items()}
    )


LIMIT_RESOURCE_CASES = [
    ok(
        LR,
        "leaf queue user group maxresources are within immediate parent queue user group maxresources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q(
                        "child2",
                        limits=lr(
                            {"test-user": "10", "test-user2": "10"}, {"test-group": "10", "test-group2": "10"}
                        ),
                    ),
                    limits=lr(
                        {"test-user": "50", "test-user2": "50"}, {"test-group": "50", "test-group2": "50"}
                    ),
                ),
                limits=lr({"test-user": "100", "*": "100"}, {"test-group": "100", "*": "100"}),
            )
        ),
    ),
    ok(
        LR,
        "leaf queue user group maxresources are within ancestor parent queue user group maxresources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("childA", limits=lr({"test-user": "50"}, {"test-group": "50"})),
                    q("childB", limits=lr({"test-user": "10"}, {"test-group": "10"})),
                ),
                limits=lr({"test-user": "100"}, {"test-group": "100"}),
            )
        ),
    ),
    bad(
        LR,
        "leaf queue user maxresources exceed parent queue user maxresources",
        conf(
            q(
                "parent",
                q("child1", limits=lr({"test-user": "200"}, {"test-group": "50"})),
                limits=lr({"test-user": "100"}, {"test-group": "100"}),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LR,
        "leaf queue group maxresources exceed parent queue group maxresources",
        conf(
            q(
                "parent",
                q("child1", limits=lr({"test-user": "50"}, {"test-group": "200"})),
                limits=lr({"test-user": "100"}, {"test-group": "100"}),
            )
        ),
        "root.parent.child1",
    ),
    ok(
        LR,
        "queues at same level maxresources can be greater or less than or equal to the other "
        "but with in immediate parent",
        conf(
            q(
                "parent",
                q("child1", limits=lr({"test-user": "50"}, {"test-group": "50"})),
                q("child2", limits=lr({"test-user": "60"}, {"test-group": "60"})),
                limits=lr({"test-user": "100"}, {"test-group": "100"}),
            )
        ),
    ),
    ok(
        LR,
        "queues at same level maxresources can be greater or less than or equal to the other "
        "but with in ancestor parent",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("childA", limits=lr({"test-user": "50"}, {"test-group": "50"})),
                    q("childB", limits=lr({"test-user": "60"}, {"test-group": "60"})),
                ),
                limits=lr({"test-user": "100"}, {"test-group": "100"}),
            )
        ),
    ),
    bad(
        LR,
        "leaf queue user maxresources exceed grandparent queue user maxresources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("child2", limits=lr({"test-user1": "10", "test-user2": "150"}, None)),
                    limits=lr({"test-user1": "50"}, None),
                ),
                limits=lr({"test-user1": "100", "test-user2": "100"}, None),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LR,
        "leaf queue group maxresources exceed grandparent queue group maxresources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("child2", limits=lr(None, {"test-group1": "10", "test-group2": "150"})),
                    limits=lr(None, {"test-group1": "50"}),
                ),
                limits=lr(None, {"test-group1": "100", "test-group2": "100"}),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LR,
        "leaf queue user maxresources exceed parent queue wildcard maxresources",
        conf(
            q(
                "parent",
                q("child1", limits=lr({"test-user1": "50", "test-user2": "150"}, None)),
                limits=lr({"test-user1": "100", "*": "100"}, None),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LR,
        "leaf queue group maxresources exceed parent queue wildcard maxresources",
        conf(
            q(
                "parent",
                q("child1", limits=lr(None, {"test-group1": "50", "test-group2": "150"})),
                limits=lr(None, {"test-group1": "100", "*": "100"}),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LR,
        "leaf queue user maxresources exceed grandparent queue wildcard maxresources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("child2", limits=lr({"test-user1": "10", "test-user2": "150"}, None)),
                    limits=lr({"test-user1": "50"}, None),
                ),
                limits=lr({"test-user1": "100", "*": "100"}, None),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LR,
        "leaf queue group maxresources exceed grandparent queue wildcard maxresources",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("child2", limits=lr(None, {"test-group1": "10", "test-group2": "150"})),
                    limits=lr(None, {"test-group1": "50"}),
                ),
                limits=lr(None, {"test-group1": "100", "*": "100"}),
            )
        ),
        "root.parent.child1.child2",
    ),
    ok(
        LR,
        "leaf queue user wildcard maxresources are within immediate parent queue wildcard maxresources",
        conf(
            q(
                "parent",
                q("child1", q("child2", limits=lr({"*": "10"}, None)), limits=lr({"*": "50"}, None)),
                limits=lr({"*": "100"}, None),
            )
        ),
    ),
    ok(
        LR,
        "leaf queue user wildcard maxresources are within grandparent queue wildcard maxresources",
        conf(
            q("parent", q("child1", q("child2", limits=lr({"*": "10"}, None))), limits=lr({"*": "100"}, None))
        ),
    ),
    bad(
        LR,
        "leaf queue user wildcard maxresources exceed immediate parent queue wildcard maxresources",
        conf(q("parent", q("child1", limits=lr({"*": "150"}, None)), limits=lr({"*": "100"}, None))),
        "root.parent.child1",
    ),
    bad(
        LR,
        "leaf queue user wildcard maxresources exceed grandparent queue wildcard maxresources",
        conf(
            q(
                "parent",
                q("child1", q("child2", limits=lr({"*": "150"}, None))),
                limits=lr({"*": "100"}, None),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LR,
        "overflow vcore of limit resources",
        conf(
            q("parent", limits=[{"limit": "user-limit", "users": ["*"], "maxresources": {"vcore": "1000P"}}])
        ),
        "root.parent",
    ),
    bad(
        LR,
        "invalid vcore of limit resources",
        conf(q("parent", limits=[{"limit": "user-limit", "users": ["*"], "maxresources": {"vcore": "-1"}}])),
        "root.parent",
    ),
    bad(
        LR,
        "overflow quantity of limit resources",
        conf(
            q("parent", limits=[{"limit": "user-limit", "users": ["*"], "maxresources": {"memory": "1000E"}}])
        ),
        "root.parent",
    ),
    bad(
        LR,
        "invalid quantity of limit resources",
        conf(
            q("parent", limits=[{"limit": "user-limit", "users": ["*"], "maxresources": {"memory": "500m"}}])
        ),
        "root.parent",
    ),
]

LA = "TestCheckLimitMaxApplications"
LIMIT_APPS_CASES = [
    ok(
        LA,
        "leaf queue user group maxapplications are within immediate parent queue user group maxapplications",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q(
                        "child2",
                        limits=app_limits(
                            {"test-user": 100, "test-user2": 100}, {"test-group": 100, "test-group2": 100}
                        ),
                    ),
                    limits=app_limits(
                        {"test-user": 100, "test-user2": 100}, {"test-group": 100, "test-group2": 100}
                    ),
                ),
                limits=app_limits({"test-user": 100, "*": 100}, {"test-group": 100, "*": 100}),
            )
        ),
    ),
    ok(
        LA,
        "leaf queue user group maxapplications are within ancestor parent queue user group maxapplications",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("childA", limits=app_limits({"test-user": 50}, {"test-group": 50})),
                    q("childB", limits=app_limits({"test-user": 10}, {"test-group": 10})),
                ),
                limits=app_limits({"test-user": 100}, {"test-group": 100}),
            )
        ),
    ),
    bad(
        LA,
        "leaf queue user maxapplications exceed immediate parent queue user maxapplications",
        conf(
            q(
                "parent",
                q("child1", limits=app_limits({"test-user": 200}, {"test-group": 50})),
                limits=app_limits({"test-user": 100}, {"test-group": 100}),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LA,
        "leaf queue group maxapplications exceed parent queue group maxapplications",
        conf(
            q(
                "parent",
                q("child1", limits=app_limits({"test-user": 50}, {"test-group": 200})),
                limits=app_limits({"test-user": 100}, {"test-group": 100}),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LA,
        "leaf queue user maxapplications are exceed grandparent queue user maxapplications",
        conf(
            q(
                "parent",
                q("child1", q("child2", limits=app_limits({"test-user": 150}, {"test-group": 50}))),
                limits=app_limits({"test-user": 100}, {"test-group": 100}),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LA,
        "leaf queue group maxapplications are exceed grandparent queue group maxapplications",
        conf(
            q(
                "parent",
                q("child1", q("child2", limits=app_limits({"test-user": 50}, {"test-group": 150}))),
                limits=app_limits({"test-user": 100}, {"test-group": 100}),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LA,
        "leaf queue user maxapplications exceed parent queue wildcard maxapplications",
        conf(
            q(
                "parent",
                q("child1", limits=app_limits({"test-user1": 50, "test-user2": 150})),
                limits=app_limits({"test-user1": 100, "*": 100}),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LA,
        "leaf queue group maxapplications exceed parent queue wildcard maxapplications",
        conf(
            q(
                "parent",
                q("child1", limits=app_limits({}, {"test-group1": 50, "test-group2": 150})),
                limits=app_limits({}, {"test-group1": 100, "*": 100}),
            )
        ),
        "root.parent.child1",
    ),
    bad(
        LA,
        "leaf queue user maxapplications exceed grandparent queue wildcard maxapplications",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("child2", limits=app_limits({"test-user1": 10, "test-user2": 150})),
                    limits=app_limits({"test-user1": 50}),
                ),
                limits=app_limits({"test-user1": 100, "*": 100}),
            )
        ),
        "root.parent.child1.child2",
    ),
    bad(
        LA,
        "leaf queue group maxapplications exceed grandparent queue wildcard maxapplications",
        conf(
            q(
                "parent",
                q(
                    "child1",
                    q("child2", limits=app_limits({}, {"test-group1": 10, "test-group2": 150})),
                    limits=app_limits({}, {"test-group1": 50}),
                ),
                limits=app_limits({}, {"test-group1": 100, "*": 100}),
            )
        ),
        "root.parent.child1.child2",
    ),
    ok(
        LA,
        "leaf queue wildcard maxapplications is within immediate parent queue wildcard maxapplications",
        conf(
            q(
                "parent",
                q("child1", q("child2", limits=app_limits({"*": 10})), limits=app_limits({"*": 50})),
                limits=app_limits({"*": 100}),
            )
        ),
    ),
    ok(
        LA,
        "leaf queue wildcard maxapplications is within grandparent queue wildcard maxapplications",
        conf(
            q("parent", q("child1", q("child2", limits=app_limits({"*": 10}))), limits=app_limits({"*": 100}))
        ),
    ),
    bad(
        LA,
        "leaf queue wildcard maxapplications exceed immediate parent queue wildcard maxapplications",
        conf(q("parent", q("child1", limits=app_limits({"*": 150})), limits=app_limits({"*": 100}))),
        "root.parent.child1",
    ),
    bad(
        LA,
        "leaf queue wildcard maxapplications exceed grandparent queue wildcard maxapplications",
        conf(
            q(
                "parent",
                q("child1", q("child2", limits=app_limits({"*": 150}))),
                limits=app_limits({"*": 100}),
            )
        ),
        "root.parent.child1.child2",
    ),
]

CL = "TestCheckLimits"


def limit(
    label: str,
    *,
    users: list[str] | None = None,
    groups: list[str] | None = None,
    mem: str | None = None,
    apps: int = 0,
) -> dict[str, Any]:
    out: dict[str, Any] = {"limit": label}
    if users is not None:
        out["users"] = users
    if groups is not None:
        out["groups"] = groups
    if mem is not None:
        out["maxresources"] = {"memory": mem}
    if apps:
        out["maxapplications"] = apps
    return out


def limited(limits: list[dict[str, Any]], *, mem: str | None = None, apps: int = 0) -> dict[str, Any]:
    keys: dict[str, Any] = {"limits": limits}
    if mem is not None:
        keys["resources"] = {"max": {"memory": mem}}
    if apps:
        keys["maxapplications"] = apps
    return conf(q("parent", **keys))


LIMITS_CASES = [
    ok(
        CL,
        "user group maxresources and maxapplications are within queue limits",
        limited(
            [
                limit("user-limit", users=["test-user", "*"], mem="100", apps=100),
                limit("group-limit", groups=["test-group", "*"], mem="100", apps=100),
            ],
            mem="100",
            apps=100,
        ),
    ),
    ok(
        CL,
        "default queue maxapplications",
        limited(
            [
                limit("user-limit", users=["test-user"], apps=100),
                limit("group-limit", groups=["test-group"], apps=100),
            ]
        ),
    ),
    ok(
        CL,
        "partial fields in maxresources are 0",
        conf(
            q(
                "parent",
                limits=[
                    {
                        "limit": "user-limit",
                        "users": ["test-user"],
                        "maxapplications": 1,
                        "maxresources": {"memory": "100", "cpu": "0", "nvidia.com/gpu": "0"},
                    }
                ],
            )
        ),
    ),
    bad(
        CL,
        "all fields in maxresources are 0",
        conf(
            q(
                "parent",
                limits=[
                    {
                        "limit": "user-limit",
                        "users": ["test-user"],
                        "maxapplications": 1,
                        "maxresources": {"memory": "0", "cpu": "0"},
                    }
                ],
            )
        ),
        "root.parent",
    ),
    bad(
        CL,
        "both maxresources and maxapplications are 0",
        limited([limit("user-limit", users=["test-user"])]),
        "root.parent",
    ),
    bad(
        CL,
        "user maxresources exceed queue limits",
        limited(
            [
                limit("user-limit", users=["test-user"], mem="200", apps=1),
                limit("group-limit", groups=["test-group"], mem="100", apps=1),
            ],
            mem="100",
        ),
        "root.parent",
    ),
    bad(
        CL,
        "group maxresources exceed queue limits",
        limited(
            [
                limit("user-limit", users=["test-user"], mem="100", apps=1),
                limit("group-limit", groups=["test-group"], mem="200", apps=1),
            ],
            mem="100",
        ),
        "root.parent",
    ),
    bad(
        CL,
        "user maxapplications exceed queue limits",
        limited(
            [
                limit("user-limit", users=["test-user"], apps=200),
                limit("group-limit", groups=["test-group"], apps=100),
            ],
            apps=100,
        ),
        "root.parent",
    ),
    bad(
        CL,
        "group maxapplications exceed queue limits",
        limited(
            [
                limit("user-limit", users=["test-user"], apps=100),
                limit("group-limit", groups=["test-group"], apps=200),
            ],
            apps=100,
        ),
        "root.parent",
    ),
    ok(
        CL,
        "user maxapplications is 0",
        limited(
            [
                limit("user-limit", users=["test-user"], mem="100"),
                limit("group-limit", groups=["test-group"], mem="100", apps=100),
            ],
            mem="100",
            apps=100,
        ),
    ),
    ok(
        CL,
        "group maxapplications is 0",
        limited(
            [
                limit("user-limit", users=["test-user"], mem="100", apps=100),
                limit("group-limit", groups=["test-group"], mem="100"),
            ],
            mem="100",
            apps=100,
        ),
    ),
    bad(
        CL,
        "user wildcard is not last entry",
        limited(
            [
                limit("user-limit", users=["*", "test-user"], mem="100", apps=100),
                limit("group-limit", groups=["test-group", "*"], mem="100", apps=100),
            ],
            mem="100",
            apps=100,
        ),
        "root.parent.limits[0].users",
    ),
    bad(
        CL,
        "group wildcard is not last entry",
        limited(
            [
                limit("user-limit", users=["test-user", "*"], mem="100", apps=100),
                limit("group-limit", groups=["*", "test-group"], mem="100", apps=100),
            ],
            mem="100",
            apps=100,
        ),
        "root.parent.limits[1].groups",
    ),
    bad(
        CL,
        "group wildcard is only entry",
        limited([limit("group-limit", groups=["*"], mem="100", apps=100)], mem="100", apps=100),
        "root.parent",
    ),
    bad(
        CL,
        "both user list and group list in limits are empty",
        limited([{"users": [], "groups": []}]),
        "root.parent",
    ),
]

LS = "TestCheckLimitsStructure"
USER_LIMIT = {
    "limit": "user-limit",
    "users": ["test-user"],
    "maxapplications": 100,
    "maxresources": {"memory": "100"},
}
GROUP_LIMIT = {"limit": "group-limit", "groups": ["test-group"], "maxresources": {"memory": "100"}}
STRUCTURE_CASES = [
    # checkLimitsStructure alone refuses it, but Validate runs checkQueuesStructure first, which
    # inserts a root above a top queue that is not root: the configuration is accepted.
    ok(
        LS,
        "top queue is not root (root inserted by checkQueuesStructure)",
        {"partitions": [{"name": "default", "queues": [{"name": "test"}]}]},
    ),
    bad(
        LS,
        "partition limits and root queue limits are not equivalent",
        conf(q("a"), root={"limits": [USER_LIMIT]}, limits=[GROUP_LIMIT]),
        "limits",
    ),
    ok(
        LS,
        "partition limits and root queue limits are equivalent",
        conf(q("a"), root={"limits": [USER_LIMIT]}, limits=[USER_LIMIT]),
    ),
    ok(
        LS,
        "only partition limits exist",
        conf(q("a"), limits=[GROUP_LIMIT, {**GROUP_LIMIT, "groups": ["other"]}]),
    ),
    ok(LS, "only root queue limits exist", conf(q("a"), root={"limits": [USER_LIMIT]}, limits=[])),
    ok(LS, "no limits exist", conf(q("a"), limits=[])),
]

QS = "TestCheckQueuesStructure"
QUEUES_STRUCTURE_CASES = [
    bad(QS, "No Queues Configured", {"partitions": [{"name": "default"}]}, "queues"),
    ok(QS, "Single Root Queue", conf(root={"parent": True})),
    ok(QS, "Single Non-Root Queue", {"partitions": [{"name": "default", "queues": [{"name": "non-root"}]}]}),
    ok(
        QS,
        "Multiple Top-Level Queues",
        {"partitions": [{"name": "default", "queues": [{"name": "queue1"}, {"name": "queue2"}]}]},
    ),
    bad(
        QS,
        "Root Queue With Guaranteed Resources",
        conf(q("a"), root={"resources": {"guaranteed": NEGATIVE}}),
        "root",
    ),
    bad(QS, "Root Queue With Max Resources", conf(q("a"), root={"resources": {"max": NEGATIVE}}), "root"),
]

CQ = "TestCheckQueues"
QUEUES_CASES = [
    bad(
        CQ,
        "Invalid ACL Format for AdminACL",
        conf(q("validQueue", q("validSubQueue"), adminacl="admin group extra", submitacl="submit")),
        "root.validQueue",
    ),
    bad(
        CQ,
        "Invalid ACL Format for SubmitACL",
        conf(q("validQueue", q("validSubQueue"), adminacl="admin", submitacl="submit group extra")),
        "root.validQueue",
    ),
    bad(CQ, "Duplicate Child Queue Names", conf(q("duplicateQueue"), q("duplicateQueue")), "duplicateQueue"),
    bad(
        CQ,
        "Duplicate Child Queue Names at level 1",
        conf(q("subqueue", q("duplicateQueue"), q("duplicateQueue"), adminacl="admin", submitacl="submit")),
        "duplicateQueue",
    ),
    bad(
        CQ,
        "Check Limits Error With Duplicated User Name",
        conf(
            q("subqueue"),
            root={
                "limits": [
                    {"limit": "user-limit", "users": ["user1", "user2", "user1"], "maxapplications": 1}
                ]
            },
        ),
        "user1",
    ),
    bad(
        CQ,
        "Invalid Child Queue Name Length",
        conf(q("thisQueueNameIsTooLongthisQueueNameIsTooLongthisQueueNameIsTooLong")),
        "thisQueueNameIsTooLong",
    ),
    bad(CQ, "Invalid Child Queue Name With Special Character", conf(q("queue_Name$")), "queue_Name$"),
    ok(CQ, "Valid Multiple Queues", conf(q("queue_One"), q("queue-Two"))),
]

NS = "TestCheckNodeSortingPolicy"
NODE_SORT_CASES = [
    ok(
        NS,
        "Valid Sorting Policy with Positive Weights",
        conf(q("a"), nodesortpolicy={"type": "fair", "resourceweights": {"memory": 1.0}}),
    ),
    bad(
        NS,
        "Negative Resource Weight",
        conf(q("a"), nodesortpolicy={"type": "fair", "resourceweights": {"memory": -1.0}}),
        "memory",
    ),
    bad(
        NS,
        "Undefined Sorting Policy",
        conf(q("a"), nodesortpolicy={"type": "undefinedPolicy", "resourceweights": {"memory": 1.0}}),
        "undefinedPolicy",
    ),
    ok(
        NS,
        "Valid Policy with Multiple Resources",
        conf(q("a"), nodesortpolicy={"type": "binpacking", "resourceweights": {"memory": 2.0, "cpu": 3.0}}),
    ),
]

QN = "TestIsQueueNameValid"
QUEUE_NAME_CASES = [
    ok(QN, "parent_Child_test-a_b_#_c_#_d_/_e@dom:ain", conf(q("parent_Child_test-a_b_#_c_#_d_/_e@dom:ain"))),
    bad(QN, "invalid!queue", conf(q("invalid!queue")), "invalid!queue"),
    bad(QN, "root.parent (a dot in a name)", conf(q("root.parent")), "root.parent"),
]

# The placement rule tests whose rule chain YuniKorn refuses when it loads the configuration (the
# validator's checkPlacementRules, or the placement manager building the rule); the other sub-cases of
# these tests are the yk-place-* scenarios.
PL = "placement/"
TEST_QUEUE = [q("testqueue"), q("testparent", q("testchild"))]  # confTestQueue
PARENT_CHILD = [q("testchild"), q("testparent", parent=True)]  # confParentChild


def rules_over(tree: list[dict[str, Any]], rule: dict[str, Any]) -> dict[str, Any]:
    return conf(*tree, placementrules=[rule])


FIXED_LEAF_CHAIN = {"name": "fixed", "value": "testchild", "parent": {"name": "fixed", "value": "testchild"}}
RULE_TEST_CASES = [
    bad(
        PL + "fixed_rule_test.go::TestFixedRulePlace",
        "invalid queue name",
        rules_over(TEST_QUEUE, {"name": "fixed", "value": "testqueue!>invalid<"}),
        "testqueue!>invalid<",
    ),
    bad(
        PL + "fixed_rule_test.go::TestFixedRulePlace",
        "invalid queue name with full queue hierarchy",
        rules_over(TEST_QUEUE, {"name": "fixed", "value": "root.testparent!>invalid<test.testqueue"}),
        "root.testparent!>invalid<test.testqueue",
    ),
    bad(
        PL + "fixed_rule_test.go::TestFixedRulePlace",
        "place in a parent queue (refused by checkPlacementRules: not a leaf)",
        rules_over(TEST_QUEUE, {"name": "fixed", "value": "root.testparent"}),
        "root.testparent",
    ),
    bad(
        PL + "fixed_rule_test.go::TestFixedRuleParent",
        "fail to create child (refused by checkPlacementRules: non-existing, create false)",
        rules_over(
            PARENT_CHILD,
            {"name": "fixed", "value": "nonexist", "parent": {"name": "fixed", "value": "testparent"}},
        ),
        "root.testparent.nonexist",
    ),
    bad(
        PL + "fixed_rule_test.go::TestFixedRuleParent",
        "trying to place in invalid child using a creatable parent",
        rules_over(
            PARENT_CHILD,
            {
                "name": "fixed",
                "value": "testchild",
                "create": True,
                "parent": {"name": "fixed", "value": "test!invalid<tes>t", "create": True},
            },
        ),
        "test!invalid<tes>t",
    ),
    bad(
        PL + "fixed_rule_test.go::TestFixedRuleParent",
        "parent which is defined as a leaf",
        rules_over(
            PARENT_CHILD,
            {
                "name": "fixed",
                "value": "nonexist",
                "create": True,
                "parent": {"name": "fixed", "value": "testchild"},
            },
        ),
        "root.testchild",
    ),
    bad(
        PL + "fixed_rule_test.go::TestFixedRuleParent",
        "failed parent rule",
        rules_over(PARENT_CHILD, {"name": "fixed", "value": "testchild", "parent": FIXED_LEAF_CHAIN}),
        "root.testchild",
    ),
    bad(
        PL + "provided_rule_test.go::TestProvidedRuleParent",
        "parent which is defined as a leaf",
        rules_over(
            PARENT_CHILD,
            {"name": "provided", "create": True, "parent": {"name": "fixed", "value": "testchild"}},
        ),
        "root.testchild",
    ),
    bad(
        PL + "provided_rule_test.go::TestProvidedRuleParent",
        "failed parent rule",
        rules_over(PARENT_CHILD, {"name": "provided", "create": True, "parent": FIXED_LEAF_CHAIN}),
        "root.testchild",
    ),
    bad(
        PL + "user_rule_test.go::TestUserRuleParent",
        "parent which is defined as a leaf",
        rules_over(
            PARENT_CHILD, {"name": "user", "create": True, "parent": {"name": "fixed", "value": "testchild"}}
        ),
        "root.testchild",
    ),
    bad(
        PL + "user_rule_test.go::TestUserRuleParent",
        "failed parent rule",
        rules_over(PARENT_CHILD, {"name": "user", "create": True, "parent": FIXED_LEAF_CHAIN}),
        "root.testchild",
    ),
]

CASES: list[Case] = [
    *RESOURCE_CASES,
    *MAXAPPS_CASES,
    *PLACEMENT_CASES,
    *RULE_CASES,
    *FILTER_CASES,
    *LIMIT_RESOURCE_CASES,
    *LIMIT_APPS_CASES,
    *LIMITS_CASES,
    *STRUCTURE_CASES,
    *QUEUES_STRUCTURE_CASES,
    *QUEUES_CASES,
    *NODE_SORT_CASES,
    *QUEUE_NAME_CASES,
    *RULE_TEST_CASES,
]


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id, marks=list(case.marks))


def _text(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_yunikorn_config_verdict(case: Case) -> None:
    text = _text(case.raw)
    if not case.refused:
        load_config_text(text, "queues.yaml")
        return
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "queues.yaml")
    lines = info.value.lines()
    assert lines, "a refusal must say why"
    message = info.value.render()
    assert "Traceback" not in message
    # every problem is one line naming the file, then where and what (a hint may follow on its own line)
    for line in lines:
        assert line.startswith("queues.yaml: ") or line.startswith("  Hint: "), line
    # gpupool reports queue names as it stores them, lower-cased (YuniKorn's names ignore case)
    assert case.where.lower() in message.lower(), f"the error should name {case.where!r}:\n{message}"


def test_every_go_sub_case_is_translated_once() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    per_test: dict[str, int] = {}
    for c in CASES:
        per_test[c.go] = per_test.get(c.go, 0) + 1
    # the sizes of the Go tables

    assert per_test[R] == 18
    assert per_test[LR] == 20
    assert per_test[LA] == 14
    assert per_test[CL] == 15
    assert per_test[H] == 10


runner = CliRunner()


@pytest.mark.parametrize(
    "case",
    [
        _param(c)
        for c in CASES
        if c.sub
        in {
            "Valid configuration",
            "Higher max resource in child queues",
            "leaf queue user maxresources exceed parent queue wildcard maxresources",
            "referencing root.users, but users is a leaf",
        }
    ],
)
def test_gpupool_config_check_cli_gives_the_same_verdict(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "queues.yaml"
    path.write_text(_text(case.raw))
    result = runner.invoke(app, ["config", "check", str(path)])
    assert "Traceback" not in result.output
    if case.refused:
        assert result.exit_code == 1, result.output
        assert case.where.lower() in result.output.lower()
        assert "invalid" in result.output
    else:
        assert result.exit_code == 0, result.output
