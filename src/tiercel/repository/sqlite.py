"""The ``sqlite`` repository backend: one database file for one server process (``server local``).

``SqliteRepositories("sqlite:///./data/tiercel.db")`` creates the file (and its directory) if
needed and applies the migrations on ``open()``. Connections use WAL, ``synchronous=NORMAL``,
``foreign_keys=ON`` and a busy timeout.

Work runs in threads over the standard ``sqlite3`` driver (through SQLAlchemy's ``pysqlite``
dialect), each thread keeping its own connection: one writer thread, so writes of this process
never wait on each other's locks, and a few reader threads, which WAL lets read while the writer
writes. Each repository operation is a single hop to a thread. aiosqlite makes one hop per driver
call, about five per statement, and measured four times slower.

``lock(execution_id)`` is exclusive among the tasks of the process: a per-execution
``asyncio.Lock`` shared by every instance opened on the same file, then a read, then the write as
one statement of the writer thread when the block exits. Multi-statement writes (a flow revision,
a batch of logs, migrations) run in ``BEGIN IMMEDIATE`` transactions. Several *processes* on one
file get no mutual exclusion on executions, nor on ``hold(names)`` (the same per-file locks, each
``run`` its own ``BEGIN IMMEDIATE`` transaction): scale out on PostgreSQL.

``sqlite:///:memory:`` is refused: each connection would see its own empty database.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, LiteralString, TypeVar

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Table,
    TableValuedAlias,
    Text,
    and_,
    create_engine,
    event,
    func,
    literal,
)
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.exc import DBAPIError

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
from tiercel.repository.sql.tables import to_utc

__all__ = ["SqliteDatabase", "SqliteRepositories"]

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
READER_THREADS = 2

SELECT_EXECUTION: LiteralString = "SELECT value FROM executions WHERE id = ?"

UPSERT_EXECUTION: LiteralString = """
INSERT INTO executions (id, namespace, flow_id, state, start_date, end_date, queued_date, parent_id,
                        trigger_id, trigger_execution_id, labels, value)
VALUES (:id, :namespace, :flow_id, :state, :start_date, :end_date, :queued_date, :parent_id,
        :trigger_id, :trigger_execution_id, :labels, :value)
ON CONFLICT (id) DO UPDATE SET
    namespace = excluded.namespace, flow_id = excluded.flow_id, state = excluded.state,
    start_date = excluded.start_date, end_date = excluded.end_date,
    queued_date = excluded.queued_date, parent_id = excluded.parent_id,
    trigger_id = excluded.trigger_id, trigger_execution_id = excluded.trigger_execution_id,
    labels = excluded.labels, value = excluded.value
"""

INSERT_LOG: LiteralString = """
INSERT INTO logs (namespace, flow_id, task_id, execution_id, task_run_id, attempt_number,
                  trigger_id, "timestamp", level, thread, message)
VALUES (:namespace, :flow_id, :task_id, :execution_id, :task_run_id, :attempt_number,
        :trigger_id, :timestamp, :level, :thread, :message)
"""


def sqlite_instant(value: datetime | None) -> str | None:
    """An instant as SQLAlchemy's SQLite ``DATETIME`` stores it (UTC), for hand-written statements."""
    if value is None:
        return None
    v = to_utc(value)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    ):
        cursor.execute(pragma)
    cursor.close()


_FILE_LOCKS: weakref.WeakValueDictionary[Path, KeyedLocks] = weakref.WeakValueDictionary()
_FILE_LOCKS_GUARD = threading.Lock()


def _execution_locks(path: Path) -> KeyedLocks:
    """The execution (and ``hold``) locks of one database file, shared by every instance open on it."""
    with _FILE_LOCKS_GUARD:
        locks = _FILE_LOCKS.get(path)
        if locks is None:
            locks = _FILE_LOCKS[path] = KeyedLocks()
        return locks


async def _complete(future: asyncio.Future[T]) -> T:
    """Await work running in a thread to its end even if cancelled meanwhile (a thread cannot be
    stopped, and a lock must not be released while its write is still going on)."""
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                cancelled = True
                continue
            raise
        if cancelled:
            raise asyncio.CancelledError
        return result


class SqliteDatabase(Database):
    def __init__(self, url: str) -> None:
        parsed = parse_url(url, ("sqlite",), "sqlite:///path/to/tiercel.db")
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database or parsed.query.get("mode") == "memory":
            raise ConfigError(
                f"datasource URL {redact_url(url)!r} is an in-memory SQLite database, which every "
                "connection would see empty; give a file (sqlite:///./data/tiercel.db) or use "
                "repository.type=memory"
            )
        self.url = redact_url(url)
        self.path = Path(database).expanduser().absolute()
        self._engine = create_engine(
            URL.create("sqlite+pysqlite", database=str(self.path)),
            pool_size=READER_THREADS + 1,  # one per thread, held until close()
            max_overflow=0,
            connect_args={
                "check_same_thread": False,
                "isolation_level": None,
                "timeout": BUSY_TIMEOUT_MS / 1000,
            },
        )
        event.listen(self._engine, "connect", _on_connect)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="tiercel-sqlite-writer")
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="tiercel-sqlite-reader")
        self._local = threading.local()
        self._guard = threading.Lock()
        self._connections: builtins.list[Connection] = []
        self._locks = _execution_locks(self.path)
        self._opened = False
        self._closed = False
        self._opening = asyncio.Lock()

    # -- running work ------------------------------------------------------------------------

    async def _run(self, pool: ThreadPoolExecutor, call: Callable[[], T]) -> T:
        if not self._opened:
            await self.open()
        future: Future[T] = pool.submit(call)
        return await _complete(asyncio.wrap_future(future))

    def _connection(self) -> Connection:
        """This worker thread's connection, opened on first use and kept until ``close()``."""
        conn: Connection | None = getattr(self._local, "connection", None)
        if conn is None:
            conn = self._engine.connect()
            self._local.connection = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def _connected(self, work: Callable[..., T], args: tuple[Any, ...], immediate: bool) -> Callable[[], T]:
        def call() -> T:
            conn = self._connection()
            try:
                if immediate:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                result = work(conn, *args)
                if immediate:
                    conn.commit()
                return result
            finally:
                if conn.in_transaction():
                    conn.rollback()  # a failed transaction; otherwise only SQLAlchemy's own state

        return call

    def _raw(self, work: Callable[[sqlite3.Connection], T], immediate: bool = False) -> Callable[[], T]:
        """``work`` gets the ``sqlite3.Connection`` itself: the hot paths skip SQLAlchemy."""

        def call() -> T:
            raw: sqlite3.Connection = self._connection().connection.driver_connection  # type: ignore[assignment]
            if not immediate:
                return _no_cursor(work(raw))
            raw.execute("BEGIN IMMEDIATE")
            try:
                result = _no_cursor(work(raw))
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return result

        return call

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        return await self._run(self._readers, self._connected(work, args, immediate=False))

    async def write(self, work: Callable[..., T], *args: Any) -> T:
        return await self._run(self._writer, self._connected(work, args, immediate=False))

    async def transaction(self, work: Callable[..., T], *args: Any, key: str | None = None) -> T:
        return await self._run(self._writer, self._connected(work, args, immediate=True))

    @asynccontextmanager
    async def hold(self, names: Collection[str]) -> AsyncIterator[Run]:
        async with self._locks.hold_all(names):
            yield self.transaction

    # -- lifecycle ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connected(upgrade, (), immediate=True)()  # BEGIN IMMEDIATE: one process migrates at a time
        except (OSError, DBAPIError) as exc:
            raise ConfigError(f"cannot open the SQLite database {self.url}: {one_line(exc)}") from None

    async def open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.url} was closed")
        async with self._opening:
            if not self._opened:
                await _complete(asyncio.wrap_future(self._writer.submit(self._migrate)))
                self._opened = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._opened = False

        def shut_down() -> None:
            self._writer.shutdown(wait=True)
            self._readers.shutdown(wait=True)
            for conn in self._connections:
                conn.close()
            self._engine.dispose()

        await asyncio.to_thread(shut_down)

    # -- dialect-specific expressions --------------------------------------------------------

    def insert(self, table: Table) -> Upsert:
        return insert(table)

    def json_text(self, document: str) -> ColumnElement[Any]:
        return literal(document, Text)

    def labels_contain(self, column: Any, labels: Mapping[str, str]) -> ColumnElement[bool]:
        return and_(*(func.json_extract(column, "$." + json.dumps(k)) == v for k, v in labels.items()))

    def label_values(self, column: Any) -> TableValuedAlias:
        return func.json_each(column).table_valued("value")

    # -- hot paths ---------------------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> Execution | None:
        row = await self._run(
            self._readers, self._raw(lambda raw: raw.execute(SELECT_EXECUTION, (execution_id,)).fetchone())
        )
        return None if row is None else codec.load_execution(row[0])

    @staticmethod
    def _execution_params(execution: Execution) -> dict[str, Any]:
        row = codec.execution_row(execution)
        for name in ("start_date", "end_date", "queued_date"):
            row[name] = sqlite_instant(row[name])
        return row

    async def save_execution(self, execution: Execution) -> None:
        params = self._execution_params(execution)
        await self._run(self._writer, self._raw(lambda raw: raw.execute(UPSERT_EXECUTION, params)))

    @asynccontextmanager
    async def lock_execution(self, execution_id: str) -> AsyncIterator[PendingWrite]:
        async with self._locks.hold(execution_id):
            locked = PendingWrite(execution_id, await self.get_execution(execution_id))
            try:
                yield locked
            finally:
                locked.close()
            if locked.pending is not None:
                await self.save_execution(locked.pending)

    async def append_logs(self, rows: builtins.list[dict[str, Any]]) -> None:
        for row in rows:
            row["timestamp"] = sqlite_instant(row["timestamp"])
        await self._run(
            self._writer, self._raw(lambda raw: raw.executemany(INSERT_LOG, rows), immediate=True)
        )


def _no_cursor(result: T) -> T:
    """Close a cursor here, on the connection's own thread, instead of letting it reach the event
    loop: freed there, it resets a cached statement the writer thread may be running at that very
    moment, and SQLite answers "bad parameter or other API misuse"."""
    if isinstance(result, sqlite3.Cursor):
        result.close()
        return None  # type: ignore[return-value]
    return result


class SqliteRepositories(SqlRepositories):
    """The ``sqlite`` repository backend (entry point ``tiercel.repository.sqlite:SqliteRepositories``)."""

    def __init__(self, url: str = "sqlite:///./data/tiercel.db") -> None:
        super().__init__(SqliteDatabase(url))
