"""``core.admission``: what could never run is known at submission (pure functions)."""

from __future__ import annotations

from gpupool.core.admission import Host, gang_over_max, never_fits
from gpupool.core.queues import Queue, QueueSettings

GI = 2**30
H100 = Host({"gpu": 8000, "vcore": 64000, "memory": 512 * GI}, "H100", "node h-0")
CPU = Host({"vcore": 16000, "memory": 64 * GI}, None, "node c-0")
POOL_A100 = Host({"gpu": 4000, "vcore": 32000, "memory": 256 * GI}, "A100", "pool spot: a100x4")


def test_a_member_some_host_holds_is_not_refused() -> None:
    assert never_fits([({"gpu": 8000, "vcore": 1000}, ())], [H100, CPU]) is None
    assert never_fits([({"gpu": 4000}, ("A100",))], [H100, POOL_A100]) is None  # a pool can launch one
    assert never_fits([({"vcore": 8000}, ("V100",))], [CPU]) is None  # no GPUs asked: the type is moot
    assert never_fits([({"gpu": 9000}, ())], []) is None  # nothing known: nothing to judge by


def test_too_big_or_unknown_type_is_refused_with_what_exists() -> None:
    why = never_fits([({"gpu": 9000, "vcore": 1000}, ())], [H100, CPU, POOL_A100])
    assert why is not None and "{gpu: 9, vcore: 1}" in why
    assert "1 x H100 {gpu: 8, memory: 512Gi, vcore: 64} (node h-0)" in why and "pool spot: a100x4" in why
    why = never_fits([({"gpu": 1000}, ("V100",))], [H100])
    assert why is not None and "no GPU type V100 exists (GPU types: H100)" in why
    # Every shape of a size is tried before refusing.
    assert never_fits([({"gpu": 16000}, ()), ({"gpu": 4000}, ("A100",))], [H100, POOL_A100]) is None


def test_gang_over_max_looks_at_every_ancestor() -> None:
    root = Queue("root", None, QueueSettings())
    org = Queue("org", root, QueueSettings(max={"gpu": 8000}))
    team = Queue("team", org, QueueSettings(max={"gpu": 16000}))
    why = gang_over_max(team, {"gpu": 12000})
    assert why is not None and "max of root.org" in why.message
    assert gang_over_max(team, {"gpu": 8000}) is None
