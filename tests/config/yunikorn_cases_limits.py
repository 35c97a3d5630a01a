"""The translated yunikorn-core cases on user and group limits (resources, applications)."""

from __future__ import annotations

from typing import Any

from .yunikorn_support import (
    app_limits,
    bad,
    conf,
    ok,
    q,
    user_limits,
)

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
