"""Queue usage over time: one row per queue per sample (the portal's charts).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_samples",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("guaranteed", sa.JSON(), nullable=False),
        sa.Column("max", sa.JSON(), nullable=False),
        sa.Column("allocated", sa.JSON(), nullable=False),
        sa.Column("pending", sa.JSON(), nullable=False),
    )
    op.create_index("ix_queue_samples_at", "queue_samples", ["at"])
    op.create_index("ix_queue_samples_queue_at", "queue_samples", ["queue", "at"])


def downgrade() -> None:
    op.drop_index("ix_queue_samples_queue_at", table_name="queue_samples")
    op.drop_index("ix_queue_samples_at", table_name="queue_samples")
    op.drop_table("queue_samples")
