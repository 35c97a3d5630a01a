"""User and group limits (YuniKorn ``limits``): resources and running applications per user/group.

A limit entry applies at its queue to the allocations of that queue's subtree. For a user, the
entry naming the user wins, else the wildcard user entry. An application counts against exactly
one group (yunikorn-core ``ugm/manager.go`` ``ensureGroupInternal``): walking up from its leaf,
the first queue with a group limit that names one of the user's groups (in the order the
entries name them) gives that group; a queue with only a wildcard group entry gives ``*``; the
group's own entries (``*``'s for the wildcard) then apply at every queue on the path; a user
in no group counts against no group. Both the
user and the group limit are enforced: the effective headroom is the least of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core.config import Limit
from gpupool.core.queues import Queue
from gpupool.core.resources import Resources, add_into, format_resources, sub_into, within_max

LimitKey = tuple[str, str, str]  # (queue path, "user" | "group", name)


@dataclass(frozen=True, slots=True)
class Applied:
    """A user or group limit that applies to an application, with where it is set (``key``)."""

    key: LimitKey
    limit: Limit

    def describe(self) -> str:
        path, kind, name = self.key
        return f"{kind} {name!r} limit on {path}"


def app_group(leaf: Queue, groups: tuple[str, ...]) -> str | None:
    """The one group an application in ``leaf`` counts against, ``*`` or None (a user in no
    group counts against none, not even the wildcard, as in yunikorn-core ``ensureGroup``)."""
    if not groups:
        return None
    member = set(groups)
    for q in leaf.ancestors():
        for lim in q.limits:
            for g in lim.groups:
                if g != "*" and g in member:
                    return g
        if any("*" in lim.groups for lim in q.limits):
            return "*"
    return None


def applicable(leaf: Queue, user: str, groups: tuple[str, ...]) -> tuple[Applied, ...]:
    out: list[Applied] = []
    group = app_group(leaf, groups)
    for q in leaf.ancestors():
        if not q.limits:
            continue
        user_entry = next((lim for lim in q.limits if user in lim.users), None)
        if user_entry is None:
            user_entry = next((lim for lim in q.limits if "*" in lim.users), None)
        if user_entry is not None:
            out.append(Applied((q.path, "user", user), user_entry))
        if group is not None:
            group_entry = next((lim for lim in q.limits if group in lim.groups), None)
            if group_entry is not None:
                out.append(Applied((q.path, "group", group), group_entry))
    return tuple(out)


class LimitTracker:
    """Usage and running applications per (queue, user/group) for the queues that have limits."""

    def __init__(self) -> None:
        self.usage: dict[LimitKey, Resources] = {}
        self.running: dict[LimitKey, int] = {}

    def blocking(self, entries: tuple[Applied, ...], res: Resources) -> str | None:
        for e in entries:
            lim = e.limit.max_resources
            used = self.usage.get(e.key, {})
            if lim and not within_max(used, res, lim):
                return f"{e.describe()} {format_resources(lim)} (in use {format_resources(used)})"
        return None

    def blocking_run(self, entries: tuple[Applied, ...]) -> str | None:
        for e in entries:
            cap = e.limit.max_applications
            if cap is not None and self.running.get(e.key, 0) >= cap:
                return f"{e.describe()} allows {cap} running application(s)"
        return None

    def add(self, entries: tuple[Applied, ...], res: Resources) -> None:
        for e in entries:
            add_into(self.usage.setdefault(e.key, {}), res)

    def remove(self, entries: tuple[Applied, ...], res: Resources) -> None:
        for e in entries:
            sub_into(self.usage.setdefault(e.key, {}), res)

    def set_running(self, entries: tuple[Applied, ...], delta: int) -> None:
        for e in entries:
            self.running[e.key] = self.running.get(e.key, 0) + delta
