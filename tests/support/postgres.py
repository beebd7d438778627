"""A fresh PostgreSQL database per test (or per module), on the server this machine runs.

Connection settings come from ``TIERCEL_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, the admin database). Each call of
:func:`fresh_database` creates ``tiercel_test_<random>`` and drops it afterwards, so tests never
share state and can run in parallel (pytest-xdist).

:func:`empty_database` deletes every row (the schema stays): a database as good as new, for suites
that reuse one database for many tests instead of creating one each time.

A missing server skips the test on a developer's machine but fails it when ``CI`` is set: CI can
never go green by skipping PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest

ADMIN_URL = os.environ.get("TIERCEL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def require_postgres() -> None:
    if reachable():
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL} and CI is set: refusing to skip")
    pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Yield the URL (``postgresql://…/tiercel_test_xxx``) of a new empty database; drop it after."""
    import psycopg

    require_postgres()
    name = f"tiercel_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_database(url: str) -> None:
    """End the other sessions on ``url`` and empty every table of its schema, sequences restarted;
    alembic's version tables keep their rows, so the schema stays migrated."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = [
            sql.Identifier(name)
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = current_schema() AND tablename NOT LIKE 'alembic_version%'"
            )
        ]
        if tables:
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(sql.SQL(", ").join(tables)))
