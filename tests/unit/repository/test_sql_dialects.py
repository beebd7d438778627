"""The dialect-specific pieces that need no server: URL handling, SQL rendering, instant format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from tiercel.errors import ConfigError
from tiercel.repository.postgres import PostgresDatabase
from tiercel.repository.sql.database import parse_url, redact_url
from tiercel.repository.sql.query import namespace_under
from tiercel.repository.sql.tables import UtcDateTime, executions
from tiercel.repository.sqlite import SqliteDatabase, sqlite_instant


def test_hand_written_sqlite_instants_match_what_sqlalchemy_stores() -> None:
    bind = UtcDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    assert bind is not None
    for value in (
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(999, 12, 31, 23, 59, 59),  # naive: taken as UTC
    ):
        assert sqlite_instant(value) == bind(UtcDateTime().process_bind_param(value, sqlite.dialect()))
    assert sqlite_instant(datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == (
        "2025-12-31 23:30:00.000000"
    )
    assert sqlite_instant(None) is None


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_namespace_prefix_is_a_range_at_dot_boundaries(dialect: object) -> None:
    sql = str(
        select(executions.c.id)
        .where(namespace_under(executions.c.namespace, "a_b"))  # type: ignore[arg-type]
        .compile(dialect=dialect, compile_kwargs={"literal_binds": True})  # type: ignore[arg-type]
    )
    assert (
        "executions.namespace = 'a_b' OR executions.namespace > 'a_b.' AND executions.namespace < 'a_b/'"
        in sql
    )
    assert namespace_under(executions.c.namespace, None) is None


def test_urls() -> None:
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert parse_url("postgres://u@h/db", ("postgresql", "postgres"), "x").database == "db"
    with pytest.raises(ConfigError, match="is not of the form postgresql://"):
        parse_url("mysql://u:secret@h/db", ("postgresql",), "postgresql://…")


def test_constructing_connects_to_nothing(tmp_path: object) -> None:
    PostgresDatabase("postgresql://nobody:secret@127.0.0.1:1/none")  # errors come with open()
    database = SqliteDatabase(f"sqlite:///{tmp_path}/not/yet/created.db")
    assert not database.path.parent.exists()
    assert database.url == f"sqlite:///{tmp_path}/not/yet/created.db"


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///file:x?mode=memory&uri=true"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="in-memory SQLite"):
        SqliteDatabase(url)


def test_hand_written_column_lists_follow_the_codec() -> None:
    from tiercel.model.execution import Execution
    from tiercel.model.state import State
    from tiercel.repository import postgres
    from tiercel.repository import sqlite as sqlite_backend
    from tiercel.repository.sql import codec

    def names(statement: str) -> list[str]:
        inside = statement[statement.index("(") + 1 : statement.index(")")]
        return [name.strip().strip('"') for name in inside.split(",")]

    assert names(postgres.COPY_LOGS) == list(codec.LOG_COLUMNS)
    assert names(sqlite_backend.INSERT_LOG) == list(codec.LOG_COLUMNS)
    row = codec.execution_row(Execution(id="e", namespace="n", flow_id="f", state=State()))
    for statement in (postgres.UPSERT_EXECUTION, sqlite_backend.UPSERT_EXECUTION):
        assert names(statement) == list(row)
    assert set(row) == set(executions.c.keys())
