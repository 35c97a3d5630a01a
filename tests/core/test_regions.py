"""Regions: a gang's members share one region unless it allows span_regions, in placement
(``gpupool.core.fit``, ``Snapshot.place_all``) and in preemption (``gpupool.core.preemption``).

Split from the former tests/test_core_unit.py.
"""

from __future__ import annotations

import pytest

from builders import GPU8, World, places, preempts, q
from gpupool.core.capacity import REGION_LABEL
from gpupool.core.decisions import Code
from gpupool.core.demand import waiting_demand
from gpupool.core.model import GangSpec

# ---- regions: a gang's members share one region unless it allows span_regions -------------------

EAST = {REGION_LABEL: "east"}
WEST = {REGION_LABEL: "west"}


def _regions(*, east_busy: int = 4, west_busy: int = 0, **partition_keys: object) -> World:
    """Two 8-GPU nodes per region; east-2 (and west-2 if asked) partly busy."""
    w = World(q("team"), q("other"), preemption={"enabled": False}, **partition_keys)
    w.node("east-1", EAST, gpu=8).node("east-2", EAST, gpu=8)
    w.node("west-1", WEST, gpu=8).node("west-2", WEST, gpu=8)
    if east_busy:
        w.running("busy-east", "app-0", "east-2", {"gpu": east_busy}, queue="root.other")
    if west_busy:
        w.running("busy-west", "app-0", "west-2", {"gpu": west_busy})
    return w


def _gang(w: World, members: int, span: bool = False, app: str = "gang", queue: str = "root.team") -> None:
    w.app(app, queue, gang=GangSpec("hard", 600, span))
    for i in range(1, members + 1):
        w.ask(f"{app}-m{i}", app, res=GPU8)


def test_gang_goes_whole_to_the_region_where_all_its_members_fit() -> None:
    # east-1 is the first choice (free, first by name) but east has room for one member only.
    w = _regions()
    _gang(w, 2)
    w.cycle()
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"west-1", "west-2"}


def test_gang_with_span_regions_may_use_several_regions() -> None:
    w = _regions(west_busy=2)  # one free node per region: no region holds both members
    _gang(w, 2, span=True)
    w.cycle()
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"east-1", "west-1"}


def test_nodes_without_a_region_go_with_any_region() -> None:
    w = _regions(west_busy=2)
    w.node("static-1", gpu=8).node("static-2", gpu=8)
    _gang(w, 3)
    w.cycle()
    nodes = {w.node_of(f"gang-m{i}") for i in (1, 2, 3)}
    assert len(nodes) == 3
    regions = {w.s.nodes[n].labels.get(REGION_LABEL) for n in nodes} - {None}
    assert len(regions) == 1


def test_gang_that_fits_only_across_regions_waits_and_says_why() -> None:
    w = _regions(west_busy=2)
    _gang(w, 2)
    result = w.cycle()
    assert places(result.decisions) == []
    for member in ("gang-m1", "gang-m2"):
        reason = w.why(member)
        assert reason.code == Code.GANG_WAITING
        assert "must share a region" in reason.message
        assert "no region has room for all 2" in reason.message
        assert "span_regions" in reason.message
    assert all(not n.allocations or n.name.endswith("-2") for n in w.s.nodes.values())
    assert all(not n.held for n in w.s.nodes.values())


def test_gang_that_fits_nowhere_keeps_the_plain_reason() -> None:
    w = _regions(west_busy=2)
    _gang(w, 3)  # three 8-GPU members, two free nodes in all: spreading would not help
    w.cycle()
    reason = w.why("gang-m1")
    assert reason.code == Code.GANG_WAITING
    assert "no node has 8 free GPU(s)" in reason.message
    assert "region" not in reason.message


def test_region_failure_is_not_remembered_as_no_room_for_a_single_ask() -> None:
    # The gang fails in every region (after what-if placements); in the same cycle a later
    # one-member app of the same shape still finds one of the two free nodes.
    w = _regions(west_busy=2)
    _gang(w, 2)
    w.app("single", "root.team")
    w.ask("one", "single", res={"gpu": 8}, created=1)
    w.cycle()
    assert w.node_of("one") in ("east-1", "west-1")
    assert "must share a region" in w.why("gang-m1").message


def test_waiting_gang_does_not_hide_room_from_a_later_ask_of_its_shape() -> None:
    # No regions at all: member 2 fails after member 1's what-if placement; that failure must
    # not be taken for "no node fits 8 GPUs" once member 1 is undone.
    w = World(q("team"), preemption={"enabled": False}).nodes(1, gpu=8)
    w.app("gang", "root.team", gang=GangSpec("hard", 600))
    w.ask("m1", "gang", res=GPU8)
    w.ask("m2", "gang", res=GPU8)
    w.app("single", "root.team")
    w.ask("one", "single", res=GPU8, created=1)
    w.cycle()
    assert w.node_of("one") == "node-1"
    assert w.why("m1").code == Code.GANG_WAITING


def _gang_half_in_east() -> World:
    """A soft gang whose first member runs on east-1 while east-2 is full; its second waits."""
    w = _regions(east_busy=0)
    w.app("gang", "root.team", gang=GangSpec("soft", 600))
    w.s.restore("gang-m1", "gang", "east-1", GPU8, start=-60)
    w.running("fill", "app-0", "east-2", GPU8, queue="root.other")
    w.ask("gang-m2", "gang", res=GPU8)
    return w


def test_more_members_join_the_region_their_gang_runs_in() -> None:
    w = _gang_half_in_east()
    # Its failure in east is not remembered as a failure anywhere: a later ask of the same
    # shape, in the same queue and cycle, gets west-1.
    w.app("single", "root.team")
    w.ask("one", "single", res=GPU8, created=1)
    w.cycle()
    reason = w.why("gang-m2")
    assert "gang-m2" in w.s.asks
    assert "its gang runs in region east" in reason.message
    assert w.node_of("one") == "west-1"
    assert "span_regions" in reason.message
    w.s.release("fill")
    w.cycle(1.0)
    assert w.node_of("gang-m2") == "east-2"  # not west-2, although free


def test_the_demand_of_a_gang_running_in_a_region_names_that_region() -> None:
    w = _gang_half_in_east()
    _gang(w, 2, app="fresh")
    w.running("w1", "app-0", "west-1", GPU8, queue="root.other")
    w.running("w2", "app-0", "west-2", GPU8, queue="root.other")
    w.cycle()
    demand = {d.workload: d for d in waiting_demand(w.s.state.asks.values(), w.s.state.apps)}
    assert demand["gang"].regions == ("east",)
    assert demand["fresh"].regions == ()  # nothing of it runs yet: any region will do


def test_asks_of_an_app_that_is_not_a_gang_ignore_regions() -> None:
    w = _regions(east_busy=8, west_busy=8)  # one free node per region
    w.app("one", "root.team")
    w.ask("a", "one", res=GPU8)
    w.ask("b", "one", res=GPU8, created=1)
    w.settle()
    assert {w.node_of("a"), w.node_of("b")} == {"east-1", "west-1"}


def test_preemption_does_not_spread_a_gang_over_regions() -> None:
    """Room made by preemption on one node per region could never hold the gang together."""

    def world(span: bool) -> World:
        w = World(q("research", guaranteed={"gpu": 16}), q("batch"))
        w.node("east-1", EAST, gpu=8).node("west-1", WEST, gpu=8)
        w.running("b1", "app-batch", "east-1", GPU8, queue="root.batch", start=-600)
        w.running("b2", "app-batch", "west-1", GPU8, start=-300)
        _gang(w, 2, span=span, queue="root.research")
        return w

    w = world(span=False)
    assert preempts(w.settle(60.0)) == []  # past the default preemption.delay of 30s
    reason = w.why("gang-m1")
    assert "spans regions" in reason.message
    w = world(span=True)
    assert {p.alloc_id for p in preempts(w.settle(60.0))} == {"b1", "b2"}
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"east-1", "west-1"}


def test_preemption_within_one_region_places_the_gang_there() -> None:
    w = World(q("research", guaranteed={"gpu": 24}), q("batch"))
    w.node("east-1", EAST, gpu=8).node("east-2", EAST, gpu=8).node("west-1", WEST, gpu=8)
    w.running("b1", "app-batch", "east-1", GPU8, queue="root.batch", start=-600)
    w.running("b2", "app-batch", "east-2", GPU8, start=-300)
    w.running("r1", "app-research", "west-1", {"gpu": 4}, queue="root.research")  # never a victim
    _gang(w, 2, queue="root.research")
    assert {p.alloc_id for p in preempts(w.settle(60.0))} == {"b1", "b2"}
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"east-1", "east-2"}


def test_scenario_gang_takes_span_regions_and_refuses_a_non_boolean() -> None:
    from gpupool.scenario import ScenarioError, parse_scenario

    def scenario(gang: dict[str, object]) -> dict[str, object]:
        config = {"partitions": [{"name": "default", "queues": [{"name": "root", "submitacl": "*"}]}]}
        return {"config": config, "apps": [{"id": "g", "gang": gang}], "expect": {"pending": []}}

    parsed = parse_scenario(scenario({"style": "hard", "span_regions": True}), "s.yaml")
    assert parsed.apps[0].gang == GangSpec("hard", 900.0, True)
    assert parse_scenario(scenario({}), "s.yaml").apps[0].gang == GangSpec("soft", 900.0, False)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario({"span_regions": "yes"}), "s.yaml")
    assert info.value.path == "apps[0].gang.span_regions"
    assert "true or false" in info.value.message


def _east_and_west(span: bool) -> World:
    """batch (no guarantee) holds both east nodes and half of west-1, its newest and cheapest work."""
    w = World(q("research", guaranteed={"gpu": 16}), q("batch"))
    w.node("east-1", EAST, gpu=8).node("east-2", EAST, gpu=8).node("west-1", WEST, gpu=8)
    w.running("b1", "app-batch", "east-1", GPU8, queue="root.batch", start=-600)
    w.running("b2", "app-batch", "east-2", GPU8, start=-300)
    w.running("w1", "app-batch", "west-1", {"gpu": 4}, start=-60)
    _gang(w, 2, span=span, queue="root.research")
    return w


def test_preemption_for_a_one_region_gang_looks_for_room_in_one_region() -> None:
    # Node by node, west-1 is the cheapest to clear (4 GPUs of the newest work), but west has
    # one node: the gang can only get its guarantee back in east, by preempting both east nodes.
    w = _east_and_west(span=False)
    assert {p.alloc_id for p in preempts(w.settle(60.0))} == {"b1", "b2"}
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"east-1", "east-2"}
    assert w.node_of("w1") == "west-1"
    assert not w.s.allocations["w1"].preempted


def test_preemption_for_a_spanning_gang_takes_the_cheapest_victims_in_any_region() -> None:
    w = _east_and_west(span=True)
    assert {p.alloc_id for p in preempts(w.settle(60.0))} == {"w1", "b2"}
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"west-1", "east-2"}
    assert w.node_of("b1") == "east-1"


@pytest.mark.parametrize(("west_2_age", "region"), [(1100, "east"), (800, "west")])
def test_one_region_gang_preempts_in_the_region_where_it_costs_least(west_2_age: int, region: str) -> None:
    # Regions aside, west-1 (4 GPUs of new work) and east-1 are the cheapest nodes: a plan that
    # spans. Each region can hold the gang; the one where less work is lost wins.
    w = World(q("research", guaranteed={"gpu": 16}), q("batch"))
    for name in ("east-1", "east-2", "east-3"):
        w.node(name, EAST, gpu=8)
    w.node("west-1", WEST, gpu=8).node("west-2", WEST, gpu=8)
    w.running("e1", "app-batch", "east-1", GPU8, queue="root.batch", start=-100)
    w.running("e2", "app-batch", "east-2", GPU8, start=-900)
    w.running("e3", "app-batch", "east-3", GPU8, start=-950)
    w.running("w1", "app-batch", "west-1", {"gpu": 4}, start=-60)
    w.running("w2", "app-batch", "west-2", GPU8, start=-west_2_age)
    _gang(w, 2, queue="root.research")
    victims = {p.alloc_id for p in preempts(w.settle(60.0))}
    # Work lost at t=60 (age x GPUs): east 160x8 + 960x8 = 8960; west 120x4 + (age + 60) x 8,
    # 9760 or 7360. West is tried first (member 1 went there regions aside): east wins on cost.
    assert victims == ({"e1", "e2"} if region == "east" else {"w1", "w2"})
    nodes = {w.node_of("gang-m1"), w.node_of("gang-m2")}
    assert {w.s.nodes[n].labels[REGION_LABEL] for n in nodes} == {region}


def test_preemption_for_more_members_stays_in_the_region_their_gang_runs_in() -> None:
    # Member 1 runs in east; the cheapest room for member 2 is on west-1, but it must join east.
    w = World(q("research", guaranteed={"gpu": 16}), q("batch"))
    w.node("east-1", EAST, gpu=8).node("east-2", EAST, gpu=8).node("west-1", WEST, gpu=8)
    w.app("gang", "root.research", gang=GangSpec("soft", 600))
    w.s.restore("gang-m1", "gang", "east-1", GPU8, start=-600)
    w.running("b2", "app-batch", "east-2", GPU8, queue="root.batch", start=-300)
    w.running("w1", "app-batch", "west-1", {"gpu": 4}, start=-60)
    w.ask("gang-m2", "gang", res=GPU8)
    assert {p.alloc_id for p in preempts(w.settle(60.0))} == {"b2"}
    assert w.node_of("gang-m2") == "east-2"
    assert w.node_of("w1") == "west-1"


def test_one_region_gang_waits_when_no_region_can_be_cleared_for_it() -> None:
    # Room for both members only across regions, even with preemption: nothing is preempted.
    w = World(q("research", guaranteed={"gpu": 16}), q("batch"))
    w.node("east-1", EAST, gpu=8).node("west-1", WEST, gpu=8).node("west-2", WEST, gpu=8)
    w.running("b1", "app-batch", "east-1", GPU8, queue="root.batch", start=-600)
    w.running("w1", "app-batch", "west-1", {"gpu": 4}, start=-60)
    w.running("r1", "app-never", "west-2", GPU8, queue="root.batch", disruptible=False)
    _gang(w, 2, queue="root.research")
    assert preempts(w.settle(60.0)) == []
    reason = w.why("gang-m1")
    assert "spans regions" in reason.message
    assert all(not n.held for n in w.s.nodes.values())


def _elastic_extras_east_and_west(span: bool) -> World:
    """flex (elastic, no guarantee) runs its required member on north-1 and borrowed extras on
    both east nodes (old) and half of west-2 (new); batch holds the other half of west-2 (new).
    west-1 is free."""
    w = World(q("research", guaranteed={"gpu": 16}), q("batch"), q("flex"))
    w.node("east-1", EAST, gpu=8).node("east-2", EAST, gpu=8)
    w.node("west-1", WEST, gpu=8).node("west-2", WEST, gpu=8)
    w.node("north-1", {REGION_LABEL: "north"}, gpu=8)
    w.running("f0", "app-flex", "north-1", GPU8, queue="root.flex", start=-900)
    w.running("x1", "app-flex", "east-1", GPU8, start=-600, elastic=True)
    w.running("x2", "app-flex", "east-2", GPU8, start=-600, elastic=True)
    w.running("x3", "app-flex", "west-2", {"gpu": 4}, start=-60, elastic=True)
    w.running("w1", "app-batch", "west-2", {"gpu": 4}, queue="root.batch", start=-60)
    _gang(w, 2, span=span, queue="root.research")
    return w


def test_one_region_gang_gets_elastic_extras_back_in_one_region() -> None:
    # Regions aside, member 1 takes the free west-1 and member 2 gets east-1 by taking back x1:
    # a plan that spans. West has room only by preempting batch's ordinary work on west-2, and
    # that is cheaper than the old east extras; taking back both east extras needs no ordinary
    # work preempted at all, so it comes first.
    w = _elastic_extras_east_and_west(span=False)
    decisions = w.settle(60.0)  # past preemption.delay: ordinary preemption could run too
    assert {p.alloc_id for p in preempts(decisions)} == {"x1", "x2"}
    assert all("elastic extra member given back" in p.reason.message for p in preempts(decisions))
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"east-1", "east-2"}
    assert not w.s.allocations["w1"].preempted and not w.s.allocations["x3"].preempted


def test_spanning_gang_gets_elastic_extras_back_in_any_region() -> None:
    w = _elastic_extras_east_and_west(span=True)
    assert {p.alloc_id for p in preempts(w.settle(60.0))} == {"x1"}
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"west-1", "east-1"}


def test_one_region_gang_takes_back_the_fewest_elastic_extras_of_any_one_region() -> None:
    # As above, but an extra holds all of west-2: west needs one extra back, east two.
    w = _elastic_extras_east_and_west(span=False)
    w.s.release("w1")
    w.s.release("x3")
    w.running("x4", "app-flex", "west-2", GPU8, start=-30, elastic=True)
    decisions = preempts(w.settle(60.0))
    assert [(p.alloc_id, "elastic extra member given back" in p.reason.message) for p in decisions] == [
        ("x4", True)
    ]
    assert {w.node_of("gang-m1"), w.node_of("gang-m2")} == {"west-1", "west-2"}
