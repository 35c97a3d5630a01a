"""``gpupool bench api`` against a live server: a short, small load, and its checks."""

from __future__ import annotations

import json

from sqlalchemy import delete
from typer.testing import CliRunner

from gpupool.bench.api import _lost, in_own_loop, percentile
from gpupool.bench.http import Client
from gpupool.cli.main import app
from gpupool.service.db import Database
from gpupool.service.models import WorkloadRow

runner = CliRunner()


def test_bench_api_reports_rate_latencies_and_no_loss(sqlite_server):
    result = runner.invoke(
        app,
        ["bench", "api", "--rate", "20", "--seconds", "2", "--queue", "root.a", "--json"],
        env={"GPUPOOL_URL": sqlite_server.url, "GPUPOOL_TOKEN": sqlite_server.admin_token},
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["requests"] == 40 and out["submitted"] == 20
    assert out["errors"] == 0 and out["lost"] == 0, out
    assert out["achieved_rate"] > 0
    for key in ("p50_ms", "p99_ms"):
        assert set(out[key]) == {"submit", "read"}
        assert all(v is not None and v > 0 for v in out[key].values()), out[key]
    assert out["p50_ms"]["submit"] <= out["p99_ms"]["submit"]
    # Every submission was stored, and the run cancelled what it submitted afterwards.
    with sqlite_server.http() as http:
        mine = [
            w for w in http.get("/workloads", params={"limit": 100}).json() if w["name"].startswith("bench-")
        ]
    assert len(mine) == 20
    assert all(w["state"] in ("cancelled", "succeeded", "failed") for w in mine), [w["state"] for w in mine]


def test_bench_api_counts_a_submission_the_server_lost(sqlite_server):
    with sqlite_server.http() as http:
        ids = [
            http.post(
                "/workloads",
                json={"name": f"n{i}", "queue": "root.a", "entrypoint": "true", "task_groups": [{"gpus": 0}]},
            ).json()["id"]
            for i in range(3)
        ]
    db = Database(sqlite_server.settings.db_url)
    try:
        with db.session() as s:
            s.execute(delete(WorkloadRow).where(WorkloadRow.id == ids[1]))
    finally:
        db.close()

    async def lost() -> int:
        headers = {"Authorization": f"Bearer {sqlite_server.admin_token}"}
        async with Client(sqlite_server.url, headers) as http:
            return await _lost(http, ids)

    assert in_own_loop(lost()) == 1


def test_bench_api_refuses_a_server_elsewhere_and_bad_bounds():
    env = {"GPUPOOL_TOKEN": "gp_x"}
    r = runner.invoke(app, ["bench", "api", "--url", "http://192.0.2.1:8080", "--seconds", "1"], env=env)
    assert r.exit_code == 2 and "not a loopback address" in r.output
    r = runner.invoke(app, ["bench", "api", "--url", "http://127.0.0.1:9", "--seconds", "601"], env=env)
    assert r.exit_code == 2 and "--seconds" in r.output
    r = runner.invoke(app, ["bench", "api", "--url", "http://127.0.0.1:9", "--rate", "0"], env=env)
    assert r.exit_code == 2 and "--rate" in r.output


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


def test_bench_api_stops_reading_when_every_submission_is_refused(sqlite_server):
    # A queue that does not exist: every submission is refused (422). The reads have nothing to
    # read and say so at once, instead of each waiting a minute for an accepted submission.
    result = runner.invoke(
        app,
        ["bench", "api", "--rate", "20", "--seconds", "1", "--queue", "root.nope", "--json"],
        env={"GPUPOOL_URL": sqlite_server.url, "GPUPOOL_TOKEN": sqlite_server.admin_token},
    )
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["submitted"] == 0 and out["errors"] == out["requests"] == 20, out
    assert out["first_error"].startswith("submit 422"), out["first_error"]
    assert out["errors_by_kind"] == {"submit 422": 10, "read skipped": 10}, out["errors_by_kind"]
