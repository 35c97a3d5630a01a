"""One idempotency key, one workload: in one process and across restarts (unique constraint)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from gpupool.client import ApiError
from gpupool.engine.model import TaskGroup, Workload, WorkloadSpec
from gpupool.service.db import Database
from gpupool.service.journal import DbJournal


def test_same_key_returns_the_first_workload(server):
    gp = server.client()
    with server.http() as http:
        body = {
            "name": "once",
            "queue": "root.a",
            "entrypoint": "true",
            "size": "small",
            "idempotency_key": "k-1",
        }
        first = http.post("/workloads", json=body)
        again = http.post("/workloads", json={**body, "name": "twice"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"] and again.json()["name"] == "once"
    assert len(gp.list()) == 1


def test_key_survives_a_restart(make_server, tmp_path):
    server = make_server(tmp_path / "d")
    w = server.client().submit("once", queue="root.a", entrypoint="true", size="small", idempotency_key="k-2")
    server.stop()
    again = make_server(tmp_path / "d").client()
    w2 = again.submit("twice", queue="root.a", entrypoint="true", size="small", idempotency_key="k-2")
    assert w2.id == w.id and len(again.list()) == 1


def test_another_users_key_is_a_conflict(sqlite_server):
    alice = sqlite_server.client(sqlite_server.token("alice", ("team-a",)))
    alice.submit("a", queue="root.a", entrypoint="true", size="small", idempotency_key="shared")
    bob = sqlite_server.client(sqlite_server.token("bob", ("team-b",)))
    with pytest.raises(ApiError) as exc:
        bob.submit("b", queue="root.b", entrypoint="true", size="small", idempotency_key="shared")
    assert exc.value.status == 409 and exc.value.fields[0][0] == "body.idempotency_key"


def test_database_refuses_a_duplicate_key(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    journal = DbJournal(db)
    spec = WorkloadSpec("x", (TaskGroup("w", 1, {"gpu": 1000}),), idempotency_key="dup")
    journal.submitted(Workload("w-000001", spec, submitted_at=0))
    with pytest.raises(IntegrityError):
        journal.submitted(Workload("w-000002", spec, submitted_at=0))
    db.close()
