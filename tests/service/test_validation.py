"""Bad requests are refused with an error naming the field, and store nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD = {"name": "ok", "queue": "root.a", "entrypoint": "true", "task_groups": [{"gpus": 1}]}


def _count(server) -> int:
    with server.http() as http:
        return len(http.get("/workloads").json())


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"task_groups": [{"gpus": -1}]}, "body.task_groups.0.gpus", "greater than or equal to 0"),
        ({"task_groups": [{"gpus": 1, "memory": "lots"}]}, "body.task_groups.0.memory", "not a quantity"),
        ({"task_groups": [{"gpus": 1, "colour": "red"}]}, "body.task_groups.0.colour", "Extra inputs"),
        (
            {"task_groups": [{"gpus": 1, "members": 0}]},
            "body.task_groups.0.members",
            "greater than or equal to 1",
        ),
        ({"disruption": {"policy": "sometimes"}}, "body.disruption.policy", "'never' or 'checkpoint'"),
        ({"name": "bad name!"}, "body.name", "pattern"),
        ({"entrypoint": ""}, "body.entrypoint", "at least 1 character"),
        ({"priority": 2**40}, "body.priority", "less than or equal"),
        ({"env": {"1BAD": "x"}}, "body.env", "not an environment variable name"),
        ({"size": "small"}, "body", "exactly one of `size`"),
        ({"task_groups": [{"members": 2, "max_members": 1}]}, "body.task_groups.0", "at least members"),
        ({"span_regions": "sometimes"}, "body.span_regions", "valid boolean"),
    ],
)
def test_invalid_fields_are_named_and_nothing_is_stored(sqlite_server, patch, field, words):
    body = {**GOOD, **patch}
    with sqlite_server.http() as http:
        r = http.post("/workloads", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] == "invalid" and err["hint"]
    match = [f for f in err["fields"] if f["field"] == field]
    assert match, err
    assert words in match[0]["message"], match
    assert field in err["message"]
    assert _count(sqlite_server) == 0


def test_missing_field_and_non_json_body(sqlite_server):
    with sqlite_server.http() as http:
        r = http.post("/workloads", json={"name": "x", "queue": "root.a", "size": "small"})
        assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.entrypoint"
        r = http.post("/workloads", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["code"] == "invalid"
    assert _count(sqlite_server) == 0


def test_unknown_size_and_unknown_queue_are_named(sqlite_server):
    with sqlite_server.http() as http:
        r = http.post("/workloads", json={**GOOD, "task_groups": None, "size": "gigantic"})
        assert r.status_code == 422
        assert r.json()["fields"][0]["field"] == "body.size" and "small" in r.json()["fields"][0]["message"]
        r = http.post("/workloads", json={**GOOD, "queue": "root.nope"})
        assert r.status_code == 422
        assert r.json()["fields"][0]["field"] == "body.queue" and "root.a" in r.json()["fields"][0]["message"]
    assert _count(sqlite_server) == 0


def test_unknown_workload_is_404(sqlite_server):
    with sqlite_server.http() as http:
        r = http.get("/workloads/w-999999")
        assert r.status_code == 404 and r.json()["code"] == "not-found"


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"task_groups": [{"gpus": "2"}]}, "body.task_groups.0.gpus", "valid integer"),
        ({"task_groups": [{"gpus": True}]}, "body.task_groups.0.gpus", "valid integer"),
        ({"task_groups": [{"gpus": 1, "cpu": "2"}]}, "body.task_groups.0.cpu", "valid number"),
        ({"priority": "5"}, "body.priority", "valid integer"),
        ({"gang": "yes"}, "body.gang", "valid boolean"),
        (
            {"task_groups": [{"gpus": 1, "memory": "99999999999999999999Ei"}]},
            "body.task_groups.0.memory",
            "too large",
        ),
        ({"tags": {"team": "x" * 1000}}, "body.tags.team", "at most 256 characters"),
        ({"tags": {f"k{i}": "v" for i in range(33)}}, "body.tags", "at most 32 items"),
        ({"env": {f"V{i}": "v" for i in range(129)}}, "body.env", "at most 128 items"),
        ({"env": {"BIG": "x" * 40000}}, "body.env.BIG", "at most 32768 characters"),
    ],
)
def test_lax_and_unbounded_values_are_refused(sqlite_server, patch, field, words):
    body = {**GOOD, **patch}
    with sqlite_server.http() as http:
        r = http.post("/workloads", json=body)
    assert r.status_code == 422, r.text
    match = [f for f in r.json()["fields"] if f["field"] == field]
    assert match and words in match[0]["message"], r.json()
    assert _count(sqlite_server) == 0


def test_a_body_over_the_limit_is_refused_with_an_error_body(sqlite_server):
    with sqlite_server.http() as http:
        r = http.post("/workloads", json={**GOOD, "tags": {"team": "x" * (10 << 20)}})
        assert r.status_code == 413, r.text[:300]
        assert r.json()["code"] == "too-large" and r.json()["hint"]

        def chunks():  # no Content-Length: the limit is counted as the body arrives
            yield b'{"name": "x", "tags": {"a": "'
            for _ in range(200):
                yield b"x" * 10000
            yield b'"}}'

        r = http.post("/workloads", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["code"] == "too-large", r.text[:300]
    assert _count(sqlite_server) == 0


def test_the_routers_own_errors_are_error_bodies(sqlite_server):
    with sqlite_server.http() as http:
        r = http.get("/no/such/path")
        assert r.status_code == 404 and r.json()["code"] == "not-found" and r.json()["hint"]
        r = http.delete("/workloads")
        assert r.status_code == 405 and r.json()["code"] == "method-not-allowed"
        assert r.headers["allow"] == "GET, POST"
        r = http.get("/queues/root.a/history", params={"since": "nan"})
        assert r.status_code == 422 and r.json()["fields"][0]["field"] == "query.since"
        r = http.get("/workloads", params={"limit": "lots"})
        assert r.status_code == 422 and r.json()["code"] == "invalid"


def test_every_documented_error_is_an_error_body(sqlite_server):
    with sqlite_server.http() as http:
        schema = http.get("/openapi.json").json()
    submit = schema["paths"]["/workloads"]["post"]
    assert {"200", "201", "401", "403", "409", "413", "422"} <= set(submit["responses"])
    for status in ("401", "403", "409", "422"):
        ref = submit["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorBody")
    assert "404" in schema["paths"]["/workloads/{workload_id}"]["get"]["responses"]
    rule = schema["components"]["schemas"]["SubmitRequest"]["oneOf"]
    assert [r["required"] for r in rule] == [["size"], ["task_groups"]]


def test_a_reload_of_a_hostile_config_is_a_422_error_body(tmp_path, make_server):
    config = tmp_path / "queues.yaml"
    config.write_text((Path(__file__).parent / "queues.yaml").read_text())
    server = make_server(config=config)
    config.write_text("partitions: " + "[" * 243 + "]" * 243 + "\n")
    with server.http() as http:
        r = http.post("/config/reload")
    assert r.status_code == 422, r.text[:300]
    assert "nested more than" in r.json()["fields"][0]["message"]
