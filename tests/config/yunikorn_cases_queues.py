"""The translated yunikorn-core cases on queue resources, maxapplications, placement rules and filters."""

from __future__ import annotations

from typing import Any

from .yunikorn_support import (
    HIGHER,
    LOWER,
    NEGATIVE,
    SYNTAX_ERROR,
    UNDEF_VCORES,
    Case,
    bad,
    conf,
    filter_rule,
    max_apps_tree,
    ok,
    placement_rules,
    q,
    res,
    resources,
    with_rules,
)

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
