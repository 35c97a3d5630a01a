"""What a preempting ask's queue is still owed of its guarantees: the most its victims may free.

yunikorn-core keeps a victim only if the ask queue's remaining guarantee still fits it
(``calculateVictimsByNode``: ``askQueueRemaining.FitInActual(victim)``). Without that bound, a
victim larger than the ask frees room the queue's other work then borrows above its guarantee,
and the queue the victim came from preempts it back. ``Owed`` is that bound for one plan, built
before its what-if edits; ``gpupool.core.victims`` checks each victim against it.
"""

from __future__ import annotations

from collections.abc import Collection

from gpupool.core.model import Allocation
from gpupool.core.queues import Queue
from gpupool.core.resources import Resources, gpu_milli, typed
from gpupool.core.snapshot import Snapshot


class Owed:
    """What the asks' queue is still owed of the guarantees on its path, per (queue, type): the
    victims of one plan may free no more than that (yunikorn-core keeps a victim only if
    ``askQueueRemaining.FitInActual(victim)``), else what they free beyond the ask is borrowed
    by the queue's other work above its guarantee and preempted back. The queues are law 4's:
    the leaf's own guarantee or, for a type it does not guarantee, the nearest ancestor's; every
    ancestor's for a leaf without a guarantee of its own. A victim under such a queue frees
    nothing of it (it only moves within), so it spends nothing there."""

    __slots__ = ("rooms",)

    def __init__(self, rooms: tuple[tuple[Queue, str, int], ...]) -> None:
        self.rooms = rooms

    @classmethod
    def of(cls, snap: Snapshot, leaf: Queue, ask_ids: Collection[str]) -> Owed:
        """What ``leaf`` is owed now: ``guaranteed - used - held`` (room held for its other asks
        counts as used, as in the precondition)."""
        rooms: list[tuple[Queue, str, int]] = []
        seen: set[str] = set()
        own = bool(leaf.guaranteed)
        for q in leaf.ancestors():
            if not q.guaranteed:
                continue
            held: Resources | None = None
            for t, g in q.guaranteed.items():
                if own:
                    if t in seen:
                        continue
                    seen.add(t)
                if held is None:
                    held = snap.held_under(q, ask_ids)
                rooms.append((q, t, g - q.allocated.get(t, 0) - held.get(t, 0)))
        return cls(tuple(rooms))

    def tally(self, counted: Resources) -> Tally:
        """A fresh count of what is left, in the types an ask that counts ``counted`` needs."""
        return Tally(self, counted)

    def after(self, victims: list[Allocation]) -> Owed:
        """What is left once ``victims`` are stopped for an earlier member of the same gang."""
        if not victims:
            return self
        rooms = []
        for q, t, left in self.rooms:
            for v in victims:
                x = v.counted.get(t, 0)
                if x > 0 and not v.queue.is_under(q):
                    left -= x
            rooms.append((q, t, left))
        return Owed(tuple(rooms))


class Tally:
    """What is left of an ``Owed`` as one node's victims are taken, in the types the ask needs."""

    __slots__ = ("bound", "left")

    def __init__(self, owed: Owed, counted: Resources) -> None:
        rooms = [r for r in owed.rooms if counted.get(r[1], 0) > 0]
        self.bound = [(q, t) for q, t, _ in rooms]
        self.left = [x for _, _, x in rooms]

    def fits(self, frees: Resources, queue: Queue) -> bool:
        """Whether a victim in ``queue`` that frees ``frees`` stays within what is left."""
        for (q, t), room in zip(self.bound, self.left, strict=True):
            x = frees.get(t, 0)
            if x > 0 and x > room and not queue.is_under(q):
                return False
        return True

    def spend(self, frees: Resources, queue: Queue) -> None:
        for i, (q, t) in enumerate(self.bound):
            x = frees.get(t, 0)
            if x > 0 and not queue.is_under(q):
                self.left[i] -= x


def judged(
    allocs: tuple[Allocation, ...], counted: Resources, here: Resources, gpu_type: str | None
) -> Resources:
    """What a victim unit (``allocs``, counting ``counted`` in all, holding ``here`` on the ask's
    node of ``gpu_type``) frees against the bound. A gang stops whole (a team cannot shield
    borrowed GPUs in one big gang) but is judged by its part on the node, else by its smallest
    member, as yunikorn-core judges each pod it stops."""
    if len(allocs) == 1:
        return counted
    if here:
        return typed(here, gpu_type)
    return min((a.counted for a in allocs), key=gpu_milli)
