"""User and group limits (YuniKorn ``limits``): resources and running applications per user/group.

A limit entry applies at its queue to the allocations of that queue's subtree. For a user, the
entry naming the user wins, else the wildcard user entry; for a group, the first of the user's
groups that an entry names, else the wildcard group entry. Both the user and the group limit are
enforced, at every queue on the path: the effective headroom is the least of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core.config import Limit
from gpupool.core.queues import Queue
from gpupool.core.resources import Resources, add_into, format_resources, sub_into, within_max

LimitKey = tuple[str, str, str]  # (queue path, "user" | "group", name)


@dataclass(frozen=True, slots=True)
class Applied:
    key: LimitKey
    limit: Limit

    def describe(self) -> str:
        path, kind, name = self.key
        return f"{kind} {name!r} limit on {path}"


def applicable(leaf: Queue, user: str, groups: tuple[str, ...]) -> tuple[Applied, ...]:
    out: list[Applied] = []
    for q in leaf.ancestors():
        if not q.limits:
            continue
        user_entry = next((lim for lim in q.limits if user in lim.users), None)
        if user_entry is None:
            user_entry = next((lim for lim in q.limits if "*" in lim.users), None)
        if user_entry is not None:
            out.append(Applied((q.path, "user", user), user_entry))
        group_entry: Limit | None = None
        group_name = ""
        for g in groups:
            group_entry = next((lim for lim in q.limits if g in lim.groups), None)
            if group_entry is not None:
                group_name = g
                break
        if group_entry is None:
            group_entry = next((lim for lim in q.limits if "*" in lim.groups), None)
            group_name = "*"
        if group_entry is not None:
            out.append(Applied((q.path, "group", group_name), group_entry))
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
