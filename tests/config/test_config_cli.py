"""``gpupool config check``: the CLI over the queue configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gpupool.cli.main import app

from .support import YUNIKORN_CONFIGS, cfg

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


def test_cli_check_says_quota_preemption_is_not_enforced(tmp_path: Path) -> None:
    """YuniKorn 1.8's quota-change preemption is read but not done: the check says so."""
    f = tmp_path / "queues.yaml"
    on = cfg([{"name": "a"}], preemption={"enabled": True, "quotapreemptionenabled": True})
    f.write_text(yaml.safe_dump(on))
    result = runner.invoke(app, ["config", "check", str(f)])
    assert result.exit_code == 0, result.output
    assert "quota preemption: on, not enforced by gpupool" in " ".join(result.output.split())
    f.write_text(yaml.safe_dump(cfg([{"name": "a"}])))
    result = runner.invoke(app, ["config", "check", str(f)])
    assert "quota preemption: off" in " ".join(result.output.split())
