"""The snapshot (``gpupool.core.snapshot``): every what-if edit hands back an undo that puts the state
back exactly as it was, and a failure on a what-if state is never remembered as "fits nowhere".
Also the "preemption cannot help" clause (``gpupool.core.preemption.cannot_help``), recognised by
its field, not by its text.
"""

from __future__ import annotations

from builders import GPU8, World, q
from gpupool.core.decisions import Code, Reason
from gpupool.core.preemption import CANNOT_HELP, cannot_help


def _world() -> World:
    w = World(q("team", max={"gpu": 16}), q("other"))
    w.nodes(2, gpu=8)
    w.app("app", "root.team")
    w.ask("a1", "app", res=GPU8)
    w.running("r1", "busy", "node-2", {"gpu": 4}, queue="root.other")
    return w


def _picture(w: World) -> tuple[object, ...]:
    s = w.s
    team, other = s.queues["root.team"], s.queues["root.other"]
    return (
        sorted(s.asks),
        sorted(s.apps["app"].asks),
        sorted(s.allocations),
        dict(team.allocated),
        dict(team.pending),
        dict(other.allocated),
        {n: dict(node.avail) for n, node in s.nodes.items()},
        s.index.level("node-1"),
        s.index.level("node-2"),
        {n: (list(node.gpu_free), dict(node.held_gpus)) for n, node in s.nodes.items()},
    )


def test_assign_and_its_undo_leave_the_state_as_it_was() -> None:
    w = _world()
    before = _picture(w)
    snap = w.s.snapshot
    ask = w.s.asks["a1"]
    alloc, undo = snap.assign(ask, w.s.nodes["node-1"])
    assert "a1" in w.s.allocations and "a1" not in w.s.asks
    assert w.s.queues["root.team"].allocated.get("gpu") == 8000
    assert w.s.index.level("node-1") == 0
    undo()
    assert _picture(w) == before
    assert alloc.id not in w.s.allocations


def test_remove_and_its_undo_leave_the_state_as_it_was() -> None:
    w = _world()
    before = _picture(w)
    undo = w.s.snapshot.remove(w.s.allocations["r1"])
    assert "r1" not in w.s.allocations
    assert w.s.queues["root.other"].allocated.get("gpu", 0) == 0
    assert w.s.index.level("node-2") == 8000  # 8 fully free GPUs
    undo()
    assert _picture(w) == before


def test_undos_run_last_first_restore_several_edits() -> None:
    w = _world()
    before = _picture(w)
    snap = w.s.snapshot
    undos = [snap.remove(w.s.allocations["r1"])]
    undos.append(snap.assign(w.s.asks["a1"], w.s.nodes["node-2"])[1])
    for back in reversed(undos):
        back()
    assert _picture(w) == before


def test_a_failure_on_a_what_if_state_is_not_remembered() -> None:
    w = World(q("team"))
    w.nodes(1, gpu=8)
    w.app("app", "root.team")
    w.ask("a1", "app", res=GPU8)
    w.ask("a2", "app", res=GPU8, created=1)
    snap = w.s.snapshot
    snap.new_cycle()
    leaf = w.s.queues["root.team"]
    a1, a2 = w.s.asks["a1"], w.s.asks["a2"]
    _, undo = snap.assign(a1, w.s.nodes["node-1"])
    node, reason = snap.find_place(a2, leaf)
    assert node is None and reason.code == Code.NO_NODE
    assert snap.nofit == {}  # a1 is only a trial: once undone, a2 fits
    undo()
    node, _ = snap.find_place(a2, leaf)
    assert node is not None and node.name == "node-1"
    placed, _ = snap.assign(a2, node)
    snap.commit(placed)
    node, _ = snap.find_place(a1, leaf)
    assert node is None and len(snap.nofit) == 1  # on the committed state it is remembered
    assert placed.id in w.s.allocations


def test_cannot_help_replaces_its_clause_and_plays_no_part_in_equality() -> None:
    base = Reason(Code.NO_NODE, "no node has 8 free GPU(s)", "wait")
    once = cannot_help(base, "preemption is disabled in this partition")
    twice = cannot_help(once, "it has waited 5s")
    assert once.preemption == "preemption is disabled in this partition"
    assert twice.message == f"no node has 8 free GPU(s){CANNOT_HELP}it has waited 5s"
    assert twice.message.count(CANNOT_HELP) == 1
    assert (twice.code, twice.hint) == (Code.NO_NODE, "wait")
    assert base.preemption == ""
    assert Reason(Code.NO_NODE, twice.message, "wait") == twice
