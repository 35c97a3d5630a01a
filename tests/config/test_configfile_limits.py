"""Hostile and careless configurations: refused with one clear error, never a traceback or a hang."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.config import ConfigError
from gpupool.configfile import MAX_DEPTH, load_config_text

runner = CliRunner()


def _config(resources: str) -> str:
    return (
        "partitions:\n"
        "  - name: default\n"
        "    queues:\n"
        "      - name: root\n"
        "        queues:\n"
        "          - name: a\n"
        f"            resources: {resources}\n"
    )


def _nested(levels: int) -> str:
    return "partitions: " + "[" * levels + "]" * levels + "\n"


def _alias_bomb(depth: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, depth + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "q.yaml")
    return str(info.value)


def test_a_config_nested_too_deep_is_refused_by_config_check(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(_nested(243))
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert f"nested more than {MAX_DEPTH} levels deep" in result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output


def test_nesting_within_the_limit_reaches_validation():
    assert "nested more than" not in _error(_nested(MAX_DEPTH - 1))


def test_an_alias_bomb_is_refused_at_once():
    started = time.perf_counter()
    message = _error(_alias_bomb(8))
    assert "expands to more than" in message and "aliases" in message
    assert time.perf_counter() - started < 5  # not a benchmark: the bomb would take minutes


def test_a_huge_integer_is_an_error_not_a_crash():
    assert "YAML error" in _error("partitions: " + "9" * 5000 + "\n")


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        ("{guaranteed: {gpu: 2, gpu/H100: 4}}", "guaranteed gpu/H100 4 is more than guaranteed gpu 2"),
        ("{max: {gpu: 2, gpu/H100: 4}}", "max gpu/H100 4 is more than max gpu 2"),
        ("{max: {memory: 99999999999999999999Ei}}", "too large"),
        ("{max: {gpu: 9223372036854775808}}", "too large"),
    ],
)
def test_impossible_quotas_are_refused(resources, words):
    assert words in _error(_config(resources))


def test_quotas_at_the_limits_are_accepted():
    load_config_text(_config("{guaranteed: {gpu: 4, gpu/H100: 4}, max: {gpu: 8, gpu/H100: 8}}"))
    load_config_text(_config("{max: {memory: 8Ei, gpu: 9223372036854775807}}".replace("8Ei", "7Ei")))
