"""The alembic migrations build exactly the tables of ``tiercel.repository.sql.tables``, on SQLite
and on PostgreSQL (procrastinate's migration test, with alembic's ``compare_metadata``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tests.support import postgres
from tiercel.repository.postgres import PostgresRepositories
from tiercel.repository.sql.migrate import VERSION_TABLE, current, head, include_object
from tiercel.repository.sql.tables import metadata
from tiercel.repository.sqlite import SqliteRepositories


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(tiercel URL, SQLAlchemy URL for a synchronous engine)`` of an empty database."""
    if request.param == "sqlite":
        path = tmp_path / "nested" / "tiercel.db"  # the directory is created on open
        yield f"sqlite:///{path}", f"sqlite:///{path}"
    else:
        with postgres.fresh_database() as url:
            yield url, url.replace("postgresql://", "postgresql+psycopg://", 1)


def _open(url: str) -> SqliteRepositories | PostgresRepositories:
    return SqliteRepositories(url) if url.startswith("sqlite") else PostgresRepositories(url)


def differences(sync_url: str) -> list[object]:
    engine = create_engine(sync_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": VERSION_TABLE,
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": include_object(conn.dialect.name),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


async def test_upgrade_from_empty_equals_the_metadata(database: tuple[str, str]) -> None:
    url, sync_url = database
    repos = _open(url)
    await repos.open()
    await repos.close()
    assert differences(sync_url) == []

    engine = create_engine(sync_url)
    try:
        with engine.connect() as conn:
            assert current(conn) == head()
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(metadata.tables) | {VERSION_TABLE}


async def test_opening_again_is_a_no_op_and_keeps_the_data(database: tuple[str, str]) -> None:
    url, _ = database
    repos = _open(url)
    await repos.open()
    await repos.open()
    await repos.flows.save("company.team", "hello", "id: hello\n", {"id": "hello"})
    await repos.close()
    await repos.close()  # idempotent

    again = _open(url)
    try:
        record = await again.flows.get("company.team", "hello")  # opens (and migrates) lazily
        assert record is not None and record.flow == {"id": "hello"}
    finally:
        await again.close()


async def test_a_closed_repository_refuses_work(database: tuple[str, str]) -> None:
    repos = _open(database[0])
    await repos.open()
    await repos.close()
    with pytest.raises(RuntimeError):
        await repos.flows.namespaces()


def test_the_head_revision_constant_is_alembics_head() -> None:
    """Start-up skips alembic when the stored revision is ``HEAD_REVISION``: it must be the newest."""
    from tiercel.repository.sql.migrate import HEAD_REVISION

    assert head() == HEAD_REVISION
