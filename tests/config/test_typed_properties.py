"""Queue properties are parsed once, into typed settings, when the configuration is built.

The core acts on ``QueueConfig.settings`` (a ``QueueProperties``), never on the property strings;
a value it could not act on is a ``ConfigError`` wherever the configuration comes from, instead
of a silent default at run time.
"""

from __future__ import annotations

import pytest

from gpupool.config import ConfigError, parse_config
from gpupool.core.config import ChildTemplate, QueueConfig, QueueProperties
from gpupool.core.queues import build_tree


def test_properties_are_typed_when_the_config_is_parsed() -> None:
    props = {
        "application.sort.policy": "StateAware",
        "application.sort.priority": "Disabled",
        "priority.policy": "FENCE",
        "priority.offset": 10,
        "preemption.policy": "disabled",
        "preemption.delay": "1m30s",
        "custom.thing": "Keep-Me",
    }
    raw = {"partitions": [{"name": "default", "queues": [{"name": "a", "properties": props}]}]}
    a = parse_config(raw).partition().root.queues[0]
    assert a.settings == QueueProperties(
        sort_policy="fifo",
        sort_priority=False,
        priority_policy="fence",
        priority_offset=10,
        preemption_policy="disabled",
        preemption_delay=90.0,
    )
    assert parse_config(raw).partition().root.settings == QueueProperties()


def test_a_bad_priority_offset_is_a_config_error_not_zero() -> None:
    """Today's trap: a queue built without the parser took `ten` as offset 0, silently."""
    with pytest.raises(ConfigError) as info:
        QueueConfig(name="a", properties={"priority.offset": "ten"})
    assert str(info.value) == (
        '<config>: queue a: priority.offset `ten` is not a whole number (write e.g. priority.offset: "10")'
    )
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("props", "text"),
    [
        ({"priority.offset": str(2**31)}, "priority.offset 2147483648 is out of range"),
        ({"preemption.delay": "30"}, "invalid preemption.delay: '30' has no unit"),
        ({"application.sort.policy": "lifo"}, "unknown application sort policy `lifo`"),
    ],
)
def test_every_typed_property_is_checked_when_built(props: dict[str, str], text: str) -> None:
    with pytest.raises(ConfigError) as info:
        ChildTemplate(properties=props)
    assert text in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_the_queue_tree_acts_on_the_typed_settings() -> None:
    child = QueueConfig(name="c", properties={"preemption.delay": "45s"})
    parent = QueueConfig(
        name="p", properties={"priority.offset": "-7", "application.sort.policy": "fair"}, queues=(child,)
    )
    queues = build_tree(QueueConfig(name="root", parent=True, queues=(parent,)))
    assert queues["root.p"].priority_offset == -7
    assert queues["root.p.c"].priority_offset == 0  # not inherited (YuniKorn)
    assert queues["root.p.c"].sort_policy == "fair"  # inherited
    assert queues["root.p.c"].preemption_delay == 45.0
    assert queues["root"].preemption_delay == 30.0
