"""The SQL queues' tables, in SQLAlchemy Core, shared by ``queue.sqlite`` and ``queue.postgres``.

Three tables, all prefixed ``tiercel_queue_``:

* ``messages``: one row per published record (``payload`` is ``Record.to_json()``). Broadcast
  subscribers read it by position; competing groups reach it through their deliveries. Rows no
  delivery points to are deleted by the cleaner once ``retention`` has passed (they only serve
  broadcast subscribers that fell behind).
* ``groups``: every competing group ever subscribed, with its ``ordered_by_key`` flag. A group
  exists from its first subscription on, so publishing fans out to it even with no consumer.
* ``deliveries``: one row per (message, group) not yet acknowledged. ``visible_at`` (epoch
  seconds) is when it may be claimed: the publish time, then ``now + lease`` while a consumer holds
  it (renewed while the consumer lives), then ``now + delay`` after a nack. Acknowledging deletes it.
  Only immutable columns are indexed, so claims, renewals and nacks are PostgreSQL HOT updates.

``tx`` is PostgreSQL's 64-bit transaction id of the publishing transaction (0 on SQLite, whose
single writer commits in id order). Broadcast readers on PostgreSQL read in ``(tx, id)`` order up to
the oldest running transaction, so a message whose transaction commits late is never skipped.

The queue creates these tables itself (``CREATE TABLE IF NOT EXISTS``); they are kept out of the
repository's alembic migrations on purpose, so a queue can live in its own database.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

metadata = MetaData()

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite AUTOINCREMENT needs INTEGER

messages = Table(
    "tiercel_queue_messages",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("key", Text, nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("tx", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_tiercel_queue_messages_topic_tx_id", "topic", "tx", "id"),
    sqlite_autoincrement=True,  # ids are never reused: broadcast positions stay valid
)

groups = Table(
    "tiercel_queue_groups",
    metadata,
    Column("topic", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("ordered", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
)

deliveries = Table(
    "tiercel_queue_deliveries",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("message_id", BigInteger, nullable=False),
    Column("topic", String(200), nullable=False),
    Column("grp", String(200), nullable=False),
    Column("key", Text, nullable=True),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("visible_at", Double, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Index("ix_tiercel_queue_deliveries_topic_grp_id", "topic", "grp", "id"),
    Index(
        "ix_tiercel_queue_deliveries_topic_grp_key_id",
        "topic",
        "grp",
        "key",
        "id",
        postgresql_where=text("key IS NOT NULL"),
        sqlite_where=text("key IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
    postgresql_with={"fillfactor": 70},  # room on each page for HOT updates of claimed rows
)


def ddl(dialect: Literal["sqlite", "postgresql"]) -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` statements for every queue table, in order."""
    compiled_for = sqlite.dialect() if dialect == "sqlite" else postgresql.dialect()
    out: list[str] = []
    for table in metadata.sorted_tables:
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=compiled_for)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=compiled_for)).strip())
    return out
