"""``SQLQueue``, what the SQL queues share: leases, batching, background work; dialects supply SQL.

A competing delivery is a row of ``tiercel_queue_deliveries`` (see ``sql_schema``). Claiming it
writes the subscription's token and ``visible_at = now + lease`` in one statement; while the
subscription is open a background task renews the lease of everything it holds (every
``lease / 3``), so a slow handler keeps its message and a dead process (``kill -9``, lost network)
loses it once the lease runs out: that is when another consumer gets it, with ``attempt + 1``.
Closing a subscription hands its unsettled rows back at once. Settling is fenced by
``(id, attempt, token)``: a delivery whose lease was taken over by someone else settles nothing.

Publishing is group-committed too: ``publish`` calls that overlap in one process share one
transaction (each still all or nothing, and each returns once its messages are committed), so
concurrent publishers pay for one commit between them rather than one each.

Acknowledgements are group-committed: ``ack()`` records the delivery and returns, and one statement
deletes every row acked since the previous one started, a moment later. Acking one message at a
time thus costs no round trip, as with AMQP's ``basic.ack``. A crash in that moment means one more
delivery, which at-least-once allows. ``depth()``, ``close()`` and ``flush_acks()`` wait for
pending acknowledgements.

Receivers wait on an in-process wake-up per topic (publish, nack, close and ordered acks in this
process wake it at once; PostgreSQL's LISTEN adds wake-ups from other processes) and poll every
``poll_interval`` seconds as a fallback, so a lost wake-up costs latency, never a message. The
subscriptions and wake-ups are in ``sql_subscription``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from tiercel.errors import ConfigError
from tiercel.model.base import Record
from tiercel.queue.base import DEFAULT_TOPICS, QueueClosed, QueueError, check_message
from tiercel.queue.sql_subscription import (
    BroadcastSubscription,
    ClaimedRow,
    GroupSubscription,
    Position,
    Waker,
    claim_prefix,
    first_line,
)

__all__ = [
    "AckItem",
    "ClaimedRow",
    "NewMessage",
    "Position",
    "SQLQueue",
    "first_line",
    "redact",
    "stop_tasks",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

AckItem = tuple[int, int, str]
"""(delivery id, attempt, subscription token)."""
NewMessage = tuple[str, str | None, str]
"""A message to insert: (topic, key, payload JSON)."""


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url)


async def stop_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again if a cancellation got lost (the database
    driver can swallow one that lands at the wrong moment)."""
    for _ in range(40):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.25)
    log.warning("queue background tasks did not stop", extra={"action": "queue.close"})


class _PublishBatcher:
    """Group commit for publishes: one transaction for every publish made while the previous ran."""

    max_rows = 5000

    def __init__(self, queue: SQLQueue) -> None:
        self._queue = queue
        self._pending: list[tuple[list[NewMessage], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, rows: list[NewMessage]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, fut))
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await fut

    async def drain(self) -> None:
        while self._task is not None:
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        queue = self._queue
        try:
            while self._pending:
                count = 0
                taken = 0
                for rows, _ in self._pending:
                    if taken and count + len(rows) > self.max_rows:
                        break
                    count += len(rows)
                    taken += 1
                batch, self._pending = self._pending[:taken], self._pending[taken:]
                try:
                    await queue._call("publish", queue._insert, [row for rows, _ in batch for row in rows])
                except BaseException as exc:
                    failure = exc if isinstance(exc, Exception) else QueueClosed("queue is closed")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for topic, count in Counter(row[0] for rows, _ in batch for row in rows).items():
                    queue._notify_local(topic, count)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self._task = None


class _AckBatcher:
    """Group commit for acks: one DELETE for everything acked while the previous one ran."""

    def __init__(self, queue: SQLQueue) -> None:
        self._queue = queue
        self._pending: list[AckItem] = []
        self._wake: Counter[str] = Counter()  # ordered topics: each ack may free a key
        self._task: asyncio.Task[None] | None = None

    def add(self, item: AckItem, wake_topic: str | None) -> None:
        self._pending.append(item)
        if wake_topic is not None:
            self._wake[wake_topic] += 1
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def drain(self) -> None:
        while self._task is not None:
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        queue = self._queue
        try:
            while self._pending:
                items, self._pending = self._pending, []
                topics, self._wake = self._wake, Counter()
                try:
                    await queue._call("ack", queue._ack_rows, items, set(topics))
                except Exception as exc:
                    log.warning(
                        "could not record %d acks (those messages will be delivered again): %s",
                        len(items),
                        first_line(exc),
                        extra={"action": "queue.ack"},
                    )
                for topic, count in topics.items():
                    queue._notify_local(topic, count)
        finally:
            self._task = None


class SQLQueue:
    """The queue protocol over SQL tables; ``SQLiteQueue`` and ``PostgresQueue`` supply the SQL.

    Args:
        topics: topic name -> record type (default ``DEFAULT_TOPICS``).
        lease: seconds a claimed delivery stays invisible to other consumers without renewal. A
            process that dies holding deliveries gives them back after at most this long.
        poll_interval: how often a waiting receiver looks again without a wake-up.
        retention: seconds a message row outlives its last delivery, for broadcast subscribers
            that fell behind; the cleaner deletes it after that.
        clean_interval: seconds between two runs of the cleaner.
        reconnect_timeout: how long publish, ack and the others retry through a lost connection
            before raising ``QueueError``.
    """

    supports_redelivery_across_restarts = True
    supports_ordered_by_key = True
    supports_delayed_nack = True

    _transient: tuple[type[BaseException], ...] = ()
    """Errors that mean "the database is unavailable for now": retried, never fatal."""

    def __init__(
        self,
        topics: Mapping[str, type[Record]] | None,
        *,
        lease: float,
        poll_interval: float,
        retention: float,
        clean_interval: float,
        reconnect_timeout: float,
    ) -> None:
        for name, value in (("lease", lease), ("poll_interval", poll_interval)):
            if not value > 0:
                raise ConfigError(f"queue {name} must be a positive number of seconds, got {value!r}")
        self._types: Mapping[str, type[Record]] = dict(DEFAULT_TOPICS if topics is None else topics)
        self.lease = float(lease)
        self.poll_interval = float(poll_interval)
        self.retention = float(retention)
        self.clean_interval = float(clean_interval)
        self.reconnect_timeout = float(reconnect_timeout)
        self._closed = False
        self._started = False
        self._start_lock = asyncio.Lock()
        self._wakers: dict[str, Waker] = {}
        self._subs: set[GroupSubscription] = set()
        self._bsubs: set[BroadcastSubscription] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # one-off work (hand-backs), awaited on close
        self._loops: list[asyncio.Task[None]] = []  # renewal, cleaner: cancelled on close
        self._timers: set[asyncio.TimerHandle] = set()
        self._acks = _AckBatcher(self)
        self._publishes = _PublishBatcher(self)
        self.consumer_id: str | None = None
        """This process's service-instance id: it prefixes the claim token of every subscription
        opened after it is set, so ``release_consumer`` can hand back what a dead process held."""

    # -- the dialect's part -------------------------------------------------------------------

    async def _connect(self) -> None:
        """Open connections and create the tables; raise ConfigError naming the URL on failure."""
        raise NotImplementedError

    async def _disconnect(self) -> None:
        raise NotImplementedError

    async def _insert(self, rows: list[NewMessage]) -> None:
        """Insert the messages, in order, and one delivery per message and existing group of its
        topic, in one transaction; then wake the other processes' receivers of those topics."""
        raise NotImplementedError

    async def _ensure_group(self, topic: str, group: str, ordered: bool) -> bool:
        """Create the group if it is new; return its stored ``ordered`` flag."""
        raise NotImplementedError

    async def _claim_rows(
        self, topic: str, group: str, ordered: bool, token: str, n: int
    ) -> list[ClaimedRow]:
        raise NotImplementedError

    async def _ack_rows(self, items: list[AckItem], wake_topics: set[str]) -> None:
        raise NotImplementedError

    async def _release_rows(
        self, topic: str, token: str, items: list[tuple[int, int]], delay: float, undo: bool
    ) -> None:
        """Make the rows visible again after ``delay`` (``undo``: as if never claimed)."""
        raise NotImplementedError

    async def _renew_rows(self, items: list[tuple[int, str]]) -> None:
        raise NotImplementedError

    async def _broadcast_position(self, topic: str) -> Position:
        raise NotImplementedError

    async def _broadcast_read(
        self, topic: str, position: Position, n: int
    ) -> tuple[list[tuple[str | None, str]], Position, bool]:
        """Up to ``n`` (key, payload) after ``position``, the new position, and whether more rows
        exist that cannot be read safely yet."""
        raise NotImplementedError

    async def _depth_rows(self, topic: str, group: str) -> int:
        raise NotImplementedError

    async def _clean_rows(self) -> int:
        raise NotImplementedError

    async def _subscribed(self) -> None:
        """Called after each subscription opens (PostgreSQL starts its LISTEN connection)."""
        return None

    def _notify_local(self, topic: str, n: int | None) -> None:
        """Wake this process's receivers of ``topic``: ``n`` messages are ready (None: unknown)."""
        self._wake(topic, n)

    # -- plumbing -----------------------------------------------------------------------------

    def _waker(self, topic: str) -> Waker:
        waker = self._wakers.get(topic)
        if waker is None:
            waker = self._wakers[topic] = Waker()
        return waker

    def _wake(self, topic: str, n: int | None) -> None:
        waker = self._wakers.get(topic)
        if waker is not None:
            waker.wake(n)

    def _wake_all(self) -> None:
        for waker in self._wakers.values():
            waker.wake()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("queue background task failed: %s", first_line(exc), extra={"action": "queue.task"})

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn``, retrying transient failures (a restarting database) for a while."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        pause = 0.05
        while True:
            try:
                return await fn(*args)
            except self._transient as exc:
                if self._closed or loop.time() + pause > deadline:
                    raise QueueError(f"queue {what} failed: {first_line(exc)}") from exc
                log.warning(
                    "queue %s failed, retrying: %s", what, first_line(exc), extra={"action": f"queue.{what}"}
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def _release(
        self,
        topic: str,
        token: str,
        items: list[tuple[int, int]],
        delay: float | None,
        *,
        undo: bool = False,
    ) -> None:
        delay = max(0.0, delay or 0.0)
        await self._call("nack", self._release_rows, topic, token, items, delay, undo)
        if delay > 0:
            if not self._closed:
                self._later(delay, lambda: self._notify_local(topic, len(items)))
        else:
            self._notify_local(topic, len(items))

    async def _ensure_started(self) -> None:
        if self._started:
            return
        if self._closed:
            raise QueueClosed("queue is closed")
        async with self._start_lock:
            if self._started:
                return
            await self._connect()
            self._started = True
            for loop in (self._renew_loop(), self._clean_loop()):
                task = asyncio.ensure_future(loop)
                task.add_done_callback(self._task_done)
                self._loops.append(task)

    async def _renew_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.lease / 3)
            items = [(row_id, sub._token) for sub in list(self._subs) for row_id in sub._in_flight]
            if not items:
                continue
            try:
                await self._renew_rows(items)
            except Exception as exc:
                log.warning(
                    "queue lease renewal failed: %s", first_line(exc), extra={"action": "queue.renew"}
                )

    async def _clean_loop(self) -> None:
        while not self._closed:
            try:
                await self._clean_rows()
            except Exception as exc:
                log.warning("queue cleaner failed: %s", first_line(exc), extra={"action": "queue.clean"})
            await asyncio.sleep(self.clean_interval)

    # -- the Queue protocol -------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and create the tables now (otherwise the first operation does it).

        Raises:
            ConfigError: the URL is unusable or the database unreachable.
        """
        await self._ensure_started()

    async def publish(self, topic: str, message: Record, key: str | None = None) -> None:
        await self.publish_many(topic, (message,), key)

    async def publish_many(self, topic: str, messages: Iterable[Record], key: str | None = None) -> None:
        if self._closed:
            raise QueueClosed("queue is closed")
        batch = list(messages)
        self._check_topic(topic)
        for message in batch:
            check_message(self._types, topic, message)
        if not batch:
            return
        await self._ensure_started()
        await self._publishes.submit([(topic, key, message.to_json()) for message in batch])

    def subscribe(self, topic: str, group: str, *, ordered_by_key: bool = False) -> GroupSubscription:
        self._check_topic(topic)
        return GroupSubscription(self, topic, group, ordered_by_key)

    def subscribe_broadcast(self, topic: str) -> BroadcastSubscription:
        self._check_topic(topic)
        return BroadcastSubscription(self, topic)

    def _check_topic(self, topic: str) -> None:
        if self._closed:
            raise QueueClosed("queue is closed")
        if topic not in self._types:
            raise QueueError(f"unknown topic {topic!r}: register its message type with topics=")

    async def depth(self, topic: str, group: str) -> int:
        if self._closed:
            raise QueueClosed("queue is closed")
        await self._ensure_started()
        await self._acks.drain()
        return await self._call("depth", self._depth_rows, topic, group)

    async def release_consumer(self, consumer_id: str) -> int:
        """Make every delivery claimed by subscriptions of ``consumer_id`` (a process declared dead)
        visible again now, instead of when its lease runs out; return how many. Settling them from
        the old subscriptions does nothing afterwards (the claim token no longer matches)."""
        await self._ensure_started()
        released = await self._call("release", self._release_consumer_rows, claim_prefix(consumer_id))
        if released:
            self._wake_all()
        return released

    async def _release_consumer_rows(self, prefix: str) -> int:
        raise NotImplementedError

    async def flush_acks(self) -> None:
        """Wait until every ``ack()`` made so far is committed."""
        await self._acks.drain()

    async def clean(self) -> int:
        """Delete message rows no group still needs, older than ``retention``; return how many.

        Runs every ``clean_interval`` on its own; call it to clean now."""
        await self._ensure_started()
        return await self._call("clean", self._clean_rows)

    async def close(self) -> None:
        """Hand back every unsettled delivery, wake blocked receivers, disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        subs = list(self._subs)
        for sub in subs:
            sub._shutdown()
        for bsub in list(self._bsubs):
            bsub._shutdown()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._started:
            await self._publishes.drain()
            await self._acks.drain()
            for sub in subs:
                await sub._hand_back()
            if self._tasks:
                await asyncio.wait(list(self._tasks))
            await stop_tasks(self._loops)
            with contextlib.suppress(Exception):
                await self._disconnect()
        self._wake_all()

    async def __aenter__(self) -> SQLQueue:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
