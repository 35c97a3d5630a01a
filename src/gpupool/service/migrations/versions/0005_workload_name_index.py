"""An index of workloads by name and seq: a session's runs (``gpupool notebook``), newest first.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_workloads_name_seq", "workloads", ["name", "seq"])


def downgrade() -> None:
    op.drop_index("ix_workloads_name_seq", table_name="workloads")
