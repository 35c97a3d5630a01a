"""The translated yunikorn-core cases on limit lists, the queue structure, node sorting, names, rule tests."""

from __future__ import annotations

from typing import Any

from .yunikorn_support import (
    NEGATIVE,
    bad,
    conf,
    ok,
    q,
)

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
