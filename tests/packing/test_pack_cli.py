"""``gpupool bench pack`` through typer's CliRunner: JSON keys, human output, report, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpupool.cli.bench_cmd import UsageProblem, parse_seeds
from gpupool.cli.main import app
from gpupool.datasets import ALIBABA_NODES, ALIBABA_PODS, ENV_TRACE_DIR, trace_file

from .conftest import POD_HEADER_SHORT, Writer

runner = CliRunner()


@pytest.fixture
def files(small_trace: tuple[Path, Path]) -> list[str]:
    nodes, pods = small_trace
    return ["bench", "pack", "--nodes", str(nodes), "--pods", str(pods)]


def test_json_output(files: list[str]) -> None:
    result = runner.invoke(app, [*files, "--policy", "fgd", "--seeds", "42,43", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "policy",
        "pods_file",
        "seeds",
        "alloc_pct_at_100",
        "alloc_pct_at_130",
        "per_seed",
        "seconds",
    }
    assert payload["policy"] == "fgd"
    assert payload["seeds"] == [42, 43]
    assert payload["pods_file"].endswith("pods.csv")
    assert [s["seed"] for s in payload["per_seed"]] == [42, 43]
    for seed in payload["per_seed"]:
        assert set(seed) == {"seed", "alloc_pct_at_100", "alloc_pct_at_130", "failed_pods"}
        assert isinstance(seed["failed_pods"], int)


def test_human_output_and_report(files: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [*files, "--policy", "gpupool", "--seeds", "1-3", "--ratio", "1.5", "--report", str(report)],
    )
    assert result.exit_code == 0, result.output
    assert "mean" in result.stdout
    assert "gpupool" in result.stdout
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 2  # the whole curve and a zoom on 80-100% allocated
    assert "polyline" in page
    assert "gpupool" in page and "1.5" in page
    embedded = page.split('<script type="application/json" id="result">')[1].split("</script>")[0]
    assert json.loads(embedded)["seeds"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("spec", "seeds"),
    [("42-51", list(range(42, 52))), ("42,43,50-51", [42, 43, 50, 51]), ("7", [7]), ("3, 1-2,3", [3, 1, 2])],
)
def test_parse_seeds(spec: str, seeds: list[int]) -> None:
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize("spec", ["", "a", "5-", "5-3", "1,,2", "-3", "1-2-3"])
def test_parse_seeds_rejects(spec: str) -> None:
    with pytest.raises(UsageProblem):
        parse_seeds(spec)


def _fails(args: list[str], *needles: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr


def test_unknown_policy(files: list[str]) -> None:
    _fails([*files, "--policy", "tetris"], "unknown packing policy 'tetris'", "bestfit", "gpupool")


def test_bad_seeds(files: list[str]) -> None:
    _fails([*files, "--policy", "fgd", "--seeds", "42-x"], "bad --seeds")


def test_bad_ratio(files: list[str]) -> None:
    _fails([*files, "--policy", "fgd", "--ratio", "0"], "bad --ratio")


def test_missing_file(small_trace: tuple[Path, Path], tmp_path: Path) -> None:
    _, pods = small_trace
    args = ["bench", "pack", "--nodes", str(tmp_path / "none.csv"), "--pods", str(pods), "--policy", "fgd"]
    _fails(args, "file not found", "Hint:")


def test_defaults_are_the_trace_the_repository_ships(
    small_trace: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --nodes / --pods, the Alibaba files under data/ are read: a clone needs no paths."""
    assert trace_file(ALIBABA_NODES).is_file() and trace_file(ALIBABA_PODS).is_file()
    assert trace_file(ALIBABA_NODES).is_relative_to(Path(__file__).resolve().parents[2] / "data")
    nodes, pods = small_trace
    folder = tmp_path / "traces" / "alibaba-gpu-v2023"
    folder.mkdir(parents=True)
    (folder / Path(ALIBABA_NODES).name).write_bytes(nodes.read_bytes())
    (folder / Path(ALIBABA_PODS).name).write_bytes(pods.read_bytes())
    monkeypatch.setenv(ENV_TRACE_DIR, str(tmp_path / "traces"))
    result = runner.invoke(app, ["bench", "pack", "--seeds", "42", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["policy"] == "gpupool" and Path(payload["pods_file"]).parent == folder
    monkeypatch.setenv(ENV_TRACE_DIR, str(tmp_path / "nowhere"))
    _fails(["bench", "pack"], "file not found", ENV_TRACE_DIR)


def test_bad_row_and_skipping(small_trace: tuple[Path, Path], write_pods: Writer) -> None:
    nodes, _ = small_trace
    pods = write_pods(
        ["p0,4000,8192,1,1000", "p1,4000,8192,one,1000", "p2,2000,4096,1,500"],
        name="bad.csv",
        header=POD_HEADER_SHORT,
    )
    args = [
        "bench",
        "pack",
        "--nodes",
        str(nodes),
        "--pods",
        str(pods),
        "--policy",
        "bestfit",
        "--seeds",
        "1",
    ]
    _fails(args, f"{pods.name}:3", "num_gpu='one' is not a number", "Hint:")
    result = runner.invoke(app, [*args, "--skip-bad-rows", "--json"])
    assert result.exit_code == 0, result.output
    assert "Skipped 1 bad row(s)" in result.stderr
    assert json.loads(result.stdout)["seeds"] == [1]


def test_nodes_without_gpus(write_nodes: Writer, small_trace: tuple[Path, Path]) -> None:
    _, pods = small_trace
    nodes = write_nodes(["cpu-1,32000,65536,0,"], name="cpu_nodes.csv")
    args = ["bench", "pack", "--nodes", str(nodes), "--pods", str(pods), "--policy", "fgd"]
    _fails(args, "no node has a GPU")
