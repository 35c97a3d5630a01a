"""``why`` tells the truth, briefly: the headline says the real state, the text does not grow tick
after tick, and preemption is never promised to a queue above or without a guarantee."""

from __future__ import annotations

import time

from .executors import wait_until


def test_why_is_brief_stable_and_true(sqlite_server):
    gp = sqlite_server.client()
    for i in range(4):  # root.a fills the cluster (16 GPUs, its max)
        gp.submit(f"fill-{i}", queue="root.a", entrypoint="sleep 60", task_groups=[{"gpus": 4}])
    above = gp.submit("above", queue="root.a", entrypoint="true", task_groups=[{"gpus": 4}])
    # Steady state first: all four fills placed (until then `above` may wait for room, not quota).
    wait_until(
        lambda: all(
            "preemption cannot help" in " ".join(lines) and "at its max" in lines[0]
            for lines in [gp.why(above.id).lines]
        ),
        timeout=20,
    )
    # Submitted once root.a holds every GPU: earlier, fair share could place it before a fill.
    free = gp.submit("free", queue="root.open", entrypoint="true", task_groups=[{"gpus": 2}])
    wait_until(lambda: "preemption cannot help" in " ".join(gp.why(free.id).lines), timeout=20)
    first = {w.id: gp.why(w.id).lines for w in (above, free)}
    time.sleep(1.5)  # 15 ticks of 0.1 s
    for w, headline, words in (
        (above, "its queue (or a parent) is at its max", "root.a would go above its own guarantee"),
        (free, "no node has room for it now", "neither root.open nor its parents guarantee"),
    ):
        lines = gp.why(w.id).lines
        text = "\n".join(lines)
        assert lines == first[w.id], (first[w.id], lines)
        assert lines[0] == f"{w.id} ({w.name}) is pending: {headline}", lines[0]
        assert text.count("preemption cannot help") == 1 and words in text, text
        assert "preemption.delay" not in text and len(text) < 1200, text
