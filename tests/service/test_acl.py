"""The queue configuration's submit and admin ACLs apply to every call."""

from __future__ import annotations

import pytest

from gpupool.client import ApiError

from .executors import wait_until


def test_submit_needs_submit_access_on_the_queue(sqlite_server):
    alice = sqlite_server.client(sqlite_server.token("alice", ("team-a",)))
    w = alice.submit("mine", queue="root.a", entrypoint="true", size="small")
    assert w.user == "alice"
    with pytest.raises(ApiError) as exc:
        alice.submit("theirs", queue="root.b", entrypoint="true", size="small")
    assert exc.value.status == 403 and exc.value.fields[0][0] == "body.queue"
    assert "submitacl" in exc.value.hint
    # The open queue takes everyone.
    assert alice.submit("open", queue="root.open", entrypoint="true", size="small").queue == "root.open"
    assert [w.name for w in alice.list()] == ["open", "mine"]


def test_others_workloads_need_admin_on_their_queue(sqlite_server):
    alice = sqlite_server.client(sqlite_server.token("alice", ("team-a",)))
    bob = sqlite_server.client(sqlite_server.token("bob", ("team-b",)))
    b_admin = sqlite_server.client(sqlite_server.token("carol", ("b-admins",)))
    root_admin = sqlite_server.client(sqlite_server.token("dave", ("admins",)))
    wa = alice.submit("a-job", queue="root.a", entrypoint="sleep 30", size="small")
    wb = bob.submit("b-job", queue="root.b", entrypoint="sleep 30", size="small")

    # Bob cannot see or cancel Alice's workload: it does not exist for him.
    for call in (bob.get, bob.cancel, bob.why, bob.logs, bob.events):
        with pytest.raises(ApiError) as exc:
            call(wa.id)
        assert exc.value.status == 404
    assert [w.id for w in bob.list()] == [wb.id]

    # Carol administers root.b only; Dave administers root.
    assert [w.id for w in b_admin.list()] == [wb.id]
    with pytest.raises(ApiError):
        b_admin.get(wa.id)
    assert b_admin.cancel(wb.id).state == "cancelled"
    assert {w.id for w in root_admin.list()} == {wa.id, wb.id}
    assert root_admin.cancel(wa.id).state == "cancelled"
    wait_until(lambda: alice.get(wa.id).state == "cancelled")


def test_reload_needs_admin_on_root(sqlite_server):
    carol = sqlite_server.client(sqlite_server.token("carol", ("b-admins",)))
    with pytest.raises(ApiError) as exc:
        carol.reload_config()
    assert exc.value.status == 403 and "root" in exc.value.hint
    dave = sqlite_server.client(sqlite_server.token("dave", ("admins",)))
    assert any(q.path == "root.a" for q in dave.reload_config())


def test_admin_token_flag_sees_everything(sqlite_server):
    alice = sqlite_server.client(sqlite_server.token("alice", ("team-a",)))
    w = alice.submit("a-job", queue="root.a", entrypoint="true", size="small")
    ops = sqlite_server.client(sqlite_server.token("ops", (), admin=True))
    assert ops.get(w.id).user == "alice"
    assert ops.whoami().admin is True
