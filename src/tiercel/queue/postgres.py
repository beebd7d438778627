"""The ``postgres`` queue: tables in PostgreSQL, for several processes on several machines.

* Claims are ``UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED LIMIT n))``:
  consumers never wait on each other's rows.
* Every publish runs ``pg_notify(channel, '<topic> <sender>')`` in its own transaction, so the
  hint goes out at commit (``sender`` names the queue instance, which has woken its own receivers
  already and ignores the echo). Each queue instance keeps one dedicated connection that only
  LISTENs (it runs no other statement; on ``OperationalError`` it reconnects and wakes every
  receiver to drain). Receivers also poll every ``poll_interval`` (0.5 s), so a lost notification
  only costs latency.
* Time is the server's (``now()``), never the client's, so leases hold across machines.
* Publishing commits synchronously (unless ``durable_publish=False``); claims, acks, nacks and
  lease renewals set ``synchronous_commit = off`` for their own transaction. Losing one of those
  in a server crash only means a redelivery, which at-least-once allows, and it saves a WAL flush
  per statement.
* Broadcast subscribers read in ``(transaction id, id)`` order and only below the oldest running
  transaction, so a message whose transaction commits after a later one is still seen. A writing
  transaction that stays open (an ``idle in transaction`` session) holds broadcast back meanwhile.

The SQL of the hot paths is below, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any, LiteralString

# Without the 'postgres' extra these raise ImportError, which the server's wiring turns into
# "queue.type=postgres needs the 'postgres' extra".
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
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
    stop_tasks,
)
from tiercel.queue.sql_schema import ddl

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 7_240_531_917  # pg_advisory_xact_lock key: one process creates the tables at a time

_TABLES_EXIST: LiteralString = """
SELECT to_regclass('tiercel_queue_messages') IS NOT NULL
   AND to_regclass('tiercel_queue_groups') IS NOT NULL
   AND to_regclass('tiercel_queue_deliveries') IS NOT NULL
"""

_PUBLISH: LiteralString = """
WITH msg AS (
    INSERT INTO tiercel_queue_messages (topic, key, payload, created_at, tx)
    SELECT u.topic, u.key, u.payload, extract(epoch FROM now())::float8,
           pg_current_xact_id()::text::bigint
    FROM unnest(%(topics)s::text[], %(keys)s::text[], %(payloads)s::text[])
         WITH ORDINALITY AS u(topic, key, payload, n)
    ORDER BY u.n
    RETURNING id, topic, key
), fanout AS (
    INSERT INTO tiercel_queue_deliveries (message_id, topic, grp, key, visible_at)
    SELECT msg.id, g.topic, g.name, msg.key, extract(epoch FROM now())::float8
    FROM msg JOIN tiercel_queue_groups g ON g.topic = msg.topic
    ORDER BY msg.id, g.name
)
SELECT set_config('synchronous_commit', %(commit)s, true),
       (SELECT count(pg_notify(%(channel)s, t || ' ' || %(me)s)) FROM unnest(%(wake)s::text[]) AS t)
"""

_ENSURE_GROUP: LiteralString = """
INSERT INTO tiercel_queue_groups (topic, name, ordered, created_at)
VALUES (%(topic)s, %(grp)s, %(ordered)s, extract(epoch FROM now())::float8)
ON CONFLICT DO NOTHING
"""

_GROUP_ORDERED: LiteralString = """
SELECT ordered FROM tiercel_queue_groups WHERE topic = %(topic)s AND name = %(grp)s
"""

_CLAIM: LiteralString = """
WITH claimed AS (
    UPDATE tiercel_queue_deliveries d
    SET claimed_by = %(token)s, attempt = d.attempt + 1,
        visible_at = extract(epoch FROM now())::float8 + %(lease)s
    WHERE d.id = ANY(ARRAY(
        SELECT c.id FROM tiercel_queue_deliveries c
        WHERE c.topic = %(topic)s AND c.grp = %(grp)s
          AND c.visible_at <= extract(epoch FROM now())::float8
        ORDER BY c.id
        LIMIT %(n)s
        FOR UPDATE SKIP LOCKED))
    RETURNING d.id, d.message_id, d.key, d.attempt
)
SELECT c.id, c.key, c.attempt, m.payload, set_config('synchronous_commit', 'off', true)
FROM claimed c JOIN tiercel_queue_messages m ON m.id = c.message_id
ORDER BY c.id
"""

# ordered_by_key: only the head of each key's line, and only while no other row of the key is
# in flight (a row of a transaction that committed late may have a lower id than one in flight).
_CLAIM_ORDERED: LiteralString = """
WITH claimed AS (
    UPDATE tiercel_queue_deliveries d
    SET claimed_by = %(token)s, attempt = d.attempt + 1,
        visible_at = extract(epoch FROM now())::float8 + %(lease)s
    WHERE d.id = ANY(ARRAY(
        SELECT c.id FROM tiercel_queue_deliveries c
        WHERE c.topic = %(topic)s AND c.grp = %(grp)s
          AND c.visible_at <= extract(epoch FROM now())::float8
          AND (c.key IS NULL OR NOT EXISTS (
              SELECT 1 FROM tiercel_queue_deliveries e
              WHERE e.topic = c.topic AND e.grp = c.grp AND e.key = c.key AND e.id <> c.id
                AND (e.id < c.id OR (e.claimed_by IS NOT NULL
                                     AND e.visible_at > extract(epoch FROM now())::float8))))
        ORDER BY c.id
        LIMIT %(n)s
        FOR UPDATE SKIP LOCKED))
    RETURNING d.id, d.message_id, d.key, d.attempt
)
SELECT c.id, c.key, c.attempt, m.payload, set_config('synchronous_commit', 'off', true)
FROM claimed c JOIN tiercel_queue_messages m ON m.id = c.message_id
ORDER BY c.id
"""

_ACK: LiteralString = """
WITH gone AS (
    DELETE FROM tiercel_queue_deliveries d
    USING unnest(%(ids)s::bigint[], %(attempts)s::int[], %(tokens)s::text[]) AS a(id, attempt, token)
    WHERE d.id = a.id AND d.attempt = a.attempt AND d.claimed_by = a.token
    RETURNING 1
)
SELECT set_config('synchronous_commit', 'off', true),
       (SELECT count(pg_notify(%(channel)s, t || ' ' || %(me)s)) FROM unnest(%(topics)s::text[]) AS t)
"""

_RELEASE: LiteralString = """
WITH back AS (
    UPDATE tiercel_queue_deliveries d
    SET claimed_by = NULL, attempt = d.attempt - %(undo)s,
        visible_at = extract(epoch FROM now())::float8 + %(delay)s
    FROM unnest(%(ids)s::bigint[], %(attempts)s::int[]) AS a(id, attempt)
    WHERE d.id = a.id AND d.attempt = a.attempt AND d.claimed_by = %(token)s
    RETURNING 1
)
SELECT set_config('synchronous_commit', 'off', true),
       (SELECT count(pg_notify(%(channel)s, %(topic)s || ' ' || %(me)s)) WHERE %(notify)s)
"""

_RELEASE_CONSUMER: LiteralString = """
WITH back AS (
    UPDATE tiercel_queue_deliveries
    SET claimed_by = NULL, visible_at = extract(epoch FROM now())::float8
    WHERE left(claimed_by, length(%(prefix)s)) = %(prefix)s
    RETURNING topic
)
SELECT (SELECT count(*) FROM back),
       (SELECT count(pg_notify(%(channel)s, t || ' ' || %(me)s))
        FROM (SELECT DISTINCT topic AS t FROM back) AS topics)
"""

_RENEW: LiteralString = """
WITH renewed AS (
    UPDATE tiercel_queue_deliveries d
    SET visible_at = extract(epoch FROM now())::float8 + %(lease)s
    FROM unnest(%(ids)s::bigint[], %(tokens)s::text[]) AS a(id, token)
    WHERE d.id = a.id AND d.claimed_by = a.token
    RETURNING 1
)
SELECT set_config('synchronous_commit', 'off', true)
"""

# xmax of the current snapshot: every transaction that starts after this gets a larger id.
_BROADCAST_START: LiteralString = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"

_BROADCAST_READ: LiteralString = """
SELECT tx, id, key, payload, tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
FROM tiercel_queue_messages
WHERE topic = %(topic)s AND (tx, id) > (%(tx)s, %(id)s)
ORDER BY tx, id
LIMIT %(n)s
"""

_DEPTH: LiteralString = """
SELECT count(*) FROM tiercel_queue_deliveries WHERE topic = %(topic)s AND grp = %(grp)s
"""

_OLD_MESSAGES: LiteralString = """
SELECT id FROM tiercel_queue_messages
WHERE id > %(after)s AND created_at < extract(epoch FROM now())::float8 - %(retention)s
ORDER BY id
LIMIT %(n)s
"""

_DELETE_UNUSED: LiteralString = """
DELETE FROM tiercel_queue_messages m
WHERE m.id = ANY(%(ids)s::bigint[])
  AND NOT EXISTS (SELECT 1 FROM tiercel_queue_deliveries d WHERE d.message_id = m.id)
"""

_CLEAN_BATCH = 5000


class PostgresQueue(SQLQueue):
    """The ``postgres`` queue backend. See ``tiercel.queue.base.Queue`` and ``sql_base``.

    Args:
        url: ``postgresql://user:password@host:port/database`` (``postgres://`` and
            ``postgresql+psycopg://`` are accepted too; libpq ``PG*`` variables fill the gaps).
        topics: topic name -> record type (default ``DEFAULT_TOPICS``).
        channel: the LISTEN/NOTIFY channel; queues sharing a database must share it.
        pool_size: most connections the queue opens, besides its LISTEN connection.
        durable_publish: publish returns once the server has flushed the messages to disk
            (default). False publishes with ``synchronous_commit = off``: several times faster per
            publish on a slow disk, and a crash of any Tiercel process still loses nothing, but a
            crash of the PostgreSQL server itself can lose the last fraction of a second of
            published messages.
        lease, poll_interval, retention, clean_interval, reconnect_timeout: see ``SQLQueue``.
    """

    _transient = (psycopg.OperationalError,)

    def __init__(
        self,
        url: str,
        topics: Mapping[str, type[Record]] | None = None,
        *,
        lease: float = 10.0,
        poll_interval: float = 0.5,
        retention: float = 60.0,
        clean_interval: float = 30.0,
        reconnect_timeout: float = 30.0,
        channel: str = "tiercel_queue",
        pool_size: int = 10,
        durable_publish: bool = True,
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
        self._conninfo = _conninfo(url)
        self._channel = channel
        self._me = secrets.token_hex(8)
        self._pool_size = max(2, pool_size)
        self.durable_publish = durable_publish
        self._pool: AsyncConnectionPool[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def _connect(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise ConfigError(
                f"queue URL {self.url}: cannot connect to PostgreSQL: {first_line(exc)}"
            ) from None
        try:
            async with conn:
                cur = await conn.execute(_TABLES_EXIST)
                row = await cur.fetchone()
                if not (row and row[0]):
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                        for statement in ddl("postgresql"):
                            await conn.execute(statement)  # our own DDL, from sql_schema
        except psycopg.Error as exc:
            raise ConfigError(
                f"queue URL {self.url}: cannot create the queue tables: {first_line(exc)}"
            ) from None
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self._conninfo,
            min_size=2,
            max_size=self._pool_size,
            kwargs={"autocommit": True},
            open=False,
            timeout=10.0,
            name="tiercel-queue",
        )
        await pool.open()
        self._pool = pool

    async def _disconnect(self) -> None:
        if self._listener is not None:
            await stop_tasks([self._listener])
        if self._pool is not None:
            await self._pool.close()

    async def _execute(self, query: LiteralString, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        assert self._pool is not None
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall() if cur.description is not None else []

    async def _insert(self, rows: list[NewMessage]) -> None:
        await self._execute(
            _PUBLISH,
            {
                "topics": [row[0] for row in rows],
                "keys": [row[1] for row in rows],
                "payloads": [row[2] for row in rows],
                "wake": sorted({row[0] for row in rows}),
                "commit": "on" if self.durable_publish else "off",
                "channel": self._channel,
                "me": self._me,
            },
        )

    async def _ensure_group(self, topic: str, group: str, ordered: bool) -> bool:
        assert self._pool is not None
        params = {"topic": topic, "grp": group, "ordered": ordered}
        async with self._pool.connection() as conn:
            await conn.execute(_ENSURE_GROUP, params)
            cur = await conn.execute(_GROUP_ORDERED, params)
            row = await cur.fetchone()
        return bool(row[0]) if row else ordered

    async def _claim_rows(
        self, topic: str, group: str, ordered: bool, token: str, n: int
    ) -> list[ClaimedRow]:
        rows = await self._execute(
            _CLAIM_ORDERED if ordered else _CLAIM,
            {"topic": topic, "grp": group, "token": token, "lease": self.lease, "n": n},
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def _ack_rows(self, items: list[AckItem], wake_topics: set[str]) -> None:
        await self._execute(
            _ACK,
            {
                "ids": [i[0] for i in items],
                "attempts": [i[1] for i in items],
                "tokens": [i[2] for i in items],
                "topics": sorted(wake_topics),
                "channel": self._channel,
                "me": self._me,
            },
        )

    async def _release_rows(
        self, topic: str, token: str, items: list[tuple[int, int]], delay: float, undo: bool
    ) -> None:
        await self._execute(
            _RELEASE,
            {
                "ids": [i[0] for i in items],
                "attempts": [i[1] for i in items],
                "token": token,
                "undo": 1 if undo else 0,
                "delay": delay,
                "topic": topic,
                "channel": self._channel,
                "me": self._me,
                "notify": delay <= 0,
            },
        )

    async def _release_consumer_rows(self, prefix: str) -> int:
        rows = await self._execute(
            _RELEASE_CONSUMER, {"prefix": prefix, "channel": self._channel, "me": self._me}
        )
        return int(rows[0][0])

    async def _renew_rows(self, items: list[tuple[int, str]]) -> None:
        await self._execute(
            _RENEW, {"ids": [i[0] for i in items], "tokens": [i[1] for i in items], "lease": self.lease}
        )

    async def _broadcast_position(self, topic: str) -> Position:
        rows = await self._execute(_BROADCAST_START, {})
        return (int(rows[0][0]), 0)

    async def _broadcast_read(
        self, topic: str, position: Position, n: int
    ) -> tuple[list[tuple[str | None, str]], Position, bool]:
        rows = await self._execute(
            _BROADCAST_READ, {"topic": topic, "tx": position[0], "id": position[1], "n": n}
        )
        out: list[tuple[str | None, str]] = []
        for tx, row_id, key, payload, safe in rows:
            if not safe:
                return out, position, True
            out.append((key, payload))
            position = (tx, row_id)
        return out, position, False

    async def _depth_rows(self, topic: str, group: str) -> int:
        rows = await self._execute(_DEPTH, {"topic": topic, "grp": group})
        return int(rows[0][0])

    async def _clean_rows(self) -> int:
        deleted = 0
        after = 0
        assert self._pool is not None
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    _OLD_MESSAGES, {"after": after, "retention": self.retention, "n": _CLEAN_BATCH}
                )
                ids = [r[0] for r in await cur.fetchall()]
                if not ids:
                    return deleted
                cur = await conn.execute(_DELETE_UNUSED, {"ids": ids})
                deleted += max(cur.rowcount, 0)
            if len(ids) < _CLEAN_BATCH:
                return deleted
            after = ids[-1]

    async def _subscribed(self) -> None:
        """Start listening with the first subscription, and wait (a little) until we are."""
        if self._listener is None and not self._closed:
            self._listener = asyncio.ensure_future(self._listen())
        if not self._listening.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 5.0)  # else polling covers

    async def _listen(self) -> None:
        """The LISTEN loop: its own connection, nothing else runs on it; reconnect when it drops."""
        pause = 0.1
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
        while not self._closed:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=5, keepalives=1, keepalives_idle=10
                )
            except psycopg.OperationalError as exc:
                log.warning(
                    "queue LISTEN connection failed, retrying in %.1fs: %s",
                    pause,
                    first_line(exc),
                    extra={"action": "queue.listen"},
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            try:
                await conn.execute(listen)
                self._listening.set()
                pause = 0.1
                self._wake_all()  # whatever was published while we were not listening
                while not (conn.closed or self._closed):
                    async for note in conn.notifies(timeout=5.0):
                        topic, _, sender = note.payload.rpartition(" ")
                        if sender != self._me:  # our own publishes woke our receivers already
                            self._wake(topic or sender, 1)  # the receiver woken wakes the next if need be
            except psycopg.OperationalError as exc:
                log.warning(
                    "queue LISTEN connection lost, reconnecting: %s",
                    first_line(exc),
                    extra={"action": "queue.listen"},
                )
            finally:
                self._listening.clear()
                await conn.close()
            self._wake_all()


def _conninfo(url: str) -> str:
    """A libpq URL from ours (SQLAlchemy's ``postgresql+psycopg://`` included)."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(f"queue URL {redact(url)!r} is not a valid URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(
            f"queue URL {redact(url)!r} is not a PostgreSQL URL (expected postgresql://host/database)"
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
