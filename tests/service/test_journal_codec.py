"""The journal's one codec of workload specs: every field of a spec survives the database.

A property test over every field of ``WorkloadSpec``, ``TaskGroup``, ``Disruption`` and
``ServingSpec``: the
strategies below must name each field, so a field added to the model without a strategy fails
here before a restart could drop it.
"""

from __future__ import annotations

import json
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.engine.model import Disruption, NotebookSpec, ServingSpec, TaskGroup, WorkloadSpec
from gpupool.service.journal import spec_from_json, spec_to_json

names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=12)
resources = st.dictionaries(st.sampled_from(["gpu", "vcore", "memory", "ephemeral"]), st.integers(0, 2**40))
gpu_types = st.lists(names, max_size=3).map(tuple)
finite = st.floats(min_value=0, max_value=1e7, allow_nan=False)

GROUP_FIELDS = {
    "name": names,
    "members": st.integers(1, 4096),
    "resources": resources,
    "gpu_types": gpu_types,
    "alternatives": st.lists(st.tuples(resources, gpu_types), max_size=3).map(tuple),
    "max_members": st.none() | st.integers(1, 4096),
}
DISRUPTION_FIELDS = {"policy": st.sampled_from(["never", "checkpoint"]), "grace": finite}
SERVING_FIELDS = {
    "import_path": names,
    "deployment_name": st.none() | names,
    "target_ongoing_requests": finite,
    "upscale_delay": finite,
    "downscale_delay": finite,
    "look_back": finite,
    "scale_to_zero_after": st.none() | finite,
    "max_ongoing_requests": st.integers(1, 10_000),
    "graceful_shutdown_timeout": finite,
    "revision": st.integers(1, 2**31 - 1),
    "replaces": st.none() | names,
    "min_replicas": st.none() | st.just(0),
}
NOTEBOOK_FIELDS = {
    "idle_timeout": st.none() | finite,
    "max_lifetime": st.none() | finite,
    "preemptible": st.booleans(),
}
SPEC_FIELDS = {
    "name": names,
    "task_groups": st.lists(
        st.fixed_dictionaries(GROUP_FIELDS).map(lambda d: TaskGroup(**d)), max_size=4
    ).map(tuple),
    "queue": st.none() | names,
    "user": names,
    "groups": st.lists(names, max_size=3).map(tuple),
    "tags": st.dictionaries(names, names, max_size=3),
    "priority": st.integers(-(2**31), 2**31 - 1),
    "gang_style": st.sampled_from(["soft", "hard"]),
    "gang_timeout": finite,
    "span_regions": st.booleans(),
    "disruption": st.fixed_dictionaries(DISRUPTION_FIELDS).map(lambda d: Disruption(**d)),
    "entrypoint": st.none() | names,
    "working_dir": st.none() | names,
    "env": st.dictionaries(names, names, max_size=3),
    "idempotency_key": st.none() | names,
    "size": st.none() | names,
    "duration": st.none() | finite,
    "checkpoint_interval": finite,
    "kind": st.sampled_from(["job", "deployment", "notebook"]),
    "serving": st.none() | st.fixed_dictionaries(SERVING_FIELDS).map(lambda d: ServingSpec(**d)),
    "notebook": st.none() | st.fixed_dictionaries(NOTEBOOK_FIELDS).map(lambda d: NotebookSpec(**d)),
}
specs = st.fixed_dictionaries(SPEC_FIELDS).map(lambda d: WorkloadSpec(**d))


def test_the_strategies_name_every_field():
    assert set(SPEC_FIELDS) == {f.name for f in fields(WorkloadSpec)}
    assert set(GROUP_FIELDS) == {f.name for f in fields(TaskGroup)}
    assert set(DISRUPTION_FIELDS) == {f.name for f in fields(Disruption)}
    assert set(SERVING_FIELDS) == {f.name for f in fields(ServingSpec)}
    assert set(NOTEBOOK_FIELDS) == {f.name for f in fields(NotebookSpec)}


@settings(max_examples=200, deadline=None)
@given(specs)
def test_every_field_round_trips_through_the_database_json(spec: WorkloadSpec):
    stored = json.loads(json.dumps(spec_to_json(spec)))  # what a JSON column gives back
    assert spec_from_json(stored) == spec


def test_a_row_written_before_a_field_existed_reads_with_its_default():
    spec = WorkloadSpec(
        name="g",
        task_groups=(TaskGroup("w", 2, {"gpu": 8000}, (), ((({"gpu": 4000}), ("A100",)),), max_members=4),),
    )
    raw = spec_to_json(spec)
    for key in (
        "span_regions",
        "duration",
        "checkpoint_interval",
        "disruption",
        "kind",
        "serving",
        "notebook",
    ):
        del raw[key]
    back = spec_from_json(raw)
    assert back.task_groups == spec.task_groups
    assert back.disruption == Disruption() and back.duration is None and back.checkpoint_interval == 0.0
    assert back.kind == "job" and back.serving is None and back.notebook is None


def test_a_submitted_elastic_group_keeps_max_members(sqlite_server):
    from gpupool.service.db import Database
    from gpupool.service.models import WorkloadRow

    w = sqlite_server.client().submit(
        "elastic",
        queue="root.a",
        entrypoint="sleep 30",
        task_groups=[{"name": "worker", "members": 1, "max_members": 3, "gpus": 1}],
    )
    db = Database(sqlite_server.settings.db_url)
    try:
        with db.session() as s:
            row = s.get(WorkloadRow, w.id)
            assert row is not None
            assert spec_from_json(row.spec).task_groups[0].max_members == 3
    finally:
        db.close()
    sqlite_server.client().cancel(w.id)


def test_gpu_indices_round_trip_through_the_journal_and_old_rows_read_as_unknown(database_url, tmp_path):
    from sqlalchemy import update

    from gpupool.engine.model import Workload, WorkloadState
    from gpupool.service.db import Database
    from gpupool.service.journal import DbJournal, workload_from_row
    from gpupool.service.models import WorkloadRow

    db = Database(database_url or f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        db.migrate()
        journal = DbJournal(db)
        spec = WorkloadSpec(
            name="s", task_groups=(TaskGroup("worker", 2, {"gpu": 250}), TaskGroup("big", 1, {"gpu": 2000}))
        )
        w = Workload("w-000001", spec, submitted_at=1.0)
        journal.submitted(w)
        w.placement = {"worker-0": "n0", "worker-1": "n1", "big-0": "n0"}
        w.assigned = {"worker-0": {"gpu": 250}, "worker-1": {"gpu": 250}, "big-0": {"gpu": 2000}}
        w.gpu_ids = {"worker-0": (3,), "worker-1": (0,), "big-0": (2, 1)}
        journal.transition(w, w.move(WorkloadState.ADMITTED, 2.0, "placed"))
        [row] = journal.active()
        back = workload_from_row(row)
        assert back.gpu_ids == w.gpu_ids and back.assigned == w.assigned and back.placement == w.placement
        # A row written before GPU indices were journalled: no indices (recovery picks afresh).
        with db.session() as s:
            s.execute(update(WorkloadRow).values(assigned={"worker-0": {"gpu": 0.25}}))
        [row] = journal.active()
        old = workload_from_row(row)
        assert old.gpu_ids == {} and old.assigned == {"worker-0": {"gpu": 250}}
    finally:
        db.close()
