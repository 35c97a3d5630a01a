"""Model deployments through the real HTTP server (with the executor that starts nothing):
create, list, status, undeploy (which frees the replicas' GPUs), every refusal storing nothing,
the SDK and the CLI's one-line errors; and, with the process executor (which does not declare
``RunsDeployments``), a deploy refused with 501 and a restored deployment failed, not started."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from gpupool.cli.deploy_cmd import deploy_app, deployment_app
from gpupool.client import ApiError
from gpupool.service.app import create_app

from .conftest import LiveServer
from .executors import wait_until
from .null_executor import NullExecutor

app = typer.Typer()
app.add_typer(deploy_app)
app.add_typer(deployment_app, name="deployment")
runner = CliRunner()


class NullServer(LiveServer):
    """A live control plane whose executor starts nothing: deployments are placed and reported
    running, and nothing runs on a cluster."""

    def start(self) -> NullServer:
        self.executor = NullExecutor()
        self.app = create_app(self.settings, self.executor)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=30)
        assert self._server.started, "the server did not start"
        return self


@pytest.fixture
def server(tmp_path):
    s = NullServer(tmp_path / "data").start()
    yield s
    s.stop()


@pytest.fixture
def any_db_server(tmp_path, database_url):
    """On SQLite, and on PostgreSQL where it runs (CI): the listing filters on the JSON spec."""
    s = NullServer(tmp_path / "data", database_url).start()
    yield s
    s.stop()


def body(**kw: Any) -> dict[str, Any]:
    return {"name": "chat", "import_path": "demo.app:app", "queue": "root.a", "gpus": 1, **kw}


def gpus_used(server: NullServer, queue: str = "root.a") -> float:
    with server.http() as h:
        q = next(q for q in h.get("/queues").json() if q["path"] == queue)
    return q["allocated"].get("gpu", 0)


def running(h: Any, name: str) -> tuple[int, str]:
    d = h.get(f"/deployments/{name}").json()
    return d["running"], d["state"]


def cli(server: NullServer, *args: str):
    env = {"GPUPOOL_URL": server.url, "GPUPOOL_TOKEN": server.admin_token, "GPUPOOL_DATA_DIR": ""}
    return runner.invoke(app, list(args), env=env)


def test_deploy_places_min_replicas_and_extras_and_reports_them(server) -> None:
    with server.http() as h:
        r = h.post(
            "/deployments",
            json=body(min_replicas=2, max_replicas=3, gpu_type="H100", env={"A": "1"}, upscale_delay=0),
        )
        assert r.status_code == 201, r.text
        d = r.json()
        assert (d["name"], d["queue"], d["import_path"]) == ("chat", "root.a", "demo.app:app")
        assert (d["min_replicas"], d["max_replicas"], d["gpus"], d["gpu_types"]) == (2, 3, 1, ["H100"])
        assert (d["target_ongoing_requests"], d["downscale_delay"], d["url"]) == (2.0, 600.0, None)
        wait_until(lambda: running(h, "chat") == (2, "running"), timeout=10)
        d = h.get("/deployments/chat").json()
        assert d["desired"] == 2 and [r["member"] for r in d["replicas"]] == ["replica-0", "replica-1"]
        server.executor.load["chat"] = 6.0  # 3 replicas' worth at a target of 2: one extra
        wait_until(lambda: running(h, "chat") == (3, "running"), timeout=10)
        wait_until(lambda: h.get("/deployments/chat").json()["ready"] == 3, timeout=10)
        d = h.get("/deployments/chat").json()
        assert d["state"] == "running" and d["desired"] == 3 and d["env"] == {"A": "1"}
        assert d["stats"]["in_flight"] == 6.0
        assert [(x["old"], x["new"]) for x in d["decisions"]] == [(2, 3)]
        assert "scale up from 2 to 3" in d["decisions"][0]["reason"]
        series = h.get("/deployments/chat/series").json()
        assert series["name"] == "chat" and series["gpus"] == 1 and series["points"]
        assert series["points"][0]["desired"] == 2
        wait_until(
            lambda: h.get("/deployments/chat/series").json()["points"][-1]["replicas"] == 3, timeout=10
        )
        last = h.get("/deployments/chat/series").json()["points"][-1]
        assert (last["desired"], last["ready"], last["in_flight"]) == (3, 3, 6.0)
        assert h.get("/deployments/chat/series", params={"since": last["at"]}).json()["points"] == []
        metrics = h.get("/metrics").text
        labels = 'deployment="chat",queue="root.a",revision="1"'
        for state, n in (("desired", 3), ("placed", 3), ("ready", 3), ("draining", 0)):
            assert f'gpupool_deployment_replicas{{{labels},state="{state}"}} {n}.0' in metrics, state
        assert f'gpupool_deployment_ongoing_requests{{{labels},where="in_flight"}} 6.0' in metrics
        replicas = {r["member"]: r for r in d["replicas"]}
        assert sorted(replicas) == ["replica-0", "replica-1", "replica-2"]
        assert [replicas[m]["extra"] for m in sorted(replicas)] == [False, False, True]
        assert all(r["state"] == "placed" and r["node"].startswith("h100-") for r in replicas.values())
        assert all(len(r["gpu_ids"]) == 1 for r in replicas.values())
        assert d["held"] is None
        assert [x["name"] for x in h.get("/deployments").json()] == ["chat"]
        # It is a workload too, of the one task group ``replica``.
        (w,) = h.get("/workloads").json()
        assert w["id"] == d["id"] and w["task_groups"][0]["name"] == "replica"
    assert gpus_used(server) == 3


def test_a_share_of_a_gpu_per_replica(server) -> None:
    with server.http() as h:
        r = h.post("/deployments", json=body(gpus=0.25, min_replicas=2))
        assert r.status_code == 201, r.text
        assert r.json()["gpus"] == 0.25
        wait_until(lambda: running(h, "chat") == (2, "running"), timeout=10)
    assert gpus_used(server) == 0.5


def test_deploying_a_live_name_again_is_a_rolling_update_and_undeploy_frees_the_gpus(any_db_server) -> None:
    server = any_db_server
    with server.http() as h:
        first = h.post("/deployments", json=body(min_replicas=2)).json()
        wait_until(lambda: gpus_used(server) == 2, timeout=10)
        same = h.post("/deployments", json=body(min_replicas=2))
        assert same.status_code == 201 and same.json()["id"] == first["id"], same.text
        assert same.json()["notice"].startswith(f"unchanged: {first['id']} (revision 1)")
        assert len(h.get("/workloads").json()) == 1  # nothing stored
        again = h.post("/deployments", json=body(queue="root.b", min_replicas=2))
        assert again.status_code == 201, again.text
        new = again.json()
        assert (new["revision"], new["replaces"]) == (2, first["id"])
        assert new["notice"] == f"rolling update: revision 2 replaces {first['id']} once it runs"
        # Once the new revision runs, the one before is stopped: its GPUs go back.
        wait_until(lambda: h.get(f"/workloads/{first['id']}").json()["state"] == "cancelled", timeout=10)
        old = h.get(f"/workloads/{first['id']}").json()
        assert old["reason"] == f"replaced by revision 2 ({new['id']})"
        wait_until(lambda: (gpus_used(server), gpus_used(server, "root.b")) == (0, 2), timeout=10)
        (listed,) = h.get("/deployments").json()
        assert (listed["id"], listed["revision"], listed["state"]) == (new["id"], 2, "running")
        gone = h.delete("/deployments/chat")
        assert gone.status_code == 200 and gone.json()["state"] == "cancelled"
        wait_until(lambda: gpus_used(server, "root.b") == 0, timeout=10)
        assert h.get("/deployments").json() == []
        assert [d["state"] for d in h.get("/deployments", params={"all": "true"}).json()] == ["cancelled"] * 2
        assert h.get("/deployments/chat").json()["replicas"] == []
        assert h.delete("/deployments/chat").status_code == 404
        assert h.post("/deployments", json=body()).status_code == 201  # the name is free again
        assert h.get("/deployments/chat").json()["state"] in ("pending", "admitted", "running")


@pytest.mark.parametrize(
    ("change", "status", "field", "words"),
    [
        ({"import_path": "demo.app"}, 422, "body.import_path", "module:attribute"),
        ({"import_path": "demo app:x"}, 422, "body.import_path", "module:attribute"),
        (
            {"min_replicas": 3, "max_replicas": 2},
            422,
            "body.min_replicas",
            "min_replicas (3) is above max_replicas (2)",
        ),
        (
            {"queue": "root.open", "max_replicas": 5},
            422,
            "body.max_replicas",
            "more than the max of root.open",
        ),
        (
            {"queue": "root.open", "min_replicas": 5},
            422,
            "body.min_replicas",
            "more than the max of root.open",
        ),
        ({"queue": "root.nope"}, 422, "body.queue", "no queue 'root.nope'"),
        ({"queue": "root"}, 422, "body.queue", "parent queue"),
        ({"gpus": 1.5}, 422, "body.gpus", "not whole"),
        ({"gpus": None}, 422, "body.gpus", "exactly one of"),
        ({"size": "small"}, 422, "body.gpus", "exactly one of"),
        ({"gpu_type": "V100"}, 422, "body.gpus", "V100"),
        ({"target_ongoing_requests": 0}, 422, "body.target_ongoing_requests", "greater than 0"),
        ({"working_dir": "rel/dir"}, 422, "body.working_dir", "absolute path"),
        ({"name": "no spaces"}, 422, "body.name", "pattern"),
    ],
)
def test_every_refusal_names_its_field_and_stores_nothing(server, change, status, field, words) -> None:
    payload = {k: v for k, v in body(**change).items() if v is not None}
    with server.http() as h:
        r = h.post("/deployments", json=payload)
        assert r.status_code == status, r.text
        err = r.json()
        assert field in [f["field"] for f in err["fields"]], err
        assert words in err["message"] + " ".join(f["message"] for f in err["fields"]), err
        assert h.get("/workloads").json() == []
        assert h.get("/deployments", params={"all": "true"}).json() == []
    assert gpus_used(server) == 0


def test_a_queue_the_user_may_not_submit_to_is_refused(server) -> None:
    token = server.token("bob", ("team-b",))
    with server.http(token) as h:
        r = h.post("/deployments", json=body())
        assert r.status_code == 403
        assert r.json()["fields"][0]["field"] == "body.queue"
    with server.http() as h:
        assert h.get("/workloads").json() == []


def test_others_cannot_see_or_undeploy_a_deployment(server) -> None:
    with server.http() as h:
        assert h.post("/deployments", json=body()).status_code == 201
    with server.http(server.token("bob", ("team-b",))) as h:
        assert h.get("/deployments").json() == []
        assert h.get("/deployments/chat").status_code == 404
        assert h.delete("/deployments/chat").status_code == 404
    with server.http() as h:
        assert h.get("/deployments/chat").json()["state"] != "cancelled"


def test_the_sdk(server) -> None:
    gp = server.client()
    d = gp.deploy("sdk", "demo.app:app", "root.a", gpus=1, max_replicas=2, scale_to_zero_after=600)
    assert (d.name, d.min_replicas, d.max_replicas, d.scale_to_zero_after) == ("sdk", 1, 2, 600)
    wait_until(lambda: gp.deployment("sdk").running == 1, timeout=10)  # min: no load, no extra
    assert [x.name for x in gp.deployments()] == ["sdk"]
    same = gp.deploy("sdk", "demo.app:app", "root.a", gpus=1, max_replicas=2, scale_to_zero_after=600)
    assert same.id == d.id and same.notice is not None and same.notice.startswith("unchanged")
    assert gp.undeploy("sdk").state == "cancelled"
    assert gp.deployments() == [] and [x.state for x in gp.deployments(include_finished=True)] == [
        "cancelled"
    ]


def test_the_cli(server) -> None:
    out = cli(
        server,
        "deploy",
        "web",
        "--import-path",
        "demo.app:app",
        "-q",
        "root.a",
        "--gpus",
        "1",
        "--max-replicas",
        "2",
        "--scale-to-zero-after",
        "10m",
        "--upscale-delay",
        "0s",
        "--look-back",
        "5s",
        "--env",
        "K=V",
    )
    assert out.exit_code == 0, out.output
    assert out.output.startswith("web (w-") and "running" in out.output and "1..2 replicas" in out.output
    d = server.client().deployment("web")
    assert (d.upscale_delay, d.look_back, d.downscale_delay) == (0, 5, 600)
    server.executor.load["web"] = 3.0
    wait_until(lambda: server.client().deployment("web").running == 2, timeout=10)
    listed = cli(server, "deployments", "--json")
    assert listed.exit_code == 0
    assert '"scale_to_zero_after": 600.0' in listed.output and '"K": "V"' in listed.output
    status = cli(server, "deployment", "status", "web")
    assert status.exit_code == 0, status.output
    assert "desired 2, running 2" in status.output and "replica-1 (extra): on " in status.output
    bad = cli(server, "deploy", "x", "--import-path", "nocolon", "-q", "root.a", "--gpus", "1")
    assert bad.exit_code == 1
    first = bad.output.splitlines()[0]
    assert first.startswith("Error: invalid request (body.import_path: expected module:attribute"), first
    over = cli(
        server, "deploy", "x", "--import-path", "m:a", "-q", "root.open", "--gpus", "1", "--max-replicas", "9"
    )
    assert over.exit_code == 1
    assert over.output.splitlines()[0].startswith("Error: max_replicas: 9 replicas of"), over.output
    dur = cli(
        server,
        "deploy",
        "x",
        "--import-path",
        "m:a",
        "-q",
        "root.a",
        "--gpus",
        "1",
        "--scale-to-zero-after",
        "10",
    )
    assert dur.exit_code == 2 and "--scale-to-zero-after" in dur.output
    gone = cli(server, "undeploy", "web")
    assert gone.exit_code == 0 and "cancelled" in gone.output
    assert cli(server, "undeploy", "web").exit_code == 1


def test_queues_and_metrics_split_usage_into_serving_and_batch(server) -> None:
    from gpupool.cli.service_cmd import service_app

    with server.http() as h:
        assert h.post("/deployments", json=body(min_replicas=2)).status_code == 201
        job = {"name": "train", "queue": "root.a", "entrypoint": "true", "task_groups": [{"gpus": 0.5}]}
        assert h.post("/workloads", json=job).status_code == 201
        wait_until(lambda: gpus_used(server) == 2.5, timeout=10)
        queues = {q["path"]: q for q in h.get("/queues").json()}
        assert (queues["root.a"]["serving"]["gpu"], queues["root.a"]["batch"]["gpu"]) == (2, 0.5)
        assert (queues["root"]["serving"]["gpu"], queues["root"]["batch"]["gpu"]) == (2, 0.5)
        assert queues["root.b"]["serving"] == {} and queues["root.b"]["batch"] == {}
        metrics = h.get("/metrics").text
    assert 'gpupool_queue_allocated_by_kind{kind="serving",queue="root.a",resource="gpu"} 2.0' in metrics
    assert 'gpupool_queue_allocated_by_kind{kind="batch",queue="root.a",resource="gpu"} 0.5' in metrics
    queues_app = typer.Typer()
    queues_app.add_typer(service_app)
    env = {
        "GPUPOOL_URL": server.url,
        "GPUPOOL_TOKEN": server.admin_token,
        "GPUPOOL_DATA_DIR": "",
        "COLUMNS": "250",
    }
    out = runner.invoke(queues_app, ["queues"], env=env)
    assert out.exit_code == 0, out.output
    assert "serving gpu" in out.output and "batch gpu" in out.output
    cells = (re.split("[│┃]", line)[1:-1] for line in out.output.splitlines())
    rows = [[c.strip() for c in r] for r in cells if r]
    header = next(r for r in rows if r[0] == "queue")
    a = dict(zip(header, next(r for r in rows if r[0] == "a"), strict=True))
    assert (a["serving gpu"], a["batch gpu"]) == ("2", "0.5"), a


def test_status_says_what_holds_replicas_that_wait(server) -> None:
    with server.http() as h:
        job = {"name": "batch", "queue": "root.open", "entrypoint": "true", "task_groups": [{"gpus": 1}]}
        assert h.post("/workloads", json=job).status_code == 201
        wait_until(lambda: gpus_used(server, "root.open") == 1, timeout=10)
        r = h.post(
            "/deployments", json=body(queue="root.open", min_replicas=3, max_replicas=4, upscale_delay=0)
        )
        assert r.status_code == 201, r.text
        wait_until(lambda: running(h, "chat") == (3, "running"), timeout=10)
        server.executor.load["chat"] = 8.0  # wants 4: the fourth waits for the queue's max
        wait_until(lambda: h.get("/deployments/chat").json()["held"], timeout=10)
        d = h.get("/deployments/chat").json()
    assert d["held"].startswith("1 of 4 replicas wait: "), d["held"]
    assert "queue root.open is at its max" in d["held"]
    (extra,) = [r for r in d["replicas"] if r["state"] == "waiting"]
    assert extra["member"] == "replica-3" and extra["extra"] is True
    status = cli(server, "deployment", "status", "chat")
    assert "1 of 4 replicas wait: " in status.output


def test_a_deployment_survives_a_restart_of_the_control_plane(tmp_path) -> None:
    first = NullServer(tmp_path / "data").start()
    try:
        with first.http() as h:
            r = h.post("/deployments", json=body(min_replicas=1, max_replicas=2, scale_to_zero_after=60))
            assert r.status_code == 201
    finally:
        first.stop()
    second = NullServer(tmp_path / "data").start()
    try:
        with second.http() as h:
            d = h.get("/deployments/chat").json()
            assert (d["import_path"], d["max_replicas"], d["scale_to_zero_after"]) == ("demo.app:app", 2, 60)
            assert d["state"] not in ("cancelled", "failed", "succeeded")
            same = h.post("/deployments", json=body(min_replicas=1, max_replicas=2, scale_to_zero_after=60))
            assert same.json()["notice"].startswith("unchanged"), same.text  # known after the restart
            assert h.delete("/deployments/chat").json()["state"] == "cancelled"
    finally:
        second.stop()


NO_RUNNER = (
    "model deployments need an executor that runs Ray Serve (the Ray executor of `gpupool up`); "
    "this control plane's executor does not (see docs/serving.md)"
)


def test_deploy_is_refused_when_the_executor_cannot_run_deployments(tmp_path) -> None:
    server = LiveServer(tmp_path / "data").start()  # the process executor: jobs only
    try:
        with server.http() as h:
            r = h.post("/deployments", json=body())
            assert r.status_code == 501, r.text
            assert r.json() == {"code": "not-implemented", "message": NO_RUNNER, "fields": [], "hint": ""}
        with pytest.raises(ApiError) as exc:
            server.client().deploy("sdk", "demo.app:app", "root.a", gpus=1)
        assert (exc.value.status, exc.value.message) == (501, NO_RUNNER)
        out = cli(server, "deploy", "web", "--import-path", "demo.app:app", "-q", "root.a", "--gpus", "1")
        assert out.exit_code == 1
        assert out.output == f"Error: {NO_RUNNER} [501 not-implemented]\n", out.output
        with server.http() as h:
            assert h.get("/workloads").json() == []
            assert h.get("/deployments", params={"all": "true"}).json() == []
        assert gpus_used(server) == 0
    finally:
        server.stop()


def test_a_deployment_restored_by_an_executor_that_cannot_run_it_fails(tmp_path) -> None:
    first = NullServer(tmp_path / "data").start()
    try:
        with first.http() as h:
            assert h.post("/deployments", json=body(max_replicas=2, upscale_delay=0)).status_code == 201
            first.executor.load["chat"] = 4.0
            wait_until(lambda: running(h, "chat") == (2, "running"), timeout=10)
    finally:
        first.stop()
    second = LiveServer(tmp_path / "data").start()  # the process executor: jobs only
    try:
        with second.http() as h:
            d = h.get("/deployments/chat").json()
            assert d["state"] == "failed" and d["reason"] == f"not started: {NO_RUNNER}", d
        assert gpus_used(second) == 0
        assert second.executor is not None and (second.executor.starts, second.executor.jobs) == (0, {})
    finally:
        second.stop()


def test_a_rolling_update_that_cannot_be_placed_leaves_the_revision_before_serving(server) -> None:
    with server.http() as h:
        first = h.post("/deployments", json=body(queue="root.open", min_replicas=3)).json()
        wait_until(lambda: running(h, "chat") == (3, "running"), timeout=10)
        # The new revision's 3 replicas do not fit root.open's max next to the 3 running: it waits.
        new = h.post("/deployments", json=body(queue="root.open", min_replicas=3, target_ongoing_requests=4))
        assert new.status_code == 201, new.text
        wait_until(lambda: "max" in (h.get("/deployments/chat").json()["held"] or ""), timeout=10)
        assert h.get(f"/workloads/{first['id']}").json()["state"] == "running"
        assert len(h.get("/deployments").json()) == 2  # both revisions, while it is in progress
        third = h.post("/deployments", json=body(queue="root.open", min_replicas=2))
        assert third.status_code == 409
        assert third.json()["message"] == (
            f"name: a rolling update of 'chat' is in progress ({first['id']} -> {new.json()['id']})"
        )
        assert h.delete("/deployments/chat").json()["state"] == "cancelled"
        assert h.get("/deployments").json() == []  # both revisions ended
        wait_until(lambda: gpus_used(server, "root.open") == 0, timeout=10)
