"""``DbPoolNodeStore``: the pool nodes a node provider launched, kept in the database.

The local Ray provider (``adapters.ray.provider.LocalRayProvider``) is its own cloud: what it
launched exists only as Ray nodes on this machine, so it writes each node here (launched,
booted, being terminated) and deletes it once it is gone. After a control-plane restart the
provider reads them back, keeps those whose Ray node still runs and hands them to the
autoscaler through its ``inventory``; nothing is launched twice or left behind.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from gpupool.engine.ports import ProviderNode
from gpupool.service.db import Database
from gpupool.service.models import PoolNodeRow


class DbPoolNodeStore:
    """The provider's node store (``provider.NodeStore``) on the control plane's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> list[ProviderNode]:
        with self.db.session() as s:
            return [
                ProviderNode(r.name, r.pool, r.instance_type, r.state, r.launched_at)
                for r in s.scalars(select(PoolNodeRow).order_by(PoolNodeRow.name))
            ]

    def save(self, node: ProviderNode) -> None:
        with self.db.session() as s:
            row = s.get(PoolNodeRow, node.name)
            if row is None:
                s.add(
                    PoolNodeRow(
                        name=node.name,
                        pool=node.pool,
                        instance_type=node.instance_type,
                        state=node.state,
                        launched_at=node.launched_at,
                    )
                )
            else:
                row.pool, row.instance_type = node.pool, node.instance_type
                row.state, row.launched_at = node.state, node.launched_at

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            s.execute(delete(PoolNodeRow).where(PoolNodeRow.name == name))
