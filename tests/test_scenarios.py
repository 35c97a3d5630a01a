"""Scenario files through the runner, and the ``gpupool scenario run`` contract (docs/scenarios.md).

* every shared scenario (``tests/scenarios/shared``) and every file of ``tests/scenarios`` must pass;
* every file of ``tests/scenarios_invalid`` is invalid: exit code 2, and the message names the file and the
  key path;
* ``--json`` prints one object per file and line with the documented keys; exit codes 0 / 1 / 2; never a
  traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.scenario import ScenarioError, load_scenario, parse_scenario, run_scenario

HERE = Path(__file__).resolve().parent
OWN_SCENARIOS = HERE / "scenarios"
SHARED_SCENARIOS = OWN_SCENARIOS / "shared"  # the project's shared scenarios, shipped here
INVALID_SCENARIOS = HERE / "scenarios_invalid"

SHARED_FILES = sorted(SHARED_SCENARIOS.glob("*.yaml"))
OWN_FILES = sorted(OWN_SCENARIOS.glob("*.yaml"))
INVALID_FILES = sorted(INVALID_SCENARIOS.glob("*.yaml"))

RESULT_KEYS = {
    "name",
    "file",
    "passed",
    "failures",
    "placed",
    "preempted",
    "pending",
    "rejected",
    "queues",
    "states",
}

# The key path each invalid file must name (a fragment of the message after the file name).
INVALID_KEY_PATHS = {
    "bad-quantity-in-config.yaml": "config.partitions[0].queues.root.team.resources.max.gpu",
    "bad-quantity.yaml": "nodes[0].capacity",
    "expect-bad-state.yaml": "expect.state.app-1",
    "expect-unknown-app.yaml": "expect.state",
    "invalid-child-max.yaml": "config.partitions[0].queues.root.org.team.resources.max.gpu",
    "invalid-queue-config.yaml": "config.partitions[0].queues.root.team.resources.guaranteed.gpu",
    "missing-node.yaml": "running[0].node",
    "missing-required-node.yaml": "pending[0].node",
    "running-elastic-not-a-boolean.yaml": "running[0].elastic",
    "running-queue-not-in-config.yaml": "running[0].queue",
    "share-above-one-gpu.yaml": "pending[0].resources.gpu",
    "ask-of-zero-gpu.yaml": "pending[0].resources.gpu",
    "node-with-half-a-gpu.yaml": "nodes[0].capacity.gpu",
    "unknown-config-key.yaml": "config.partitions[0].queues.root.a.guaranteed",
    "unknown-key.yaml": "pending[0].gpus",
    "yaml-syntax-error.yaml": "line 5",
}

runner = CliRunner()


def _ids(files: list[Path]) -> list[str]:
    return [f.stem for f in files]


def _run_file(path: Path) -> None:
    result = run_scenario(load_scenario(path))
    assert result.passed, f"{path.name}:\n  " + "\n  ".join(result.failures)


# ---- the scenario files ----------------------------------------------------------------------


def test_the_scenario_directories_are_not_empty() -> None:
    assert SHARED_FILES, f"no shared scenarios found in {SHARED_SCENARIOS}"
    assert len(OWN_FILES) >= 50
    assert len(INVALID_FILES) >= 4


@pytest.mark.parametrize("path", SHARED_FILES, ids=_ids(SHARED_FILES))
def test_shared_scenario_passes(path: Path) -> None:
    _run_file(path)


@pytest.mark.parametrize("path", OWN_FILES, ids=_ids(OWN_FILES))
def test_own_scenario_passes(path: Path) -> None:
    _run_file(path)


@pytest.mark.parametrize("path", OWN_FILES, ids=_ids(OWN_FILES))
def test_own_scenario_is_well_formed(path: Path) -> None:
    """Named after its file, described, and saying something about the outcome."""
    raw = yaml.safe_load(path.read_text())
    assert raw["name"] == path.stem
    assert len(str(raw.get("description", ""))) > 40, "say what the scenario shows"
    assert raw.get("expect"), "a scenario without expectations checks nothing"


def test_scenario_names_are_unique() -> None:
    names = [yaml.safe_load(p.read_text())["name"] for p in SHARED_FILES + OWN_FILES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path", INVALID_FILES, ids=_ids(INVALID_FILES))
def test_invalid_scenario_is_rejected_with_file_and_key_path(path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert str(path) in message
    assert info.value.file == str(path)
    expected = INVALID_KEY_PATHS[path.name]
    assert expected in message, message
    assert "Traceback" not in message


def test_every_invalid_file_has_an_expected_key_path() -> None:
    assert {p.name for p in INVALID_FILES} == set(INVALID_KEY_PATHS)


def test_scenario_keys_are_read_as_the_queue_configuration_reads_them() -> None:
    """The config's readers: keys ignore case, an unknown key gets a hint, the rest is counted."""
    config = {"partitions": [{"name": "default", "queues": [{"name": "root", "submitacl": "*"}]}]}
    node = {"Name": "n1", "Capacity": {"gpu": 8}}
    assert parse_scenario({"config": config, "Nodes": [node]}, "s.yaml").nodes[0].name == "n1"
    ask = {"id": "a1", "app": "app-1", "gpus": 1, "priority": "high"}
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"config": config, "pending": [ask]}, "s.yaml")
    assert info.value.path == "pending[0].gpus"
    assert info.value.message == (
        "unknown key `gpus` in a pending ask (and 2 more). Hint: an ask's or allocation's size goes "
        "under `resources:`, e.g. resources: {gpu: 1}"
    )


# ---- the CLI contract ------------------------------------------------------------------------


def _invoke(*args: str | Path) -> Any:
    return runner.invoke(app, ["scenario", "run", *[str(a) for a in args]])


def _json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _scenario(tmp_path: Path, name: str, expect: dict[str, Any]) -> Path:
    doc = {
        "name": name,
        "description": "a 4-GPU ask on an empty 8-GPU node",
        "config": {
            "partitions": [
                {"name": "default", "queues": [{"name": "root", "submitacl": "*", "queues": [{"name": "a"}]}]}
            ]
        },
        "nodes": [{"name": "node-1", "capacity": {"gpu": 8}}],
        "pending": [{"id": "ask-1", "app": "app-1", "queue": "root.a", "resources": {"gpu": 4}}],
        "expect": expect,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_cli_json_one_object_per_file_with_the_documented_keys(tmp_path: Path) -> None:
    files = [
        _scenario(tmp_path, "good-1", {"placed": {"ask-1": "node-1"}}),
        _scenario(tmp_path, "good-2", {"state": {"app-1": "running"}, "queue": {"app-1": "root.a"}}),
    ]
    result = _invoke(*files, "--json")
    assert result.exit_code == 0, result.output
    objects = _json_lines(result.stdout)
    assert len(objects) == 2
    for obj, path in zip(objects, files, strict=True):
        assert set(obj) == RESULT_KEYS
        assert obj["file"] == str(path)
        assert obj["name"] == path.stem
        assert obj["passed"] is True
        assert obj["failures"] == []
        assert obj["placed"] == {"ask-1": "node-1"}
        assert obj["preempted"] == []
        assert obj["pending"] == []
        assert obj["rejected"] == {}
        assert obj["queues"] == {"app-1": "root.a"}
        assert obj["states"] == {"app-1": "running"}


def test_cli_json_reports_preempted_pending_and_rejected() -> None:
    path = SHARED_SCENARIOS / "s13a-baseline-one-victim.yaml"
    result = _invoke(path, "--json")
    assert result.exit_code == 0, result.output
    (obj,) = _json_lines(result.stdout)
    assert set(obj) == RESULT_KEYS
    assert len(obj["preempted"]) == 1
    assert obj["placed"] == {"ask": "node-1"}

    rejected = OWN_SCENARIOS / "place-10-no-rule-matched-is-rejected.yaml"
    (obj,) = _json_lines(_invoke(rejected, "--json").stdout)
    assert "no placement rule matched" in obj["rejected"]["app-lost"]
    assert obj["states"]["app-lost"] == "rejected"


def test_cli_exit_0_when_all_pass_human_output(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "good", {"placed": {"ask-1": "any"}})
    result = _invoke(path)
    assert result.exit_code == 0
    assert "PASS" in result.output
    assert "1 passed, 0 failed, 0 invalid" in result.output


def test_cli_exit_1_on_a_wrong_expectation(tmp_path: Path) -> None:
    good = _scenario(tmp_path, "good", {"placed": {"ask-1": "node-1"}})
    wrong = _scenario(tmp_path, "wrong", {"pending": ["ask-1"]})
    result = _invoke(good, wrong, "--json")
    assert result.exit_code == 1, result.output
    objects = {o["name"]: o for o in _json_lines(result.stdout)}
    assert objects["good"]["passed"] is True
    assert objects["wrong"]["passed"] is False
    assert objects["wrong"]["failures"] == ["pending: ask-1 expected pending, got placed on node-1"]
    assert "Traceback" not in result.output

    human = _invoke(wrong)
    assert human.exit_code == 1
    assert "FAIL" in human.output
    assert "ask-1 expected pending" in human.output


def test_cli_exit_2_on_an_invalid_file_even_if_others_fail(tmp_path: Path) -> None:
    wrong = _scenario(tmp_path, "wrong", {"pending": ["ask-1"]})
    invalid = INVALID_SCENARIOS / "unknown-key.yaml"
    result = _invoke(wrong, invalid, "--json")
    assert result.exit_code == 2
    objects = _json_lines(result.stdout)
    assert len(objects) == 2
    bad = next(o for o in objects if o["file"] == str(invalid))
    assert bad["passed"] is False
    assert "pending[0].gpus" in " ".join(bad["failures"])
    assert "Traceback" not in result.output


def test_cli_json_line_of_an_invalid_file_has_every_documented_key() -> None:
    """A consumer reads every line the same way: an invalid file's line carries the same keys."""
    result = _invoke(INVALID_SCENARIOS / "missing-node.yaml", "--json")
    assert result.exit_code == 2
    (obj,) = _json_lines(result.stdout)
    assert set(obj) >= RESULT_KEYS, f"missing keys: {sorted(RESULT_KEYS - set(obj))}"
    assert obj["passed"] is False
    assert "running[0].node" in " ".join(obj["failures"])


@pytest.mark.parametrize("path", INVALID_FILES, ids=_ids(INVALID_FILES))
def test_cli_invalid_file_exit_2_names_file_and_key(path: Path) -> None:
    # A narrow terminal: the message stays one line whatever the width and the path's length.
    result = runner.invoke(app, ["scenario", "run", str(path)], env={"COLUMNS": "40"})
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = result.output
    [line] = [line for line in text.splitlines() if "INVALID" in line]
    assert str(path) in line
    assert INVALID_KEY_PATHS[path.name] in line
    assert "Traceback" not in text


def test_cli_missing_file_is_invalid_not_a_traceback(tmp_path: Path) -> None:
    result = _invoke(tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_cli_accepts_every_shared_and_own_scenario_at_once(tmp_path: Path) -> None:
    """The whole suite in one invocation, as `make up` runs it: one JSON line per file."""
    files = SHARED_FILES + OWN_FILES
    result = _invoke(*files, "--json")
    objects = _json_lines(result.stdout)
    assert [o["file"] for o in objects] == [str(f) for f in files]
    failed = [o["name"] for o in objects if not o["passed"]]
    assert result.exit_code == (1 if failed else 0)
    assert all(set(o) == RESULT_KEYS for o in objects)


def test_runner_is_deterministic() -> None:
    """The same file twice gives the same result, field by field."""
    for path in (OWN_SCENARIOS / "pre-43-gpu-team-reclaims-its-guarantee.yaml", *SHARED_FILES[:3]):
        first = run_scenario(load_scenario(path)).to_json()
        second = run_scenario(load_scenario(path)).to_json()
        assert first == second


def test_scenario_copied_elsewhere_still_runs(tmp_path: Path) -> None:
    """Scenarios do not depend on where they live."""
    src = OWN_SCENARIOS / "gang-01-placed-whole-in-one-cycle.yaml"
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    result = run_scenario(load_scenario(dst))
    assert result.passed, result.failures
    assert result.file == str(dst)
