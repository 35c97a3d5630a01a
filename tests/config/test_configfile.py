"""The queue configuration: every error collected, and the file edge (YAML, lines, files)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from gpupool.config import ConfigError
from gpupool.configfile import load_config, load_config_text
from gpupool.core.config import PartitionConfig

from .support import cfg, parse, paths

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
