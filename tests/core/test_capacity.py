"""The capacity planner: scale up for demand with fallback, headroom, scale down."""

from __future__ import annotations

from gpupool.core.capacity import (
    Arrival,
    BurstMemory,
    Demand,
    PoolNode,
    headroom_gpus_target,
    headroom_target,
    plan_capacity,
    series_window,
)
from gpupool.core.config import InstanceType, NodePool

H100_EAST = InstanceType(
    "h100-east", "H100", 8, 96_000, 2**40, region="east", hourly_cost=90.0, boot_time=120
)
H100_WEST = InstanceType(
    "h100-west", "H100", 8, 96_000, 2**40, region="west", hourly_cost=95.0, boot_time=120
)
A100 = InstanceType("a100", "A100", 8, 96_000, 2**40, region="east", hourly_cost=40.0, boot_time=90)
L4 = InstanceType("l4", "L4", 4, 48_000, 2**39, region="east", hourly_cost=5.0, boot_time=60)


def pool(name="gpu", types=(H100_EAST, H100_WEST, A100), **kw) -> NodePool:
    return NodePool(name=name, instance_types=types, **kw)


def node(name, itype, state="ready", used=0, idle_since=None, pool_name="gpu") -> PoolNode:
    free = itype.capacity()
    free["gpu"] -= used * 1000  # used: whole GPUs; the core counts milli-GPU
    return PoolNode(name, pool_name, itype, state, free, idle_since=idle_since)


def gpus(n: int) -> dict[str, int]:
    return {"gpu": n * 1000, "vcore": n * 8000}


def test_prefers_the_asks_gpu_type_then_cost_and_keeps_a_gang_in_one_region():
    plan = plan_capacity([pool(max=10)], [], [Demand("w1", (gpus(8), gpus(8)), ("H100", "A100"))], set(), 0)
    (up,) = plan.scale_up
    assert up.instance_type is H100_EAST and up.count == 2 and up.for_workloads == ("w1",)


def test_any_type_takes_the_cheapest_and_small_asks_share_a_node():
    demand = [Demand(f"w{i}", (gpus(2),)) for i in range(4)]
    plan = plan_capacity([pool(max=10)], [], demand, set(), 0)
    (up,) = plan.scale_up
    assert up.instance_type is A100 and up.count == 1 and len(up.for_workloads) == 4


def test_falls_back_past_blocked_offers_and_says_why_when_nothing_is_left():
    demand = [Demand("w1", (gpus(8),), ("H100",))]
    blocked = {("gpu", "h100-east", "east")}
    (up,) = plan_capacity([pool(max=10)], [], demand, blocked, 0).scale_up
    assert up.instance_type is H100_WEST
    blocked.add(("gpu", "h100-west", "west"))
    plan = plan_capacity([pool(max=10)], [], demand, blocked, 0)
    assert not plan.scale_up and "failed lately" in plan.unmet["w1"]


def test_booting_nodes_absorb_demand_and_pool_max_is_respected():
    booting = [node("n1", A100, state="booting")]
    plan = plan_capacity([pool(max=2)], booting, [Demand("w1", (gpus(4),))], set(), 0)
    assert not plan.scale_up  # the booting node will take it
    plan = plan_capacity([pool(max=2)], booting, [Demand("w2", (gpus(8),) * 3)], set(), 0)
    assert not plan.scale_up and "above its max" in plan.unmet["w2"]


def test_headroom_is_kept_warm_and_min_is_kept():
    p = pool(types=(L4, A100), max=5, min=1, headroom_nodes=2)
    plan = plan_capacity([p], [], [], set(), 0)
    (up,) = plan.scale_up
    assert up.instance_type is L4 and up.count == 2 and "headroom" in up.reason
    busy = [node("n1", L4, used=4), node("n2", L4, idle_since=0.0)]
    (up,) = plan_capacity([p], busy, [], set(), 10).scale_up
    assert up.count == 1  # one idle node exists, one more keeps the headroom at two


def test_scale_down_idle_nodes_past_timeout_most_expensive_first_keeping_min_and_headroom():
    p = pool(types=(L4, A100), max=5, min=1, headroom_nodes=1, idle_timeout=300)
    nodes = [
        node("busy", L4, used=2),
        node("idle-cheap", L4, idle_since=0.0),
        node("idle-dear", A100, idle_since=0.0),
        node("idle-new", A100, idle_since=250.0),
    ]
    plan = plan_capacity([p], nodes, [], set(), 400)
    # idle-new is too recent to go, and stays as the one idle node of headroom
    assert [d.node for d in plan.scale_down] == ["idle-dear", "idle-cheap"]
    assert not plan.scale_up


def test_an_idle_node_a_waiting_workload_could_use_stays():
    p = pool(types=(A100,), max=5, idle_timeout=60)
    nodes = [node("idle", A100, idle_since=0.0)]
    plan = plan_capacity([p], nodes, [Demand("w", (gpus(2),), ("A100",))], set(), 1000)
    assert not plan.scale_down
    plan = plan_capacity([p], nodes, [Demand("w", (gpus(2),), ("H100",))], set(), 1000)
    assert [d.node for d in plan.scale_down] == ["idle"]


def test_an_idle_node_outside_the_region_a_gang_runs_in_goes():
    # A gang whose first members run in west needs the rest there: an idle east node cannot
    # serve it, so it is not kept for it (it was, and at the pool's max nothing could launch in
    # west: the gang waited for ever).
    p = pool(types=(H100_EAST, H100_WEST), max=2, idle_timeout=60)
    nodes = [node("east-idle", H100_EAST, idle_since=0.0), node("west-busy", H100_WEST, used=8)]
    rest = Demand("gang", (gpus(8),), (), ("west",))
    plan = plan_capacity([p], nodes, [rest], set(), 1000)
    assert [d.node for d in plan.scale_down] == ["east-idle"]
    plan = plan_capacity([p], nodes, [Demand("gang", (gpus(8),), (), ("east",))], set(), 1000)
    assert not plan.scale_down


def test_burst_headroom_follows_the_gpus_asked_in_its_window():
    p = pool(types=(A100,), max=20, headroom_nodes=1, headroom_window=900, headroom_max_nodes=4)
    now = 10_000.0
    assert headroom_target(p, [], now) == 1  # no arrivals: the floor
    recent = [Arrival(now - 100, 8), Arrival(now - 800, 4), Arrival(now - 901, 64)]  # the last is too old
    assert headroom_target(p, recent, now) == 2  # 12 GPUs fill two 8-GPU nodes
    assert headroom_target(p, [Arrival(now - 10, 200)], now) == 4  # capped at max nodes
    # Arrivals that may not run on this pool's GPU types do not count.
    assert headroom_target(p, [Arrival(now - 10, 32, ("H100",))], now) == 1
    assert headroom_target(p, [Arrival(now - 10, 32, ("H100", "A100"))], now) == 4
    # Without a window the headroom is fixed.
    assert headroom_target(pool(types=(A100,), headroom_nodes=2), recent, now) == 2


def test_burst_memory_keeps_each_queues_peak_over_its_memory():
    m = BurstMemory(window=900, memory=3_600)
    for k in range(10):  # root.b: a batch of 10 x 8 GPUs within 90 s
        m.add(Arrival(1_000.0 + 10 * k, 8, (), "root.b"))
    m.add(Arrival(1_050.0, 4, (), "root.a"))
    m.add(Arrival(1_500.0, 2, (), "root.a"))  # within root.a's window: 6 GPUs
    assert m.peaks(1_600.0) == {("root.b", ()): 80, ("root.a", ()): 6}
    # root.b's small job later does not lower its peak; the peak lasts the memory, then goes.
    m.add(Arrival(3_000.0, 1, (), "root.b"))
    assert m.peaks(4_000.0)[("root.b", ())] == 80
    assert m.peaks(4_700.0) == {("root.b", ()): 1, ("root.a", ()): 6}  # the batch is an hour old
    assert m.peaks(5_200.0) == {("root.b", ()): 1}
    assert m.peaks(7_000.0) == {}


def test_series_headroom_keeps_a_share_of_big_recent_bursts_warm_between_them():
    p = pool(
        types=(A100,),
        max=40,
        headroom_window=900,
        headroom_max_nodes=4,
        headroom_memory=14_400,
        headroom_series=0.25,
        headroom_series_min=256,
    )
    now = 50_000.0
    peaks = {("root.b", ()): 384, ("root.c", ()): 200, ("root.d", ("H100",)): 512}
    # No arrival in the window, but root.b sent 384 GPUs within one window lately: a quarter of
    # that (96 GPUs) is kept warm, 12 nodes, beyond the rate part's cap. root.c's peak is under
    # seriesMin and root.d's jobs cannot run on A100s: neither counts.
    assert headroom_target(p, [], now, peaks) == 12
    assert headroom_target(p, [Arrival(now - 10, 8)], now, peaks) == 12
    assert headroom_target(p, [Arrival(now - 10, 8)], now, {}) == 1  # the rate part alone
    without = pool(types=(A100,), max=40, headroom_window=900, headroom_max_nodes=4)
    assert headroom_target(without, [], now, peaks) == 0  # series headroom off: nothing warm
    plan = plan_capacity([p], [], [], set(), now, peaks=peaks)
    assert sum(u.count for u in plan.scale_up) == 12


def test_fit_headroom_counts_free_gpus_of_ready_nodes():
    p = pool(types=(A100,), max=20, headroom_window=900, headroom_max_nodes=4, headroom_fit=True)
    now = 1_000.0
    burst = [Arrival(now - 60, 3)]
    assert headroom_target(p, burst, now) == 0 and headroom_gpus_target(p, burst, now) == 3
    # A ready node with 4 free GPUs already holds the 3 GPUs asked lately: nothing to launch.
    part_used = [node("n1", A100, used=4)]
    assert not plan_capacity([p], part_used, [], set(), now, arrivals=burst).scale_up
    # With 2 free GPUs it does not, and one node is launched.
    full = [node("n1", A100, used=6)]
    (up,) = plan_capacity([p], full, [], set(), now, arrivals=burst).scale_up
    assert up.count == 1
    # Capped at maxNodes' worth of GPUs.
    assert headroom_gpus_target(p, [Arrival(now - 60, 500)], now) == 32


def test_fit_series_headroom_is_counted_in_gpus_and_adds_to_the_rate_part():
    # The default policy: the rate part and the series part both in GPUs, added up. root.b sent
    # 240 GPUs within one boot time lately (a batch of one-GPU jobs at one a second): a fifth of
    # that, 48 GPUs, stays warm between its batches, on top of the rate part's lead, and free
    # GPUs of part-used ready nodes count towards it (no whole idle nodes needed).
    p = pool(
        types=(A100,),
        max=40,
        headroom_window=900,
        headroom_max_nodes=8,
        headroom_fit=True,
        headroom_memory=28_800,
        headroom_series=0.2,
        headroom_series_min=64,
        headroom_series_window=240,
    )
    now = 50_000.0
    peaks = {("root.b", ()): 240, ("root.c", ()): 40}  # root.c's peak is under seriesMin
    assert headroom_target(p, [], now, peaks) == 0  # nothing counted in whole nodes
    assert headroom_gpus_target(p, [], now, peaks) == 48
    assert headroom_gpus_target(p, [Arrival(now - 30, 20)], now, peaks) == 68  # 20 + 48
    assert headroom_gpus_target(p, [Arrival(now - 30, 500)], now, peaks) == 64 + 48  # rate capped
    assert headroom_gpus_target(p, [], now, {}) == 0
    # Free GPUs of ready nodes count: six nodes with 2 free GPUs each hold 12 of the 48, so
    # five 8-GPU nodes are launched for the other 36.
    part_used = [node(f"n{i}", A100, used=6) for i in range(6)]
    plan = plan_capacity([p], part_used, [], set(), now, peaks=peaks)
    assert sum(u.count for u in plan.scale_up) == 5
    # The burst peak is summed over seriesWindow, or over the rate part's window without one.
    assert series_window(p) == 240
    assert series_window(pool(types=(A100,), headroom_window=900)) == 900


def test_plan_keeps_burst_headroom_warm_and_lets_it_go_when_arrivals_stop():
    p = pool(types=(A100,), max=20, headroom_window=900, headroom_max_nodes=4, idle_timeout=300)
    burst = [Arrival(1_000.0, 24)]
    (up,) = plan_capacity([p], [], [], set(), 1_100.0, arrivals=burst).scale_up
    assert up.count == 3 and "sized by the last 900s of arrivals" in up.reason
    idle = [node(f"n{i}", A100, idle_since=1_400.0) for i in range(3)]
    # Past the idle timeout but the arrivals are recent: the three stay warm.
    assert not plan_capacity([p], idle, [], set(), 1_800.0, arrivals=burst).scale_down
    # Once the window has passed with no new arrival, they go.
    plan = plan_capacity([p], idle, [], set(), 2_000.0, arrivals=burst)
    assert not plan.scale_up and len(plan.scale_down) == 3


def test_a_standard_size_falls_back_through_its_shapes_when_offers_fail():
    # "large": 8 x H100, else 8 x A100 (the whole gang of two at once).
    d = Demand("w1", (gpus(8), gpus(8)), ("H100",), alternatives=(((gpus(8), gpus(8)), ("A100",)),))
    (up,) = plan_capacity([pool(max=10)], [], [d], set(), 0).scale_up
    assert up.instance_type is H100_EAST and up.count == 2  # the first shape, though it costs more
    blocked = {("gpu", "h100-east", "east"), ("gpu", "h100-west", "west")}
    (up,) = plan_capacity([pool(max=10)], [], [d], blocked, 0).scale_up
    assert up.instance_type is A100 and up.count == 2
    # A booting A100 node takes one member of the second shape only if the first cannot be had.
    booting = [node("b1", A100, state="booting")]
    (up,) = plan_capacity([pool(max=10)], booting, [d], set(), 0).scale_up
    assert up.instance_type is H100_EAST and up.count == 2


def test_booting_room_of_another_gpu_type_does_not_count():
    booting = [node("b1", A100, state="booting")]
    (up,) = plan_capacity([pool(max=10)], booting, [Demand("w1", (gpus(8),), ("H100",))], set(), 0).scale_up
    assert up.instance_type is H100_EAST and up.count == 1


def gang4() -> Demand:
    return Demand("g", (gpus(8),) * 4, ("H100",))


def test_a_gang_partly_served_by_booting_nodes_gets_only_the_rest_in_their_region():
    booting = [node(f"b{i}", H100_EAST, state="booting") for i in range(3)]
    (up,) = plan_capacity([pool(max=10)], booting, [gang4()], set(), 0).scale_up
    assert (up.instance_type, up.count) == (H100_EAST, 1)
    # The east offer has failed since: the gang stays in one region, so all four go west.
    (up,) = plan_capacity([pool(max=10)], booting, [gang4()], {("gpu", "h100-east", "east")}, 0).scale_up
    assert (up.instance_type, up.count) == (H100_WEST, 4)


def test_a_spanning_gang_uses_room_elsewhere_when_the_transfer_costs_less():
    booting = [node(f"b{i}", H100_EAST, state="booting") for i in range(3)]
    east_down = {("gpu", "h100-east", "east")}
    span = Demand("g", (gpus(8),) * 4, ("H100",), span_regions=True)
    (up,) = plan_capacity([pool(max=10, transfer_cost=10.0)], booting, [span], east_down, 0).scale_up
    assert (up.instance_type, up.count) == (H100_WEST, 1)  # 95 + 3 x 10 < 4 x 95
    (up,) = plan_capacity([pool(max=10, transfer_cost=200.0)], booting, [span], east_down, 0).scale_up
    assert (up.instance_type, up.count) == (H100_WEST, 4)  # 95 + 3 x 200 > 4 x 95


def test_a_gang_is_not_placed_on_booting_room_split_over_regions():
    booting = [node("e1", H100_EAST, state="booting"), node("w1", H100_WEST, state="booting")]
    plan = plan_capacity([pool(max=10)], booting, [Demand("g", (gpus(8),) * 2, ("H100",))], set(), 0)
    (up,) = plan.scale_up
    assert (up.instance_type, up.count) == (H100_EAST, 1)  # the east booting node and one more
    span = Demand("g", (gpus(8),) * 2, ("H100",), span_regions=True)
    assert not plan_capacity([pool(max=10)], booting, [span], set(), 0).scale_up


def test_headroom_launches_are_not_attributed_to_the_workload_that_triggered_them():
    p = pool(types=(A100,), max=10, headroom_window=900, headroom_max_nodes=2)
    plan = plan_capacity([p], [], [Demand("w1", (gpus(4),))], set(), 100.0, arrivals=[Arrival(100.0, 4)])
    by_purpose = {up.for_workloads: up for up in plan.scale_up}
    assert by_purpose[("w1",)].count == 1  # the workload's node
    assert by_purpose[()].count == 1 and "keep headroom" in by_purpose[()].reason  # a warm one
