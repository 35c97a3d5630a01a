"""The sim commands' contracts on tiny inputs: JSON keys, charts, report, exit 2 on bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gpupool.cli.sim_cmd import sim_app
from gpupool.datasets import ENV_TRACE_DIR, PHILLY_JOBS, PHILLY_VCS, trace_file

KEYS = {
    "mode", "jobs", "gpu_utilization_pct", "wait_s_p50", "wait_s_p95", "jct_s_mean", "preemptions",
    "lost_gpu_hours", "guarantee_attainment_pct", "per_queue", "sim_seconds_per_wall_second", "seconds",
}  # fmt: skip

runner = CliRunner()


def files(tmp_path, rows: str = "2017-10-01 00:00:00,600,8,4800,vca\n2017-10-01 00:01:00,300,4,1200,vcb\n"):
    j = tmp_path / "philly.csv"
    v = tmp_path / "vc.csv"
    j.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n" + rows)
    v.write_text("vc,node num\nvca,1\nvcb,1\n")
    return ["--jobs-file", str(j), "--vc-file", str(v)]


def test_replay_json_contract(tmp_path):
    r = runner.invoke(sim_app, ["replay", "--trace", "philly", "--mode", "quota", "--json", *files(tmp_path)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) >= KEYS and out["mode"] == "quota" and out["jobs"] == 2
    assert set(out["per_queue"]) == {"root.vca", "root.vcb"}


def test_replay_all_modes_with_plots_and_report(tmp_path):
    args = [
        "replay",
        "--mode",
        "all",
        "--json",
        "--plot",
        str(tmp_path / "p"),
        "--report",
        str(tmp_path / "r.html"),
    ]
    r = runner.invoke(sim_app, [*args, *files(tmp_path)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [x["mode"] for x in out["runs"]] == ["static", "quota", "gpupool"]
    assert all(set(x) >= KEYS for x in out["runs"])
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == ["usage_gpupool.png", "usage_quota.png", "usage_static.png", "wait_cdf.png"]
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<style>" in html and "Configuration" in html


def test_synthetic_human_summary(tmp_path):
    r = runner.invoke(
        sim_app, ["replay", "--trace", "synthetic", "--days", "0.3", "--seed", "5", "--tenants", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "GPU utilisation" in r.stdout and "gpupool" in r.stdout


def test_synthetic_with_the_philly_job_mix_and_batches(tmp_path):
    rows = "2017-10-01 00:00:00,600,1,600,vca\n"
    rows += "2017-10-01 00:00:10,3000,8,1,vcb\n2017-10-01 00:00:20,900,8,1,vcb\n"  # a batch of two
    base = ["replay", "--trace", "synthetic", "--days", "0.5", "--tenants", "2", "--autoscale", "--json"]
    r = runner.invoke(sim_app, [*base, "--job-mix", "philly", *files(tmp_path, rows)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["source"]["job_mix"] == "philly" and out["source"]["job_mix_jobs"] == 3
    assert out["source"]["job_mix_submissions"] == 3 and out["configs"][0]["jobs"] > 0
    r = runner.invoke(sim_app, [*base, "--job-mix", "philly-batches", *files(tmp_path, rows)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["source"]["job_mix"] == "philly-batches" and out["source"]["job_mix_submissions"] == 2


def test_autoscale_seeds_judge_the_targets_per_seed():
    args = ["replay", "--trace", "synthetic", "--days", "0.3", "--tenants", "2", "--seed", "4"]
    r = runner.invoke(sim_app, [*args, "--autoscale", "--seeds", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [s["seed"] for s in out["seeds"]] == [4, 5, 6] and out["met"]["seeds"] == 3
    one = runner.invoke(sim_app, [*args[:-1], "5", "--autoscale", "--json"])
    assert one.exit_code == 0, one.output
    alone = json.loads(one.stdout)
    # The second seed's row is what a run of that seed alone gives.
    assert out["seeds"][1]["targets"] == alone["targets"]
    assert out["seeds"][1]["configs"]["gpupool"]["gpu_hours"] == alone["configs"][0]["gpu_hours"]


def test_autoscale_configs_runs_only_those_named_and_judges_no_target():
    args = ["replay", "--trace", "synthetic", "--days", "0.3", "--tenants", "2", "--seed", "4", "--autoscale"]
    r = runner.invoke(sim_app, [*args, "--configs", "gpupool", "--json"])
    assert r.exit_code == 0, r.output
    alone = json.loads(r.stdout)
    assert [c["name"] for c in alone["configs"]] == ["gpupool"]
    assert alone["targets"] is None and alone["target1_met"] is None and alone["target2_idle_ratio"] is None
    full = json.loads(runner.invoke(sim_app, [*args, "--json"]).stdout)
    assert [c["name"] for c in full["configs"]] == ["gpupool", "no-headroom", "ray-like"]
    assert full["configs"][0]["gpu_hours"] == alone["configs"][0]["gpu_hours"]  # the same run
    table = runner.invoke(sim_app, [*args, "--configs", "ray-like,gpupool"])
    assert table.exit_code == 0, table.output
    assert "targets: not judged" in table.stdout


def test_converge_json_plot_report(tmp_path):
    r = runner.invoke(
        sim_app, ["converge", "--json", "--plot", str(tmp_path), "--report", str(tmp_path / "c.html")]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["converge_s"] is not None and out["converge_s"] > 0 and out["queues"] == 5
    assert (tmp_path / "converge_gpupool.png").exists() and (tmp_path / "c.html").exists()


def test_bad_inputs_exit_2_with_hint(tmp_path):
    cases = [
        ["replay", "--jobs-file", str(tmp_path / "missing.csv"), "--vc-file", str(tmp_path / "v.csv")],
        ["replay", "--mode", "fastest", *files(tmp_path)],
        ["replay", "--trace", "alibaba"],
        ["replay", "--start", "yesterday", *files(tmp_path)],
        ["replay", "--days", "-1", *files(tmp_path)],
        ["replay", "--trace", "synthetic", "--size-mix", "1:x"],
        ["converge", "--mode", "static"],
        ["replay", "--trace", "synthetic", "--arrivals", "poisson"],
        ["replay", "--trace", "synthetic", "--arrivals", "hawkes", "--branching", "1.5"],
        ["replay", "--autoscale", "--windows", "3", *files(tmp_path)],  # needs --start and --days
        ["replay", "--autoscale", "--windows", "0", *files(tmp_path)],
        ["replay", "--trace", "synthetic", "--job-mix", "alibaba"],
        ["replay", "--trace", "synthetic", "--seeds", "3"],  # needs --autoscale
        ["replay", "--trace", "synthetic", "--autoscale", "--seeds", "0"],
        ["replay", "--trace", "synthetic", "--autoscale", "--configs", "gpupool,kubernetes"],
        ["replay", "--trace", "synthetic", "--configs", "gpupool"],  # needs --autoscale
    ]
    for args in cases:
        r = runner.invoke(sim_app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Error:" in r.stderr and "Traceback" not in r.output, args
        assert r.stdout == ""


def test_bad_row_exit_2_or_skipped(tmp_path):
    args = files(tmp_path, "2017-10-01 00:00:00,600,8,4800,vca\n2017-10-01 00:01:00,zz,4,1200,vcb\n")
    r = runner.invoke(sim_app, ["replay", "--json", *args])
    assert r.exit_code == 2
    assert "philly.csv:3:" in r.stderr and "Hint:" in r.stderr
    r = runner.invoke(sim_app, ["replay", "--json", "--skip-bad-rows", *args])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["jobs"] == 1 and out["left_out"]["bad_rows"] == 1


def test_autoscale_windows_judge_the_targets_per_window(tmp_path):
    rows = "".join(
        f"2017-10-0{d} {h:02d}:00:00,{600 + 60 * h},{8 if h % 3 else 16},1,vca\n"
        for d in (1, 2)
        for h in range(0, 24, 2)
    )
    args = ["replay", "--trace", "philly", "--autoscale", "--start", "2017-10-01", "--days", "1"]
    args += ["--boot-time", "120", "--windows", "3", "--json", *files(tmp_path, rows)]
    r = runner.invoke(sim_app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [w["start"][:10] for w in out["windows"]] == ["2017-10-01", "2017-10-02"]  # the 3rd is empty
    assert out["met"]["windows"] == 2
    for w in out["windows"]:
        assert w["jobs"] == 12 and set(w["configs"]) == {"gpupool", "no-headroom", "ray-like"}
        assert set(w["targets"]) == {"vs_no_headroom", "vs_ray_like"}
    counted = sum(w["targets"]["vs_no_headroom"]["met"] for w in out["windows"])
    assert out["met"]["vs_no_headroom"] == counted


def test_philly_replay_needs_no_paths_in_a_clone(tmp_path, monkeypatch):
    """The Philly trace ships in the repository's data/: `sim replay --trace philly` reads it from
    any working directory, with no file arguments; a wrong $GPUPOOL_TRACE_DIR says where to look."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_TRACE_DIR, raising=False)
    assert trace_file(PHILLY_JOBS).is_file() and trace_file(PHILLY_VCS).is_file()
    args = ["replay", "--trace", "philly", "--mode", "quota", "--start", "2017-10-03", "--days", "0.05"]
    r = runner.invoke(sim_app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["trace"] == "philly" and out["jobs"] > 0 and out["cluster_gpus"] > 0
    monkeypatch.setenv(ENV_TRACE_DIR, str(tmp_path / "nowhere"))
    r = runner.invoke(sim_app, args)
    assert r.exit_code == 2 and ENV_TRACE_DIR in r.stderr and "Traceback" not in r.output
