"""The queue configuration language: parsing and validation of YuniKorn queues.yaml, sizes, file edge, CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.config import (
    DEFAULT_SIZES,
    ConfigError,
    ConfigIssue,
    DurationError,
    parse_config,
    parse_duration,
)
from gpupool.configfile import load_config, load_config_text
from gpupool.core.config import Config, PartitionConfig, QueueConfig

YUNIKORN_DIR = Path(__file__).resolve().parents[1] / "data" / "yunikorn-configs"
YUNIKORN_CONFIGS = sorted(YUNIKORN_DIR.glob("*.yaml"))
GI = 2**30


# ---- helpers ---------------------------------------------------------------------------------


def cfg(queues: list[dict[str, Any]], **partition: Any) -> dict[str, Any]:
    """A one-partition config whose root has the given children."""
    return {"partitions": [{"name": "default", "queues": [{"name": "root", "queues": queues}], **partition}]}


def parse(raw: object) -> Config:
    return parse_config(raw, "test.yaml")


def root(raw: object) -> QueueConfig:
    return parse(raw).partition().root


def queue(q: QueueConfig, path: str) -> QueueConfig:
    parts = path.split(".")
    assert parts[0] == q.name
    for name in parts[1:]:
        q = next(c for c in q.queues if c.name == name)
    return q


def issues(raw: object) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return info.value.issues


def only_issue(raw: object) -> ConfigIssue:
    found = issues(raw)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


def paths(raw: object) -> list[str]:
    return [i.path for i in issues(raw)]


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
    assert test.limits[0].max_resources == {"memory": 10 * 10**9, "vcore": 10_000, "gpu": 50}


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
    assert (a.guaranteed, a.max) == ({"gpu": 1}, {"gpu": 2})
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


# ---- resources --------------------------------------------------------------------------------


def test_quantity_suffixes() -> None:
    raw = cfg(
        [
            {
                "name": "a",
                "resources": {
                    "max": {
                        "memory": "16Gi",
                        "vcore": "500m",
                        "gpu": 8,
                        "ephemeral": "1k",
                        "big": "2M",
                        "nvidia.com/gpu": "4",
                        "disk": "1Ti",
                    }
                },
            }
        ]
    )
    assert queue(root(raw), "root.a").max == {
        "memory": 16 * GI,
        "vcore": 500,
        "gpu": 8,
        "ephemeral": 1000,
        "big": 2_000_000,
        "nvidia.com/gpu": 4,
        "disk": 2**40,
    }


def test_vcore_is_in_milli_cores() -> None:
    assert queue(root(cfg([{"name": "a", "resources": {"max": {"vcore": 2}}}])), "root.a").max == {
        "vcore": 2000
    }


@pytest.mark.parametrize("value", ["10Xi", "-1", "1.5", "500m", "lots", True])
def test_bad_gpu_quantity_names_the_resource(value: object) -> None:
    issue = only_issue(cfg([{"name": "team-a", "resources": {"max": {"gpu": value}}}]))
    assert issue.path == "partitions[0].queues.root.team-a.resources.max.gpu"
    assert "invalid quantity" in issue.message
    assert issue.hint


def test_per_gpu_type_quota() -> None:
    raw = cfg([{"name": "a", "resources": {"guaranteed": {"gpu/H100": 4}, "max": {"gpu": 8, "gpu/H100": 6}}}])
    a = queue(root(raw), "root.a")
    assert a.guaranteed == {"gpu/H100": 4}
    assert a.max == {"gpu": 8, "gpu/H100": 6}


def test_gpu_type_needs_a_name() -> None:
    issue = only_issue(cfg([{"name": "a", "resources": {"max": {"gpu/": 2}}}]))
    assert issue.path == "partitions[0].queues.root.a.resources.max.gpu/"


def test_typed_guarantee_cannot_exceed_max_gpu() -> None:
    issue = only_issue(cfg([{"name": "a", "resources": {"guaranteed": {"gpu/A100": 9}, "max": {"gpu": 8}}}]))
    assert issue.path == "partitions[0].queues.root.a.resources.guaranteed.gpu/A100"


def test_empty_resources_mean_no_setting() -> None:
    a = queue(root(cfg([{"name": "a", "resources": {"guaranteed": {}, "max": None}}])), "root.a")
    assert (a.guaranteed, a.max) == (None, None)


def test_guaranteed_must_fit_max() -> None:
    issue = only_issue(cfg([{"name": "a", "resources": {"guaranteed": {"gpu": 9}, "max": {"gpu": 8}}}]))
    assert issue.path == "partitions[0].queues.root.a.resources.guaranteed.gpu"
    assert "more than max" in issue.message


def test_guaranteed_of_a_type_without_max_is_fine() -> None:
    a = queue(
        root(cfg([{"name": "a", "resources": {"guaranteed": {"gpu": 9}, "max": {"vcore": 8}}}])), "root.a"
    )
    assert a.guaranteed == {"gpu": 9}


def test_child_max_must_fit_parent_max() -> None:
    raw = cfg(
        [
            {
                "name": "tenants",
                "resources": {"max": {"gpu": 16}},
                "queues": [{"name": "team-a", "resources": {"max": {"gpu": 20}}}],
            }
        ]
    )
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.tenants.team-a.resources.max.gpu"
    assert "root.tenants" in issue.message and "16" in issue.hint


def test_grandchild_max_is_checked_against_the_nearest_limit() -> None:
    raw = cfg(
        [
            {
                "name": "org",
                "resources": {"max": {"gpu": 8}},
                "queues": [{"name": "team", "queues": [{"name": "proj", "resources": {"max": {"gpu": 9}}}]}],
            }
        ]
    )
    assert paths(raw) == ["partitions[0].queues.root.org.team.proj.resources.max.gpu"]


def test_child_max_of_a_type_the_parent_does_not_cap_is_fine() -> None:
    raw = cfg(
        [
            {
                "name": "p",
                "resources": {"max": {"gpu": 8}},
                "queues": [{"name": "c", "resources": {"max": {"vcore": 99}}}],
            }
        ]
    )
    assert queue(root(raw), "root.p.c").max == {"vcore": 99_000}


def test_children_guarantees_must_fit_parent_guarantee() -> None:
    raw = cfg(
        [
            {
                "name": "p",
                "resources": {"guaranteed": {"gpu": 8}, "max": {"gpu": 16}},
                "queues": [
                    {"name": "a", "resources": {"guaranteed": {"gpu": 6}}},
                    {"name": "b", "resources": {"guaranteed": {"gpu": 6, "vcore": 4}}},
                ],
            }
        ]
    )
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.p.resources.guaranteed.gpu"
    assert "12" in issue.message and "8" in issue.message


def test_children_guarantees_must_fit_parent_max() -> None:
    raw = cfg(
        [
            {
                "name": "p",
                "resources": {"max": {"gpu": 8}},
                "queues": [
                    {"name": "a", "resources": {"guaranteed": {"gpu": 5}}},
                    {"name": "b", "resources": {"guaranteed": {"gpu": 5}}},
                ],
            }
        ]
    )
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.p.resources.max.gpu"
    assert "10" in issue.message


def test_guarantees_of_grandchildren_count_for_a_parent_without_guarantee() -> None:
    raw = cfg(
        [
            {
                "name": "org",
                "resources": {"guaranteed": {"gpu": 4}},
                "queues": [
                    {"name": "team", "queues": [{"name": "x", "resources": {"guaranteed": {"gpu": 3}}}]},
                    {"name": "y", "resources": {"guaranteed": {"gpu": 2}}},
                ],
            }
        ]
    )
    assert paths(raw) == ["partitions[0].queues.root.org.resources.guaranteed.gpu"]


def test_oversubscribed_maxes_are_fine() -> None:
    raw = cfg(
        [
            {"name": "a", "resources": {"guaranteed": {"gpu": 4}, "max": {"gpu": 64}}},
            {"name": "b", "resources": {"guaranteed": {"gpu": 4}, "max": {"gpu": 64}}},
        ]
    )
    assert len(root(raw).queues) == 2


# ---- maxapplications --------------------------------------------------------------------------


def test_maxapplications_zero_is_invalid() -> None:
    issue = only_issue(cfg([{"name": "a", "maxapplications": 0}]))
    assert issue.path == "partitions[0].queues.root.a.maxapplications"
    assert "at least 1" in issue.message


@pytest.mark.parametrize("value", [-1, "many", 1.5, True])
def test_maxapplications_must_be_a_positive_integer(value: object) -> None:
    assert only_issue(cfg([{"name": "a", "maxapplications": value}])).path.endswith("maxapplications")


def test_child_maxapplications_must_not_exceed_parent() -> None:
    raw = cfg(
        [
            {
                "name": "p",
                "maxapplications": 5,
                "queues": [{"name": "c", "maxapplications": 6}, {"name": "d", "maxapplications": 2}],
            }
        ]
    )
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.p.c.maxapplications"
    ok = cfg([{"name": "p", "maxapplications": 5, "queues": [{"name": "c", "maxapplications": 5}]}])
    assert queue(root(ok), "root.p.c").max_applications == 5


def test_child_must_set_maxapplications_when_its_parent_does() -> None:
    """yunikorn-core configvalidator.go checkQueueMaxApplications: "maxApplications is either
    undefined or zero, which is not allowed when parent queue's maxApplications is defined"."""
    raw = cfg(
        [{"name": "p", "maxapplications": 5, "queues": [{"name": "c", "maxapplications": 2}, {"name": "d"}]}]
    )
    issue = only_issue(raw)
    assert issue.path == "partitions[0].queues.root.p.d"
    assert "maxapplications" in issue.message and "root.p" in issue.message
    assert "at most 5" in issue.hint
    # The rule holds at every level: a grandchild under a child that sets it must set it too.
    deep = cfg(
        [
            {
                "name": "p",
                "maxapplications": 5,
                "queues": [{"name": "c", "maxapplications": 3, "queues": [{"name": "g"}]}],
            }
        ]
    )
    assert only_issue(deep).path == "partitions[0].queues.root.p.c.g"
    # A parent without maxapplications asks nothing of its children.
    free = cfg([{"name": "p", "queues": [{"name": "c", "maxapplications": 3}, {"name": "d"}]}])
    assert queue(root(free), "root.p.d").max_applications is None


# ---- properties -------------------------------------------------------------------------------


def test_properties_are_lower_cased_normalised_and_kept() -> None:
    props = {
        "Application.Sort.Policy": "StateAware",
        "application.sort.priority": "Disabled",
        "priority.policy": "FENCE",
        "priority.offset": 10,
        "preemption.policy": "disabled",
        "preemption.delay": "1m30s",
        "custom.thing": "Keep-Me",
        "flag": True,
    }
    a = queue(root(cfg([{"name": "a", "properties": props}])), "root.a")
    assert a.properties == {
        "application.sort.policy": "fifo",
        "application.sort.priority": "disabled",
        "priority.policy": "fence",
        "priority.offset": "10",
        "preemption.policy": "disabled",
        "preemption.delay": "1m30s",
        "custom.thing": "Keep-Me",
        "flag": "true",
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("application.sort.policy", "lifo"),
        ("application.sort.priority", "yes"),
        ("priority.policy", "strict"),
        ("priority.offset", "ten"),
        ("priority.offset", str(2**31)),
        ("priority.offset", "1.5"),
        ("preemption.policy", "never"),
        ("preemption.delay", "30"),
        ("preemption.delay", "0s"),
        ("preemption.delay", "-5s"),
        ("preemption.delay", "1d"),
    ],
)
def test_bad_property_values(key: str, value: str) -> None:
    issue = only_issue(cfg([{"name": "a", "properties": {key: value}}]))
    assert issue.path == f"partitions[0].queues.root.a.properties.{key}"


def test_priority_offset_int32_bounds() -> None:
    props = {"priority.offset": str(-(2**31))}
    assert queue(root(cfg([{"name": "a", "properties": props}])), "root.a").properties[
        "priority.offset"
    ] == str(-(2**31))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        ("1h2m3s4ms", 3723.004),
        ("300us", 0.0003),
        ("300µs", 0.0003),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("-1m", -60.0),
        ("+2s", 2.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "1d", "s", "1 m", "1m30", "abc", "1.2.3s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_parse_duration_explains_a_missing_unit() -> None:
    with pytest.raises(DurationError, match="30s"):
        parse_duration("30")


# ---- ACLs in the config ------------------------------------------------------------------------


def test_acls_are_kept_as_written() -> None:
    r = root(cfg([{"name": "a", "submitacl": " dev,test", "adminacl": "sue dev"}]))
    a = queue(r, "root.a")
    assert (a.submit_acl, a.admin_acl) == (" dev,test", "sue dev")
    assert r.submit_acl is None


def test_bad_acl_is_an_error() -> None:
    issue = only_issue(cfg([{"name": "a", "submitacl": "a b c"}]))
    assert issue.path == "partitions[0].queues.root.a.submitacl"
    assert "more than one space" in issue.message


# ---- limits -----------------------------------------------------------------------------------


def test_limits_parse() -> None:
    limits = [
        {"limit": "team", "groups": ["ml"], "maxresources": {"gpu": 8}},
        {"limit": "per user", "users": ["*"], "maxresources": {"gpu": 2, "vcore": 0}, "maxapplications": 3},
        {"groups": ["*"], "maxapplications": 10},
    ]
    (lim_g, lim_u, lim_w) = queue(root(cfg([{"name": "a", "limits": limits}])), "root.a").limits
    assert lim_g.groups == ("ml",) and lim_g.max_resources == {"gpu": 8} and lim_g.max_applications is None
    assert lim_u.description == "per user" and lim_u.max_resources == {"gpu": 2, "vcore": 0}
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
    assert p.root.limits[0].max_resources == {"gpu": 8}


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
    assert (p.node_sort_policy.type, p.node_sort_policy.resource_weights) == ("fair", None)
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
        {"gpu": 1},
        {"gpu": 4},
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


# ---- sizes ------------------------------------------------------------------------------------


def test_default_sizes_when_absent() -> None:
    sizes = parse(cfg([])).sizes
    assert list(sizes) == ["small", "medium", "large", "xlarge"]
    assert sizes == DEFAULT_SIZES
    for name, gpus in (("small", 1), ("medium", 2), ("large", 4), ("xlarge", 8)):
        shapes = sizes[name].shapes
        assert len(shapes) >= 2
        assert all(s.resources["gpu"] == gpus for s in shapes)
        assert shapes[-1].gpu_types == ()  # the last resort: any GPU type
        assert all(s.gpu_types for s in shapes[:-1])
    small = sizes["small"].shapes[0].resources
    assert small == {"gpu": 1, "vcore": 8000, "memory": 64 * GI}
    assert sizes["xlarge"].shapes[0].gpu_types == ("H100",)


def test_custom_sizes_replace_the_defaults() -> None:
    raw = cfg([])
    raw["sizes"] = {
        "tiny": [
            {"resources": {"gpu": 1, "vcore": 2, "memory": "8Gi"}, "gpu_types": ["L4"]},
            {"resources": {"gpu": 1}},
        ],
        "big": {
            "description": "a whole node",
            "shapes": [{"resources": {"gpu": 8}, "gpu_types": ["H100", "A100"]}],
        },
    }
    sizes = parse(raw).sizes
    assert list(sizes) == ["tiny", "big"]
    assert sizes["tiny"].shapes[0].resources == {"gpu": 1, "vcore": 2000, "memory": 8 * GI}
    assert sizes["tiny"].shapes[0].gpu_types == ("L4",) and sizes["tiny"].shapes[1].gpu_types == ()
    assert sizes["big"].description == "a whole node"
    assert sizes["big"].shapes[0].gpu_types == ("H100", "A100")


@pytest.mark.parametrize(
    ("sizes", "path"),
    [
        ({"tiny": []}, "sizes.tiny"),
        ({"tiny": [{"resources": {"vcore": 2}, "gpu_types": ["L4"]}]}, "sizes.tiny[0].gpu_types"),
        ({"tiny": [{"gpu_types": ["L4"]}]}, "sizes.tiny[0]"),
        ({"tiny": [{"resources": {"gpu": "x"}}]}, "sizes.tiny[0].resources.gpu"),
        ({"tiny": [{"resources": {"gpu": 0}}]}, "sizes.tiny[0].resources"),
        ({"tiny": [{"resources": {"gpu": 1}, "gpus": 1}]}, "sizes.tiny[0].gpus"),
        ({"tiny": {"description": "x"}}, "sizes.tiny"),
        ([1, 2], "sizes"),
    ],
)
def test_bad_sizes(sizes: object, path: str) -> None:
    raw = cfg([])
    raw["sizes"] = sizes
    assert only_issue(raw).path == path


# ---- errors collected, and the file edge ------------------------------------------------------


def test_all_errors_are_collected() -> None:
    raw = cfg(
        [
            {"name": "a", "maxapplications": 0},
            {"name": "b.c"},
            {"name": "d", "resources": {"guaranteed": {"gpu": 2}, "max": {"gpu": 1}}},
        ],
        placementrules=[{"name": "nope"}],
    )
    assert sorted(paths(raw)) == [
        "partitions[0].placementrules[0].name",
        "partitions[0].queues.root.a.maxapplications",
        "partitions[0].queues.root.b.c.name",
        "partitions[0].queues.root.d.resources.guaranteed.gpu",
    ]


def test_config_error_is_a_value_error_naming_the_source() -> None:
    with pytest.raises(ValueError, match=r"test\.yaml: partitions\[0\]\.queues\.root\.a\.maxapplications"):
        parse(cfg([{"name": "a", "maxapplications": 0}]))


def test_load_config_text_adds_line_numbers() -> None:
    text = textwrap.dedent(
        """\
        partitions:
          - name: default
            queues:
              - name: root
                queues:
                  - name: a
                    resources:
                      guaranteed: {gpu: 9}
                      max: {gpu: 8}
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "q.yaml")
    (issue,) = info.value.issues
    assert issue.line == 8
    assert "q.yaml: partitions[0].queues.root.a.resources.guaranteed.gpu: " in str(info.value)
    assert "(line 8)" in str(info.value)


def test_yaml_syntax_error_has_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("partitions:\n  - name: x\n   queues: [\n", "bad.yaml")
    (issue,) = info.value.issues
    assert issue.path.startswith("line 3")
    assert "YAML syntax error" in issue.message


def test_unquoted_wildcard_acl_is_explained() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("partitions:\n  - queues:\n      - name: root\n        submitacl: *\n", "q.yaml")
    assert "quote" in info.value.issues[0].hint


def test_duplicate_yaml_keys_are_errors() -> None:
    text = textwrap.dedent(
        """\
        partitions:
          - name: default
            queues:
              - name: root
                submitacl: '*'
                submitacl: bob
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    (issue,) = info.value.issues
    assert issue.line == 6 and "twice" in issue.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    f = tmp_path / "queues.yaml"
    f.write_text(yaml.safe_dump(cfg([{"name": "a", "submitacl": "*"}])))
    assert isinstance(load_config(f).partition(), PartitionConfig)


# ---- CLI --------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize("path", YUNIKORN_CONFIGS, ids=lambda p: p.name)
def test_cli_check_real_configs(path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "root" in result.output and "sizes" in result.output


def test_cli_check_shows_the_tree(tmp_path: Path) -> None:
    f = tmp_path / "queues.yaml"
    f.write_text(
        yaml.safe_dump(
            cfg(
                [
                    {
                        "name": "team-a",
                        "submitacl": "sue ml",
                        "maxapplications": 3,
                        "resources": {"guaranteed": {"gpu": 4}, "max": {"gpu": 8}},
                        "limits": [{"users": ["*"], "maxresources": {"gpu": 2}}],
                    }
                ],
                placementrules=[{"name": "provided"}],
            )
        )
    )
    result = runner.invoke(app, ["config", "check", str(f)])
    assert result.exit_code == 0, result.output
    for text in (
        "team-a",
        "guaranteed {gpu: 4}",
        "max {gpu: 8}",
        "users sue; groups ml",
        "maxapplications 3",
        "provided",
    ):
        assert text in result.output


def test_cli_check_reports_errors_and_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        yaml.safe_dump(cfg([{"name": "team-a", "resources": {"guaranteed": {"gpu": 9}, "max": {"gpu": 8}}}]))
    )
    result = runner.invoke(app, ["config", "check", str(f)])
    assert result.exit_code == 1
    assert f"{f}: partitions[0].queues.root.team-a.resources.guaranteed.gpu: " in result.output
    assert "Hint:" in result.output
    assert "Traceback" not in result.output


def test_cli_check_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "file not found" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_check_json(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(cfg([{"name": "a"}])))
    result = runner.invoke(app, ["config", "check", str(good), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["valid"] is True
    assert data["config"]["partitions"][0]["root"]["queues"][0]["name"] == "a"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg([{"name": "a", "maxapplications": 0}])))
    result = runner.invoke(app, ["config", "check", str(bad), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["valid"] is False
    assert data["errors"][0]["path"] == "partitions[0].queues.root.a.maxapplications"
    assert data["errors"][0]["line"] is not None
