"""What would make a job impossible to start is refused at submission (422), storing nothing:
a NUL byte in the entrypoint, the working_dir or an env value, and a relative working_dir."""

from __future__ import annotations

import pytest

GOOD = {"name": "ok", "queue": "root.a", "entrypoint": "true", "task_groups": [{"gpus": 1}]}


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"entrypoint": "echo a\x00b"}, "body.entrypoint", "NUL byte"),
        ({"working_dir": "/tmp/a\x00b"}, "body.working_dir", "NUL byte"),
        ({"working_dir": "relative/dir"}, "body.working_dir", "absolute path"),
        ({"env": {"GOOD": "a\x00b"}}, "body.env", "value of GOOD contains a NUL byte"),
    ],
)
def test_a_job_that_could_never_start_is_refused_at_submission(sqlite_server, patch, field, words):
    with sqlite_server.http() as http:
        r = http.post("/workloads", json={**GOOD, **patch})
        assert r.status_code == 422, r.text
        err = r.json()
        match = [f for f in err["fields"] if f["field"] == field]
        assert match and words in match[0]["message"], err
        assert http.get("/workloads").json() == []


def test_a_submission_above_the_member_limit_is_refused(sqlite_server):
    from gpupool.api import MAX_MEMBERS_PER_SUBMISSION as LIMIT

    half = LIMIT // 2
    too_many = {
        **GOOD,
        "task_groups": [
            {"name": "a", "members": half},
            {"name": "b", "members": half, "max_members": half + 1},
        ],
    }
    with sqlite_server.http() as http:
        r = http.post("/workloads", json=too_many)
        assert r.status_code == 422, r.text
        assert f"{LIMIT + 1} members in all" in r.json()["message"]
        assert http.get("/workloads").json() == []
        at_limit = {
            **GOOD,
            "task_groups": [
                {"name": "a", "members": half, "gpus": 0, "cpu": 0.001, "memory": "1Mi"},
                {"name": "b", "members": half, "gpus": 0, "cpu": 0.001, "memory": "1Mi"},
            ],
        }
        r = http.post("/workloads", json=at_limit)
        assert r.status_code == 201, r.text
        http.post(f"/workloads/{r.json()['id']}/cancel")
