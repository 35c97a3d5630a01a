"""Pool nodes a node provider launched, so that a restarted control plane adopts them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pool_nodes",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("pool", sa.String(255), nullable=False),
        sa.Column("instance_type", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("launched_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pool_nodes")
