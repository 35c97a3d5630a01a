"""Placement rules: which queue an application goes to (YuniKorn ``placementrules``).

Rules run in order; the first that names a usable queue wins. A queue is usable if it is a leaf
that exists, or can be created (``create: true``, under an existing parent queue), and the user
may submit to it (submit or admin ACL on the queue or any ancestor). ``parent`` is a nested rule
that names the parent; ``filter`` allows or denies users and groups. With no rules configured,
the queue the application names is used (an implicit ``provided`` rule). If nothing matches,
``root.default`` is used when it exists and the user may submit there.

A ``provided``, ``user`` or ``tag`` rule whose queue name is not a valid queue name (YuniKorn's
``IsQueueNameValid``: 1 to 64 of letters, digits and ``_ : # / @ -``; a short name has its dots
replaced by ``_dot_`` first, each part of a fully qualified one is checked) rejects the
application at once, as in yunikorn-core, whatever later rules would say.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gpupool.core.config import Filter, PlacementRule
from gpupool.core.configcheck import QUEUE_NAME
from gpupool.core.queues import RECOVERY_QUEUE, Queue

IMPLICIT_RULES = (PlacementRule(name="provided"),)
# The reason given when no rule placed an application and it went to root.default (YuniKorn).
IMPLICIT_FALLBACK = "no rule matched: placed in root.default"
_REGEX_CHARS = re.compile(r"[\^$*+?()\[{}|]")  # YuniKorn's SpecialRegExp


@dataclass(frozen=True, slots=True)
class Request:
    """What the placement rules look at: who submits, their groups, the queue named, the tags."""

    user: str
    groups: tuple[str, ...]
    queue: str | None
    tags: Mapping[str, str]


def may_submit(queue: Queue, user: str, groups: tuple[str, ...]) -> bool:
    """Submit access on the queue or any ancestor; admin access implies submit."""
    q: Queue | None = queue
    while q is not None:
        if q.name == RECOVERY_QUEUE:
            return False
        if q.submit_acl.allows(user, groups) or q.admin_acl.allows(user, groups):
            return True
        q = q.parent
    return False


def may_administer(queue: Queue, user: str, groups: tuple[str, ...]) -> bool:
    q: Queue | None = queue
    while q is not None:
        if q.admin_acl.allows(user, groups):
            return True
        q = q.parent
    return False


def _matches(patterns: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """YuniKorn's filter lists: one entry with a regexp character is an expression, matched anywhere
    in the name (Go's MatchString); otherwise the entries are names, and `*` is not special."""
    if len(patterns) == 1 and _REGEX_CHARS.search(patterns[0]):
        try:
            rx = re.compile(patterns[0])
        except re.error:  # refused by the config check; an expression that does not compile matches nobody
            return False
        return any(rx.search(n) for n in names)
    return any(p in names for p in patterns)


def filter_allows(flt: Filter | None, user: str, groups: tuple[str, ...]) -> bool:
    if flt is None:
        return True
    if not flt.users and not flt.groups:
        return flt.type == "allow"  # YuniKorn: a filter without lists allows, or denies, everyone
    hit = _matches(flt.users, (user,)) or _matches(flt.groups, groups)
    return hit if flt.type == "allow" else not hit


def _tag(tags: Mapping[str, str], name: str) -> str | None:
    if name in tags:
        return tags[name]
    lowered = name.lower()
    for k, v in tags.items():
        if k.lower() == lowered:
            return v
    return None


def _clean(name: str) -> str:
    return name.replace(".", "_dot_")


class _RuleFailed(Exception):
    """A rule that fails (not merely matches nothing): YuniKorn rejects the application at once."""


class InvalidQueueName(_RuleFailed):
    """A rule produced a queue name YuniKorn would refuse: the application is rejected."""


def _valid(rule: str, name: str) -> None:
    """Raise ``InvalidQueueName`` unless every part of ``name`` is a valid queue name."""
    for part in name.split("."):
        if not QUEUE_NAME.fullmatch(part):
            raise InvalidQueueName(
                f"rule {rule}: {name!r} is not a valid queue name (each part 1 to 64 of letters, "
                "digits and _ : # / @ -)"
            )


class PlacementRules:
    """Evaluates rules against the live tree; ``lookup`` finds a queue by path."""

    def __init__(self, rules: tuple[PlacementRule, ...], lookup: Callable[[str], Queue | None]) -> None:
        self.rules = rules or IMPLICIT_RULES
        self.lookup = lookup

    def _path(self, rule: PlacementRule, req: Request) -> str | None:
        if not filter_allows(rule.filter, req.user, req.groups):
            return None
        name: str | None
        if rule.name in ("provided", "tag"):
            value = req.queue if rule.name == "provided" else _tag(req.tags, rule.value)
            if not value:
                return None
            if value.lower().startswith("root."):
                _valid(rule.name, value)
                return value.lower()  # fully qualified: used as it is, the parent rule ignored
            name = _clean(value)
            _valid(rule.name, name)
        elif rule.name == "user":
            name = _clean(req.user) if req.user else None
            if name:
                _valid(rule.name, name)
        elif rule.name == "fixed":
            name = rule.value or None
        else:
            return None
        if not name:
            return None
        if name.startswith("root.") or (rule.name == "fixed" and name == "root"):
            return name
        if rule.name == "fixed" and "." in name:
            return "root." + name
        if rule.parent is not None:
            parent = self._path(rule.parent, req)
            if parent is None:
                return None
            existing = self.lookup(parent.lower())
            if existing is None and not rule.parent.create:
                return None
            if not parent.startswith("root."):
                # YuniKorn qualifies a parent only by "root.": `fixed root` as a parent gives root.root
                parent = "root." + parent
                existing = self.lookup(parent.lower())
            if existing is not None and existing.is_leaf:
                raise _RuleFailed(f"{rule.name}: its parent rule gave the leaf queue {parent}")
            return f"{parent}.{name}"
        return f"root.{name}"

    def place(self, req: Request) -> tuple[str | None, bool, str]:
        """Returns (queue path, needs creating, explanation)."""
        tried: list[str] = []
        for rule in self.rules:
            try:
                path = self._path(rule, req)
            except InvalidQueueName as bad:
                return None, False, f"application rejected: {bad}"
            except _RuleFailed as exc:
                return None, False, f"application rejected: placement rule failed ({exc})"
            if path is None:
                tried.append(f"{rule.name}: no queue")
                continue
            path = path.lower()  # queue names are lower-case, as in YuniKorn
            q = self.lookup(path)
            if q is not None:
                if not q.is_leaf:
                    tried.append(f"{rule.name}: {path} is a parent queue")
                    continue
                if not may_submit(q, req.user, req.groups):
                    tried.append(f"{rule.name}: {req.user} may not submit to {path}")
                    continue
                return path, False, f"placed by rule {rule.name}"
            if not rule.create:
                tried.append(f"{rule.name}: {path} does not exist and the rule does not create it")
                continue
            ancestor = self._deepest_existing(path)
            if ancestor is None or ancestor.is_leaf:
                tried.append(f"{rule.name}: cannot create {path} under a leaf queue")
                continue
            if not may_submit(ancestor, req.user, req.groups):
                tried.append(f"{rule.name}: {req.user} may not submit to {ancestor.path}")
                continue
            return path, True, f"placed by rule {rule.name} (queue created)"
        fallback = self.lookup("root.default")
        if fallback is not None and fallback.is_leaf and may_submit(fallback, req.user, req.groups):
            return fallback.path, False, IMPLICIT_FALLBACK
        detail = "; ".join(tried) if tried else "no rules"
        return None, False, f"application rejected: no placement rule matched ({detail})"

    def _deepest_existing(self, path: str) -> Queue | None:
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            q = self.lookup(".".join(parts[:i]))
            if q is not None:
                return q
        return None
