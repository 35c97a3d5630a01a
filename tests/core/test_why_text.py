"""A waiting ask's reason tells the truth, briefly: it does not grow cycle after cycle, and it
never promises preemption (after ``preemption.delay``) to a queue that is above or without a
guarantee."""

from __future__ import annotations

import pytest

from builders import World, q
from gpupool.core.model import GangSpec

GPU4 = {"gpu": 4, "vcore": 1000}


def _full(world: World, queue: str) -> World:
    world.nodes(2, gpu=4, vcore=8000)
    world.running("r1", "busy", "node-1", GPU4, queue=queue)
    world.running("r2", "busy", "node-2", GPU4, queue=queue)
    return world


@pytest.mark.parametrize(
    ("queue", "words"),
    [
        ("root.a", "root.a would go above its own guarantee"),  # above its guarantee
        ("root.free", "neither root.free nor its parents guarantee"),  # without a guarantee
    ],
)
def test_the_reason_stays_the_same_size_and_never_promises_preemption(queue: str, words: str) -> None:
    w = World(
        q("a", guaranteed={"gpu": 4}, properties={"preemption.delay": "30s"}),
        q("free", properties={"preemption.delay": "30s"}),
        preemption={"enabled": True},
    )
    _full(w, queue)
    w.app("wait", queue)
    w.ask("wait-0", "wait", res=GPU4, created=0.0)
    sizes = []
    for t in range(0, 120):
        w.cycle(float(t) / 2)
        sizes.append(len(w.why("wait-0").message))
    text = w.why("wait-0").message
    assert text.count("preemption cannot help") == 1, text
    assert words in text and "preemption.delay" not in text, text
    assert max(sizes) < 400 and sizes[-1] == sizes[10], sizes


def test_a_waiting_gang_and_a_disabled_partition_stay_brief() -> None:
    w = World(q("a", guaranteed={"gpu": 4}), preemption={"enabled": False})
    _full(w, "root.a")
    w.app("g", "root.a", gang=GangSpec("soft", 900.0))
    for i in range(2):
        w.ask(f"g-{i}", "g", res=GPU4, created=0.0)
    for t in range(100):
        w.cycle(float(t))
    text = w.why("g-0").message
    assert text.count("preemption cannot help") == 1 and len(text) < 400, text
