"""Asks made ``within_guarantee`` (notebook sessions that may not be preempted) are placed only
while their leaf queue stays within its guarantee with them: placed within it, waiting at it
(reason ``above-guarantee``), placed again once room within it frees up, never above it, per
GPU type where the guarantee is per type; they still preempt for their guarantee like any ask;
and asks without the flag are not touched (the same shape in the same leaf still borrows)."""

from __future__ import annotations

from builders import World, places, preempts, q
from gpupool.core.decisions import Code
from gpupool.core.demand import waiting_demand
from gpupool.core.within_guarantee import guarantee_at, guarantee_gap, never_within

ONE = {"gpu": 1, "vcore": 1000}


def _world(**queues: dict[str, int]) -> World:
    """``root.a`` guaranteed ``a`` (default 2 GPUs), ``root.b`` guaranteed 4; two nodes of 4 GPUs."""
    w = World(
        q("a", guaranteed=queues.get("a", {"gpu": 2}), properties={"preemption.delay": "30s"}),
        q("b", guaranteed={"gpu": 4}, properties={"preemption.delay": "30s"}),
        preemption={"enabled": True},
    )
    w.nodes(2, gpu=4, vcore=8000)
    return w


def _session(w: World, name: str, *, at: float = 0.0, res: dict[str, int] = ONE, **kw: object) -> None:
    w.app(name, "root.a")
    w.ask(f"{name}-0", name, res=res, created=at, within_guarantee=True, **kw)


def test_placed_within_waits_at_the_guarantee_and_is_placed_again_once_room_frees() -> None:
    w = _world()
    for i in range(3):
        _session(w, f"s{i}")
    w.settle(0.0)
    assert sorted(w.placed()) == ["s0-0", "s1-0"]  # 2 of 2: at the guarantee, 6 GPUs idle
    why = w.why("s2-0")
    assert why.code == Code.ABOVE_GUARANTEE, why
    assert why.message.startswith(
        "queue root.a would go above its guarantee (gpu: 2 in use, 2 guaranteed, it asks for 1)"
    )
    assert "may not be preempted runs only within its queue's guarantee" in why.message
    w.run_until(120.0)  # never above it, however long it waits, and no preemption for it
    assert "s2-0" not in w.s.allocations and preempts(w.decisions) == []
    assert w.usage("root.a")["gpu"] == 2000
    w.s.release("s0-0")
    assert [p.ask_id for p in places(w.settle(121.0))] == ["s2-0"]
    assert w.usage("root.a")["gpu"] == 2000


def test_the_queues_own_preemptible_work_counts_and_without_the_flag_it_borrows() -> None:
    w = _world()
    w.running("batch-0", "batch", "node-1", {"gpu": 2}, queue="root.a")  # a's own, at its guarantee
    _session(w, "s")
    w.app("borrow", "root.a")
    w.ask("borrow-0", "borrow", res=ONE, created=0.0)  # the same shape, without the flag
    w.settle(0.0)
    assert "borrow-0" in w.s.allocations  # borrowed above the guarantee, as before
    assert w.why("s-0").code == Code.ABOVE_GUARANTEE
    assert w.usage("root.a")["gpu"] == 3000


def test_an_unflagged_ask_after_a_flagged_one_fails_is_still_placed_in_the_same_cycle() -> None:
    w = _world()
    w.running("batch-0", "batch", "node-1", {"gpu": 2}, queue="root.a")
    _session(w, "s", at=0.0)
    w.app("later", "root.a")
    w.ask("later-0", "later", res=ONE, created=1.0)  # same leaf, same resources, tried after
    placed = [p.ask_id for p in places(w.cycle(2.0).decisions)]
    assert placed == ["later-0"] and w.why("s-0").code == Code.ABOVE_GUARANTEE


def test_per_gpu_type_it_runs_only_on_the_type_its_guarantee_names() -> None:
    w = World(q("a", guaranteed={"gpu/A100": 2}), q("b"), preemption={"enabled": True})
    w.node("h100", {"gpu-type": "H100"}, gpu=4, vcore=8000)
    w.node("a100", {"gpu-type": "A100"}, gpu=4, vcore=8000)
    for i in range(3):
        _session(w, f"s{i}")
    w.settle(0.0)
    assert w.placed() == {"s0-0": "a100", "s1-0": "a100"}  # 4 H100 idle, not guaranteed to a
    why = w.why("s2-0")
    assert (
        why.code == Code.ABOVE_GUARANTEE
        and "(gpu/A100: 2 in use, 2 guaranteed, it asks for 1)" in why.message
    ), why


def test_a_queue_that_guarantees_no_gpu_of_the_type_asked_never_places_it() -> None:
    w = World(q("a", guaranteed={"gpu/A100": 2}), preemption={"enabled": True})
    w.node("h100", {"gpu-type": "H100"}, gpu=4, vcore=8000)
    w.node("a100", {"gpu-type": "A100"}, gpu=4, vcore=8000)
    _session(w, "s", gpu_types=("H100",))
    w.settle(0.0)
    why = w.why("s-0")
    assert why.code == Code.ABOVE_GUARANTEE, why
    assert why.message.startswith(
        "queue root.a guarantees no GPUs of type H100 (its guarantee: {gpu/A100: 2})"
    )


def test_within_its_guarantee_it_preempts_borrowed_work_as_any_ask_and_only_on_its_type() -> None:
    w = World(
        q("a", guaranteed={"gpu/A100": 2}, properties={"preemption.delay": "30s"}),
        q("b"),
        preemption={"enabled": True},
    )
    w.node("h100", {"gpu-type": "H100"}, gpu=4, vcore=8000)
    w.node("a100", {"gpu-type": "A100"}, gpu=4, vcore=8000)
    # b borrows everything; its newest work is on the H100 node (where an ask without the flag
    # finds its victim: a guarantees no H100, and YuniKorn's rules leave that type unchecked).
    w.running("b-h100", "b-h100", "h100", {"gpu": 4}, queue="root.b", start=-60.0)
    for i in range(2):
        w.running(f"b-a100-{i}", f"b-a100-{i}", "a100", {"gpu": 2}, queue="root.b", start=-600.0 + i)
    _session(w, "s", at=0.0)
    w.settle(0.0)
    assert "preemption.delay" in w.why("s-0").message  # within its guarantee: preemption may help
    w.settle(31.0)
    assert [p.alloc_id for p in preempts(w.decisions)] == ["b-a100-1"]  # on the type it is guaranteed
    assert w.placed() == {"s-0": "a100"}


def _demand(w: World) -> dict[str, tuple[str, ...]]:
    return {d.workload: d.gpu_types for d in waiting_demand(w.s.state.asks.values(), w.s.state.apps)}


def test_new_nodes_are_asked_only_for_the_sessions_the_guarantee_has_room_for() -> None:
    # No node yet: every ask waits for one. root.a guarantees 2 GPUs and holds 1 (its own batch,
    # on a node that is full): one session of 1 GPU fits the guarantee, a second does not, so
    # only the first counts as demand; work without the flag counts as before.
    w = World(q("a", guaranteed={"gpu": 2}), q("b"), preemption={"enabled": True})
    w.node("full", gpu=1, vcore=1000)
    w.running("batch-0", "batch", "full", {"gpu": 1, "vcore": 1000}, queue="root.a")
    for i in range(3):
        _session(w, f"s{i}", at=float(i))
    w.app("borrow", "root.a")
    w.ask("borrow-0", "borrow", res=ONE, created=5.0)
    w.settle(10.0)
    assert w.why("s0-0").code == Code.NO_NODE and w.why("s1-0").code == Code.NO_NODE
    assert _demand(w) == {"s0": (), "borrow": ()}


def test_a_session_without_gpu_types_asks_for_a_node_of_the_type_its_guarantee_names() -> None:
    w = World(q("a", guaranteed={"gpu/A100": 2}), preemption={"enabled": True})
    w.node("full", {"gpu-type": "A100"}, gpu=1, vcore=1000)
    w.running("batch-0", "batch", "full", {"gpu": 1, "vcore": 1000}, queue="root.a")
    _session(w, "any", at=0.0)
    _session(w, "h100", at=1.0, gpu_types=("H100",))
    _session(w, "more", at=2.0, res={"gpu": 2, "vcore": 1000})
    w.settle(10.0)
    # "any" may only run on an A100 (the only GPUs its queue guarantees); "h100" never can; "more"
    # would take root.a to 3 of its 2 A100s.
    assert _demand(w) == {"any": ("A100",)}


def test_guarantee_gap_rules() -> None:
    one = {"gpu": 1000, "vcore": 1000, "memory": 2**30}
    # A resource the guarantee does not name does not hold the ask back, unless it is a GPU.
    assert guarantee_gap("root.a", {"gpu": 2000}, {}, one) is None
    gap = guarantee_gap("root.a", {"gpu": 2000, "vcore": 500}, {}, one)
    assert gap is not None and (gap.resource, gap.guaranteed) == ("vcore", 500)
    assert "guarantees vcore 0.5, less than the 1 asked" in gap.message()
    gap = guarantee_gap("root.a", None, {}, one)
    assert (
        gap is not None
        and gap.guaranteed is None
        and "guarantees no GPUs (its guarantee: none)" in gap.message()
    )
    assert guarantee_gap("root.a", None, {}, {"vcore": 1000}) is None  # no GPU: nothing to guarantee
    # ``gpu`` covers every type; ``gpu/<TYPE>`` only its own; each named key must hold the ask.
    on_h100 = {"gpu": 1000, "gpu/H100": 1000}
    assert guarantee_gap("root.a", {"gpu": 1000}, {}, on_h100) is None
    assert guarantee_gap("root.a", {"gpu/A100": 2000}, {}, on_h100) is not None
    gap = guarantee_gap("root.a", {"gpu": 4000, "gpu/H100": 1000}, {"gpu/H100": 1000}, on_h100)
    assert gap is not None and gap.resource == "gpu/H100" and gap.used == 1000
    # A share counts exactly.
    assert guarantee_gap("root.a", {"gpu": 1000}, {"gpu": 750}, {"gpu": 250}) is None
    assert guarantee_gap("root.a", {"gpu": 1000}, {"gpu": 800}, {"gpu": 250}) is not None


def test_never_within_looks_at_every_shape_and_type() -> None:
    two = {"gpu": 2000}
    assert never_within("root.a", {"gpu": 1000}, ((two, ()),), ("A100",)) is not None
    assert never_within("root.a", {"gpu": 1000}, ((two, ()), ({"gpu": 1000}, ())), ("A100",)) is None
    # No type of its own: any type of the cluster the guarantee names will do.
    assert never_within("root.a", {"gpu/A100": 2000}, ((two, ()),), ("A100", "H100")) is None
    gap = never_within("root.a", {"gpu/A100": 2000}, ((two, ("H100",)),), ("A100", "H100"))
    assert gap is not None and gap.resource == "gpu/H100" and gap.guaranteed is None


def test_guarantee_at_a_queue_a_rule_will_create_is_its_templates() -> None:
    w = World(
        q("users", parent=True, childtemplate={"resources": {"guaranteed": {"gpu": 1}}}),
        q("a", guaranteed={"gpu": 2}),
    )
    assert guarantee_at(w.s.queues, "root.a") == {"gpu": 2000}
    assert guarantee_at(w.s.queues, "root.users.alice") == {"gpu": 1000}
    assert guarantee_at(w.s.queues, "root.users") is None
