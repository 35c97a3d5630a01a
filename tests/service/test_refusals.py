"""Refusals are refusals: what could never run here is refused at submission, and stores nothing.

With the packaged default config (an open ``root.default``, as a new user has it): a queue that
does not exist (422), one the user may not submit to (403), a gang above its queue's max (422),
a member no node or pool could hold (422); the CLI exits 1 on each. Only a placement rule of the
config sends a submission elsewhere, and then the response says where and why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from gpupool.cli.service_cmd import service_app
from gpupool.service.db import Database
from gpupool.service.models import WorkloadRow
from gpupool.service.settings import DEFAULT_CONFIG

app = typer.Typer()
app.add_typer(service_app)
runner = CliRunner()


def _stored(server) -> int:
    db = Database(server.settings.db_url)
    try:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(WorkloadRow)) or 0)
    finally:
        db.close()


def _cli(server, token: str, *args: str):
    env = {"GPUPOOL_URL": server.url, "GPUPOOL_TOKEN": token, "GPUPOOL_DATA_DIR": ""}
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def default_server(make_server):
    return make_server(config=DEFAULT_CONFIG)


def _post(server, token: str, **body):
    with server.http(token) as http:
        return http.post("/workloads", json={"name": "x", "entrypoint": "sleep 60", **body})


def test_unknown_and_forbidden_queues_are_refused_not_redirected(default_server):
    alice = default_server.token("alice", ("research",))
    r = _post(default_server, alice, queue="root.nope", size="small")
    assert r.status_code == 422, r.json()
    field = r.json()["fields"][0]
    assert field["field"] == "body.queue" and "root.research" in field["message"]
    r = _post(default_server, alice, queue="root.training", size="small")
    assert r.status_code == 403, r.json()
    assert "root.training" in r.json()["message"] and "groups training" in r.json()["message"]
    r = _post(default_server, alice, queue="root", size="small")
    assert r.status_code == 422 and "parent queue" in r.json()["message"]
    assert _stored(default_server) == 0
    # Her own queue, and root.default when she names no queue (the response says so).
    assert _post(default_server, alice, queue="research", size="small").json()["queue"] == "root.research"
    r = _post(default_server, alice, size="small")
    assert r.status_code == 201 and r.json()["queue"] == "root.default"
    assert "root.default" in r.json()["notice"]

    for args, words in (
        (["-q", "root.nope"], "no queue 'root.nope'"),
        (["-q", "root.training"], "may not submit to root.training"),
    ):
        out = _cli(default_server, alice, "submit", "x", "-e", "true", "-s", "small", *args)
        assert out.exit_code == 1 and words in out.output, out.output
    assert _stored(default_server) == 2


def test_a_fallback_rule_of_the_config_redirects_and_says_so(make_server, tmp_path: Path):
    config = tmp_path / "queues.yaml"
    config.write_text(
        DEFAULT_CONFIG.read_text().replace(
            "      - name: provided\n",
            "      - name: provided\n      - name: fixed\n        value: root.default\n",
        )
    )
    server = make_server(config=config)
    alice = server.token("alice", ("research",))
    r = _post(server, alice, queue="root.nope", size="small")
    assert r.status_code == 201, r.json()
    w = r.json()
    assert w["queue"] == "root.default"
    assert "root.nope does not exist" in w["notice"] and "rule fixed" in w["notice"]
    r = _post(server, alice, queue="root.training", size="small")
    assert r.status_code == 201 and "does not take submissions from alice" in r.json()["notice"]
    with server.http(alice) as http:
        events = http.get(f"/workloads/{w['id']}/events").json()
    assert any(e["kind"] == "placed" and "root.nope" in e["message"] for e in events)
    out = _cli(server, alice, "submit", "x", "-e", "true", "-s", "small", "-q", "root.nope")
    assert out.exit_code == 0 and "root.nope does not exist" in out.output, out.output


def test_a_gang_above_its_queues_max_is_refused_not_stored_as_failed(default_server):
    alice = default_server.token("alice", ("research",))
    gang = [{"name": "worker", "members": 4, "gpus": 4}]  # 16 GPUs; root.research's max is 12
    r = _post(default_server, alice, queue="root.research", task_groups=gang)
    assert r.status_code == 422, r.json()
    assert "max of root.research" in r.json()["message"]
    assert r.json()["fields"][0]["field"] == "body.task_groups"
    r = _post(default_server, alice, queue="root.default", task_groups=[{"members": 2, "gpus": 4}])
    assert r.status_code == 422 and "max of root.default" in r.json()["message"]
    args = ["submit", "g", "-e", "true", "-q", "root.research", "--gpus", "4", "-n", "4"]
    out = _cli(default_server, alice, *args)
    assert out.exit_code == 1 and "could never run" in out.output, out.output
    assert _stored(default_server) == 0
    # Exactly at the max is accepted.
    r = _post(default_server, alice, queue="root.research", task_groups=[{"members": 3, "gpus": 4}])
    assert r.status_code == 201 and r.json()["state"] != "failed"


def test_an_ask_no_node_could_ever_hold_is_refused_with_what_exists(default_server):
    alice = default_server.token("alice", ("research",))
    r = _post(default_server, alice, queue="root.research", task_groups=[{"gpus": 9}])
    assert r.status_code == 422, r.json()
    body = r.json()
    assert body["fields"][0]["field"] == "body.task_groups.0"
    assert "{gpu: 9" in body["message"] and "2 x H100 {gpu: 4" in body["message"]
    r = _post(default_server, alice, queue="root.research", task_groups=[{"gpus": 1, "gpu_types": ["V100"]}])
    assert r.status_code == 422 and "no GPU type V100 exists (GPU types: A100, H100)" in r.json()["message"]
    r = _post(default_server, alice, queue="root.research", task_groups=[{"gpus": 0, "cpu": 100}])
    assert r.status_code == 422 and "vcore: 100" in r.json()["message"]
    out = _cli(default_server, alice, "submit", "big", "-e", "true", "-q", "root.research", "--gpus", "9")
    assert out.exit_code == 1 and "no node could ever hold" in out.output, out.output
    assert _stored(default_server) == 0
    # A type that exists, on a node that can hold it.
    r = _post(default_server, alice, queue="root.research", task_groups=[{"gpus": 4, "gpu_types": ["A100"]}])
    assert r.status_code == 201, r.json()
