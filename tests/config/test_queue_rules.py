"""The queue configuration: limits, placement rules, node sort policy, preemption, child templates."""

from __future__ import annotations

from typing import Any

import pytest

from .support import cfg, only_issue, parse, paths, queue, root

# ---- limits -----------------------------------------------------------------------------------


def test_limits_parse() -> None:
    limits = [
        {"limit": "team", "groups": ["ml"], "maxresources": {"gpu": 8}},
        {"limit": "per user", "users": ["*"], "maxresources": {"gpu": 2, "vcore": 0}, "maxapplications": 3},
        {"groups": ["*"], "maxapplications": 10},
    ]
    (lim_g, lim_u, lim_w) = queue(root(cfg([{"name": "a", "limits": limits}])), "root.a").limits
    assert lim_g.groups == ("ml",) and lim_g.max_resources == {"gpu": 8000} and lim_g.max_applications is None
    assert lim_u.description == "per user" and lim_u.max_resources == {"gpu": 2000, "vcore": 0}
    assert lim_w.groups == ("*",)


def test_a_name_listed_twice_in_one_limit_is_refused() -> None:
    """YuniKorn's checkLimit: "duplicated group name 'ml'" (configvalidator_test.go TestCheckQueues)."""
    limits = [{"limit": "team", "groups": ["ml", "ml"], "maxresources": {"gpu": 8}}]
    issue = only_issue(cfg([{"name": "a", "limits": limits}]))
    assert issue.path == "partitions[0].queues.root.a.limits[0].groups[1]"
    assert "`ml`" in issue.message


@pytest.mark.parametrize(
    ("limits", "path", "text"),
    [
        (
            [{"users": ["*"], "maxapplications": 1}, {"users": ["bob"], "maxapplications": 1}],
            "limits[1].users[0]",
            "after the wildcard",
        ),
        ([{"groups": ["*"], "maxapplications": 1}], "limits[0].groups", "named group"),
        ([{"users": ["bob"], "maxresources": {"gpu": 0}}], "limits[0].maxresources", "every resource"),
        ([{"maxapplications": 1}], "limits[0]", "no users and no groups"),
        ([{"users": ["bob"]}], "limits[0]", "limits nothing"),
        ([{"users": ["bob"], "maxapplications": 0}], "limits[0].maxapplications", "at least 1"),
        # yunikorn-core configvalidator_test.go::TestCheckLimits: the wildcard comes last, in an
        # entry too, and no name is listed twice.
        ([{"users": ["*", "bob"], "maxapplications": 1}], "limits[0].users[1]", "after the wildcard"),
        (
            [{"users": ["bob", "*"], "maxapplications": 1}, {"groups": ["*", "dev"], "maxapplications": 1}],
            "limits[1].groups[1]",
            "after the wildcard",
        ),
        ([{"groups": ["ml", "ml"], "maxapplications": 1}], "limits[0].groups[1]", "already"),
        ([{"users": ["-bob"], "maxapplications": 1}], "limits[0].users[0]", "not a valid user"),
        ([{"groups": ["d@v"], "maxapplications": 1}], "limits[0].groups[0]", "not a valid group"),
        (
            [{"users": ["bob"], "maxapplications": 1}, {"users": ["bob"], "maxapplications": 2}],
            "limits[1].users[0]",
            "already",
        ),
    ],
)
def test_bad_limits(limits: list[dict[str, Any]], path: str, text: str) -> None:
    issue = only_issue(cfg([{"name": "a", "limits": limits}]))
    assert issue.path == f"partitions[0].queues.root.a.{path}"
    assert text in issue.message


def test_wildcard_last_in_an_entry_with_named_ones_is_valid() -> None:
    """yunikorn-core configvalidator_test.go::TestCheckLimits, the first (valid) case."""
    limits = [
        {
            "limit": "user-limit",
            "users": ["test-user", "*"],
            "maxresources": {"memory": "100"},
            "maxapplications": 100,
        },
        {
            "limit": "group-limit",
            "groups": ["test-group", "*"],
            "maxresources": {"memory": "100"},
            "maxapplications": 100,
        },
    ]
    lim_u, lim_g = queue(root(cfg([{"name": "a", "limits": limits}])), "root.a").limits
    assert lim_u.users == ("test-user", "*") and lim_g.groups == ("test-group", "*")


def test_wildcard_group_with_a_named_group_is_fine() -> None:
    limits = [{"groups": ["ml"], "maxapplications": 2}, {"groups": ["*"], "maxapplications": 5}]
    assert len(queue(root(cfg([{"name": "a", "limits": limits}])), "root.a").limits) == 2


def test_limit_must_fit_its_queue() -> None:
    limits = [{"users": ["bob"], "maxresources": {"gpu": 9}, "maxapplications": 6}]
    raw = cfg([{"name": "a", "maxapplications": 5, "resources": {"max": {"gpu": 8}}, "limits": limits}])
    assert sorted(paths(raw)) == [
        "partitions[0].queues.root.a.limits[0].maxapplications",
        "partitions[0].queues.root.a.limits[0].maxresources.gpu",
    ]


def test_child_limit_must_fit_the_ancestor_limit_for_the_same_user() -> None:
    raw = cfg(
        [
            {
                "name": "p",
                "limits": [{"users": ["bob"], "maxresources": {"gpu": 4}, "maxapplications": 2}],
                "queues": [
                    {
                        "name": "c",
                        "limits": [
                            {"users": ["bob"], "maxresources": {"gpu": 5}, "maxapplications": 3},
                            {"users": ["sue"], "maxresources": {"gpu": 50}},
                        ],
                    }
                ],
            }
        ]
    )
    assert sorted(paths(raw)) == [
        "partitions[0].queues.root.p.c.limits[0].maxapplications",
        "partitions[0].queues.root.p.c.limits[0].maxresources.gpu",
    ]


def test_partition_limits_are_root_limits() -> None:
    limits = [{"users": ["*"], "maxresources": {"gpu": 8}}]
    p = parse(cfg([], limits=limits)).partition()
    assert p.limits == p.root.limits
    assert p.root.limits[0].max_resources == {"gpu": 8000}


def test_partition_limits_apply_to_queue_limits_below() -> None:
    raw = cfg(
        [{"name": "a", "limits": [{"users": ["*"], "maxresources": {"gpu": 9}}]}],
        limits=[{"users": ["*"], "maxresources": {"gpu": 8}}],
    )
    assert paths(raw) == ["partitions[0].queues.root.a.limits[0].maxresources.gpu"]


def test_partition_and_root_limits_must_agree() -> None:
    raw = {
        "partitions": [
            {
                "limits": [{"users": ["*"], "maxapplications": 2}],
                "queues": [{"name": "root", "limits": [{"users": ["*"], "maxapplications": 3}]}],
            }
        ]
    }
    assert only_issue(raw).path == "partitions[0].limits"


# ---- placement rules --------------------------------------------------------------------------


def test_placement_rules_parse() -> None:
    rules = [
        {
            "name": "Tag",
            "value": "namespace",
            "create": True,
            "parent": {"name": "fixed", "value": "root.tenants"},
            "filter": {"type": "Deny", "users": ["^svc-.*$"], "groups": ["a", "b"]},
        },
        {"name": "User", "create": True},
        {"name": "Provided"},
    ]
    raw = cfg([{"name": "tenants", "parent": True}], placementrules=rules)
    tag, user, provided = parse(raw).partition().placement_rules
    assert (tag.name, tag.value, tag.create) == ("tag", "namespace", True)
    assert tag.parent is not None and (tag.parent.name, tag.parent.value) == ("fixed", "root.tenants")
    assert tag.filter is not None and tag.filter.type == "deny"
    assert tag.filter.users == ("^svc-.*$",) and tag.filter.groups == ("a", "b")
    assert (user.name, user.create, user.filter) == ("user", True, None)
    assert (provided.name, provided.create) == ("provided", False)


@pytest.mark.parametrize(
    ("rule", "path", "text"),
    [
        ({"name": "recovery"}, "placementrules[0].name", "unknown placement rule"),
        ({"name": "fixed"}, "placementrules[0]", "needs a `value`"),
        ({"name": "tag", "value": ""}, "placementrules[0].value", "needs a `value`"),
        ({"name": "user", "create": "yes"}, "placementrules[0].create", "true or false"),
        (
            {"name": "user", "filter": {"type": "maybe"}},
            "placementrules[0].filter.type",
            "unknown filter type",
        ),
        ({"name": "user", "filter": {"users": ["bad name"]}}, "placementrules[0].filter.users", "neither"),
        ({"name": "user", "filter": {"groups": ["(unclosed"]}}, "placementrules[0].filter.groups", "neither"),
        (
            {"name": "user", "parent": {"name": "nope"}},
            "placementrules[0].parent.name",
            "unknown placement rule",
        ),
        ({"create": True}, "placementrules[0]", "no name"),
    ],
)
def test_bad_placement_rules(rule: dict[str, Any], path: str, text: str) -> None:
    issue = only_issue(cfg([{"name": "a"}], placementrules=[rule]))
    assert issue.path == f"partitions[0].{path}"
    assert text in issue.message


def test_filter_lists_with_odd_names_are_accepted_as_yunikorn_does() -> None:
    rule = {"name": "user", "filter": {"users": ["bad name", "ok"]}}
    (r,) = parse(cfg([], placementrules=[rule])).partition().placement_rules
    assert r.filter is not None and r.filter.users == ("bad name", "ok") and r.filter.type == "allow"


def test_fixed_rule_to_a_missing_queue_needs_create() -> None:
    issue = only_issue(cfg([{"name": "a"}], placementrules=[{"name": "fixed", "value": "root.b"}]))
    assert issue.path == "partitions[0].placementrules[0]"
    assert "not configured" in issue.message and "create" in issue.hint
    ok = cfg([{"name": "a"}], placementrules=[{"name": "fixed", "value": "b", "create": True}])
    assert parse(ok).partition().placement_rules[0].value == "b"


def test_fixed_rule_to_a_parent_queue_is_an_error() -> None:
    raw = cfg(
        [{"name": "p", "queues": [{"name": "c"}]}], placementrules=[{"name": "fixed", "value": "root.p"}]
    )
    assert "parent queue" in only_issue(raw).message
    leaf = cfg(
        [{"name": "p", "queues": [{"name": "c"}]}], placementrules=[{"name": "fixed", "value": "root.p.c"}]
    )
    assert parse(leaf).partition().placement_rules[0].value == "root.p.c"


def test_fixed_parent_of_a_dynamic_rule_must_be_a_parent_queue() -> None:
    rule = {"name": "user", "create": True, "parent": {"name": "fixed", "value": "users"}}
    issue = only_issue(cfg([{"name": "users"}], placementrules=[rule]))
    assert "leaf queue" in issue.message and "parent: true" in issue.hint
    assert parse(cfg([{"name": "users", "parent": True}], placementrules=[rule])).partition()


def test_fixed_rule_below_a_leaf_is_an_error() -> None:
    raw = cfg([{"name": "a"}], placementrules=[{"name": "fixed", "value": "root.a.b", "create": True}])
    assert "leaf queue" in only_issue(raw).message


def test_fixed_rule_path_uses_lower_case_names() -> None:
    raw = cfg([{"name": "Team"}], placementrules=[{"name": "fixed", "value": "root.TEAM"}])
    assert parse(raw).partition().placement_rules[0].value == "root.TEAM"


# ---- node sort policy, preemption, child templates ----------------------------------------------


def test_node_sort_policy_defaults() -> None:
    p = parse(cfg([])).partition()
    assert (p.node_sort_policy.type, p.node_sort_policy.resource_weights) == ("gpupool", None)
    assert (p.preemption_enabled, p.quota_preemption_enabled) == (True, False)


def test_node_sort_policy_shorthand_and_weights() -> None:
    assert parse(cfg([], nodesortpolicy="binpacking")).partition().node_sort_policy.type == "binpacking"
    nsp = parse(
        cfg([], nodesortpolicy={"type": "fair", "resourceweights": {"vcore": 1, "gpu": 4.5}})
    ).partition()
    assert nsp.node_sort_policy.resource_weights == {"vcore": 1.0, "gpu": 4.5}


@pytest.mark.parametrize(
    ("policy", "path"),
    [
        ({"type": "spread"}, "partitions[0].nodesortpolicy.type"),
        ({"resourceweights": {"gpu": -1}}, "partitions[0].nodesortpolicy.resourceweights.gpu"),
        ({"resourceweights": {"gpu": "heavy"}}, "partitions[0].nodesortpolicy.resourceweights.gpu"),
    ],
)
def test_bad_node_sort_policy(policy: dict[str, Any], path: str) -> None:
    assert only_issue(cfg([], nodesortpolicy=policy)).path == path


@pytest.mark.parametrize(
    "kind", ["gpupool", "fgd", "bestfit", "dotprod", "gpupacking", "binpacking", "fair", "FGD"]
)
def test_every_node_sort_policy_is_accepted(kind: str) -> None:
    assert parse(cfg([], nodesortpolicy={"type": kind})).partition().node_sort_policy.type == kind.lower()


def test_unknown_node_sort_policy_names_the_key_and_the_accepted_values() -> None:
    issue = only_issue(cfg([], nodesortpolicy={"type": "spread"}))
    text = f"{issue} ({issue.hint})"
    assert "nodesortpolicy.type" in text and "spread" in text
    for kind in ("gpupool", "fgd", "bestfit", "dotprod", "gpupacking", "binpacking", "fair"):
        assert f"`{kind}`" in text


def test_preemption_flags_must_be_booleans() -> None:
    assert only_issue(cfg([], preemption={"enabled": "no"})).path == "partitions[0].preemption.enabled"


def test_child_template_on_a_parent() -> None:
    template = {
        "maxapplications": 4,
        "properties": {"application.sort.policy": "fair"},
        "resources": {"guaranteed": {"gpu": 1}, "max": {"gpu": 4}},
    }
    raw = cfg([{"name": "tenants", "parent": True, "maxapplications": 10, "childtemplate": template}])
    t = queue(root(raw), "root.tenants").child_template
    assert t is not None
    assert (t.max_applications, t.properties, t.guaranteed, t.max) == (
        4,
        {"application.sort.policy": "fair"},
        {"gpu": 1000},
        {"gpu": 4000},
    )


def test_child_template_on_root_is_allowed() -> None:
    r = root({"partitions": [{"queues": [{"name": "root", "childtemplate": {"maxapplications": 2}}]}]})
    assert r.child_template is not None and r.child_template.max_applications == 2


@pytest.mark.parametrize(
    ("queue_raw", "path"),
    [
        (
            {"name": "leaf", "childtemplate": {"maxapplications": 2}},
            "partitions[0].queues.root.leaf.childtemplate",
        ),
        (
            {
                "name": "p",
                "parent": True,
                "childtemplate": {"resources": {"guaranteed": {"gpu": 5}, "max": {"gpu": 4}}},
            },
            "partitions[0].queues.root.p.childtemplate.resources.guaranteed.gpu",
        ),
        (
            {
                "name": "p",
                "parent": True,
                "resources": {"max": {"gpu": 4}},
                "childtemplate": {"resources": {"max": {"gpu": 5}}},
            },
            "partitions[0].queues.root.p.childtemplate.resources.max.gpu",
        ),
        (
            {"name": "p", "parent": True, "maxapplications": 3, "childtemplate": {"maxapplications": 4}},
            "partitions[0].queues.root.p.childtemplate.maxapplications",
        ),
        (
            {"name": "p", "parent": True, "childtemplate": {"properties": {"preemption.delay": "soon"}}},
            "partitions[0].queues.root.p.childtemplate.properties.preemption.delay",
        ),
    ],
)
def test_bad_child_templates(queue_raw: dict[str, Any], path: str) -> None:
    assert only_issue(cfg([queue_raw])).path == path
