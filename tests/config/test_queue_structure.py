"""The queue configuration: real YuniKorn files, the structure of the file, keys and queue names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpupool.configfile import load_config

from .support import YUNIKORN_CONFIGS, YUNIKORN_DIR, cfg, issues, only_issue, parse, queue, root

# ---- real YuniKorn files ----------------------------------------------------------------------


def test_real_yunikorn_configs_are_present() -> None:
    assert len(YUNIKORN_CONFIGS) >= 4, f"expected the YuniKorn sample configs under {YUNIKORN_DIR}"


@pytest.mark.parametrize("path", YUNIKORN_CONFIGS, ids=lambda p: p.name)
def test_real_yunikorn_config_loads_unchanged(path: Path) -> None:
    config = load_config(path)
    assert config.partitions
    for p in config.partitions:
        assert p.root.name == "root"
        assert p.root.parent


def test_core_config_queues_yaml_means_what_yunikorn_says() -> None:
    config = load_config(YUNIKORN_DIR / "core-config-queues.yaml")
    assert [p.name for p in config.partitions] == ["default", "gpu"]
    default = config.partition("default")
    assert default.node_sort_policy.type == "binpacking"
    assert default.node_sort_policy.resource_weights is None
    assert default.preemption_enabled is True
    user_rule, provided_rule = default.placement_rules
    assert user_rule.name == "user" and user_rule.create
    assert (
        user_rule.parent is not None and user_rule.parent.name == "provided" and not user_rule.parent.create
    )
    assert user_rule.filter is not None and user_rule.filter.groups == ("sandbox",)
    assert provided_rule.name == "provided" and provided_rule.create
    # Partition limits are the root queue's limits.
    assert default.limits == default.root.limits
    assert default.root.limits[0].users == ("user1",)
    assert default.root.limits[0].max_resources == {"memory": 10 * 10**9, "vcore": 10_000}
    assert default.root.limits[1].groups == ("sandbox",) and default.root.limits[1].max_applications == 10
    adv = queue(default.root, "root.advertisement")
    assert adv.guaranteed == {"memory": 500 * 10**9, "vcore": 50_000}
    assert adv.max == {"memory": 800 * 10**9, "vcore": 80_000}
    sandbox = queue(default.root, "root.sandbox")
    assert sandbox.parent and sandbox.submit_acl == " sandbox"
    # The gpu partition lists its queues without root: root is inserted above them.
    gpu = config.partition("gpu")
    assert [q.name for q in gpu.root.queues] == ["production", "test"]
    production = queue(gpu.root, "root.production")
    assert production.admin_acl == "admin admin" and production.max_applications == 10
    test = queue(gpu.root, "root.test")
    assert test.properties == {"x": "y"}
    assert test.limits[0].max_resources == {"memory": 10 * 10**9, "vcore": 10_000, "gpu": 50000}


def test_preemption_example_properties() -> None:
    config = load_config(YUNIKORN_DIR / "k8shim-examples-preemption-queues.yaml")
    r = config.partition().root
    assert queue(r, "root.sandbox").max == {"memory": 1000 * 2**20, "vcore": 1000}
    tenants = queue(r, "root.sandbox.tenants")
    assert tenants.properties == {"preemption.policy": "fence", "preemption.delay": "10s"}
    assert queue(r, "root.sandbox.tenants.tenant-high").properties["priority.offset"] == "1000"
    assert queue(r, "root.sandbox.tenants.tenant-low").properties["priority.offset"] == "-1000"
    assert queue(r, "root.sandbox.tenants.tenant-normal").guaranteed == {"memory": 300 * 2**20, "vcore": 300}


def test_tag_rule_from_shim_example() -> None:
    config = load_config(YUNIKORN_DIR / "k8shim-e2e-queues.yaml")
    (rule,) = config.partition().placement_rules
    assert (rule.name, rule.value, rule.create) == ("tag", "namespace", True)
    assert config.partition().root.submit_acl == "*"


# ---- structure, keys, names -------------------------------------------------------------------


def test_keys_are_case_insensitive() -> None:
    raw = {
        "Partitions": [
            {
                "Name": "default",
                "PlacementRules": [
                    {"Name": "Fixed", "Value": "root.a", "Create": False},
                    {"name": "PROVIDED"},
                ],
                "NodeSortPolicy": {"Type": "BinPacking", "ResourceWeights": {"gpu": 4}},
                "Preemption": {"Enabled": False, "QuotaPreemptionEnabled": True},
                "Queues": [
                    {
                        "Name": "Root",
                        "SubmitACL": "*",
                        "AdminAcl": "admin",
                        "Queues": [
                            {
                                "Name": "a",
                                "MaxApplications": 4,
                                "Resources": {"Guaranteed": {"gpu": 1}, "Max": {"gpu": 2}},
                                "Properties": {"Application.Sort.Policy": "FAIR"},
                                "Limits": [
                                    {"Users": ["*"], "MaxResources": {"gpu": 1}, "MaxApplications": 2}
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    p = parse(raw).partition()
    assert p.node_sort_policy.type == "binpacking"
    assert p.node_sort_policy.resource_weights == {"gpu": 4.0}
    assert (p.preemption_enabled, p.quota_preemption_enabled) == (False, True)
    assert [r.name for r in p.placement_rules] == ["fixed", "provided"]
    assert p.root.submit_acl == "*" and p.root.admin_acl == "admin"
    a = queue(p.root, "root.a")
    assert a.max_applications == 4
    assert (a.guaranteed, a.max) == ({"gpu": 1000}, {"gpu": 2000})
    assert a.properties == {"application.sort.policy": "fair"}
    assert a.limits[0].users == ("*",) and a.limits[0].max_applications == 2


def test_the_same_key_twice_in_different_case_is_an_error() -> None:
    raw = cfg([{"name": "a", "submitacl": "*", "submitACL": "bob"}])
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.a.submitacl"
    assert "twice" in issue.message


def test_unknown_key_names_its_path_and_suggests() -> None:
    issue = only_issue(cfg([{"name": "a", "maxaplications": 3}]))
    assert issue.path == "partitions[0].queues.root.a.maxaplications"
    assert "unknown key" in issue.message
    assert "maxapplications" in issue.hint


def test_guaranteed_outside_resources_gets_a_hint() -> None:
    issue = only_issue(cfg([{"name": "a", "guaranteed": {"gpu": 1}}]))
    assert issue.path == "partitions[0].queues.root.a.guaranteed"
    assert "resources:" in issue.hint


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"partitions": [{"name": "default", "queues": [{"name": "root"}]}], "extra": 1}, "extra"),
        (cfg([], placementrules=[{"name": "user", "creat": True}]), "partitions[0].placementrules[0].creat"),
        (
            cfg([], limits=[{"users": ["*"], "maxapplications": 1, "maxapps": 1}]),
            "partitions[0].limits[0].maxapps",
        ),
        (cfg([], preemption={"enable": False}), "partitions[0].preemption.enable"),
        (cfg([], nodesortpolicy={"type": "fair", "weights": {}}), "partitions[0].nodesortpolicy.weights"),
        (cfg([{"name": "a", "resources": {"min": {"gpu": 1}}}]), "partitions[0].queues.root.a.resources.min"),
        (
            cfg([{"name": "a", "parent": True, "childtemplate": {"x": 1}}]),
            "partitions[0].queues.root.a.childtemplate.x",
        ),
    ],
)
def test_unknown_keys_are_errors_everywhere(raw: dict[str, Any], path: str) -> None:
    assert only_issue(raw).path == path


def test_real_yunikorn_partition_keys_are_accepted() -> None:
    raw = cfg(
        [],
        statedumpfilepath="/tmp/dump",
        usergroupresolver={"type": "os"},
        preemption={"enabled": True, "quotapreemptionenabled": False},
    )
    raw["checksum"] = "ABC"
    assert parse(raw).partition().preemption_enabled


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (None, "empty"),
        ([], "mapping"),
        ({}, "`partitions` is missing"),
        ({"partitions": []}, "non-empty list"),
        ({"partitions": [{"name": "default"}]}, "no `queues`"),
    ],
)
def test_missing_structure(raw: object, text: str) -> None:
    assert text in str(only_issue(raw))


def test_root_is_inserted_above_several_top_level_queues() -> None:
    raw = {"partitions": [{"name": "default", "queues": [{"name": "a"}, {"name": "b"}]}]}
    r = root(raw)
    assert r.name == "root" and r.parent
    assert [q.name for q in r.queues] == ["a", "b"]


def test_root_is_inserted_above_a_single_non_root_queue() -> None:
    raw = {"partitions": [{"name": "default", "queues": [{"name": "tenants", "queues": [{"name": "x"}]}]}]}
    r = root(raw)
    assert [q.name for q in r.queues] == ["tenants"]
    assert queue(r, "root.tenants.x").parent is False


def test_root_may_not_have_resources() -> None:
    raw = {"partitions": [{"queues": [{"name": "root", "resources": {"max": {"gpu": 8}}}]}]}
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.resources.max"
    assert "root queue cannot have max" in issue.message


def test_partition_name_defaults_and_duplicates() -> None:
    raw = {"partitions": [{"queues": [{"name": "root"}]}]}
    assert parse(raw).partitions[0].name == "default"
    raw = {
        "partitions": [
            {"name": "Default", "queues": [{"name": "root"}]},
            {"name": "default", "queues": [{"name": "a"}]},
        ]
    }
    assert any("defined twice" in i.message for i in issues(raw))


def test_queue_names_are_lower_cased_and_unique_ignoring_case() -> None:
    r = root(cfg([{"name": "TeamA"}]))
    assert [q.name for q in r.queues] == ["teama"]
    issue = only_issue(cfg([{"name": "team-a"}, {"name": "Team-A"}]))
    assert issue.path == "partitions[0].queues.root.team-a.name"
    assert "defined twice" in issue.message


def test_same_name_at_different_levels_is_fine() -> None:
    r = root(cfg([{"name": "test"}, {"name": "parent", "queues": [{"name": "test"}]}]))
    assert queue(r, "root.parent.test").name == "test"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("team.b", "contains a dot"),
        ("a" * 65, "65 characters"),
        ("has space", "' '"),
        ("ümlaut", "'ü'"),
        ("a*b", "'*'"),
    ],
)
def test_bad_queue_names(name: str, text: str) -> None:
    issue = only_issue(cfg([{"name": name}]))
    assert issue.path.endswith(".name")
    assert text in issue.message


def test_allowed_queue_name_characters() -> None:
    name = "a_b:c#d/e@f-" + "x" * 52
    assert len(name) == 64
    assert [q.name for q in root(cfg([{"name": name}])).queues] == [name]


def test_queue_without_a_name() -> None:
    issue = only_issue(cfg([{"submitacl": "*"}]))
    assert issue.path == "partitions[0].queues.root.queues[0]"
    assert "no name" in issue.message


def test_parent_flag_without_children() -> None:
    r = root(cfg([{"name": "dyn", "parent": True}, {"name": "leaf"}]))
    assert queue(r, "root.dyn").parent is True
    assert queue(r, "root.leaf").parent is False


def test_parent_false_with_children_is_an_error() -> None:
    issue = only_issue(cfg([{"name": "p", "parent": False, "queues": [{"name": "c"}]}]))
    assert issue.path == "partitions[0].queues.root.p.parent"


def test_recovery_queue_name_is_reserved() -> None:
    assert "reserved" in only_issue(cfg([{"name": "@recovery@"}])).message
