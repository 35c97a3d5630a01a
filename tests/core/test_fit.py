"""Where an ask fits and why not (``gpupool.core.fit``): every pending ask carries a reason a user
can act on, and GPUs are counted per type against typed quotas.

Split from the former tests/test_core_unit.py; driven through ``gpupool.core.scheduler.Scheduler``.
"""

from __future__ import annotations

import pytest

from builders import GPU8, World, core_units, places, preempts, q, two_teams
from gpupool.core.decisions import Code
from gpupool.core.model import GangSpec

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
    assert w.s.nodes["node-1"].avail == core_units(GPU8)
    assert w.s.nodes["node-1"].held == {}
    assert w.usage("root.team") == {"gpu": 2000}


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


# ---- quota accounting per GPU type ----------------------------------------------------------------


def test_allocation_on_a_typed_node_counts_typed_gpus() -> None:
    w = World(q("team")).node("a100-1", {"gpu-type": "A100"}, gpu=8, vcore=4000)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 2, "vcore": 1000})
    w.settle()
    assert w.usage("root.team") == {"gpu": 2000, "gpu/A100": 2000, "vcore": 1000}
    assert w.usage("root") == {"gpu": 2000, "gpu/A100": 2000, "vcore": 1000}


def test_typed_quota_reason_names_the_type() -> None:
    w = World(q("team", max={"gpu/H100": 2}), preemption={"enabled": False})
    w.node("h100-1", {"gpu-type": "H100"}, gpu=8)
    w.app("app-1", "root.team")
    w.ask("ask-1", "app-1", res={"gpu": 4}, gpu_types=["H100"])
    w.settle()
    reason = w.why("ask-1")
    assert reason.code == Code.QUEUE_QUOTA
    assert "gpu/H100" in reason.message
