"""Two asks of one leaf do not each restore the same guarantee: room already held for one (its
victims still stopping) counts when the other looks for victims (found by
tests/core/test_properties.py::test_no_preemption_back_and_forth_between_two_queues)."""

from __future__ import annotations

from builders import World, preempts, q


def _world() -> World:
    w = World(q("p0", q("c0"), q("c1", guaranteed={"gpu": 2}), guaranteed={"gpu": 8}))
    w.nodes(2, gpu=4)
    for node, sizes in (("node-1", (3, 1)), ("node-2", (1, 2, 1))):
        for i, gpus in enumerate(sizes):
            w.running(f"c0-{node}-{i}", "busy", node, {"gpu": gpus}, queue="root.p0.c0")
    w.app("small", "root.p0.c1")
    w.ask("small-0", "small", res={"gpu": 1}, created=-600.0)
    w.app("big", "root.p0.c1")
    w.ask("big-0", "big", res={"gpu": 2}, created=-600.0)
    return w


def test_victims_are_stopped_only_up_to_the_guarantee_while_they_stop() -> None:
    w = _world()
    # The victims keep running through the first cycle: the room made for the first ask is held.
    first = w.settle(0.0, release_preempted=False)
    stopped = sum(w.s.state.allocations[p.alloc_id].resources["gpu"] for p in preempts(first))
    assert 0 < stopped <= 2000, [p.alloc_id for p in preempts(first)]


def test_no_back_and_forth_once_the_victims_stopped() -> None:
    w = _world()
    w.app("more", "root.p0.c0")
    w.ask("more-0", "more", res={"gpu": 1}, created=-600.0)
    decisions = w.run_until(120.0)
    # c0 gave GPUs back to c1 up to its guarantee; c1's work was never taken back for c0.
    assert w.usage("root.p0.c1").get("gpu", 0) <= 2000
    assert [p.alloc_id for p in preempts(decisions) if p.queue == "root.p0.c1"] == []
