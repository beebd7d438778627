"""The ``postgres`` repository backend: one PostgreSQL database shared by every process of a
cluster (executors, workers, schedulers and webservers on many machines).

``PostgresRepositories("postgresql://user@host:5432/tiercel")`` connects through psycopg 3 (the
``postgres`` extra) on SQLAlchemy's asyncio engine; ``open()`` applies the migrations under an
advisory lock, so processes starting together migrate once. Single statements run in autocommit
(one round trip each); multi-statement writes run in transactions.

``lock(execution_id)`` is a transaction that first takes ``pg_advisory_xact_lock`` on the id (which
also covers an execution not inserted yet), then reads the row ``FOR UPDATE`` (so a plain ``save``
from elsewhere waits too), and writes the new version before committing. Inside one process the
waiters of one execution queue on an ``asyncio.Lock`` rather than each holding a connection, and
at most ``pool_size`` locks are held at once, leaving the overflow connections for the queries a
lock holder makes.

``hold(names)`` (condition windows) is the same advisory lock on each name, in sorted order, for
one transaction that the holder's reads and writes share.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any, LiteralString, TypeVar

from sqlalchemy import ColumnElement, Table, TableValuedAlias, Text, cast, func, literal, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tiercel.errors import ConfigError
from tiercel.model.execution import Execution
from tiercel.repository.locks import KeyedLocks
from tiercel.repository.sql import codec
from tiercel.repository.sql.database import (
    Database,
    PendingWrite,
    Run,
    Upsert,
    one_line,
    parse_url,
    redact_url,
)
from tiercel.repository.sql.migrate import upgrade
from tiercel.repository.sql.repositories import SqlRepositories

__all__ = ["PostgresDatabase", "PostgresRepositories"]

T = TypeVar("T")

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x7469_6572_6365_6C01
"""Advisory lock key held while migrating ("tiercel" in ASCII, then 1)."""

ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")

# The hot paths below run on the psycopg connection itself (SQLAlchemy only pools it): they are the
# statements of every executor event, and SQLAlchemy's statement layer costs more than the round trip.

LOCK_KEY: LiteralString = "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))"

SELECT_EXECUTION: LiteralString = "SELECT value::text FROM executions WHERE id = %(id)s"

SELECT_EXECUTION_FOR_UPDATE: LiteralString = "SELECT value::text FROM executions WHERE id = %(id)s FOR UPDATE"

UPSERT_EXECUTION: LiteralString = """
INSERT INTO executions (id, namespace, flow_id, state, start_date, end_date, queued_date, parent_id,
                        trigger_id, trigger_execution_id, labels, value)
VALUES (%(id)s, %(namespace)s, %(flow_id)s, %(state)s, %(start_date)s, %(end_date)s, %(queued_date)s,
        %(parent_id)s, %(trigger_id)s, %(trigger_execution_id)s, CAST(%(labels)s AS jsonb),
        CAST(%(value)s AS jsonb))
ON CONFLICT (id) DO UPDATE SET
    namespace = excluded.namespace, flow_id = excluded.flow_id, state = excluded.state,
    start_date = excluded.start_date, end_date = excluded.end_date,
    queued_date = excluded.queued_date, parent_id = excluded.parent_id,
    trigger_id = excluded.trigger_id, trigger_execution_id = excluded.trigger_execution_id,
    labels = excluded.labels, value = excluded.value
"""

COPY_LOGS: LiteralString = """
COPY logs (namespace, flow_id, task_id, execution_id, task_run_id, attempt_number, trigger_id,
           "timestamp", level, thread, message) FROM STDIN
"""


def transient(exc: BaseException) -> bool:
    """The database is unreachable or restarting (worth retrying), as opposed to a bad query."""
    import psycopg

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError)


class PostgresDatabase(Database):
    reconnect_timeout = 30.0
    """How long an operation keeps retrying through a lost connection before it raises."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        parsed = parse_url(url, ("postgresql", "postgres"), "postgresql://user@host:5432/database")
        self.url = redact_url(url)
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        self._engine = create_async_engine(
            parsed.set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args=connect_args,
        )
        self._autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._waiters = KeyedLocks()
        self._lock_slots = asyncio.Semaphore(pool_size)
        self._opened = False
        self._closed = False
        self._opening = asyncio.Lock()

    # -- running work ------------------------------------------------------------------------

    async def _retrying(self, what: str, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``operation``, riding out a database restart or a dropped connection for up to
        ``reconnect_timeout`` seconds; the pool is emptied on the first failure so that no dead
        connection is handed out again. Only whole operations are retried, never half of one."""
        if not self._opened:
            await self.open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        pause = 0.05
        while True:
            try:
                return await operation(*args)
            except Exception as exc:
                if not transient(exc) or self._closed or loop.time() + pause > deadline:
                    raise
                log.warning("repository %s failed, retrying: %s", what, one_line(exc))
                await self._engine.dispose()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        return await self._retrying("read", self._read, work, *args)

    async def _read(self, work: Callable[..., T], *args: Any) -> T:
        async with self._autocommit.connect() as conn:
            return await conn.run_sync(work, *args)

    write = read

    async def transaction(self, work: Callable[..., T], *args: Any, key: str | None = None) -> T:
        return await self._retrying("transaction", self._transaction, work, key, *args)

    async def _transaction(self, work: Callable[..., T], key: str | None, *args: Any) -> T:
        async with self._engine.begin() as conn:
            if key is not None:
                await conn.execute(ADVISORY_LOCK, {"key": key})
            return await conn.run_sync(work, *args)

    @asynccontextmanager
    async def hold(self, names: Collection[str]) -> AsyncIterator[Run]:
        if not self._opened:
            await self.open()
        ordered = sorted(set(names))  # one order everywhere: overlapping holders cannot deadlock
        async with self._waiters.hold_all(ordered), self._engine.begin() as conn:
            for name in ordered:
                await conn.execute(ADVISORY_LOCK, {"key": name})

            async def run(work: Callable[..., T], *args: Any) -> T:
                return await conn.run_sync(work, *args)

            yield run

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.url} was closed")
        async with self._opening:
            if self._opened:
                return
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                    await conn.run_sync(upgrade)
            except (OSError, DBAPIError) as exc:
                raise ConfigError(
                    f"cannot open the PostgreSQL database {self.url}: {one_line(exc)}"
                ) from None
            self._opened = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._opened = False
        await self._engine.dispose()

    # -- dialect-specific expressions --------------------------------------------------------

    def insert(self, table: Table) -> Upsert:
        return insert(table)

    def json_text(self, document: str) -> ColumnElement[Any]:
        return cast(literal(document, Text), JSONB)

    def labels_contain(self, column: Any, labels: Mapping[str, str]) -> ColumnElement[bool]:
        return column.op("@>", is_comparison=True)(self.json_text(json.dumps(dict(labels))))

    def label_values(self, column: Any) -> TableValuedAlias:
        return func.jsonb_each_text(column).table_valued("key", "value")

    # -- hot paths ---------------------------------------------------------------------------

    @staticmethod
    async def _driver(conn: AsyncConnection) -> Any:
        """The psycopg ``AsyncConnection`` under a pooled SQLAlchemy connection."""
        return (await conn.get_raw_connection()).driver_connection

    async def get_execution(self, execution_id: str) -> Execution | None:
        return await self._retrying("read", self._get_execution, execution_id)

    async def _get_execution(self, execution_id: str) -> Execution | None:
        async with self._autocommit.connect() as conn:
            raw = await self._driver(conn)
            row = await (await raw.execute(SELECT_EXECUTION, {"id": execution_id})).fetchone()
        return None if row is None else codec.load_execution(row[0])

    async def save_execution(self, execution: Execution) -> None:
        await self._retrying("write", self._save_execution, codec.execution_row(execution))

    async def _save_execution(self, params: dict[str, Any]) -> None:
        async with self._autocommit.connect() as conn:
            await (await self._driver(conn)).execute(UPSERT_EXECUTION, params)

    @asynccontextmanager
    async def lock_execution(self, execution_id: str) -> AsyncIterator[PendingWrite]:
        if not self._opened:
            await self.open()
        async with self._waiters.hold(execution_id), self._lock_slots, self._engine.connect() as conn:
            raw = await self._driver(conn)
            try:
                await raw.execute(LOCK_KEY, {"key": execution_id})
                row = await (await raw.execute(SELECT_EXECUTION_FOR_UPDATE, {"id": execution_id})).fetchone()
                locked = PendingWrite(execution_id, None if row is None else codec.load_execution(row[0]))
                try:
                    yield locked
                finally:
                    locked.close()
                if locked.pending is not None:
                    await raw.execute(UPSERT_EXECUTION, codec.execution_row(locked.pending))
                await raw.commit()
            except BaseException:
                try:
                    await raw.rollback()
                except Exception:
                    await conn.invalidate()  # broken or interrupted: never reuse it
                raise

    async def append_logs(self, rows: builtins.list[dict[str, Any]]) -> None:
        await self._retrying("write", self._append_logs, rows)

    async def _append_logs(self, rows: builtins.list[dict[str, Any]]) -> None:
        async with self._engine.connect() as conn:
            raw = await self._driver(conn)
            async with raw.cursor() as cursor, cursor.copy(COPY_LOGS) as copy:
                for row in rows:
                    await copy.write_row([row[name] for name in codec.LOG_COLUMNS])
            await raw.commit()


class PostgresRepositories(SqlRepositories):
    """The ``postgres`` repository backend (entry point
    ``tiercel.repository.postgres:PostgresRepositories``)."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        super().__init__(PostgresDatabase(url, pool_size=pool_size, max_overflow=max_overflow))
