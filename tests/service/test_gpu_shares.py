"""Shares of one GPU at the service's edges: the API takes ``gpus: 0.25`` and refuses what cannot
be placed, and every view (workload, listing, queues, nodes, metrics, ``why``, the portal's GPU
map, the SDK and the CLI) shows a share as a fraction of a GPU, never rounded."""

from __future__ import annotations

import json

import pytest

from gpupool.api import SubmitRequest
from gpupool.client import ApiError
from gpupool.engine.model import TaskGroup, WorkloadSpec
from gpupool.service.journal import spec_from_json, spec_to_json

from .executors import wait_until
from .test_cli_sdk import cli

GOOD = {"name": "ok", "queue": "root.a", "entrypoint": "true"}


def _count(server) -> int:
    with server.http() as http:
        return len(http.get("/workloads").json())


@pytest.mark.parametrize(
    ("gpus", "words"),
    [
        (1.5, "more than one GPU but not whole"),
        (2.25, "ask 2 or 3"),
        (0.0001, "finer than a thousandth of a GPU"),
        (0.1234, "steps of 0.001"),
        (1e-05, "finer than a thousandth"),
        (65, "less than or equal to 64"),
        ("0.25", "or a share of one GPU (a number below 1: 0.25), got '0.25'"),
    ],
)
def test_a_share_that_cannot_be_placed_is_refused_naming_the_field(sqlite_server, gpus, words):
    body = {**GOOD, "task_groups": [{"name": "head", "gpus": 1}, {"name": "worker", "gpus": gpus}]}
    with sqlite_server.http() as http:
        r = http.post("/workloads", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert [f["field"] for f in err["fields"]] == ["body.task_groups.1.gpus"], err
    message = err["fields"][0]["message"]
    assert words in message and "\n" not in message and not message.startswith("Value error"), message
    assert "body.task_groups.1.gpus" in err["message"] and "\n" not in err["message"]
    assert _count(sqlite_server) == 0


def test_the_journal_codec_stores_a_share_as_its_fraction_and_reads_it_back_exactly():
    req = SubmitRequest.model_validate(
        {**GOOD, "task_groups": [{"gpus": 0.001}, {"name": "w2", "gpus": 0.999}]}
    )
    assert [g.resources()["gpu"] for g in req.task_groups or []] == [1, 999]
    spec = WorkloadSpec(
        name="s",
        task_groups=(TaskGroup("worker", 3, {"gpu": 250}, alternatives=(({"gpu": 125}, ()),)),),
    )
    stored = json.loads(json.dumps(spec_to_json(spec)))  # as the JSON column holds it
    assert stored["task_groups"][0]["resources"] == {"gpu": 0.25}
    assert stored["task_groups"][0]["alternatives"][0]["resources"] == {"gpu": 0.125}
    back = spec_from_json(stored)
    assert back.task_groups[0].resources == {"gpu": 250} and back.total_gpus() == 0.75
    assert back.task_groups[0].alternatives[0][0] == {"gpu": 125}


def test_shares_round_trip_exactly_and_show_as_fractions(server):
    gp = server.client()
    w = gp.submit("quarters", queue="root.open", entrypoint="sleep 30", gpus=0.25, members=3)
    assert w.task_groups[0].resources["gpu"] == 0.25 and w.gpus == 0.75
    wait_until(lambda: gp.get(w.id).state == "running", timeout=20)
    got = gp.get(w.id)  # read back from the journal (SQLite or PostgreSQL)
    assert got.task_groups[0].resources["gpu"] == 0.25 and got.gpus == 0.75
    # Each member holds one GPU index of its node (the service's nodes policy spreads them).
    assert sorted(got.gpu_ids) == ["worker-0", "worker-1", "worker-2"], got.gpu_ids
    assert all(len(ids) == 1 for ids in got.gpu_ids.values()), got.gpu_ids
    assert [x.gpus for x in gp.list() if x.id == w.id] == [0.75]
    queues = {q.path: q for q in gp.queues()}
    assert queues["root.open"].allocated["gpu"] == 0.75 and queues["root"].allocated["gpu"] == 0.75
    nodes = {n.name: n for n in gp.nodes()}
    held = {n: [m for m, at in got.placement.items() if at == n] for n in set(got.placement.values())}
    with server.http() as http:
        metrics = http.get("/metrics").text
        pools = http.get("/portal/api/nodes").json()
    for name, members in held.items():
        node = nodes[name]
        used = 0.25 * len(members)
        assert node.allocated["gpu"] == used, node
        assert f'gpupool_node_gpus_used{{gpu_type="{node.gpu_type}",node="{name}"}} {used}' in metrics
        cells = [c for p in pools for n in p["nodes"] if n["name"] == name for c in n["cells"]]
        assert [c["index"] for c in cells] == list(range(len(cells)))
        for m in members:
            cell = cells[got.gpu_ids[m][0]]
            assert cell["state"] == "shared" and cell["used_milli"] >= 250, cell
            assert (m, 250, 0.25) in [(h["member"], h["milli"], h["gpus"]) for h in cell["holders"]]
        assert not [c for c in cells if c["state"] == "used"]


def test_a_waiting_share_is_explained_in_fractions(sqlite_server):
    gp = sqlite_server.client()
    big = gp.submit("big", queue="root.open", entrypoint="sleep 60", gpus=3, members=1)
    part = gp.submit("part", queue="root.open", entrypoint="sleep 60", gpus=0.75)
    wait_until(lambda: gp.get(big.id).state == "running" and gp.get(part.id).state == "running", timeout=20)
    # root.open's max is 4 GPUs and it holds 3.75: a 0.5 share waits, a 0.25 one fits.
    waits = gp.submit("waits", queue="root.open", entrypoint="true", gpus=0.5)
    fits = gp.submit("fits", queue="root.open", entrypoint="sleep 60", gpus=0.25)
    wait_until(lambda: gp.get(fits.id).state == "running", timeout=20)
    lines = gp.why(waits.id).lines
    text = "\n".join(lines)
    assert "is pending" in lines[0] and "at its max" in lines[0], lines
    assert "0.5" in text and "4" in text, text
    assert gp.get(waits.id).state == "pending"


def test_sdk_and_cli_take_a_share_and_refuse_a_bad_one_in_one_line(sqlite_server):
    gp = sqlite_server.client()
    with pytest.raises(ApiError) as exc:
        gp.submit("bad", queue="root.a", entrypoint="true", gpus=1.5)
    assert exc.value.fields == [("body.task_groups.0.gpus", exc.value.fields[0][1])]
    assert "not whole" in exc.value.message and "\n" not in exc.value.message
    with pytest.raises(ValueError, match="not several"):
        gp.submit("both", queue="root.a", entrypoint="true", gpus=0.5, size="small")

    r = cli(sqlite_server, "submit", "q", "-e", "sleep 30", "-q", "root.a", "--gpus", "0.25", "--json")
    assert r.exit_code == 0, r.output
    w = json.loads(r.output)
    assert w["task_groups"][0]["resources"]["gpu"] == 0.25 and w["gpus"] == 0.25
    wait_until(lambda: gp.get(w["id"]).state == "running", timeout=20)
    r = cli(sqlite_server, "status", w["id"])
    index = gp.get(w["id"]).gpu_ids["worker-0"][0]
    assert r.exit_code == 0 and f"GPU {index} (0.25 of it)" in r.output, r.output
    r = cli(sqlite_server, "list")
    assert "0.25" in r.output
    node = gp.get(w["id"]).placement["worker-0"]
    use = {n["name"]: n["gpu_use"] for n in json.loads(cli(sqlite_server, "nodes", "--json").output)}
    assert use[node][index] == 0.25 and sum(use[node]) == 0.25, use
    assert f"{index}:0.25" in cli(sqlite_server, "nodes").output

    r = cli(sqlite_server, "submit", "bad", "-e", "true", "-q", "root.a", "--gpus", "1.5")
    assert r.exit_code == 1 and "Traceback" not in r.output
    first = r.output.splitlines()[0]
    assert "body.task_groups.0.gpus" in first and "not whole" in first and "ask 1 or 2" in first, r.output
    r = cli(sqlite_server, "submit", "bad", "-e", "true", "-q", "root.a", "--gpus", "a quarter")
    assert r.exit_code == 2 and "Traceback" not in r.output and "--gpus" in r.output
