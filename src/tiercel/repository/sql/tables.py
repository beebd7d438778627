"""The repositories' tables, in SQLAlchemy Core, shared by SQLite and PostgreSQL.

Each aggregate keeps its full JSON document (``value``/``flow``) plus the columns searches filter
and sort on, extracted when the row is written (Kestra's JDBC layout). Conventions:

* identifiers (namespaces, flow, execution and trigger ids) use the ``C`` collation on PostgreSQL,
  so ``ORDER BY`` and the namespace prefix ranges compare code points, as the memory backend does;
* instants are stored in UTC (:class:`UtcDateTime`); SQLite keeps them as sortable text;
* documents are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL;
* ``labels`` columns hold a ``{key: value}`` object (the first value of a repeated key wins), which
  is what label filters compare against.

The alembic migrations under ``migrations/`` must produce exactly this metadata (a test checks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Key = Text().with_variant(Text(collation="C"), "postgresql")
"""An identifier: compared and sorted by code point on both dialects."""

Document = JSON().with_variant(JSONB(), "postgresql")

Serial = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-incremented row number (SQLite only aliases the rowid for ``INTEGER PRIMARY KEY``)."""

SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy's SQLite ``DATETIME`` writes an instant; hand-written SQLite statements use it too."""


def to_utc(value: datetime) -> datetime:
    """An aware instant in UTC; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """``TIMESTAMPTZ`` on PostgreSQL; on SQLite, UTC text in :data:`SQLITE_DATETIME_FORMAT` (so text
    order is time order). Values read back are aware, in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = to_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return to_utc(value)


flows = Table(
    "flows",
    metadata,
    Column("namespace", Key, primary_key=True),
    Column("id", Key, primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("deleted", Boolean, nullable=False),
    Column("source", Text, nullable=False),
    Column("labels", Document, nullable=False),
    Column("flow_type", Text, nullable=True, comment="module:qualname of the saved model"),
    Column("flow", Document, nullable=True),
    Column("created", UtcDateTime, nullable=False),
)

executions = Table(
    "executions",
    metadata,
    Column("id", Key, primary_key=True),
    Column("namespace", Key, nullable=False),
    Column("flow_id", Key, nullable=False),
    Column("state", Text, nullable=False),
    Column("start_date", UtcDateTime, nullable=True),
    Column("end_date", UtcDateTime, nullable=True),
    Column("queued_date", UtcDateTime, nullable=True, comment="when it last entered QUEUED"),
    Column("parent_id", Key, nullable=True),
    Column("trigger_id", Text, nullable=True),
    Column("trigger_execution_id", Key, nullable=True),
    Column("labels", Document, nullable=False),
    Column("value", Document, nullable=False),
    Index(None, "namespace", "flow_id", "state"),
    Index(None, "start_date"),
    Index(None, "parent_id"),
    Index(None, "trigger_execution_id"),
)

logs = Table(
    "logs",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("namespace", Key, nullable=False),
    Column("flow_id", Key, nullable=False),
    Column("task_id", Text, nullable=True),
    Column("execution_id", Key, nullable=True),
    Column("task_run_id", Text, nullable=True),
    Column("attempt_number", Integer, nullable=True),
    Column("trigger_id", Text, nullable=True),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("level", Text, nullable=False),
    Column("thread", Text, nullable=True),
    Column("message", Text, nullable=False),
    Index(None, "execution_id", "timestamp"),
    Index(None, "timestamp"),
    Index(None, "namespace", "flow_id"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("namespace", Key, nullable=False),
    Column("flow_id", Key, nullable=False),
    Column("task_id", Text, nullable=True),
    Column("execution_id", Key, nullable=True),
    Column("task_run_id", Text, nullable=True),
    Column("type", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("tags", Document, nullable=False),
    Index(None, "execution_id", "timestamp"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("namespace", Key, primary_key=True),
    Column("flow_id", Key, primary_key=True),
    Column("trigger_id", Key, primary_key=True),
    Column("next_execution_date", UtcDateTime, nullable=True),
    Column("execution_id", Key, nullable=True),
    Column("worker_id", Text, nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("value", Document, nullable=False),
)

execution_delays = Table(
    "execution_delays",
    metadata,
    Column("execution_id", Key, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("task_run_id", Key, primary_key=True, comment="'' when the timer is not for a task run"),
    Column("date", UtcDateTime, nullable=False),
    Index(None, "date"),
)

service_instances = Table(
    "service_instances",
    metadata,
    Column("id", Key, primary_key=True),
    Column("role", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("started", UtcDateTime, nullable=False),
    Column("last_heartbeat", UtcDateTime, nullable=False),
    Column("info", Document, nullable=False),
    Index(None, "state", "last_heartbeat"),
)

condition_windows = Table(
    "condition_windows",
    metadata,
    Column("key", Key, primary_key=True, comment="{flow uid}/{trigger id}/{condition id}"),
    Column("start_date", UtcDateTime, nullable=False),
    Column("end_date", UtcDateTime, nullable=False),
    Column("results", Document, nullable=False, comment="{sub-condition: when it was met}"),
    Index(None, "end_date"),
)

Index(
    "ix_executions_labels",
    executions.c.labels,
    postgresql_using="gin",
    postgresql_ops={"labels": "jsonb_path_ops"},
).ddl_if(dialect="postgresql")
"""Label filters on PostgreSQL are ``labels @> '{...}'``; SQLite has no use for an index on JSON text."""
