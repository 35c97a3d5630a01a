"""API tokens and access rules.

Tokens are random (``gp_`` + 32 bytes, URL-safe) and stored only as their SHA-256: a leaked
database does not leak usable tokens, and a lookup is one indexed query. Each token names a user
and its groups; ``admin`` tokens administer everything (the bootstrap token is one).

Access follows the queue configuration's ACLs (``gpupool.core.placement_rules``): submitting needs
submit (or admin) access on the queue; seeing or cancelling someone else's workload needs admin
access on its queue; reloading the configuration needs admin access on ``root``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from gpupool.core.placement_rules import may_administer
from gpupool.core.queues import Queue
from gpupool.service.clock import wall_clock
from gpupool.service.db import Database
from gpupool.service.models import TokenRow

TOKEN_PREFIX = "gp_"
BOOTSTRAP_USER = "admin"
BOOTSTRAP_GROUPS = ("admins",)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from, as its token says: user, groups, and whether it administers everything."""

    user: str
    groups: tuple[str, ...] = ()
    admin: bool = False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, user: str, groups: tuple[str, ...] = (), admin: bool = False) -> str:
    """Store a new token for ``user`` and return it (the only time it is seen in clear)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.session() as s:
        s.add(
            TokenRow(
                user=user,
                groups=list(groups),
                admin=admin,
                token_hash=hash_token(token),
                created_at=wall_clock(),
            )
        )
    return token


def authenticate(db: Database, token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    with db.session() as s:
        row = s.scalar(select(TokenRow).where(TokenRow.token_hash == hash_token(token)))
        if row is None:
            return None
        return Principal(row.user, tuple(row.groups or ()), bool(row.admin))


def bootstrap_admin(db: Database, token_file: Path) -> str | None:
    """On first start (no token at all), create an admin token and write it to ``token_file``.

    Returns the new token, or None when tokens already exist.
    """
    with db.session() as s:
        if s.scalar(select(func.count()).select_from(TokenRow)):
            return None
    token = create_token(db, BOOTSTRAP_USER, BOOTSTRAP_GROUPS, admin=True)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def administers(principal: Principal, queue: Queue | None) -> bool:
    if principal.admin:
        return True
    return queue is not None and may_administer(queue, principal.user, principal.groups)


def may_see(principal: Principal, owner: str, queue: Queue | None) -> bool:
    """Own workloads, and those in queues the principal administers."""
    return owner == principal.user or administers(principal, queue)
