"""Condition windows: the state of MultipleCondition and Flow trigger preconditions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the column types of tables.py as they were at this revision.
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "condition_windows",
        sa.Column("key", KEY, nullable=False, comment="{flow uid}/{trigger id}/{condition id}"),
        sa.Column("start_date", INSTANT, nullable=False),
        sa.Column("end_date", INSTANT, nullable=False),
        sa.Column("results", DOCUMENT, nullable=False, comment="{sub-condition: when it was met}"),
        sa.PrimaryKeyConstraint("key", name="pk_condition_windows"),
    )
    op.create_index("ix_condition_windows_end_date", "condition_windows", ["end_date"])


def downgrade() -> None:
    op.drop_table("condition_windows")
