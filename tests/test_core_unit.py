"""Unit tests of the scheduling core, rule by rule, straight against ``gpupool.core.scheduler.Scheduler``.

Every pending ask carries a reason a user can act on, every decision carries one, and state changes
(release, completion, node loss) keep queues, nodes and applications consistent.
"""

from __future__ import annotations

import pytest

from builders import World, fails, places, preempts, q
from gpupool.core.capacity import REGION_LABEL
from gpupool.core.decisions import Code, Fail, Place, Reject
from gpupool.core.model import AppState, GangSpec
from gpupool.core.scheduler import SchedulerError

GPU8 = {"gpu": 8}


def two_teams(**partition_keys: object) -> World:
    """research (guaranteed 8) and batch (no guarantee) on two 8-GPU nodes, both held by batch."""
    w = World(q("research", guaranteed={"gpu": 8}), q("batch"), **partition_keys)
    w.nodes(2, gpu=8)
    w.running("b1", "app-batch", "node-1", GPU8, queue="root.batch", start=-600)
    w.running("b2", "app-batch", "node-2", GPU8, start=-300)
    w.app("app-train", "root.research")
    return w


# ---- reasons of pending asks ---------------------------------------------------------------


def test_new_ask_is_not_tried_until_a_cycle_runs() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 1})
    assert w.why("ask-1").code == Code.NOT_TRIED


def test_queue_quota_reason_names_the_blocking_queue() -> None:
    w = World(q("org", q("team"), max={"gpu": 4})).node("node-1", gpu=8)
    w.running("r", "app-0", "node-1", {"gpu": 3}, queue="root.org.team")
    w.app("app-1", "root.org.team")
    w.ask("ask-1", "app-1", res={"gpu": 2})
    result = w.cycle()
    reason = w.why("ask-1")
    assert reason.code == Code.QUEUE_QUOTA
    assert reason.message.startswith("queue root.org is at its max")
    assert "max" in reason.message
    assert reason.hint
    assert result.pending["ask-1"] == reason


def test_user_limit_reason_names_the_user_and_the_queue() -> None:
    limits = [{"limit": "cap", "users": ["alice"], "maxresources": {"gpu": 2}}]
    w = World(q("team", limits=limits)).node("node-1", gpu=8)
    w.app("app-1", "root.team", user="alice")
    w.ask("a1", "app-1", res={"gpu": 2})
    w.ask("a2", "app-1", res={"gpu": 1}, created=1)
    w.settle()
    reason = w.why("a2")
    assert reason.code == Code.USER_LIMIT
    assert "alice" in reason.message
    assert "root.team" in reason.message


def test_group_limit_reason_names_the_group() -> None:
    limits = [{"limit": "ml", "groups": ["ml"], "maxresources": {"gpu": 1}}]
    w = World(q("team", limits=limits)).node("node-1", gpu=8)
    w.app("app-1", "root.team", user="ann", groups=["ml"])
    w.ask("a1", "app-1", res={"gpu": 1})
    w.ask("a2", "app-1", res={"gpu": 1}, created=1)
    w.settle()
    reason = w.why("a2")
    assert reason.code == Code.USER_LIMIT
    assert "ml" in reason.message


def test_no_node_reason_says_how_many_gpus_of_which_type() -> None:
    w = World(q("team"), preemption={"enabled": False})
    w.node("h100-1", {"gpu-type": "H100"}, gpu=8).node("a100-1", {"gpu-type": "A100"}, gpu=8)
    w.running("r", "app-0", "h100-1", {"gpu": 6}, queue="root.team")
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 4}, gpu_types=["H100"])
    w.settle()
    reason = w.why("ask-1")
    assert reason.code == Code.NO_NODE
    assert "4 free GPU(s) of type H100" in reason.message
    assert "the most free on one node is 2" in reason.message
    assert reason.hint


def test_no_node_reason_for_a_cpu_ask() -> None:
    w = World(q("team"), preemption={"enabled": False}).node("node-1", vcore=4000)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"vcore": 8000})
    w.settle()
    reason = w.why("ask-1")
    assert reason.code == Code.NO_NODE
    assert "no schedulable node has room" in reason.message


def test_required_node_reason_names_the_node() -> None:
    w = World(q("team"), preemption={"enabled": False}).nodes(2, gpu=8)
    w.running("r", "app-0", "node-2", GPU8, queue="root.team")
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 1}, required_node="node-2")
    w.settle()
    reason = w.why("ask-1")
    assert reason.code == Code.NO_NODE
    assert "node-2" in reason.message
    assert "ask-1" not in w.s.allocations


def test_gang_waiting_reason_names_the_member_and_holds_nothing() -> None:
    w = World(q("team"), preemption={"enabled": False}).nodes(2, gpu=8)
    w.running("r", "app-0", "node-2", {"gpu": 2}, queue="root.team")
    w.app("gang", "root.team", gang=GangSpec("hard", 600))
    w.ask("m1", "gang", res=GPU8)
    w.ask("m2", "gang", res=GPU8)
    w.settle()
    for member in ("m1", "m2"):
        reason = w.why(member)
        assert reason.code == Code.GANG_WAITING
        assert "gang of 2" in reason.message
        assert "nothing is held" in reason.message
    assert w.s.nodes["node-1"].avail == GPU8
    assert w.s.nodes["node-1"].held == {}
    assert w.usage("root.team") == {"gpu": 2}


def test_max_applications_reason_names_the_queue() -> None:
    w = World(q("team", maxapplications=1)).node("node-1", gpu=8)
    w.running("r", "app-0", "node-1", {"gpu": 1}, queue="root.team")
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 1})
    w.settle()
    reason = w.why("ask-1")
    assert reason.code == Code.MAX_APPS
    assert "root.team" in reason.message
    assert "maxapplications" in reason.message
    assert w.state("app-1") == "waiting"


def test_user_max_applications_reason() -> None:
    limits = [{"limit": "one", "users": ["*"], "maxapplications": 1}]
    w = World(q("team", limits=limits)).node("node-1", gpu=8)
    w.app("app-1", "root.team", user="alice")
    w.app("app-2", "root.team", user="alice")
    w.ask("a1", "app-1", res={"gpu": 1})
    w.ask("a2", "app-2", res={"gpu": 1}, created=1)
    w.settle()
    assert "a1" in w.s.allocations
    reason = w.why("a2")
    assert reason.code == Code.MAX_APPS
    assert "alice" in reason.message


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("young", "preemption.delay"),
        ("disabled", "disabled"),
        ("polite", "preempt_others"),
        ("no-guarantee", "guarantee"),
        ("fenced", "root.research"),
    ],
)
def test_reason_says_why_preemption_did_not_help(setup: str, fragment: str) -> None:
    w = World(
        q(
            "research",
            guaranteed={"gpu": 8} if setup != "no-guarantee" else None,
            properties={"preemption.policy": "fence"} if setup == "fenced" else {},
        ),
        q("batch"),
        preemption={"enabled": setup != "disabled"},
    )
    w.nodes(1, gpu=8)
    w.running("b1", "app-batch", "node-1", GPU8, queue="root.batch")
    w.app("app-train", "root.research")
    created = -5.0 if setup == "young" else -600.0
    w.ask("train", "app-train", res=GPU8, created=created, preempt_others=setup != "polite")
    w.settle()
    reason = w.why("train")
    assert reason.code == Code.NO_NODE
    assert "preemption cannot help" in reason.message
    assert fragment in reason.message
    assert w.preempted == []


def test_reserved_reason_while_victims_stop() -> None:
    w = two_teams()
    w.ask("train", "app-train", res=GPU8, created=-60)
    result = w.cycle()
    victims = preempts(result.decisions)
    assert len(victims) == 1
    reason = w.why("train")
    assert reason.code == Code.RESERVED
    assert victims[0].node in reason.message
    # a second cycle before the victim stops changes nothing and preempts no one else
    again = w.cycle()
    assert not again.changed
    assert w.why("train").code == Code.RESERVED
    w.s.release(victims[0].alloc_id)
    placed = places(w.cycle().decisions)
    assert [(p.ask_id, p.node) for p in placed] == [("train", victims[0].node)]


# ---- decisions carry reasons -----------------------------------------------------------------


def test_place_decision_carries_queue_node_type_and_reason() -> None:
    w = World(q("team")).node("h100-1", {"gpu-type": "H100"}, gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 2})
    (d,) = w.settle()
    assert isinstance(d, Place)
    assert (d.ask_id, d.app_id, d.queue, d.node, d.gpu_type) == (
        "ask-1",
        "app-1",
        "root.team",
        "h100-1",
        "H100",
    )
    assert d.resources == {"gpu": 2}
    assert d.reason.code == Code.PLACED
    assert "h100-1" in d.reason.message


def test_preempt_decision_names_the_ask_and_why() -> None:
    w = two_teams()
    w.ask("train", "app-train", res=GPU8, created=-60)
    decisions = w.settle()
    (p,) = preempts(decisions)
    assert p.for_ask == "train"
    assert p.queue == "root.batch"
    assert p.app_id == "app-batch"
    assert p.reason.code == Code.PREEMPTED
    assert "root.research" in p.reason.message
    assert "guarantee" in p.reason.message
    (placed,) = places(decisions)
    assert placed.ask_id == "train"
    assert placed.node == p.node


def test_reject_decision_for_an_unplaceable_app() -> None:
    w = World(q("team"), placementrules=[{"name": "provided"}])
    rej = w.app("app-1", "root.nowhere")
    assert isinstance(rej, Reject)
    assert rej.reason.code == Code.REJECTED
    assert "no placement rule matched" in rej.reason.message
    assert w.state("app-1") == "rejected"
    # asks of a rejected application are ignored
    assert w.ask("ask-1", "app-1", res={"gpu": 1}) is None
    assert "ask-1" not in w.s.asks


def test_gang_above_max_is_rejected_when_its_asks_arrive() -> None:
    w = World(q("org", q("team"), max={"gpu": 8})).nodes(2, gpu=8)
    assert w.app("gang", "root.org.team", gang=GangSpec("soft", 60)) is None
    assert w.ask("m1", "gang", res={"gpu": 6}) is None
    rej = w.ask("m2", "gang", res={"gpu": 6})
    assert isinstance(rej, Reject)
    assert "root.org" in rej.reason.message
    assert w.state("gang") == "rejected"
    assert w.s.asks == {}
    assert w.s.queues["root.org.team"].pending_asks == 0


def test_hard_gang_timeout_is_a_fail_decision() -> None:
    w = World(q("team"), preemption={"enabled": False}).nodes(2, gpu=8)
    w.running("r", "app-0", "node-2", {"gpu": 2}, queue="root.team")
    w.app("gang", "root.team", gang=GangSpec("hard", 30))
    w.ask("m1", "gang", res=GPU8)
    w.ask("m2", "gang", res=GPU8)
    assert fails(w.settle(29.0)) == []
    (f,) = fails(w.settle(30.0))
    assert isinstance(f, Fail)
    assert f.app_id == "gang"
    assert f.reason.code == Code.FAILED
    assert "30" in f.reason.message
    assert w.state("gang") == "failed"
    assert "m1" not in w.s.asks and "m2" not in w.s.asks
    assert w.s.queues["root.team"].pending_asks == 0
    # a failed application takes no more asks
    assert w.ask("m3", "gang", res={"gpu": 1}) is None
    assert "m3" not in w.s.asks


def test_soft_gang_timeout_falls_back_to_one_by_one() -> None:
    w = World(q("team"), preemption={"enabled": False}).nodes(2, gpu=8)
    w.running("r", "app-0", "node-2", {"gpu": 2}, queue="root.team")
    w.app("gang", "root.team", gang=GangSpec("soft", 30))
    w.ask("m1", "gang", res=GPU8)
    w.ask("m2", "gang", res=GPU8)
    assert places(w.settle(29.0)) == []
    placed = places(w.settle(30.0))
    assert len(placed) == 1
    assert w.state("gang") == "running"
    assert w.why("m2" if placed[0].ask_id == "m1" else "m1").code == Code.NO_NODE


def test_cycle_result_lists_the_pending_reasons_it_saw() -> None:
    w = World(q("team"), preemption={"enabled": False}).node("node-1", gpu=4)
    w.app("app-1", "root.team")
    w.ask("fits", "app-1", res={"gpu": 4})
    w.ask("too-big", "app-1", res={"gpu": 8}, created=1)
    result = w.cycle()
    assert [p.ask_id for p in result.placed()] == ["fits"]
    assert set(result.pending) == {"too-big"}
    assert result.pending["too-big"].code == Code.NO_NODE


# ---- explain() -----------------------------------------------------------------------------


def test_explain_placed_pending_and_unknown() -> None:
    w = World(q("team"), preemption={"enabled": False}).node("node-1", gpu=4)
    w.app("app-1", "root.team")
    w.ask("fits", "app-1", res={"gpu": 4})
    w.ask("waits", "app-1", res={"gpu": 4}, created=1)
    w.settle()
    placed = w.why("fits")
    assert placed.code == Code.PLACED
    assert "node-1" in placed.message
    assert w.why("waits").code == Code.NO_NODE
    assert str(w.why("waits")).endswith(")")  # message plus its hint
    with pytest.raises(SchedulerError):
        w.why("nope")


# ---- release / complete transitions ------------------------------------------------------------


def test_release_frees_node_and_queue_and_completes_the_app() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 8})
    w.settle()
    assert w.state("app-1") == "running"
    assert w.s.queues["root.team"].running_apps == 1
    alloc = w.s.release("ask-1")
    assert alloc.id == "ask-1"
    assert w.s.nodes["node-1"].avail == {"gpu": 8}
    assert w.usage("root.team") == {}
    assert w.usage("root") == {}
    assert w.state("app-1") == "completed"
    assert w.s.queues["root.team"].running_apps == 0


def test_completed_app_waits_again_on_a_new_ask_and_runs() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 8})
    w.settle()
    w.s.release("ask-1")
    assert w.state("app-1") == "completed"
    w.ask("ask-2", "app-1", res={"gpu": 8}, created=5)
    assert w.state("app-1") == "waiting"
    w.settle(5)
    assert w.state("app-1") == "running"


def test_withdrawing_the_only_ask_completes_a_waiting_app() -> None:
    w = World(q("team"), preemption={"enabled": False}).node("node-1", gpu=1)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 8})
    w.settle()
    assert w.state("app-1") == "waiting"
    w.s.remove_ask("ask-1")
    assert w.state("app-1") == "completed"
    assert w.s.queues["root.team"].pending_asks == 0
    with pytest.raises(SchedulerError):
        w.s.remove_ask("ask-1")


def test_release_lets_a_waiting_ask_run_in_the_next_cycle() -> None:
    w = World(q("team"), preemption={"enabled": False}).node("node-1", gpu=8)
    w.running("r", "app-0", "node-1", GPU8, queue="root.team")
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 4})
    assert places(w.settle()) == []
    w.s.release("r")
    assert [p.ask_id for p in places(w.settle(1))] == ["ask-1"]


def test_release_of_a_preempted_allocation_clears_preempting() -> None:
    w = two_teams()
    w.ask("train", "app-train", res=GPU8, created=-60)
    (p,) = preempts(w.cycle().decisions)
    batch = w.s.queues["root.batch"]
    assert batch.preempting == {"gpu": 8}
    assert w.s.allocations[p.alloc_id].preempted
    w.s.release(p.alloc_id)
    assert batch.preempting == {}
    assert w.usage("root.batch") == {"gpu": 8}


def test_release_unknown_allocation_raises() -> None:
    w = World(q("team"))
    with pytest.raises(SchedulerError):
        w.s.release("nope")


def test_remove_app_needs_its_allocations_released_first() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.running("r", "app-0", "node-1", {"gpu": 2}, queue="root.team")
    with pytest.raises(SchedulerError):
        w.s.remove_app("app-0")
    w.s.release("r")
    w.s.remove_app("app-0")
    assert "app-0" not in w.s.apps
    assert "app-0" not in w.s.queues["root.team"].apps


def test_duplicate_ids_are_refused() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    with pytest.raises(SchedulerError):
        w.node("node-1", gpu=8)
    w.app("app-1", "root.team")
    with pytest.raises(SchedulerError):
        w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 1})
    with pytest.raises(SchedulerError):
        w.ask("ask-1", "app-1", res={"gpu": 1})
    w.running("r", "app-1", "node-1", {"gpu": 1})
    with pytest.raises(SchedulerError):
        w.running("r", "app-1", "node-1", {"gpu": 1})
    with pytest.raises(SchedulerError):
        w.ask("r", "app-1", res={"gpu": 1})


def test_restore_ignores_quota_and_counts_usage() -> None:
    w = World(q("team", max={"gpu": 4})).node("node-1", {"gpu-type": "H100"}, gpu=8)
    w.running("r1", "app-0", "node-1", {"gpu": 3}, queue="root.team")
    w.running("r2", "app-0", "node-1", {"gpu": 3})
    assert w.usage("root.team") == {"gpu": 6, "gpu/H100": 6}
    assert w.s.nodes["node-1"].avail == {"gpu": 2}
    assert w.state("app-0") == "running"


def test_forced_submit_to_a_missing_queue_uses_the_recovery_queue() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.running("r", "app-0", "node-1", {"gpu": 1}, queue="root.gone")
    assert w.s.queue_of("app-0") == "root.@recovery@"
    # nobody may submit to the recovery queue
    rej = w.app("app-1", "root.@recovery@")
    assert isinstance(rej, Reject)


# ---- nodes ---------------------------------------------------------------------------------


def test_remove_node_returns_and_releases_its_allocations() -> None:
    w = World(q("team")).nodes(2, gpu=8)
    w.running("a", "app-0", "node-1", {"gpu": 4}, queue="root.team")
    w.running("b", "app-0", "node-1", {"gpu": 2})
    w.running("c", "app-0", "node-2", {"gpu": 1})
    lost = w.s.remove_node("node-1")
    assert sorted(a.id for a in lost) == ["a", "b"]
    assert "node-1" not in w.s.nodes
    assert set(w.s.allocations) == {"c"}
    assert w.usage("root.team") == {"gpu": 1}
    assert w.s.capacity == {"gpu": 8}
    assert w.state("app-0") == "running"
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 8})
    assert places(w.settle()) == []


def test_remove_node_drops_a_reservation_held_there() -> None:
    w = two_teams()
    w.ask("train", "app-train", res=GPU8, created=-60)
    (p,) = preempts(w.cycle().decisions)
    node = p.node
    w.s.remove_node(node)
    assert w.s.asks["train"].reserved_node is None
    assert p.alloc_id not in w.s.allocations


def test_unschedulable_node_gets_nothing_until_schedulable_again() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.s.set_schedulable("node-1", False)
    assert w.s.capacity == {}
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 1})
    assert places(w.settle()) == []
    w.s.set_schedulable("node-1", True)
    assert [p.node for p in places(w.settle(1))] == ["node-1"]
    with pytest.raises(SchedulerError):
        w.s.set_schedulable("nope", True)


# ---- quota accounting per GPU type ----------------------------------------------------------------


def test_allocation_on_a_typed_node_counts_typed_gpus() -> None:
    w = World(q("team")).node("a100-1", {"gpu-type": "A100"}, gpu=8, vcore=4000)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 2, "vcore": 1000})
    w.settle()
    assert w.usage("root.team") == {"gpu": 2, "gpu/A100": 2, "vcore": 1000}
    assert w.usage("root") == {"gpu": 2, "gpu/A100": 2, "vcore": 1000}


def test_typed_quota_reason_names_the_type() -> None:
    w = World(q("team", max={"gpu/H100": 2}), preemption={"enabled": False})
    w.node("h100-1", {"gpu-type": "H100"}, gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 4}, gpu_types=["H100"])
    w.settle()
    reason = w.why("ask-1")
    assert reason.code == Code.QUEUE_QUOTA
    assert "gpu/H100" in reason.message


# ---- placement & ACL through submit ----------------------------------------------------------------


def test_submit_places_by_rules_and_creates_queues_from_templates() -> None:
    w = World(
        q("tenants", parent=True, childtemplate={"maxapplications": 3, "resources": {"max": {"gpu": 2}}}),
        placementrules=[
            {
                "name": "tag",
                "value": "namespace",
                "create": True,
                "parent": {"name": "fixed", "value": "root.tenants"},
            }
        ],
    )
    assert w.app("app-1", tags={"namespace": "vision"}) is None
    assert w.s.queue_of("app-1") == "root.tenants.vision"
    created = w.s.queues["root.tenants.vision"]
    assert created.dynamic
    assert created.is_leaf
    assert created.max == {"gpu": 2}
    assert created.max_applications == 3


def test_submit_acl_is_recursive_and_admin_implies_submit() -> None:
    w = World(q("org", q("team"), submitacl="alice", adminacl="carol"), root={"submitacl": None})
    assert w.app("a", "root.org.team", user="alice") is None
    assert w.app("c", "root.org.team", user="carol") is None
    rej = w.app("b", "root.org.team", user="bob")
    assert isinstance(rej, Reject)
    assert "bob" in rej.reason.message


# ---- determinism ---------------------------------------------------------------------------


def _busy_world(node_order: list[int]) -> World:
    w = World(
        q("research", guaranteed={"gpu": 16}),
        q("batch", guaranteed={"gpu": 4}),
        q("dev"),
        nodesortpolicy={"type": "binpacking"},
    )
    for i in node_order:
        w.node(f"node-{i}", {"gpu-type": "H100" if i % 2 else "A100"}, gpu=8, vcore=64_000)
    for i in range(1, 5):
        w.running(
            f"b{i}", "app-batch", f"node-{i}", {"gpu": 4, "vcore": 8000}, queue="root.batch", start=-100 * i
        )
        w.running(f"d{i}", "app-dev", f"node-{i}", {"gpu": 2}, queue="root.dev", start=-50 * i)
    w.app("gang", "root.research", gang=GangSpec("soft", 120))
    for m in range(3):
        w.ask(f"g{m}", "gang", res={"gpu": 4}, created=-60)
    w.app("solo", "root.dev")
    for k in range(4):
        w.ask(f"s{k}", "solo", res={"gpu": 1}, created=-k, gpu_types=["A100", "H100"])
    return w


def _decision_log(w: World) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for t in (0.0, 1.0, 40.0, 130.0):
        for d in w.settle(t):
            out.append((t, type(d).__name__, *(getattr(d, f) for f in d.__slots__)))
    return out


def test_same_input_same_decisions() -> None:
    first = _decision_log(_busy_world([1, 2, 3, 4]))
    second = _decision_log(_busy_world([1, 2, 3, 4]))
    assert first == second
    assert any(kind == "Preempt" for _, kind, *_ in first)
    assert any(kind == "Place" for _, kind, *_ in first)


def test_node_registration_order_does_not_change_decisions() -> None:
    assert _decision_log(_busy_world([1, 2, 3, 4])) == _decision_log(_busy_world([4, 2, 3, 1]))


def test_decisions_are_values() -> None:
    w = World(q("team")).node("node-1", gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 1})
    (d,) = w.settle()
    with pytest.raises(AttributeError):
        d.node = "elsewhere"  # type: ignore[misc]
    assert isinstance(d, Place)
    assert AppState(w.state("app-1")) is AppState.RUNNING


def test_update_config_keeps_state_and_applies_new_quotas():
    from gpupool.config import parse_config
    from gpupool.core.model import NodeSpec
    from gpupool.core.scheduler import Scheduler

    def cfg(max_a: int, extra: bool) -> dict:
        queues = [{"name": "a", "resources": {"max": {"gpu": max_a}}}]
        if extra:
            queues.append({"name": "new", "resources": {"guaranteed": {"gpu": 2}}})
        return {
            "partitions": [
                {"name": "default", "queues": [{"name": "root", "submitacl": "*", "queues": queues}]}
            ]
        }

    sched = Scheduler(parse_config(cfg(2, False)).partition("default"))
    sched.add_node(NodeSpec("n1", {"gpu": 8}))
    sched.submit("app", queue="root.a")
    for i in range(4):
        sched.add_ask("app", f"ask-{i}", {"gpu": 1}, created=0)
    sched.schedule(0)
    assert len(sched.allocations) == 2  # max 2
    changes = sched.update_config(parse_config(cfg(3, True)).partition("default"))
    assert "added queue root.new" in changes
    assert sched.queues["root.a"].max == {"gpu": 3}
    sched.schedule(1)
    assert len(sched.allocations) == 3 and len(sched.asks) == 1  # nothing lost, new max applies
    assert sched.submit("other", queue="root.new") is None
    changes = sched.update_config(parse_config(cfg(3, False)).partition("default"))
    assert any("root.new is no longer configured" in c for c in changes)
    assert "root.new" in sched.queues  # kept while it holds an application


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


def test_more_members_join_the_region_their_gang_runs_in() -> None:
    w = _regions(east_busy=0)
    w.app("gang", "root.team", gang=GangSpec("soft", 600))
    w.s.restore("gang-m1", "gang", "east-1", GPU8, start=-60)
    w.running("fill", "app-0", "east-2", GPU8, queue="root.other")
    w.ask("gang-m2", "gang", res=GPU8)
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
