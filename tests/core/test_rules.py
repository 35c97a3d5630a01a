"""Rule-level unit tests of the pieces the scheduler is made of: queue tree, node order, limits, placement.

Each test builds the real objects from a config (``tests/builders.py``) and checks one rule of
``shared/spec/scenarios.md`` / YuniKorn's semantics in isolation.
"""

from __future__ import annotations

import pytest

from builders import World, core_units, partition, places, preempts, q
from gpupool.core.decisions import Code
from gpupool.core.limits import applicable
from gpupool.core.model import GangSpec, Node
from gpupool.core.nodes import WeightedUtilization, effective_weights
from gpupool.core.placement_rules import PlacementRules, Request, may_submit
from gpupool.core.queues import INT32_MAX, build_tree
from gpupool.core.resources import GPU_RESOURCES

# ---- queue tree: properties, priorities, fair share ------------------------------------------------


def tree(*queues: dict, **partition_keys: object) -> dict:
    cfg = partition(list(queues), **partition_keys)
    return build_tree(cfg.root, cfg.limits)


def test_property_inheritance_follows_yunikorn() -> None:
    """priority.* reset, preemption.policy: only disabled propagates; other properties are inherited."""
    props = {
        "priority.offset": "7",
        "priority.policy": "fence",
        "preemption.policy": "fence",
        "preemption.delay": "45s",
        "application.sort.policy": "fair",
    }
    queues = tree(
        q("p", q("c"), properties=props), q("d", q("c"), properties={"preemption.policy": "disabled"})
    )
    child = queues["root.p.c"]
    assert child.priority_offset == 0
    assert child.priority_policy == "default"
    assert child.preemption_policy == "default"
    assert child.preemption_delay == 45.0
    assert child.sort_policy == "fair"
    assert queues["root.d.c"].preemption_policy == "disabled"


def test_leaf_priority_is_highest_pending_ask_plus_offset() -> None:
    queues = tree(q("a", properties={"priority.offset": "10"}))
    leaf = queues["root.a"]
    assert leaf.priority() == 10
    leaf.add_pending({"gpu": 1000}, 3)
    leaf.add_pending({"gpu": 1000}, 7)
    assert leaf.priority() == 17
    leaf.remove_pending({"gpu": 1000}, 7)
    assert leaf.priority() == 13


def test_parent_priority_is_highest_child_with_pending_plus_offset() -> None:
    queues = tree(q("p", q("x"), q("y"), properties={"priority.offset": "5"}))
    queues["root.p.x"].add_pending({"gpu": 1000}, 2)
    queues["root.p.y"].add_pending({"gpu": 1000}, 9)
    assert queues["root.p"].priority() == 14
    queues["root.p.y"].remove_pending({"gpu": 1000}, 9)
    assert queues["root.p"].priority() == 7


def test_fenced_queue_priority_is_its_offset() -> None:
    queues = tree(q("p", q("x"), properties={"priority.policy": "fence", "priority.offset": "-3"}))
    queues["root.p.x"].add_pending({"gpu": 1000}, 100)
    assert queues["root.p"].priority() == -3


def test_priority_saturates_at_int32() -> None:
    queues = tree(q("a", properties={"priority.offset": str(INT32_MAX)}))
    leaf = queues["root.a"]
    leaf.add_pending({"gpu": 1000}, 10)
    assert leaf.priority() == INT32_MAX


@pytest.mark.parametrize(
    ("guaranteed", "maximum", "parent_max", "used", "expected"),
    [
        ({"gpu": 8}, None, None, {"gpu": 4}, 0.5),  # usage / guaranteed
        (None, {"gpu": 16}, None, {"gpu": 4}, 0.25),  # usage / own max
        (None, None, {"gpu": 10}, {"gpu": 4}, 0.4),  # usage / nearest max up the tree
        (None, None, None, {"gpu": 4}, 4 / 32),  # usage / cluster capacity
        ({"gpu": 8}, None, None, {"gpu": 4, "vcore": 16_000}, 0.5),  # largest over types
        ({"gpu": 8, "vcore": 1}, None, None, {"gpu": 4, "vcore": 4000}, 4.0),  # vcore 1 = 1000m
    ],
)
def test_fair_share(guaranteed, maximum, parent_max, used, expected) -> None:
    leaf_keys = {k: v for k, v in (("guaranteed", guaranteed), ("max", maximum)) if v}
    parent_keys = {"max": parent_max} if parent_max else {}
    queues = tree(q("p", q("leaf", **leaf_keys), **parent_keys))
    leaf = queues["root.p.leaf"]
    leaf.add_allocated(core_units(used))
    capacity = core_units({"gpu": 32, "vcore": 64_000})
    assert leaf.fair_share(capacity) == pytest.approx(expected)


def test_remaining_guarantee_is_the_least_on_the_path() -> None:
    queues = tree(q("p", q("leaf", guaranteed={"gpu": 8}), q("other"), guaranteed={"gpu": 10}))
    queues["root.p.other"].add_allocated({"gpu": 6000})
    queues["root.p.leaf"].add_allocated({"gpu": 1000})
    assert queues["root.p.leaf"].remaining_guaranteed() == {"gpu": 3000}  # parent: 10 - 7
    assert queues["root.p.leaf"].remaining_guaranteed(stop=queues["root.p"]) == {"gpu": 7000}
    assert queues["root.p.other"].remaining_guaranteed(stop=queues["root.p"]) is None


# ---- node order ------------------------------------------------------------------------------


def test_default_weights_let_a_gpu_outweigh_everything_else() -> None:
    weights = effective_weights(None)
    others = sum(w for name, w in weights.items() if name not in GPU_RESOURCES)
    for gpu in GPU_RESOURCES:
        assert weights[gpu] > others
    assert effective_weights({"vcore": 1.0}) == {"vcore": 1.0}


def _node(name: str, used: dict[str, int], **cap: int) -> Node:
    n = Node(name, core_units(cap))
    n.take(core_units(used))
    return n


def test_binpacking_and_fair_are_mirror_images() -> None:
    busy = _node("busy", {"gpu": 6}, gpu=8, vcore=64_000)
    idle = _node("idle", {"gpu": 1}, gpu=8, vcore=64_000)
    binpacking = WeightedUtilization("binpacking")
    fair = WeightedUtilization("fair")
    assert binpacking.key(busy) < binpacking.key(idle)
    assert fair.key(idle) < fair.key(busy)
    assert binpacking.utilisation(busy) == pytest.approx(fair.utilisation(busy))


def test_weighted_utilisation_matches_yunikorn_formula() -> None:
    scorer = WeightedUtilization("fair", {"vcore": 4.0, "memory": 1.0})
    node1 = _node("node1", {"vcore": 500, "memory": 12000}, vcore=2000, memory=16000)
    assert scorer.utilisation(node1) == pytest.approx((4 * 0.25 + 1 * 0.75) / 5)


def test_unknown_node_sort_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        WeightedUtilization("spread")


# ---- limits -------------------------------------------------------------------------------------


def test_named_user_limit_wins_over_wildcard_and_groups_apply_too() -> None:
    limits = [
        {"limit": "alice", "users": ["alice"], "maxresources": {"gpu": 8}},
        {"limit": "others", "users": ["*"], "maxresources": {"gpu": 2}},
        {"limit": "ml", "groups": ["ml"], "maxresources": {"gpu": 4}},
        {"limit": "rest", "groups": ["*"], "maxresources": {"gpu": 6}},
    ]
    queues = tree(q("team", limits=limits))
    leaf = queues["root.team"]
    alice = {a.key: a.limit.description for a in applicable(leaf, "alice", ("web", "ml"))}
    assert alice == {("root.team", "user", "alice"): "alice", ("root.team", "group", "ml"): "ml"}
    bob = {a.key: a.limit.description for a in applicable(leaf, "bob", ("web",))}
    assert bob == {("root.team", "user", "bob"): "others", ("root.team", "group", "*"): "rest"}


def test_limits_apply_at_every_level_of_the_path() -> None:
    queues = tree(
        q(
            "org",
            q("team", limits=[{"limit": "t", "users": ["*"], "maxapplications": 1}]),
            limits=[{"limit": "o", "users": ["*"], "maxresources": {"gpu": 4}}],
        )
    )
    keys = [a.key for a in applicable(queues["root.org.team"], "alice", ())]
    assert keys == [("root.org.team", "user", "alice"), ("root.org", "user", "alice")]


# ---- placement and ACLs ----------------------------------------------------------------------------


def _placer(
    *queues: dict, rules: list[dict] | None = None, root_acl: str | None = "*"
) -> tuple[PlacementRules, dict]:
    cfg = partition(list(queues), root={"submitacl": root_acl}, placementrules=rules or [])
    by_path = build_tree(cfg.root, cfg.limits)
    return PlacementRules(cfg.placement_rules, by_path.get), by_path


def test_acl_access_on_a_parent_grants_the_children() -> None:
    _, queues = _placer(q("org", q("team"), submitacl="alice", adminacl="carol"), root_acl=None)
    leaf = queues["root.org.team"]
    assert may_submit(leaf, "alice", ())
    assert may_submit(leaf, "carol", ())
    assert not may_submit(leaf, "bob", ())
    assert not may_submit(queues["root"], "alice", ())


def test_placement_falls_back_to_root_default_then_rejects() -> None:
    placer, _ = _placer(q("default"), q("team"), rules=[{"name": "provided"}])
    assert placer.place(Request("u", (), "root.team", {}))[0] == "root.team"
    assert placer.place(Request("u", (), "root.nowhere", {}))[0] == "root.default"
    placer, _ = _placer(q("team"), rules=[{"name": "provided"}])
    path, _, why = placer.place(Request("u", (), "root.nowhere", {}))
    assert path is None
    assert "no placement rule matched" in why


def test_tag_rule_with_a_fully_qualified_value_uses_it_as_the_queue() -> None:
    """yunikorn-core placement/tag_rule.go: a tag value starting with root. is a queue path, dots kept."""
    placer, _ = _placer(
        q("tenants", parent=True),
        q("prod", q("web")),
        rules=[
            {
                "name": "tag",
                "value": "namespace",
                "create": True,
                "parent": {"name": "fixed", "value": "root.tenants"},
            }
        ],
    )
    assert placer.place(Request("u", (), None, {"namespace": "ns-a"}))[0] == "root.tenants.ns-a"
    assert placer.place(Request("u", (), None, {"namespace": "root.prod.web"}))[0] == "root.prod.web"


def test_rule_filter_allow_and_deny() -> None:
    rules = [
        {
            "name": "user",
            "create": True,
            "parent": {"name": "fixed", "value": "root.users"},
            "filter": {"type": "deny", "users": ["bob"]},
        },
        {"name": "fixed", "value": "root.shared"},
    ]
    placer, _ = _placer(q("users", parent=True), q("shared"), rules=rules)
    assert placer.place(Request("alice", (), None, {}))[:2] == ("root.users.alice", True)
    assert placer.place(Request("bob", (), None, {}))[:2] == ("root.shared", False)


# ---- preemption details ---------------------------------------------------------------------------


def test_preemption_is_looked_at_again_only_after_15_seconds() -> None:
    """An ask whose preemption found no victims is not re-evaluated every cycle (YuniKorn: 15s)."""
    w = World(q("research", guaranteed={"gpu": 8}), q("batch", guaranteed={"gpu": 8}), q("dev"))
    w.nodes(1, gpu=8)
    w.running("b1", "app-batch", "node-1", {"gpu": 8}, queue="root.batch")
    w.app("app-train", "root.research")
    w.ask("train", "app-train", res={"gpu": 8}, created=-600)
    w.settle(0.0)
    assert w.preempted == []  # batch is within its guarantee
    # batch's work moves to dev (no guarantee): now there is a victim
    w.s.release("b1")
    w.running("d1", "app-dev", "node-1", {"gpu": 8}, queue="root.dev", start=1.0)
    w.settle(5.0)
    assert w.preempted == []
    w.settle(15.0)
    assert w.preempted == ["d1"]
    assert "train" in w.s.allocations


def test_victims_are_chosen_in_one_cycle_and_their_room_is_held() -> None:
    w = World(q("research", guaranteed={"gpu": 8}), q("batch"), q("dev"), preemption={"enabled": True})
    w.nodes(2, gpu=8)
    w.running("b1", "app-batch", "node-1", {"gpu": 8}, queue="root.batch")
    w.running("b2", "app-batch", "node-2", {"gpu": 8})
    w.app("app-train", "root.research")
    w.ask("train", "app-train", res={"gpu": 8}, created=-600)
    (victim,) = preempts(w.cycle(0.0).decisions)
    w.s.release(victim.alloc_id)
    # a dev ask arriving now cannot take the room made for train
    w.app("app-dev", "root.dev")
    w.ask("dev", "app-dev", res={"gpu": 8}, created=-1000)
    placed = places(w.cycle(0.0).decisions)
    assert [(p.ask_id, p.node) for p in placed] == [("train", victim.node)]
    assert w.why("dev").code == Code.NO_NODE


def test_gang_members_are_never_partially_placed_after_preemption() -> None:
    w = World(q("research", guaranteed={"gpu": 16}), q("batch"))
    w.nodes(2, gpu=8)
    w.running("b1", "app-batch", "node-1", {"gpu": 8}, queue="root.batch")
    w.running("b2", "app-batch", "node-2", {"gpu": 8})
    w.app("gang", "root.research", gang=GangSpec("hard", 600))
    w.ask("m1", "gang", res={"gpu": 8}, created=-60)
    w.ask("m2", "gang", res={"gpu": 8}, created=-60)
    result = w.cycle(0.0)
    assert sorted(p.alloc_id for p in preempts(result.decisions)) == ["b1", "b2"]
    w.s.release("b1")  # only one victim has stopped so far
    assert places(w.cycle(0.0).decisions) == []
    w.s.release("b2")
    assert sorted(p.ask_id for p in places(w.cycle(0.0).decisions)) == ["m1", "m2"]
