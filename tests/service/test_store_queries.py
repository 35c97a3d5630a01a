"""The store's query of stopped runs (what the idle GPU-hours reclaimed are summed over), on
SQLite and PostgreSQL: only the runs stopped with the reason asked for, each with the next run of
the same name and kind."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from gpupool.service.db import Database
from gpupool.service.models import WorkloadRow
from gpupool.service.store import WorkloadStore


def _row(seq: int, name: str, kind: str, reason: str, submitted: float, finished: float | None) -> dict:
    return {
        "id": f"w-{seq:06d}", "seq": seq, "name": name, "user": "alice", "queue": "root.a",
        "state": "cancelled" if finished is not None else "running", "reason": reason,
        "spec": {"kind": kind, "queue": "root.a"}, "submitted_at": submitted, "started_at": submitted + 1,
        "finished_at": finished,
    }  # fmt: skip


def test_stopped_runs_are_read_with_their_next_run(database_url: str | None, tmp_path: Path) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'state.db'}")
    try:
        db.migrate()
        rows = [
            _row(1, "nb", "notebook", "stopped (idle): idle 30m", 0, 100),
            _row(2, "other", "notebook", "stopped by alice", 10, 50),
            _row(3, "nb", "job", "", 150, 160),  # a job of the same name is no resume
            _row(4, "nb", "notebook", "stopped (idle): idle 30m", 200, 300),
            _row(5, "nb", "notebook", "", 400, None),
            _row(6, "solo", "notebook", "stopped (idle): idle 1h", 20, 90),
            _row(7, "%", "notebook", "stopped (idle)_ not this", 20, 90),
        ]
        with db.engine.begin() as conn:
            conn.execute(insert(WorkloadRow.__table__), rows)
        got = WorkloadStore(db).stopped_runs("notebook", "stopped (idle): ")
        assert [(r.id, r.next_submitted_at) for r in got] == [
            ("w-000001", 200),
            ("w-000004", 400),
            ("w-000006", None),
        ]
        assert [r.id for r in WorkloadStore(db).stopped_runs("notebook", "stopped by ")] == ["w-000002"]
    finally:
        db.close()
