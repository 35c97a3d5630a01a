"""Scenario translations of yunikorn-core tests that wait for branch conf-fix (issue 11 divergences 1-6).

Each file of ``tests/scenarios_pending_conf_fix`` runs as ``xfail(strict=True)``: it must still fail
today, and it fails this test as soon as it passes, so that it is moved to ``tests/scenarios/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gpupool.scenario import load_scenario, run_scenario

PENDING = Path(__file__).resolve().parent / "scenarios_pending_conf_fix"
FILES = sorted(PENDING.glob("*.yaml"))


def _divergence(path: Path) -> str:
    found = re.search(r"divergence (\d)", str(yaml.safe_load(path.read_text())["description"]))
    assert found, f"{path.name} must name the issue 11 divergence it waits for"
    return found.group(1)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            f,
            id=f.stem,
            marks=pytest.mark.xfail(
                strict=True, reason=f"issue 11 divergence {_divergence(f)}, branch conf-fix"
            ),
        )
        for f in FILES
    ],
)
def test_pending_translation(path: Path) -> None:
    result = run_scenario(load_scenario(path))
    assert result.passed, f"{path.name}:\n  " + "\n  ".join(result.failures)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_pending_translation_is_well_formed(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    assert raw["name"] == path.stem
    assert "yunikorn-core" in raw["description"]
    assert raw.get("expect")
