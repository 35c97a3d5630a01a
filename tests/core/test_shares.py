"""GPU shares in the core: milli-GPU quantities, per-GPU state on nodes, the node index, fit,
the GPUs an allocation holds, held room, and the victims the GPUs themselves need."""

from __future__ import annotations

import pytest

from builders import World, places, preempts, q
from gpupool.core.compaction import plan_compaction
from gpupool.core.decisions import Code
from gpupool.core.model import Node, NodeSpec, pick_gpus
from gpupool.core.nodes import NodeIndex, WeightedUtilization
from gpupool.core.resources import (
    QuantityError,
    check_gpu_ask,
    format_quantity,
    format_resources,
    from_gpus,
    gpus_of,
    in_gpus,
    parse_quantity,
    parse_resources,
    whole_gpus,
)
from gpupool.core.sharing import gpu_victims
from gpupool.core.state import SchedulerError

# ---- quantities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "milli"),
    [
        ("gpu", 2, 2000),
        ("gpu", "0.25", 250),
        ("gpu", 0.25, 250),
        ("gpu", "250m", 250),
        ("nvidia.com/gpu", "1.5", 1500),
        ("amd.com/gpu", 1, 1000),
        ("gpu/H100", "0.5", 500),
        ("gpu", 0, 0),
    ],
)
def test_gpus_are_parsed_as_milli_gpu(name: str, value: object, milli: int) -> None:
    assert parse_quantity(name, value) == milli


@pytest.mark.parametrize("value", ["0.0001", "1m5", "-1", "1.2345"])
def test_a_gpu_quantity_finer_than_a_thousandth_is_refused(value: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity("gpu", value)


def test_gpus_are_formatted_back_for_people() -> None:
    assert [format_quantity("gpu", v) for v in (2000, 250, 1500, 1, 0)] == ["2", "0.25", "1.5", "0.001", "0"]
    assert (
        format_resources({"gpu": 250, "vcore": 500, "gpu/A100": 4000})
        == "{gpu: 0.25, gpu/A100: 4, vcore: 0.5}"
    )


@pytest.mark.parametrize("milli", [1, 250, 999, 1000, 3000])
def test_an_ask_is_a_share_of_one_gpu_or_whole_gpus(milli: int) -> None:
    check_gpu_ask({"gpu": milli, "vcore": 1000})


@pytest.mark.parametrize(
    ("milli", "text"), [(1500, "1.5 is neither"), (0, "asks for no GPU"), (2001, "2.001")]
)
def test_any_other_gpu_ask_is_a_one_line_error(milli: int, text: str) -> None:
    with pytest.raises(QuantityError) as info:
        check_gpu_ask({"gpu": milli})
    assert text in str(info.value) and "\n" not in str(info.value)


def test_whole_gpus_never_rounds_a_share() -> None:
    assert whole_gpus({"gpu": 8000, "vcore": 1}) == 8
    with pytest.raises(ValueError):
        whole_gpus({"gpu": 250})
    assert gpus_of({"gpu": 250}) == 0.25 and gpus_of({"gpu": 2000}) == 2


def test_the_wire_shows_gpus_in_gpus_and_reads_them_back() -> None:
    core = parse_resources({"gpu": "0.25", "gpu/H100": 2, "vcore": 2, "memory": "1Gi"})
    wire = in_gpus(core)
    assert wire == {"gpu": 0.25, "gpu/H100": 2, "vcore": 2000, "memory": 2**30}
    assert isinstance(wire["gpu/H100"], int)  # whole GPUs stay ints on the wire, as before
    assert from_gpus(wire) == core


# ---- per-GPU state ---------------------------------------------------------------------------


def test_a_share_goes_to_the_tightest_gpu_with_room_lowest_index_on_ties() -> None:
    assert pick_gpus([1000, 1000], 250) == (0,)
    assert pick_gpus([1000, 500, 300, 500], 250) == (2,)
    assert pick_gpus([1000, 500, 600, 500], 400) == (1,)
    assert pick_gpus([200, 100], 250) is None


def test_whole_gpus_go_to_fully_free_gpus_lowest_indices_first() -> None:
    assert pick_gpus([1000, 750, 1000, 1000], 2000) == (0, 2)
    assert pick_gpus([1000, 999, 1000], 3000) is None
    assert pick_gpus([0, 0], 0) == ()


def test_node_keeps_avail_equal_to_the_sum_of_its_gpus() -> None:
    node = Node("n", {"gpu": 4000, "vcore": 8000})
    assert node.gpu_free == [1000] * 4 and node.gpu_level == 4000
    node.take({"gpu": 250}, (1,))
    node.take({"gpu": 2000}, (2, 3))
    assert node.gpu_free == [1000, 750, 0, 0] and node.avail["gpu"] == 1750
    assert node.gpu_level == 1000  # one fully free GPU
    node.hold("ask", {"gpu": 1000}, (0,))
    assert node.gpu_free == [0, 750, 0, 0] and node.gpu_level == 750 and node.avail["gpu"] == 750
    assert node.gpus_fit(750) and not node.gpus_fit(751) and not node.gpus_fit(1000)
    assert node.gpus_fit(1000, "ask") and node.pick(1000, "ask") == (0,)
    node.unhold("ask")
    node.give({"gpu": 2000}, (2, 3))
    assert node.gpu_free == [1000, 750, 1000, 1000] and node.avail["gpu"] == sum(node.gpu_free)


def test_the_index_finds_a_partly_used_gpu_for_a_share_and_skips_it_for_whole_gpus() -> None:
    index = NodeIndex(WeightedUtilization("binpacking"))
    shared = Node("shared", {"gpu": 1000})
    shared.take({"gpu": 500}, (0,))
    empty = Node("empty", {"gpu": 1000})
    for n in (shared, empty):
        index.add(n)
    assert index.level("shared") == 500 and index.level("empty") == 1000
    assert index.best(250, None, lambda n: True) is shared  # binpacking: the fuller node first
    assert index.best(1000, None, lambda n: True) is empty
    assert index.max_level(None) == 1000


def test_an_ask_above_one_gpu_that_is_not_whole_and_a_node_with_part_of_a_gpu_are_refused() -> None:
    w = World(q("team")).node("n", gpu=2)
    w.app("app", "root.team")
    with pytest.raises(SchedulerError, match=r"1\.5 is neither"):
        w.ask("a", "app", res={"gpu": 1.5})
    with pytest.raises(SchedulerError, match="not whole GPUs"):
        w.s.add_node(NodeSpec("half", {"gpu": 500}))


# ---- placement -------------------------------------------------------------------------------


def test_allocations_record_their_gpus_and_a_waiting_share_says_why() -> None:
    w = World(q("team")).node("n", gpu=2)
    w.app("app", "root.team")
    w.ask("big", "app", res={"gpu": 1})
    for i in range(5):
        w.ask(f"s{i}", "app", res={"gpu": 0.25})
    w.settle()
    assert w.s.allocations["big"].gpu_ids == (0,)
    assert [w.s.allocations[f"s{i}"].gpu_ids for i in range(4)] == [(1,)] * 4
    reason = w.why("s4")
    assert reason.code == Code.NO_NODE
    assert (
        "no node has a GPU with 0.25 free" in reason.message
        and "the most free on one GPU is 0" in reason.message
    )
    w.s.release("s0")
    w.settle()
    assert w.s.allocations["s4"].gpu_ids == (1,)


def test_a_whole_gpu_ask_names_fully_free_gpus_when_shares_leave_room_only_in_total() -> None:
    w = World(q("team")).node("n", gpu=2)
    w.app("app", "root.team")
    w.running("h0", "app", "n", {"gpu": 0.5})
    w.running("h1", "app", "n", {"gpu": 0.5})
    w.running("h2", "app", "n", {"gpu": 0.5})
    assert [w.s.allocations[h].gpu_ids for h in ("h0", "h1", "h2")] == [(0,), (0,), (1,)]
    w.ask("one", "app", res={"gpu": 1})
    w.settle()
    assert "one" in w.s.asks
    assert "no node has 1 free GPU(s)" in w.why("one").message


# ---- preemption ------------------------------------------------------------------------------


def _borrowed(*shares: tuple[str, float, float]) -> World:
    """Queue a guarantees 2 GPUs; queue b borrows one 2-GPU node with ``shares`` (id, GPUs, age)."""
    w = World(q("a", guaranteed={"gpu": 2}), q("b")).node("n", gpu=2)
    for alloc_id, gpus, age in shares:
        w.running(alloc_id, f"app-{alloc_id}", "n", {"gpu": gpus}, queue="root.b", start=-age)
    w.app("app-a", "root.a")
    return w


def test_room_held_after_preemption_holds_the_gpus_the_victims_free() -> None:
    w = _borrowed(("r1", 0.5, 100), ("r2", 0.5, 50), ("r3", 0.5, 300))
    w.ask("ask", "app-a", res={"gpu": 1}, created=-60)
    decisions = w.settle(0, release_preempted=False)
    assert [d.alloc_id for d in preempts(decisions)] == ["r3"]  # one victim clears GPU 1
    node = w.s.nodes["n"]
    assert node.held_gpus == {"ask": (1,)}
    w.s.release("r3")
    assert [p.ask_id for p in places(w.settle(1))] == ["ask"]
    assert w.s.allocations["ask"].gpu_ids == (1,) and node.held_gpus == {}
    assert node.gpu_free == [0, 0]


def test_two_gpus_are_cleared_for_a_whole_gpu_gang_member_where_it_costs_least() -> None:
    w = _borrowed(("r1", 0.25, 10), ("r2", 0.25, 10), ("r3", 0.75, 500))
    assert [w.s.allocations[r].gpu_ids for r in ("r1", "r2", "r3")] == [(0,), (0,), (1,)]
    w.ask("ask", "app-a", res={"gpu": 2}, created=-60)
    decisions = w.settle(0)
    assert sorted(d.alloc_id for d in preempts(decisions)) == ["r1", "r2", "r3"]
    assert w.s.allocations["ask"].gpu_ids == (0, 1)


class _V:
    def __init__(self, name: str, held: dict[int, int]) -> None:
        self.name = name
        self.held = held


def _names(victims: list[_V] | None) -> list[str] | None:
    return None if victims is None else [v.name for v in victims]


def test_gpu_victims_for_a_share_prefer_one_victim_then_the_fewest() -> None:
    big, small1, small2 = _V("big", {0: 500}), _V("s1", {0: 250}), _V("s2", {0: 250})
    order = [small2, small1, big]  # victim order: newest first

    def solve(milli: int, free: list[int]) -> list[str] | None:
        return _names(gpu_victims(milli, free, order, lambda v: v.held, lambda vs: (len(vs),)))

    assert solve(500, [0]) == ["big"]
    assert solve(600, [0]) == ["s2", "big"]  # no one victim frees 0.6: greedy, then s1 is reprieved
    assert solve(900, [0]) == ["s2", "s1", "big"]
    assert solve(250, [1000]) == []  # fits already
    assert solve(250, [0, 0]) == ["s2"]  # the other GPU holds nothing that may go


def test_gpu_victims_for_whole_gpus_clear_every_share_on_a_gpu_or_give_up() -> None:
    a, b, c = _V("a", {0: 500}), _V("b", {0: 500}), _V("c", {1: 500})

    def solve(milli: int, free: list[int], victims: list[_V]) -> list[str] | None:
        return _names(gpu_victims(milli, free, victims, lambda v: v.held, lambda vs: (len(vs),)))

    assert solve(1000, [0, 500], [a, b, c]) == ["c"]
    assert sorted(solve(2000, [0, 500], [a, b, c]) or []) == ["a", "b", "c"]
    assert solve(1000, [0, 0], [a, b]) == ["a", "b"]
    assert solve(1000, [0, 0], [a]) is None  # the rest of each GPU is work that may not be a victim


# ---- compaction and scale-down --------------------------------------------------------------


def test_a_node_with_only_a_share_is_used_and_compaction_moves_the_share_to_empty_it() -> None:
    w = World(q("team")).node("light", gpu=2).node("busy", gpu=2)
    w.running("share", "app-s", "light", {"gpu": 0.25}, queue="root.team")
    w.running("one", "app-o", "busy", {"gpu": 1}, queue="root.team")
    light = w.s.nodes["light"]
    assert light.allocations  # used: the autoscaler never takes it for idle
    assert light.free_gpu_milli() == 1750 and light.fully_free_gpus() == 1
    plan = plan_compaction(list(w.s.nodes.values()), budget=4, scale_down_candidates=["light"])
    assert [(f.node, [m.app for m in f.moves]) for f in plan.frees] == [("light", ["app-s"])]


# ---- recovery --------------------------------------------------------------------------------


def test_restore_keeps_the_gpus_given_shares_and_whole_gpus() -> None:
    w = World(q("team")).node("n", gpu=4)
    w.running("s0", "app", "n", {"gpu": 0.25}, queue="root.team", gpu_ids=(2,))
    w.running("s1", "app", "n", {"gpu": 0.5}, gpu_ids=(2,))
    w.running("big", "app", "n", {"gpu": 2}, gpu_ids=(3, 0))
    node = w.s.nodes["n"]
    assert [w.s.allocations[a].gpu_ids for a in ("s0", "s1", "big")] == [(2,), (2,), (3, 0)]
    assert node.gpu_free == [0, 1000, 250, 0]
    assert node.avail == {"gpu": 1250}
    # a new share goes to the tightest GPU with room: the one the restored shares are on
    w.ask("new", "app", res={"gpu": 0.25})
    w.settle()
    assert w.s.allocations["new"].gpu_ids == (2,)
    assert node.gpu_free == [0, 1000, 0, 0]
    w.s.release("s1")
    assert node.gpu_free == [0, 1000, 500, 0]


def test_restore_without_gpus_picks_them_afresh() -> None:
    w = World(q("team")).node("n", gpu=2)
    w.running("s0", "app", "n", {"gpu": 0.25}, queue="root.team", gpu_ids=(1,))
    w.running("s1", "app", "n", {"gpu": 0.25})  # unknown (an older record): tightest GPU
    w.running("one", "app", "n", {"gpu": 1})
    assert [w.s.allocations[a].gpu_ids for a in ("s0", "s1", "one")] == [(1,), (1,), (0,)]


@pytest.mark.parametrize(
    ("res", "gpu_ids", "words"),
    [
        ({"gpu": 0.25}, (2,), "not distinct GPUs of node 'n' (0..1)"),
        ({"gpu": 0.25}, (-1,), "not distinct GPUs"),
        ({"gpu": 2}, (0, 0), "not distinct GPUs"),
        ({"gpu": 2}, (0,), "1 GPU indices for 2000 milli-GPU, needs 2"),
        ({"gpu": 0.25}, (0, 1), "needs 1"),
        ({"gpu": 0.25}, (), "needs 1"),
        ({"vcore": 1}, (0,), "needs 0"),
        ({"gpu": 0.5}, (0,), "GPU 0 of node 'n' has 250 milli-GPU free, 500 needed (it would be overbooked)"),
        ({"gpu": 1}, (1, 0), "needs 1"),
        ({"gpu": 1}, (0,), "GPU 0 of node 'n' has 250 milli-GPU free, 1000 needed"),
    ],
)
def test_restore_refuses_gpus_out_of_range_or_overbooked(
    res: dict[str, float], gpu_ids: tuple[int, ...], words: str
) -> None:
    w = World(q("team")).node("n", gpu=2)
    w.running("s0", "app", "n", {"gpu": 0.75}, queue="root.team", gpu_ids=(0,))
    node = w.s.nodes["n"]
    before = (list(node.gpu_free), dict(node.avail))
    with pytest.raises(SchedulerError) as err:
        w.running("bad", "app", "n", res, gpu_ids=gpu_ids)
    assert words in str(err.value)
    assert "bad" not in w.s.allocations
    assert (node.gpu_free, node.avail) == before


def test_restore_may_take_room_held_for_an_ask_but_not_a_running_share() -> None:
    w = _borrowed(("r1", 0.5, 100), ("r2", 0.5, 50), ("r3", 0.5, 300))
    w.ask("ask", "app-a", res={"gpu": 1}, created=-60)
    w.settle(0, release_preempted=False)
    node = w.s.nodes["n"]
    assert node.held_gpus == {"ask": (1,)}
    w.s.release("r3")
    # GPU 1 is free of allocations (its room is held): restored work may go there
    w.running("back", "app-b", "n", {"gpu": 0.5}, queue="root.b", gpu_ids=(1,))
    assert w.s.allocations["back"].gpu_ids == (1,)
    with pytest.raises(SchedulerError, match="overbooked"):
        w.running("more", "app-b", "n", {"gpu": 0.25}, gpu_ids=(0,))
