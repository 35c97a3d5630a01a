"""Small truths of the CLI and API: every workload that ended has ``finished_at`` (cancelled ones
too), and ``gpupool list`` says when more workloads exist than it shows."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from gpupool.cli.service_cmd import service_app

app = typer.Typer()
app.add_typer(service_app)
runner = CliRunner()


def _cli(server, *args: str):
    env = {"GPUPOOL_URL": server.url, "GPUPOOL_TOKEN": server.admin_token, "GPUPOOL_DATA_DIR": ""}
    return runner.invoke(app, list(args), env=env)


def test_cancelled_workloads_have_finished_at(sqlite_server):
    gp = sqlite_server.client()
    running = gp.submit("running", queue="root.a", entrypoint="sleep 60", size="small")
    gp.wait(running.id, states={"running"}, timeout=20, interval=0.1)
    wide = [{"members": 4, "gpus": 4, "gpu_types": ["H100"]}]  # more H100 GPUs than exist: waits
    pending = gp.submit("pending", queue="root.a", entrypoint="true", task_groups=wide)
    for w in (running, pending):
        cancelled = gp.cancel(w.id)
        assert cancelled.state == "cancelled" and cancelled.finished_at is not None, cancelled
        assert cancelled.finished_at >= cancelled.submitted_at
    assert all(w.finished_at is not None for w in gp.list(state="cancelled"))


def test_list_says_when_more_exist_than_it_shows(sqlite_server):
    gp = sqlite_server.client()
    for i in range(4):
        gp.submit(f"w{i}", queue="root.a", entrypoint="true", size="small")
    r = _cli(sqlite_server, "list", "--limit", "3")
    assert r.exit_code == 0, r.output
    assert "showing the newest 3" in r.output and "--limit" in r.output
    assert "w-000001" not in r.output and "w-000004" in r.output
    r = _cli(sqlite_server, "list", "--limit", "4")
    assert r.exit_code == 0 and "showing the newest" not in r.output
    r = _cli(sqlite_server, "list", "--limit", "2", "--json")
    assert [w["id"] for w in json.loads(r.stdout)] == ["w-000004", "w-000003"]
    assert "showing the newest 2" in r.stderr
    assert _cli(sqlite_server, "list", "--limit", "0").exit_code == 2
