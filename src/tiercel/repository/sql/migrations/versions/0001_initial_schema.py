"""Initial schema: flows, executions, logs, metrics, triggers, execution delays, service instances.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types of tables.py as they were at this revision.
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def _index(table: str, *columns: str) -> None:
    op.create_index(f"ix_{table}_{'_'.join(columns)}", table, list(columns))


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("namespace", KEY, nullable=False),
        sa.Column("id", KEY, nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("labels", DOCUMENT, nullable=False),
        sa.Column("flow_type", sa.Text(), nullable=True, comment="module:qualname of the saved model"),
        sa.Column("flow", DOCUMENT, nullable=True),
        sa.Column("created", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "id", "revision", name="pk_flows"),
    )

    op.create_table(
        "executions",
        sa.Column("id", KEY, nullable=False),
        sa.Column("namespace", KEY, nullable=False),
        sa.Column("flow_id", KEY, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("start_date", INSTANT, nullable=True),
        sa.Column("end_date", INSTANT, nullable=True),
        sa.Column("queued_date", INSTANT, nullable=True, comment="when it last entered QUEUED"),
        sa.Column("parent_id", KEY, nullable=True),
        sa.Column("trigger_id", sa.Text(), nullable=True),
        sa.Column("trigger_execution_id", KEY, nullable=True),
        sa.Column("labels", DOCUMENT, nullable=False),
        sa.Column("value", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
    )
    _index("executions", "namespace", "flow_id", "state")
    _index("executions", "start_date")
    _index("executions", "parent_id")
    _index("executions", "trigger_execution_id")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_executions_labels",
            "executions",
            ["labels"],
            postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops"},
        )

    op.create_table(
        "logs",
        sa.Column("seq", SERIAL, autoincrement=True, nullable=False),
        sa.Column("namespace", KEY, nullable=False),
        sa.Column("flow_id", KEY, nullable=False),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("execution_id", KEY, nullable=True),
        sa.Column("task_run_id", sa.Text(), nullable=True),
        sa.Column("attempt_number", sa.Integer(), nullable=True),
        sa.Column("trigger_id", sa.Text(), nullable=True),
        sa.Column("timestamp", INSTANT, nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("thread", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_logs"),
    )
    _index("logs", "execution_id", "timestamp")
    _index("logs", "timestamp")
    _index("logs", "namespace", "flow_id")

    op.create_table(
        "metrics",
        sa.Column("seq", SERIAL, autoincrement=True, nullable=False),
        sa.Column("namespace", KEY, nullable=False),
        sa.Column("flow_id", KEY, nullable=False),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("execution_id", KEY, nullable=True),
        sa.Column("task_run_id", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timestamp", INSTANT, nullable=False),
        sa.Column("tags", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_metrics"),
    )
    _index("metrics", "execution_id", "timestamp")

    op.create_table(
        "triggers",
        sa.Column("namespace", KEY, nullable=False),
        sa.Column("flow_id", KEY, nullable=False),
        sa.Column("trigger_id", KEY, nullable=False),
        sa.Column("next_execution_date", INSTANT, nullable=True),
        sa.Column("execution_id", KEY, nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("value", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "flow_id", "trigger_id", name="pk_triggers"),
    )

    op.create_table(
        "execution_delays",
        sa.Column("execution_id", KEY, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("task_run_id", KEY, nullable=False, comment="'' when the timer is not for a task run"),
        sa.Column("date", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "kind", "task_run_id", name="pk_execution_delays"),
    )
    _index("execution_delays", "date")

    op.create_table(
        "service_instances",
        sa.Column("id", KEY, nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("started", INSTANT, nullable=False),
        sa.Column("last_heartbeat", INSTANT, nullable=False),
        sa.Column("info", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_service_instances"),
    )
    _index("service_instances", "state", "last_heartbeat")


def downgrade() -> None:
    for table in (
        "service_instances",
        "execution_delays",
        "triggers",
        "metrics",
        "logs",
        "executions",
        "flows",
    ):
        op.drop_table(table)
