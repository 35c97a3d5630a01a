"""The ``session.*`` queue properties: typed once, inherited per key, cross-checked with line numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpupool.config import ConfigError
from gpupool.configfile import load_config_text
from gpupool.core.config import (
    DEFAULT_SESSION_GPU_THRESHOLD,
    DEFAULT_SESSION_IDLE_TIMEOUT,
    DEFAULT_SESSION_IDLE_TIMEOUT_MAX,
    DEFAULT_SESSION_LIFETIME,
    DEFAULT_SESSION_LIFETIME_MAX,
    DEFAULT_SESSION_WARNING,
    QueueConfig,
    SessionLimits,
)
from gpupool.core.queues import Queue, build_tree, settings_from_template

TREE = """\
partitions:
  - name: default
    queues:
      - name: root
        submitacl: '*'
        properties:
          session.idle.timeout.max: 2h
          Session.Idle.GPU.Threshold: 10
        queues:
          - name: research
            properties:
              session.idle.timeout: 1h
              session.lifetime: 12h
            queues:
              - name: vision
                properties:
                  session.warning: 10m
          - name: students
            parent: true
            properties:
              session.idle.timeout: 15m
              session.lifetime.max: 10h
            childtemplate:
              properties:
                session.idle.gpu.threshold: 20%
"""


def test_defaults_are_one_definition_each() -> None:
    assert SessionLimits() == SessionLimits(
        idle_timeout=DEFAULT_SESSION_IDLE_TIMEOUT,
        idle_timeout_max=DEFAULT_SESSION_IDLE_TIMEOUT_MAX,
        lifetime=DEFAULT_SESSION_LIFETIME,
        lifetime_max=DEFAULT_SESSION_LIFETIME_MAX,
        warning=DEFAULT_SESSION_WARNING,
        gpu_threshold=DEFAULT_SESSION_GPU_THRESHOLD,
    )
    assert (DEFAULT_SESSION_IDLE_TIMEOUT, DEFAULT_SESSION_IDLE_TIMEOUT_MAX) == (1800.0, 14400.0)
    assert (DEFAULT_SESSION_LIFETIME, DEFAULT_SESSION_LIFETIME_MAX) == (28800.0, 86400.0)
    assert (DEFAULT_SESSION_WARNING, DEFAULT_SESSION_GPU_THRESHOLD) == (300.0, 5.0)


def test_each_session_property_is_inherited_on_its_own() -> None:
    queues = build_tree(load_config_text(TREE).partition().root)
    assert queues["root"].sessions == SessionLimits(idle_timeout_max=7200.0, gpu_threshold=10.0)
    assert queues["root.research.vision"].sessions == SessionLimits(
        idle_timeout=3600.0, idle_timeout_max=7200.0, lifetime=43200.0, warning=600.0, gpu_threshold=10.0
    )
    assert queues["root.students"].sessions == SessionLimits(
        idle_timeout=900.0, idle_timeout_max=7200.0, lifetime_max=36000.0, gpu_threshold=10.0
    )


def test_a_queue_made_from_a_child_template_takes_its_properties() -> None:
    queues = build_tree(load_config_text(TREE).partition().root)
    students = queues["root.students"]
    # As the scheduler makes a queue a placement rule creates (Scheduler._create_queues).
    ada = Queue(
        "ada", students, settings_from_template(students.child_template, is_parent=False), dynamic=True
    )
    assert ada.sessions == replace(students.sessions, gpu_threshold=20.0)


def test_properties_are_normalised_in_the_config() -> None:
    root = load_config_text(TREE).partition().root
    assert root.properties == {"session.idle.timeout.max": "2h", "session.idle.gpu.threshold": "10%"}


BAD = [
    (
        "session.idle.timeout: 30",
        "invalid session.idle.timeout: '30' has no unit (write e.g. 30s for seconds)",
    ),
    ("session.lifetime: 0s", "session.lifetime must be more than 0, got `0s`"),
    ("session.warning: soon", "invalid session.warning: 'soon' is not a duration"),
    (
        "session.idle.gpu.threshold: 0",
        "session.idle.gpu.threshold `0` is not a percentage above 0 and at most 100",
    ),
    ("session.idle.gpu.threshold: 101%", "is not a percentage above 0 and at most 100"),
    ("session.idle.gpu.threshold: high", "is not a percentage above 0 and at most 100"),
]


@pytest.mark.parametrize(("line", "text"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_one_line_with_its_line_number(line: str, text: str) -> None:
    yaml = TREE.replace("session.warning: 10m", line)
    with pytest.raises(ConfigError) as info:
        load_config_text(yaml, "queues.yaml")
    (issue,) = info.value.issues
    assert text in issue.message
    assert issue.line == 17  # the line of `session.warning: 10m` in TREE
    assert issue.path.startswith("partitions[0].queues.root.research.vision.properties.session.")


def test_a_bad_value_built_without_the_parser_is_a_config_error_too() -> None:
    with pytest.raises(ConfigError) as info:
        QueueConfig(name="a", properties={"session.idle.timeout": "half an hour"})
    assert str(info.value).startswith("<config>: queue a: invalid session.idle.timeout: 'half an hour'")
    assert len(str(info.value).splitlines()) == 1


CROSS = [
    (
        TREE.replace("session.idle.timeout: 1h", "session.idle.timeout: 3h"),
        12,
        "partitions[0].queues.root.research.properties.session.idle.timeout",
        "session.idle.timeout 3h is more than session.idle.timeout.max 2h (inherited, or the default)",
        "make session.idle.timeout at most 2h or raise session.idle.timeout.max",
    ),
    (
        TREE.replace("session.lifetime.max: 10h", "session.lifetime.max: 4h"),
        22,
        "partitions[0].queues.root.students.properties.session.lifetime.max",
        "session.lifetime 8h (inherited, or the default) is more than session.lifetime.max 4h",
        "make session.lifetime at most 4h or raise session.lifetime.max",
    ),
    (
        TREE.replace("session.warning: 10m", "session.warning: 1h"),
        17,
        "partitions[0].queues.root.research.vision.properties.session.warning",
        "session.warning 1h is not shorter than session.idle.timeout 1h (inherited, or the default)",
        "a session is warned that long before its GPUs are reclaimed: make session.warning shorter",
    ),
    (
        TREE.replace("session.idle.gpu.threshold: 20%", "session.warning: 20m"),
        25,
        "partitions[0].queues.root.students.childtemplate.properties.session.warning",
        "session.warning 20m is not shorter than session.idle.timeout 15m (inherited, or the default)",
        "a session is warned that long before its GPUs are reclaimed: make session.warning shorter",
    ),
]


@pytest.mark.parametrize(
    ("yaml", "line", "path", "message", "hint"), CROSS, ids=["max", "inherited", "warning", "template"]
)
def test_values_that_do_not_fit_together_are_refused_where_they_are_set(
    yaml: str, line: int, path: str, message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(yaml, "queues.yaml")
    (issue,) = info.value.issues
    assert (issue.path, issue.message, issue.hint, issue.line) == (path, message, hint, line)
    assert info.value.lines()[0] == f"queues.yaml: {path}: {message} (line {line})"


def test_a_child_does_not_repeat_its_parents_problem() -> None:
    yaml = TREE.replace("session.idle.timeout.max: 2h", "session.idle.timeout.max: 10m")
    with pytest.raises(ConfigError) as info:
        load_config_text(yaml, "queues.yaml")
    where = [(i.path.rsplit(".properties.", 1)[0], i.line) for i in info.value.issues]
    # root's max is below the default 30m; research's 1h and students' 15m are above it.
    assert where == [
        ("partitions[0].queues.root", 7),
        ("partitions[0].queues.root.research", 12),
        ("partitions[0].queues.root.students", 21),
    ]
