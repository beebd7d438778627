"""The ``sqlite`` queue: tables in one SQLite file, for ``server local`` and other single-machine use.

* One connection per queue instance, used from one thread: every operation is a whole
  transaction run there (``asyncio`` waits for it), so the event loop never blocks on the disk.
* WAL journal, ``synchronous=NORMAL`` (a ``kill -9`` loses nothing; a power cut may lose the last
  commits) and ``busy_timeout`` so processes sharing the file wait for each other's writes.
* Writes open with ``BEGIN IMMEDIATE``: two processes can never claim the same row. A claim first
  checks, without the write lock, whether anything is ready, so idle receivers do not queue up for
  the lock.
* Wake-ups: instant between queue instances of this process that share the file; other processes
  are seen by polling every ``poll_interval`` (0.1 s).
* Timestamps are this machine's clock, shared by every process that can open the file.

The SQL is below, in one place.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, LiteralString, TypeVar

from sqlalchemy.engine import make_url

from tiercel.errors import ConfigError
from tiercel.model.base import Record
from tiercel.queue.sql_base import (
    AckItem,
    ClaimedRow,
    NewMessage,
    Position,
    SQLQueue,
    first_line,
    redact,
)
from tiercel.queue.sql_schema import ddl

T = TypeVar("T")

_INSERT_MESSAGE: LiteralString = """
INSERT INTO tiercel_queue_messages (topic, key, payload, created_at, tx) VALUES (?, ?, ?, ?, 0)
"""

# The messages of one publish get consecutive ids: one writer, AUTOINCREMENT. (CROSS JOIN fixes
# the join order in SQLite: the id range first, not every message of the topic.)
_FANOUT: LiteralString = """
INSERT INTO tiercel_queue_deliveries (message_id, topic, grp, key, visible_at)
SELECT m.id, g.topic, g.name, m.key, ?
FROM tiercel_queue_messages m CROSS JOIN tiercel_queue_groups g
WHERE m.id BETWEEN ? AND ? AND g.topic = m.topic
ORDER BY m.id, g.name
"""

_ENSURE_GROUP: LiteralString = """
INSERT INTO tiercel_queue_groups (topic, name, ordered, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

_GROUP_ORDERED: LiteralString = "SELECT ordered FROM tiercel_queue_groups WHERE topic = ? AND name = ?"

# Parameters of both READY queries: topic, group, now, [now,] limit.
_READY: LiteralString = """
SELECT c.id FROM tiercel_queue_deliveries c
WHERE c.topic = ? AND c.grp = ? AND c.visible_at <= ?
ORDER BY c.id
LIMIT ?
"""

_READY_ORDERED: LiteralString = """
SELECT c.id FROM tiercel_queue_deliveries c
WHERE c.topic = ? AND c.grp = ? AND c.visible_at <= ?
  AND (c.key IS NULL OR NOT EXISTS (
      SELECT 1 FROM tiercel_queue_deliveries e
      WHERE e.topic = c.topic AND e.grp = c.grp AND e.key = c.key AND e.id <> c.id
        AND (e.id < c.id OR (e.claimed_by IS NOT NULL AND e.visible_at > ?))))
ORDER BY c.id
LIMIT ?
"""

_CLAIM: LiteralString = """
UPDATE tiercel_queue_deliveries
SET claimed_by = ?, attempt = attempt + 1, visible_at = ?
WHERE id IN (SELECT value FROM json_each(?))
RETURNING id, message_id, key, attempt
"""

_PAYLOADS: LiteralString = """
SELECT id, payload FROM tiercel_queue_messages WHERE id IN (SELECT value FROM json_each(?))
"""

_ACK: LiteralString = """
DELETE FROM tiercel_queue_deliveries WHERE id = ? AND attempt = ? AND claimed_by = ?
"""

_RELEASE: LiteralString = """
UPDATE tiercel_queue_deliveries SET claimed_by = NULL, attempt = attempt - ?, visible_at = ?
WHERE id = ? AND attempt = ? AND claimed_by = ?
"""

_RELEASE_CONSUMER: LiteralString = """
UPDATE tiercel_queue_deliveries SET claimed_by = NULL, visible_at = ?
WHERE substr(claimed_by, 1, length(?)) = ?
"""

_RENEW: LiteralString = """
UPDATE tiercel_queue_deliveries SET visible_at = ? WHERE id = ? AND claimed_by = ?
"""

_BROADCAST_START: LiteralString = "SELECT coalesce(max(id), 0) FROM tiercel_queue_messages"

_BROADCAST_READ: LiteralString = """
SELECT id, key, payload FROM tiercel_queue_messages
WHERE topic = ? AND tx = 0 AND id > ?
ORDER BY id
LIMIT ?
"""

_DEPTH: LiteralString = "SELECT count(*) FROM tiercel_queue_deliveries WHERE topic = ? AND grp = ?"

_OLD_MESSAGES: LiteralString = """
SELECT id FROM tiercel_queue_messages WHERE id > ? AND created_at < ? ORDER BY id LIMIT ?
"""

_DELETE_UNUSED: LiteralString = """
DELETE FROM tiercel_queue_messages
WHERE id IN (SELECT value FROM json_each(?))
  AND id NOT IN (SELECT message_id FROM tiercel_queue_deliveries)
"""

_CLEAN_BATCH = 5000

# Queue instances of this process, by database file: a publish wakes the receivers of them all.
_PEERS: dict[str, weakref.WeakSet[SQLiteQueue]] = {}


class SQLiteQueue(SQLQueue):
    """The ``sqlite`` queue backend. See ``tiercel.queue.base.Queue`` and ``sql_base``.

    Args:
        url: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; the directory is
            created if needed. It may be the repository's database file or a file of its own.
        topics: topic name -> record type (default ``DEFAULT_TOPICS``).
        busy_timeout: seconds a write waits for another process's write to finish.
        lease, poll_interval, retention, clean_interval, reconnect_timeout: see ``SQLQueue``.
    """

    _transient = (sqlite3.OperationalError,)

    def __init__(
        self,
        url: str,
        topics: Mapping[str, type[Record]] | None = None,
        *,
        lease: float = 10.0,
        poll_interval: float = 0.1,
        retention: float = 60.0,
        clean_interval: float = 30.0,
        reconnect_timeout: float = 10.0,
        busy_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            topics,
            lease=lease,
            poll_interval=poll_interval,
            retention=retention,
            clean_interval=clean_interval,
            reconnect_timeout=reconnect_timeout,
        )
        self.url = redact(url)
        self.path = _path(url)
        self._busy_ms = int(busy_timeout * 1000)
        self._thread: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the connection's thread ----------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction (in the connection's thread)."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
            self._write(lambda c: [c.execute(statement).close() for statement in ddl("sqlite")])
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tiercel-sqlite-queue")
        try:
            await self._run(self._open_sync)
        except (OSError, sqlite3.Error) as exc:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise ConfigError(
                f"queue URL {self.url}: cannot open the SQLite database: {first_line(exc)}"
            ) from None
        self._loop = asyncio.get_running_loop()
        if self.path != ":memory:":
            _PEERS.setdefault(self.path, weakref.WeakSet()).add(self)

    async def _disconnect(self) -> None:
        peers = _PEERS.get(self.path)
        if peers is not None:
            peers.discard(self)
            if not peers:
                _PEERS.pop(self.path, None)
        if self._thread is not None:
            await self._run(self._close_sync)
            self._thread.shutdown(wait=False)
            self._thread = None

    def _notify_local(self, topic: str, n: int | None) -> None:
        peers = _PEERS.get(self.path)
        if not peers:
            self._wake(topic, n)
            return
        loop = asyncio.get_running_loop()
        for peer in list(peers):
            if peer._loop is loop:
                peer._wake(topic, n)

    # -- operations ---------------------------------------------------------------------------

    async def _insert(self, rows: list[NewMessage]) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.executemany(_INSERT_MESSAGE, [(topic, key, payload, now) for topic, key, payload in rows])
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            conn.execute(_FANOUT, (now, last - len(rows) + 1, last))

        await self._run(self._write, insert)

    async def _ensure_group(self, topic: str, group: str, ordered: bool) -> bool:
        def ensure() -> bool:
            conn = self._db()
            conn.execute(_ENSURE_GROUP, (topic, group, ordered, time.time()))
            row = conn.execute(_GROUP_ORDERED, (topic, group)).fetchone()
            return bool(row[0]) if row else ordered

        return await self._run(ensure)

    async def _claim_rows(
        self, topic: str, group: str, ordered: bool, token: str, n: int
    ) -> list[ClaimedRow]:
        def ready(conn: sqlite3.Connection, limit: int) -> list[int]:
            now = time.time()
            if ordered:
                rows = conn.execute(_READY_ORDERED, (topic, group, now, now, limit)).fetchall()
            else:
                rows = conn.execute(_READY, (topic, group, now, limit)).fetchall()
            return [r[0] for r in rows]

        def claim(conn: sqlite3.Connection) -> list[ClaimedRow]:
            ids = ready(conn, n)
            if not ids:
                return []
            claimed = conn.execute(_CLAIM, (token, time.time() + self.lease, json.dumps(ids))).fetchall()
            payloads = dict(conn.execute(_PAYLOADS, (json.dumps([r[1] for r in claimed]),)).fetchall())
            return sorted((r[0], r[2], r[3], payloads[r[1]]) for r in claimed)

        def run() -> list[ClaimedRow]:
            if not ready(self._db(), 1):  # no write lock just to find nothing
                return []
            return self._write(claim)

        return await self._run(run)

    async def _ack_rows(self, items: list[AckItem], wake_topics: set[str]) -> None:
        await self._run(self._write, lambda conn: conn.executemany(_ACK, items).close())

    async def _release_rows(
        self, topic: str, token: str, items: list[tuple[int, int]], delay: float, undo: bool
    ) -> None:
        def release(conn: sqlite3.Connection) -> None:
            visible_at = time.time() + delay
            conn.executemany(
                _RELEASE,
                [(1 if undo else 0, visible_at, row_id, attempt, token) for row_id, attempt in items],
            )

        await self._run(self._write, release)

    async def _release_consumer_rows(self, prefix: str) -> int:
        def release(conn: sqlite3.Connection) -> int:
            return conn.execute(_RELEASE_CONSUMER, (time.time(), prefix, prefix)).rowcount

        return await self._run(self._write, release)

    async def _renew_rows(self, items: list[tuple[int, str]]) -> None:
        def renew(conn: sqlite3.Connection) -> None:
            visible_at = time.time() + self.lease
            conn.executemany(_RENEW, [(visible_at, row_id, token) for row_id, token in items])

        await self._run(self._write, renew)

    async def _broadcast_position(self, topic: str) -> Position:
        row = await self._run(lambda: self._db().execute(_BROADCAST_START).fetchone())
        return (0, int(row[0]))

    async def _broadcast_read(
        self, topic: str, position: Position, n: int
    ) -> tuple[list[tuple[str | None, str]], Position, bool]:
        rows = await self._run(
            lambda: self._db().execute(_BROADCAST_READ, (topic, position[1], n)).fetchall()
        )
        if not rows:
            return [], position, False
        return [(key, payload) for _, key, payload in rows], (0, rows[-1][0]), False

    async def _depth_rows(self, topic: str, group: str) -> int:
        row = await self._run(lambda: self._db().execute(_DEPTH, (topic, group)).fetchone())
        return int(row[0])

    async def _clean_rows(self) -> int:
        def clean() -> int:
            conn = self._db()
            cutoff = time.time() - self.retention
            deleted = 0
            after = 0
            while True:
                ids = [r[0] for r in conn.execute(_OLD_MESSAGES, (after, cutoff, _CLEAN_BATCH)).fetchall()]
                if not ids:
                    return deleted
                batch = json.dumps(ids)

                def delete(c: sqlite3.Connection, batch: str = batch) -> int:
                    return c.execute(_DELETE_UNUSED, (batch,)).rowcount

                deleted += self._write(delete)
                if len(ids) < _CLEAN_BATCH:
                    return deleted
                after = ids[-1]

        return await self._run(clean)


def _path(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            f"queue URL {redact(url)!r} is not a valid URL (expected sqlite:///path/to/file.db)"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        raise ConfigError(
            f"queue URL {redact(url)!r} is not a SQLite URL (expected sqlite:///path/to/file.db)"
        )
    database = parsed.database
    if not database:
        raise ConfigError(
            f"queue URL {redact(url)!r} names no database file (expected sqlite:///path/to/file.db)"
        )
    return database if database == ":memory:" else os.path.abspath(database)
