"""The queue configuration: resources, maxapplications, properties, durations and ACLs of queues."""

from __future__ import annotations

import pytest

from gpupool.config import DurationError, parse_duration

from .support import GI, cfg, only_issue, paths, queue, root

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
        "gpu": 8000,
        "ephemeral": 1000,
        "big": 2_000_000,
        "nvidia.com/gpu": 4000,
        "disk": 2**40,
    }


def test_vcore_is_in_milli_cores() -> None:
    assert queue(root(cfg([{"name": "a", "resources": {"max": {"vcore": 2}}}])), "root.a").max == {
        "vcore": 2000
    }


@pytest.mark.parametrize("value", ["10Xi", "-1", "0.0005", "1m5", "lots", True])
def test_bad_gpu_quantity_names_the_resource(value: object) -> None:
    issue = only_issue(cfg([{"name": "team-a", "resources": {"max": {"gpu": value}}}]))
    assert issue.path == "partitions[0].queues.root.team-a.resources.max.gpu"
    assert "invalid quantity" in issue.message
    assert issue.hint


@pytest.mark.parametrize(("value", "milli"), [(8, 8000), ("1.5", 1500), ("500m", 500), (0.25, 250), ("0", 0)])
def test_gpu_quota_is_in_milli_gpu(value: object, milli: int) -> None:
    # Quotas count GPU shares exactly: 1.5 GPUs and 500m (half a GPU) are quantities like vcore's.
    a = queue(root(cfg([{"name": "a", "resources": {"max": {"gpu": value, "gpu/H100": value}}}])), "root.a")
    assert a.max == {"gpu": milli, "gpu/H100": milli}


def test_per_gpu_type_quota() -> None:
    raw = cfg([{"name": "a", "resources": {"guaranteed": {"gpu/H100": 4}, "max": {"gpu": 8, "gpu/H100": 6}}}])
    a = queue(root(raw), "root.a")
    assert a.guaranteed == {"gpu/H100": 4000}
    assert a.max == {"gpu": 8000, "gpu/H100": 6000}


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
    assert a.guaranteed == {"gpu": 9000}


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
