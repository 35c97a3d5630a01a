"""Access control lists with Apache YuniKorn's semantics (``submitacl`` / ``adminacl``).

Grammar (YuniKorn ``docs/user_guide/acls.md``, ``pkg/common/security/acl.go``)::

    ACL       ::= "*" | userlist [ " " grouplist ]
    userlist  ::= "" | user { "," user }
    grouplist ::= "" | group { "," group }

* ``"*"`` (also ``"* "``, ``" *"``, or ``*`` as the whole user or group list) lets everyone in;
* ``"sue,bob dev,ops"``: the users sue and bob, and every member of dev or ops;
* a leading space means groups only: ``" dev"``;
* an empty ACL or a single space denies everyone, and so does an ACL that is not configured
  (``None``);
* more than one space separator is an error (``"a b c"``, ``"  "``);
* names that are not valid user / group names are ignored, as YuniKorn does; they are kept in
  ``ignored`` so a config check can point at them.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

WILDCARD = "*"

# The names YuniKorn's documentation allows (queue_config.md, "Valid User name" / "Valid Group name").
USER_NAME = re.compile(r"^[_a-zA-Z][a-zA-Z0-9_:#/@.-]*\$?$")
GROUP_NAME = re.compile(r"^[_a-zA-Z][a-zA-Z0-9_:.-]*$")


class ACLError(ValueError):
    """An ACL string that YuniKorn would reject; the message says why."""


@dataclass(frozen=True, slots=True)
class ACL:
    """A parsed ACL. Build it with ``ACL.parse``; check access with ``allows``."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    all_allowed: bool = False
    configured: bool = False
    ignored: tuple[str, ...] = ()
    text: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> ACL:
        """Parse an ACL string; ``None`` means not configured (deny). Raises ACLError."""
        if text is None:
            return cls()
        if not isinstance(text, str):
            raise ACLError(f"{text!r} is not an ACL (expected a string such as '*' or 'sue,bob dev')")
        if text == "":
            return cls(configured=True, text=text)
        fields = text.split(" ")
        if len(fields) > 2:
            raise ACLError(
                f"{text!r} has more than one space; an ACL is a user list and a group list "
                "separated by one space (e.g. 'sue,bob dev,ops', or ' dev' for groups only)"
            )
        if text.strip() == WILDCARD:
            return cls(all_allowed=True, configured=True, text=text)
        ignored: list[str] = []
        user_list = fields[0].split(",")
        if user_list == [WILDCARD]:
            return cls(all_allowed=True, configured=True, text=text)
        users = _names(user_list, USER_NAME, ignored)
        groups: frozenset[str] = frozenset()
        if len(fields) == 2:
            group_list = fields[1].split(",")
            if group_list == [WILDCARD]:
                return cls(all_allowed=True, configured=True, text=text)
            groups = _names(group_list, GROUP_NAME, ignored)
        return cls(users=users, groups=groups, configured=True, ignored=tuple(ignored), text=text)

    def allows(self, user: str, groups: Sequence[str] = ()) -> bool:
        """True if ``user`` or one of ``groups`` is in the ACL (or the ACL is the wildcard)."""
        if self.all_allowed:
            return True
        if user in self.users:
            return True
        return any(g in self.groups for g in groups)

    @property
    def denies_all(self) -> bool:
        return not self.all_allowed and not self.users and not self.groups

    def describe(self) -> str:
        """A short human description: ``everyone``, ``nobody (not set)``, ``users sue, bob; groups dev``."""
        if self.all_allowed:
            return "everyone"
        if not self.configured:
            return "nobody (not set)"
        if self.denies_all:
            text = "nobody"
        else:
            parts = []
            if self.users:
                parts.append("users " + ", ".join(sorted(self.users)))
            if self.groups:
                parts.append("groups " + ", ".join(sorted(self.groups)))
            text = "; ".join(parts)
        if self.ignored:
            text += " (ignored invalid names: " + ", ".join(self.ignored) + ")"
        return text


def _names(items: list[str], pattern: re.Pattern[str], ignored: list[str]) -> frozenset[str]:
    out: set[str] = set()
    for name in items:
        if name == "":
            continue
        if pattern.match(name):
            out.add(name)
        else:
            ignored.append(name)
    return frozenset(out)
