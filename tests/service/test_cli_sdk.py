"""The SDK and the CLI against a live server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from gpupool.cli.service_cmd import service_app, token_app
from gpupool.client import ApiError, Client, ClientConfigError
from gpupool.service.runner import write_server_file

app = typer.Typer()
app.add_typer(service_app)
app.add_typer(token_app, name="token")
runner = CliRunner()


def cli(server, *args: str, token: str | None = None, env: dict[str, str] | None = None):
    base = {"GPUPOOL_URL": server.url, "GPUPOOL_TOKEN": token or server.admin_token, "GPUPOOL_DATA_DIR": ""}
    return runner.invoke(app, list(args), env={**base, **(env or {})})


def test_import_gpupool_client_does_not_import_the_server():
    code = (
        "import sys, gpupool; c = gpupool.Client; "
        "heavy = ('gpupool.service', 'fastapi', 'sqlalchemy', 'ray'); "
        "heavy = [m for m in sys.modules if m.startswith(heavy)]; "
        "assert not heavy, heavy; print(c.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Client"


def test_sdk_round_trip(sqlite_server):
    gp = Client(sqlite_server.url, sqlite_server.admin_token)
    w = gp.submit("sdk", queue="root.a", entrypoint="echo sdk-out", size="small", priority=5)
    assert gp.wait(w.id, timeout=20, interval=0.1).state == "succeeded"
    assert "sdk-out" in gp.logs(w.id)
    assert gp.get(w.id).priority == 5
    assert gp.get(w.id).span_regions is False
    assert [x.id for x in gp.list(state="succeeded")] == [w.id]
    assert gp.list(state=["pending", "running"]) == []
    assert {q.path for q in gp.queues()} >= {"root", "root.a"}
    assert gp.health()["ok"] is True
    with pytest.raises(TimeoutError):
        # 16 H100 GPUs at once: within root.a's max, but the cluster has 8 H100 GPUs.
        wide = [{"members": 4, "gpus": 4, "gpu_types": ["H100"]}]
        blocked = gp.submit("blocked", queue="root.a", entrypoint="true", task_groups=wide)
        gp.wait(blocked.id, timeout=0.3, interval=0.1)
    with pytest.raises(ApiError) as exc:
        gp.submit("bad", queue="root.a", entrypoint="true", task_groups=[{"gpus": -1}])
    assert "body.task_groups.0.gpus" in str(exc.value) and "Hint:" in str(exc.value)
    spread = gp.submit(
        "spread",
        queue="root.a",
        entrypoint="true",
        task_groups=[{"members": 2, "gpus": 1}],
        span_regions=True,
    )
    assert spread.span_regions is True and gp.get(spread.id).span_regions is True


def test_sdk_finds_the_server_from_the_data_dir(sqlite_server, monkeypatch):
    monkeypatch.delenv("GPUPOOL_URL", raising=False)
    monkeypatch.delenv("GPUPOOL_TOKEN", raising=False)
    write_server_file(sqlite_server.settings)
    gp = Client(data_dir=sqlite_server.data_dir)
    assert gp.url == sqlite_server.url and gp.whoami().user == "admin"


def test_sdk_without_a_token_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("GPUPOOL_TOKEN", raising=False)
    with pytest.raises(ClientConfigError, match="gpupool up"):
        Client("http://127.0.0.1:1", data_dir=tmp_path)


def test_cli_submit_status_list_logs_why_cancel(sqlite_server):
    r = cli(
        sqlite_server,
        "submit",
        "cli-job",
        "-e",
        "echo from-cli",
        "-q",
        "root.a",
        "--gpus",
        "1",
        "--json",
        "--wait",
    )
    assert r.exit_code == 0, r.output
    w = json.loads(r.output)
    assert w["state"] == "succeeded" and w["task_groups"][0]["resources"]["gpu"] == 1

    r = cli(sqlite_server, "status", w["id"])
    assert r.exit_code == 0 and "succeeded" in r.output and "history" in r.output
    assert json.loads(cli(sqlite_server, "status", w["id"], "--json").output)["id"] == w["id"]

    r = cli(sqlite_server, "list")
    assert r.exit_code == 0 and w["id"] in r.output
    assert [x["id"] for x in json.loads(cli(sqlite_server, "list", "--json").output)] == [w["id"]]

    r = cli(sqlite_server, "logs", w["id"])
    assert r.exit_code == 0 and "from-cli" in r.output
    assert "from-cli" in json.loads(cli(sqlite_server, "logs", w["id"], "--json").output)["text"]

    wide_args = ["--gpus", "4", "-n", "4", "--gpu-type", "H100"]  # 16 H100 GPUs at once; there are 8
    r = cli(sqlite_server, "submit", "wide", "-e", "true", "-q", "root.a", *wide_args, "--json")
    wide = json.loads(r.output)["id"]
    r = cli(sqlite_server, "why", wide)
    assert r.exit_code == 0 and "is pending" in r.output
    assert json.loads(cli(sqlite_server, "why", wide, "--json").output)["state"] == "pending"

    r = cli(sqlite_server, "cancel", wide)
    assert r.exit_code == 0 and "cancelled" in r.output
    assert json.loads(cli(sqlite_server, "cancel", wide, "--json").output)[0]["state"] == "cancelled"


def test_cli_queues_and_nodes(sqlite_server):
    r = cli(sqlite_server, "queues")
    assert r.exit_code == 0 and "gpu=8" in r.output and "open" in r.output
    queues = json.loads(cli(sqlite_server, "queues", "--json").output)
    assert [q["path"] for q in queues][:2] == ["root", "root.a"]
    r = cli(sqlite_server, "nodes")
    assert r.exit_code == 0 and "h100-0" in r.output and "H100" in r.output
    assert len(json.loads(cli(sqlite_server, "nodes", "--json").output)) == 4


def test_cli_submit_from_file_and_sizes(sqlite_server, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "queue: root.b\ntask_groups:\n  - {name: head, gpus: 1}\n  - {name: worker, members: 2, gpus: 2}\n"
    )
    r = cli(sqlite_server, "submit", "from-file", "-e", "true", "-f", str(spec), "--json", "--env", "A=1")
    assert r.exit_code == 0, r.output
    w = json.loads(r.output)
    assert (
        [g["name"] for g in w["task_groups"]] == ["head", "worker"]
        and w["gpus"] == 5
        and w["env"] == {"A": "1"}
    )
    r = cli(sqlite_server, "submit", "sized", "-e", "true", "-q", "root.b", "-s", "medium", "--json")
    assert json.loads(r.output)["size"] == "medium" and json.loads(r.output)["span_regions"] is False
    r = cli(sqlite_server, "submit", "spread", "-e", "true", "-f", str(spec), "--span-regions", "--json")
    assert r.exit_code == 0, r.output
    spread = json.loads(r.output)
    assert spread["span_regions"] is True
    r = cli(sqlite_server, "status", spread["id"])
    assert r.exit_code == 0 and "spans regions" in r.output


def test_cli_errors_name_the_field_and_the_fix(sqlite_server):
    r = cli(sqlite_server, "submit", "x", "-e", "true", "-q", "root.nope", "--gpus", "1")
    assert r.exit_code == 1
    assert "body.queue" in r.output and "Hint:" in r.output
    r = cli(sqlite_server, "submit", "x", "-e", "true", "-q", "root.a", "--memory", "lots")
    assert r.exit_code == 1 and "body.task_groups.0.memory" in r.output
    r = cli(sqlite_server, "submit", "x", "-e", "true", "--env", "novalue")
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = cli(sqlite_server, "list", env={"GPUPOOL_URL": "http://127.0.0.1:1"})
    assert r.exit_code == 2 and "cannot reach" in r.output and "gpupool up" in r.output
    r = cli(sqlite_server, "list", token="gp_wrong")
    assert r.exit_code == 1 and "unknown API token" in r.output


def test_cli_token_create_for_a_user_with_groups(sqlite_server):
    r = runner.invoke(
        app,
        [
            "token",
            "create",
            "erin",
            "--groups",
            "team-b,ml",
            "--data-dir",
            str(sqlite_server.data_dir),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    made = json.loads(r.output)
    assert made["groups"] == ["team-b", "ml"] and made["token"].startswith("gp_")
    me = Client(sqlite_server.url, made["token"]).whoami()
    assert me.user == "erin" and me.groups == ["team-b", "ml"] and me.admin is False
    r = cli(sqlite_server, "submit", "e", "-e", "true", "-q", "root.a", "--gpus", "1", token=made["token"])
    assert r.exit_code == 1 and "may not submit" in r.output


def test_up_refuses_a_bad_config_before_starting_anything(tmp_path):
    bad = tmp_path / "queues.yaml"
    bad.write_text("partitions: [{name: default, queues: [{name: root, resources: {max: {gpu: x}}}]}]\n")
    r = runner.invoke(app, ["up", "--config", str(bad), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 2 and "queues.yaml" in r.output
    assert not (tmp_path / "d").exists()


def test_up_on_a_port_in_use_fails_at_once_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = runner.invoke(app, ["up", "--port", str(port), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 2, r.output
    assert f"Error: cannot listen on 127.0.0.1:{port}" in r.output and "Hint:" in r.output
    assert "Starting" not in r.output and "is up" not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("spec", ["2xH100", "2xH100:4:gpus=3", ",", "2xH100:4:memory=lots"])
def test_up_with_a_bad_cluster_spec_says_so_in_one_line(tmp_path, spec):
    r = runner.invoke(app, ["up", "--cluster", spec, "--port", "1", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].startswith(f"Error: --cluster {spec!r}: ") and lines[1].startswith("Hint: "), lines
    assert len(lines) == 2 and "Traceback" not in r.output
    assert not (tmp_path / "d").exists()
