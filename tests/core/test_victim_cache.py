"""The victim search keeps what it found on a node (``VictimSearch._local``) only while the node's
allocations stay the same: an allocation marked preempted, released or placed since is seen."""

from __future__ import annotations

from builders import World, q
from gpupool.core.cycle import Cycle
from gpupool.core.decisions import Code, CycleResult, Reason
from gpupool.core.preemption import PreemptionPlan
from gpupool.core.victims import VictimSearch


def _world() -> World:
    w = World(q("a", guaranteed={"gpu": 8}), q("b", guaranteed={"gpu": 0}))
    w.node("n1", gpu=8, vcore=64, memory=512)
    for i in range(8):
        w.running(f"b-{i}", f"job-b-{i}", "n1", {"gpu": 1, "vcore": 1, "memory": 1}, queue="root.b")
    w.app("job-a", "root.a")
    w.ask("ask-a", "job-a", res={"gpu": 2, "vcore": 1, "memory": 1}, created=-600.0)
    return w


def _victims(w: World, search: VictimSearch) -> list[str]:
    state = w.s.state
    ask = state.asks["ask-a"]
    leaf = state.queues["root.a"]
    eligible = search._eligible(ask, leaf, search._fence_root(leaf, ask.resources))
    return sorted(a.id for c in search._local(ask, state.nodes["n1"], eligible) for a in c.allocs)


def test_the_search_sees_allocations_marked_preempted_released_and_placed_since() -> None:
    w = _world()
    search = VictimSearch(w.s.snapshot, now=0.0)
    assert _victims(w, search) == [f"b-{i}" for i in range(8)]
    w.s.mark_preempting("b-0")  # recovery marks a victim already stopping
    assert _victims(w, search) == [f"b-{i}" for i in range(1, 8)]
    w.s.release("b-1")
    assert _victims(w, search) == [f"b-{i}" for i in range(2, 8)]
    w.running("b-9", "job-b-9", "n1", {"gpu": 1, "vcore": 1, "memory": 1}, queue="root.b")
    assert _victims(w, search) == [f"b-{i}" for i in range(2, 8)] + ["b-9"]


def test_the_search_sees_victims_a_cycle_chose() -> None:
    w = _world()
    cycle: Cycle = w.s._cycle
    search = VictimSearch(cycle.snap, now=0.0)
    assert len(_victims(w, search)) == 8
    state = w.s.state
    ask = state.asks["ask-a"]
    victims = [state.allocations["b-2"], state.allocations["b-3"]]
    plan = PreemptionPlan([ask], victims, [(ask, state.nodes["n1"])], Reason(Code.PREEMPTED, "test"))
    cycle._apply_preemption(plan, CycleResult(0.0))
    assert _victims(w, search) == [f"b-{i}" for i in range(8) if i not in (2, 3)]
