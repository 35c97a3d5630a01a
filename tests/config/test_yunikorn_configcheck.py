"""yunikorn-core's own config-validator tests, translated into ``gpupool config check`` verdicts.

Source: apache/yunikorn-core ``pkg/common/configs/configvalidator_test.go``, and the sub-cases of
``pkg/scheduler/placement/*_rule_test.go`` whose rule chain YuniKorn refuses when it loads the
configuration (the rest of those tests are the ``yk-place-*`` scenarios). Every case below names
its Go test and sub-case. Each builds a complete ``queues.yaml`` and runs it through
``load_config_text`` (the function behind ``gpupool config check``; a sample of cases also goes
through the CLI itself) and asserts the verdict: accepted, or refused with a clear one-line error
that names the queue (or rule) at fault.

Adjustments, so that YuniKorn's full validator (``Validate``) would give the same verdict as the
single check function the Go test calls:

* The Go tests hand a bare ``QueueConfig`` (often named ``parent`` or unnamed) to one check
  function. Here that queue sits under ``root`` (YuniKorn forbids resources on ``root``); unnamed
  queues get the names ``parent``, ``child1``, ``child2``.
* ``createLimitMaxResources`` / ``createLimitMaxApplications`` build the limits from a Go map, in
  random order; here a wildcard entry always comes after the named ones (YuniKorn's ``checkLimits``
  refuses a named user or group after the wildcard, and a group wildcard as the first group limit).
* ``createQueueWithSumGuaranteedHigherThanParentMax`` names both children ``child1``; the second is
  ``child2`` here (``checkQueues`` refuses duplicate names).
* ``TestCheckPlacementRule``'s "valid rule name start with underscore" (``_fixed``) passes
  ``checkPlacementRule`` (an identifier), but YuniKorn's placement manager then refuses the unknown
  rule when it builds the partition, so the configuration as a whole is refused; so does gpupool.
* ``TestCheckQueueHierarchyForPlacement`` calls the path walker directly; here each case is a
  placement rule over the same queue tree (``createQueueConfig``), with ``users`` a leaf where the
  Go case sets ``Parent = false``.
* ``TestCheckLimitsStructure``'s "top queue is not root" errs in ``checkLimitsStructure`` alone, but
  ``Validate`` first inserts a ``root`` above a top queue that is not ``root``, so YuniKorn accepts
  the configuration; so must gpupool.
* ``TestCheckLimits`` cases with no ``maxapplications`` on the queue are given none; cases that
  set both a queue ``maxapplications`` and the Go test's ``MaxApplications: 0`` on a limit write
  the limit without ``maxapplications`` (YuniKorn's zero value means "not set").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.config import ConfigError
from gpupool.configfile import load_config_text

from .yunikorn_cases_limits import (
    LA,
    LIMIT_APPS_CASES,
    LIMIT_RESOURCE_CASES,
    LR,
)
from .yunikorn_cases_queues import (
    FILTER_CASES,
    MAXAPPS_CASES,
    PLACEMENT_CASES,
    RESOURCE_CASES,
    RULE_CASES,
    H,
    R,
)
from .yunikorn_cases_structure import (
    CL,
    LIMITS_CASES,
    NODE_SORT_CASES,
    QUEUE_NAME_CASES,
    QUEUES_CASES,
    QUEUES_STRUCTURE_CASES,
    RULE_TEST_CASES,
    STRUCTURE_CASES,
)
from .yunikorn_support import Case

CASES: list[Case] = [
    *RESOURCE_CASES,
    *MAXAPPS_CASES,
    *PLACEMENT_CASES,
    *RULE_CASES,
    *FILTER_CASES,
    *LIMIT_RESOURCE_CASES,
    *LIMIT_APPS_CASES,
    *LIMITS_CASES,
    *STRUCTURE_CASES,
    *QUEUES_STRUCTURE_CASES,
    *QUEUES_CASES,
    *NODE_SORT_CASES,
    *QUEUE_NAME_CASES,
    *RULE_TEST_CASES,
]


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id, marks=list(case.marks))


def _text(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_yunikorn_config_verdict(case: Case) -> None:
    text = _text(case.raw)
    if not case.refused:
        load_config_text(text, "queues.yaml")
        return
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "queues.yaml")
    lines = info.value.lines()
    assert lines, "a refusal must say why"
    message = info.value.render()
    assert "Traceback" not in message
    # every problem is one line naming the file, then where and what (a hint may follow on its own line)
    for line in lines:
        assert line.startswith("queues.yaml: ") or line.startswith("  Hint: "), line
    # gpupool reports queue names as it stores them, lower-cased (YuniKorn's names ignore case)
    assert case.where.lower() in message.lower(), f"the error should name {case.where!r}:\n{message}"


def test_every_go_sub_case_is_translated_once() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    per_test: dict[str, int] = {}
    for c in CASES:
        per_test[c.go] = per_test.get(c.go, 0) + 1
    # the sizes of the Go tables

    assert per_test[R] == 18
    assert per_test[LR] == 20
    assert per_test[LA] == 14
    assert per_test[CL] == 15
    assert per_test[H] == 10


runner = CliRunner()


@pytest.mark.parametrize(
    "case",
    [
        _param(c)
        for c in CASES
        if c.sub
        in {
            "Valid configuration",
            "Higher max resource in child queues",
            "leaf queue user maxresources exceed parent queue wildcard maxresources",
            "referencing root.users, but users is a leaf",
        }
    ],
)
def test_gpupool_config_check_cli_gives_the_same_verdict(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "queues.yaml"
    path.write_text(_text(case.raw))
    result = runner.invoke(app, ["config", "check", str(path)])
    assert "Traceback" not in result.output
    if case.refused:
        assert result.exit_code == 1, result.output
        assert case.where.lower() in result.output.lower()
        assert "invalid" in result.output
    else:
        assert result.exit_code == 0, result.output
