"""The scheduler facade (``gpupool.core.scheduler.Scheduler``) call by call: every decision carries a
reason, ``explain``, state changes (release, completion, node loss, submit, config update) keep
queues, nodes and applications consistent, and the same input gives the same decisions.

Split from the former tests/test_core_unit.py.
"""

from __future__ import annotations

import pytest

from builders import GPU8, World, fails, places, preempts, q, two_teams
from gpupool.core.decisions import Code, Fail, Place, Reject
from gpupool.core.model import AppState, GangSpec
from gpupool.core.scheduler import SchedulerError

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
    assert d.resources == {"gpu": 2000}
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
    assert w.s.nodes["node-1"].avail == {"gpu": 8000}
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
    assert batch.preempting == {"gpu": 8000}
    assert w.s.allocations[p.alloc_id].preempted
    w.s.release(p.alloc_id)
    assert batch.preempting == {}
    assert w.usage("root.batch") == {"gpu": 8000}


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
    assert "app-0" not in w.s.state.apps_in(w.s.queues["root.team"])


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
    assert w.usage("root.team") == {"gpu": 6000, "gpu/H100": 6000}
    assert w.s.nodes["node-1"].avail == {"gpu": 2000}
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
    assert w.usage("root.team") == {"gpu": 1000}
    assert w.s.capacity == {"gpu": 8000}
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
    assert created.max == {"gpu": 2000}
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
    sched.add_node(NodeSpec("n1", {"gpu": 8000}))
    sched.submit("app", queue="root.a")
    for i in range(4):
        sched.add_ask("app", f"ask-{i}", {"gpu": 1000}, created=0)
    sched.schedule(0)
    assert len(sched.allocations) == 2  # max 2
    changes = sched.update_config(parse_config(cfg(3, True)).partition("default"))
    assert "added queue root.new" in changes
    assert sched.queues["root.a"].max == {"gpu": 3000}
    sched.schedule(1)
    assert len(sched.allocations) == 3 and len(sched.asks) == 1  # nothing lost, new max applies
    assert sched.submit("other", queue="root.new") is None
    changes = sched.update_config(parse_config(cfg(3, False)).partition("default"))
    assert any("root.new is no longer configured" in c for c in changes)
    assert "root.new" in sched.queues  # kept while it holds an application
