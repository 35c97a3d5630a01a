"""A driver tick's journal writes share one transaction, committed before the executor acts."""

from __future__ import annotations

from sqlalchemy import select

from gpupool.api import SubmitRequest, TaskGroupIn
from gpupool.service.app import prepare
from gpupool.service.db import Database
from gpupool.service.models import TransitionRow, WorkloadRow
from gpupool.service.plane import ControlPlane
from gpupool.service.security import Principal
from gpupool.service.settings import ServiceSettings, load_queue_config

from .conftest import TEST_CONFIG
from .executors import wait_until
from .null_executor import NullExecutor

ADMIN = Principal("admin", ("admins",), admin=True)


class Peeking(NullExecutor):
    """Reads, on a connection of its own, what the database says when it is asked to act."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.seen: list[tuple[str, str | None]] = []

    def start(self, workload, now):
        with self.db.engine.connect() as conn:
            state = conn.execute(select(WorkloadRow.state).where(WorkloadRow.id == workload.id)).scalar()
        self.seen.append((workload.id, state))
        super().start(workload, now)


def test_each_start_finds_its_admission_committed_and_the_tick_commits_the_rest(tmp_path):
    settings = ServiceSettings(data_dir=tmp_path, config_path=TEST_CONFIG, tick_interval=0.1)
    db = Database(settings.db_url)
    other = Database(settings.db_url)  # another connection: sees only committed rows
    prepare(settings, db)
    executor = Peeking(other)
    plane = ControlPlane(settings, load_queue_config(TEST_CONFIG), db, executor)
    plane.start()
    try:
        ids = [
            plane.workloads.submit(
                ADMIN,
                SubmitRequest(
                    name=f"w{i}", queue="root.a", entrypoint="true", task_groups=[TaskGroupIn(gpus=1)]
                ),
            )[0].id
            for i in range(6)
        ]
        wait_until(lambda: len(executor.seen) == len(ids))
        # Several admissions in one tick, each committed before its own start.
        assert sorted(executor.seen) == [(wid, "admitted") for wid in ids]

        def running() -> bool:
            with other.engine.connect() as conn:
                states = conn.execute(select(WorkloadRow.state).where(WorkloadRow.id.in_(ids))).scalars()
                return set(states) == {"running"}

        wait_until(running)  # the next tick's observations, committed when it ended
        with other.engine.connect() as conn:
            mine = select(TransitionRow.new).where(TransitionRow.workload_id == ids[0])
            news = conn.execute(mine.order_by(TransitionRow.id)).scalars()
            assert list(news) == ["admitted", "running"]
    finally:
        plane.stop()
        db.close()
        other.close()
