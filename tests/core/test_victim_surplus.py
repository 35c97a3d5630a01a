"""Victims free no more than the preemptor's queue is still owed (yunikorn-core
``calculateVictimsByNode``: a victim is kept only if ``askQueueRemaining.FitInActual(victim)``).

Found by tests/core/test_properties.py::test_no_preemption_back_and_forth_between_two_queues:
c1 (guaranteed 2) preempted a 3-GPU allocation of its sibling c0 for a 1-GPU ask, its other ask
borrowed the 2 GPUs left over, c1 ended at 3 above its guarantee, and c0 (which inherits p0's
guarantee of 8) preempted c1 back.
"""

from __future__ import annotations

from builders import World, preempts, q
from gpupool.core.decisions import Decision

C0 = "root.p0.c0"
C1 = "root.p0.c1"


def _world(*c0_sizes: int) -> World:
    """p0 (guaranteed 8) over c0 (no guarantee of its own) and c1 (guaranteed 2); one 8-GPU node
    full of c0's work, the first size the newest; c1 asks for 1 GPU (old enough to preempt at
    t=0) and 2 GPUs (new); c0 has a 1-GPU ask that may preempt from t=30 on."""
    w = World(q("p0", q("c0"), q("c1", guaranteed={"gpu": 2}), guaranteed={"gpu": 8}))
    w.node("node-1", gpu=8)
    for i, gpus in enumerate(c0_sizes):
        w.running(f"c0-{i}", "c0-work", "node-1", {"gpu": gpus}, queue=C0, start=-10.0 - 90.0 * i)
    w.app("c1-work", C1)
    w.ask("c1-small", "c1-work", res={"gpu": 1}, created=-30.0)
    w.ask("c1-big", "c1-work", res={"gpu": 2}, created=0.0)
    w.app("c0-more", C0)
    w.ask("c0-more-0", "c0-more", res={"gpu": 1}, created=-5.0)
    return w


def _run_with_restarts(w: World, instants: range, freed: dict[str, int] | None = None) -> list[Decision]:
    """As the property test drives it: at each instant, cycles until nothing changes; every
    preempted allocation comes back at once as a new ask of its application (a restarted pod).
    ``freed`` gets the milli-GPUs of each preempted allocation."""
    out: list[Decision] = []
    restarts = 0
    for now in instants:
        for _ in range(1000):
            result = w.cycle(float(now))
            out.extend(result.decisions)
            for d in preempts(result.decisions):
                gone = w.s.release(d.alloc_id)
                if freed is not None:
                    freed[d.alloc_id] = gone.resources.get("gpu", 0)
                restarts += 1
                w.s.add_ask(d.app_id, f"restart-{restarts}", dict(gone.resources), created=float(now))
            if not result.changed:
                break
    return out


def test_victims_free_no_more_than_the_guarantee_still_owed() -> None:
    w = _world(3, 5)
    freed: dict[str, int] = {}
    _run_with_restarts(w, range(0, 1), freed)
    # c1 is owed 2 GPUs: stopping c0's 3-GPU (or 5-GPU) allocation would free more than that.
    assert sum(freed.values()) <= 2000, freed
    assert w.usage(C1).get("gpu", 0) <= 2000


def test_no_preemption_back_and_forth_over_the_surplus() -> None:
    w = _world(3, 5)
    decisions = _run_with_restarts(w, range(0, 121, 20))
    pairs = [(p.queue, p.for_ask) for p in preempts(decisions)]
    c1_for_c0 = [p for p in preempts(decisions) if p.queue == C1]
    c0_for_c1 = [p for p in preempts(decisions) if p.queue == C0]
    assert not (c1_for_c0 and c0_for_c1), pairs
    assert w.usage(C1).get("gpu", 0) <= 2000


def test_a_victim_too_big_is_passed_over_not_the_end_of_the_node() -> None:
    # The newest allocation (3 GPUs) is more than c1 is owed; the next one (2 GPUs) is not.
    # yunikorn-core stops at the first victim that does not fit (``break``); gpupool goes on.
    w = World(q("p0", q("c0"), q("c1", guaranteed={"gpu": 2}), guaranteed={"gpu": 8}))
    w.node("node-1", gpu=8)
    for i, gpus in enumerate((3, 2, 3)):
        w.running(f"c0-{i}", "c0-work", "node-1", {"gpu": gpus}, queue=C0, start=-10.0 - 90.0 * i)
    w.app("c1-work", C1)
    w.ask("c1-small", "c1-work", res={"gpu": 1}, created=-30.0)
    first = w.settle(0.0)
    assert [p.alloc_id for p in preempts(first)] == ["c0-1"]
    assert "c1-small" in w.placed()


def test_the_reason_says_what_the_queue_is_owed() -> None:
    w = _world(3, 5)
    w.settle(0.0)
    assert "freeing more than root.p0.c1 is still owed" in w.why("c1-small").message
