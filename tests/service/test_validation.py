"""Bad requests are refused with an error naming the field, and store nothing."""

from __future__ import annotations

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
