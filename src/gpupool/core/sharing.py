"""GPU shares on one node: what is free on each GPU, and which victims make room on the GPUs.

A node's GPUs carry shares (1..999 milli-GPU of one GPU) and whole-GPU work. Totals alone do
not tell whether an ask fits: half of each of two GPUs is one GPU free in total but no whole
GPU. The victim search (``gpupool.core.victims``) plans on totals, which is exact while every
GPU of a node is either fully free or fully used; on a node with a partly used GPU it first asks
``gpu_victims`` which victims the GPUs themselves need:

* a share needs one GPU with room: on each GPU, the first victim (in victim order) that frees
  enough alone, else victims in victim order until enough is free, then every one the others
  make unnecessary dropped; the GPU whose victims cost least wins, the lowest index on ties;
* whole GPUs need fully free GPUs: every share on a GPU must go, so GPUs are cleared one at a
  time, the cheapest to clear first (a whole-GPU victim may clear several at once).

Pure functions over plain data; the cost of a set of victims is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gpupool.core.model import Allocation, Node, per_gpu, pick_gpus
from gpupool.core.resources import GPU_MILLI, gpu_milli

V = TypeVar("V")


def partly_used(node: Node) -> bool:
    """Whether some GPU of ``node`` holds shares (a GPU full of shares included): only then can
    totals and GPUs disagree about what fits."""
    return node.shares > 0


def free_for(node: Node, ask_id: str | None = None) -> list[int]:
    """Free milli-GPU of each GPU of ``node``, the room held for ``ask_id`` counted as free."""
    return node.gpu_free_for(ask_id)


def gpus_held(allocs: Iterable[Allocation], node: Node) -> dict[int, int]:
    """Milli-GPU that ``allocs`` hold on each GPU of ``node``."""
    out: dict[int, int] = {}
    for a in allocs:
        if a.node is node and a.gpu_ids:
            per = per_gpu(gpu_milli(a.resources))
            for i in a.gpu_ids:
                out[i] = out.get(i, 0) + per
    return out


def held_by(node: Node) -> Callable[[Allocation], dict[int, int]]:
    """``gpus_held`` of one allocation on ``node``."""
    return lambda a: gpus_held((a,), node)


def gpu_victims(
    milli: int,
    free: list[int],
    victims: Sequence[V],
    held: Callable[[V], dict[int, int]],
    cost: Callable[[list[V]], tuple[object, ...]],
) -> list[V] | None:
    """The victims (a subset of ``victims``, which come in victim order) whose stopping lets an
    ask of ``milli`` fit the GPUs whose free milli is ``free``; ``[]`` if it fits already, None
    if no choice does. ``held(v)`` is what victim ``v`` holds on each GPU."""
    if milli <= 0 or pick_gpus(free, milli) is not None:
        return []
    on: dict[int, list[tuple[int, V]]] = {}
    for v in victims:
        for i, amount in held(v).items():
            on.setdefault(i, []).append((amount, v))
    if milli < GPU_MILLI:
        return _for_share(milli, free, on, cost)
    return _for_whole(milli // GPU_MILLI, free, on, held, cost)


def _for_share(
    milli: int,
    free: list[int],
    on: dict[int, list[tuple[int, V]]],
    cost: Callable[[list[V]], tuple[object, ...]],
) -> list[V] | None:
    best: tuple[tuple[object, ...], int, list[V]] | None = None
    for i, f in enumerate(free):
        need = milli - f
        options = on.get(i, [])
        chosen = next(([v] for amount, v in options if amount >= need), None)
        if chosen is None:
            chosen = []
            got = 0
            for amount, v in options:
                chosen.append(v)
                got += amount
                if got >= need:
                    break
            if got < need:
                continue
            amounts = {id(v): amount for amount, v in options}
            for v in reversed(list(chosen)):
                rest = [x for x in chosen if x is not v]
                if sum(amounts[id(x)] for x in rest) >= need:
                    chosen = rest
        key = cost(chosen)
        if best is None or (key, i) < (best[0], best[1]):
            best = (key, i, chosen)
    return best[2] if best is not None else None


def _for_whole(
    n: int,
    free: list[int],
    on: dict[int, list[tuple[int, V]]],
    held: Callable[[V], dict[int, int]],
    cost: Callable[[list[V]], tuple[object, ...]],
) -> list[V] | None:
    now = list(free)
    chosen: list[V] = []
    taken: set[int] = set()
    while sum(1 for f in now if f >= GPU_MILLI) < n:
        best: tuple[tuple[object, ...], int, list[V]] | None = None
        for i, f in enumerate(now):
            if f >= GPU_MILLI:
                continue
            clear = [v for _, v in on.get(i, []) if id(v) not in taken]
            if f + sum(held(v).get(i, 0) for v in clear) < GPU_MILLI:
                continue  # work that may not be a victim (or room held for another ask) stays
            key = cost(clear)
            if best is None or (key, i) < (best[0], best[1]):
                best = (key, i, clear)
        if best is None:
            return None
        for v in best[2]:
            taken.add(id(v))
            chosen.append(v)
            for i, amount in held(v).items():
                now[i] += amount
    return chosen
