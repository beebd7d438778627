"""What the SQL queues share: subscriptions, leases, wake-ups and batching; the dialects supply SQL.

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
``poll_interval`` seconds as a fallback, so a lost wake-up costs latency, never a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from tiercel.errors import ConfigError
from tiercel.model.base import Record
from tiercel.queue.base import (
    DEFAULT_TOPICS,
    Delivery,
    QueueClosed,
    QueueError,
    SubscriptionBase,
    check_message,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ClaimedRow = tuple[int, str | None, int, str]
"""A claimed delivery: (delivery id, key, attempt, payload JSON)."""
Position = tuple[int, int]
"""Where a broadcast subscriber stands: (transaction id, message id); only the order matters."""
AckItem = tuple[int, int, str]
"""(delivery id, attempt, subscription token)."""
NewMessage = tuple[str, str | None, str]
"""A message to insert: (topic, key, payload JSON)."""


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Waker:
    """Wake-ups of one topic.

    A wake-up resolves every broadcast waiter but only as many waiters of each competing group as
    there are new messages, so four idle consumers do not all query for one message. A woken
    receiver always queries once; one that fills its batch wakes the next (there may be more), and
    one that is cancelled or closed instead passes its wake-up on. ``gen`` counts wake-ups, so a
    receiver notices one that came while it was querying.
    """

    __slots__ = ("broadcast", "gen", "groups")

    def __init__(self) -> None:
        self.gen = 0
        self.broadcast: set[asyncio.Future[bool]] = set()
        self.groups: dict[str, deque[asyncio.Future[bool]]] = {}

    def wake(self, n: int | None = None) -> None:
        """Wake every broadcast waiter and ``n`` waiters of each group (all of them if None)."""
        self.gen += 1
        waiters, self.broadcast = self.broadcast, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)
        for line in self.groups.values():
            _wake_line(line, n)

    def wake_group(self, group: str, n: int = 1) -> None:
        self.gen += 1
        line = self.groups.get(group)
        if line:
            _wake_line(line, n)


def _wake_line(line: deque[asyncio.Future[bool]], n: int | None) -> None:
    woken = 0
    while line and (n is None or woken < n):
        fut = line.popleft()
        if not fut.done():
            fut.set_result(True)
            woken += 1


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


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


def _woken(fut: asyncio.Future[bool]) -> bool:
    return fut.done() and not fut.cancelled() and fut.result()


class _Delivery:
    __slots__ = ("_id", "_settled", "_sub", "attempt", "key", "message")

    def __init__(self, sub: _GroupSubscription, row_id: int, message: Record, key: str | None, attempt: int):
        self.message = message
        self.key = key
        self.attempt = attempt
        self._id = row_id
        self._sub = sub
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._sub._ack(self._id, self.attempt, self.key)

    async def nack(self, delay: float | None = None) -> None:
        if not self._settled:
            self._settled = True
            await self._sub._nack(self, delay)

    def __repr__(self) -> str:
        return f"<Delivery {type(self.message).__name__} key={self.key!r} attempt={self.attempt}>"


class _BroadcastDelivery:
    __slots__ = ("_settled", "_sub", "attempt", "key", "message")

    def __init__(self, sub: _BroadcastSubscription, message: Record, key: str | None, attempt: int):
        self.message = message
        self.key = key
        self.attempt = attempt
        self._sub = sub
        self._settled = False

    async def ack(self) -> None:
        self._settled = True

    async def nack(self, delay: float | None = None) -> None:
        if not self._settled:
            self._settled = True
            self._sub._redeliver(self, delay)


class _Subscription(SubscriptionBase):
    def __init__(self, queue: SQLQueue, topic: str) -> None:
        super().__init__()
        self._queue = queue
        self._topic = topic
        self._opened = False
        self._closed = False
        self._waiting: set[asyncio.Future[bool]] = set()

    async def _wait(self, waker: _Waker, timeout: float, group: str | None = None) -> bool:
        """Sleep until woken (True), or this subscription closes or ``timeout`` passes (False)."""
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        line = None
        if group is None:
            waker.broadcast.add(fut)
        else:
            line = waker.groups.get(group)
            if line is None:
                line = waker.groups[group] = deque()
            line.append(fut)
        self._waiting.add(fut)
        handle = loop.call_later(timeout, _expire, fut)
        try:
            await fut
        except asyncio.CancelledError:
            if group is not None and _woken(fut):
                waker.wake_group(group)  # the wake-up was meant for a message: pass it on
            raise
        finally:
            handle.cancel()
            self._waiting.discard(fut)
            if line is None:
                waker.broadcast.discard(fut)
            elif not _woken(fut):
                with contextlib.suppress(ValueError):
                    line.remove(fut)
        return fut.result()

    def _shutdown(self) -> None:
        """Mark closed and wake our blocked receivers (they raise QueueClosed); no I/O."""
        self._closed = True
        self._iter_buffer.clear()
        for fut in self._waiting:
            if not fut.done():
                fut.set_result(False)

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosed("subscription is closed")


class _GroupSubscription(_Subscription):
    def __init__(self, queue: SQLQueue, topic: str, group: str, ordered: bool) -> None:
        super().__init__(queue, topic)
        self._group = group
        self._ordered = ordered
        self._token = secrets.token_hex(16)
        self._in_flight: dict[int, int] = {}  # delivery id -> attempt, claimed and not settled
        self._drained_at: int | None = None  # waker.gen when a claim last came back short
        self._claims: set[asyncio.Task[list[ClaimedRow]]] = set()

    async def open(self) -> None:
        if self._opened:
            return
        self._check_open()
        queue = self._queue
        await queue._ensure_started()
        stored = await queue._call("subscribe", queue._ensure_group, self._topic, self._group, self._ordered)
        if stored != self._ordered:
            raise QueueError(
                f"group {self._group!r} of topic {self._topic!r} has ordered_by_key={stored}; "
                f"every subscription of a group must agree"
            )
        self._check_open()
        self._opened = True
        queue._subs.add(self)
        await queue._subscribed()

    async def receive(self, max_messages: int = 100, timeout: float | None = None) -> list[Delivery]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        await self.open()
        queue = self._queue
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        waker = queue._waker(self._topic)
        while True:
            self._check_open()
            gen = waker.gen
            # Query unless our last query found the table drained and nothing woke us since
            # (the poll below still queries every poll_interval).
            if gen != self._drained_at or timeout == 0:
                rows = await self._claim(max_messages)
                self._check_open()
                if len(rows) < max_messages:
                    self._drained_at = gen
                else:
                    self._drained_at = None
                    waker.wake_group(self._group)  # there may be more: let another consumer look
                if rows:
                    out = self._deliveries(rows)
                    if out:
                        return out
                    continue
            wait = queue.poll_interval
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return []
            if waker.gen == gen:
                if await self._wait(waker, wait, self._group):
                    if self._closed:
                        waker.wake_group(self._group)  # meant for a message: pass it on
                else:
                    self._drained_at = None  # a poll

    async def _claim(self, n: int) -> list[ClaimedRow]:
        """Claim up to ``n`` rows. A receive cancelled meanwhile gives them back (``_undo``)."""
        task = asyncio.ensure_future(self._claim_now(n))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._undo)
            raise

    async def _claim_now(self, n: int) -> list[ClaimedRow]:
        queue = self._queue
        try:
            rows = await queue._claim_rows(self._topic, self._group, self._ordered, self._token, n)
        except queue._transient as exc:
            log.warning(
                "queue claim failed, retrying: %s",
                first_line(exc),
                extra={"action": "queue.claim", "topic": self._topic},
            )
            return []
        for row_id, _key, attempt, _payload in rows:
            self._in_flight[row_id] = attempt
        return rows

    def _undo(self, task: asyncio.Task[list[ClaimedRow]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        back = [(r[0], r[2]) for r in task.result() if self._in_flight.get(r[0]) == r[2]]
        for row_id, _ in back:
            del self._in_flight[row_id]
        if back:
            self._queue._spawn(self._queue._release(self._topic, self._token, back, None, undo=True))

    def _deliveries(self, rows: list[ClaimedRow]) -> list[Delivery]:
        decode = self._queue._types[self._topic].model_validate_json
        out: list[Delivery] = []
        for row_id, key, attempt, payload in rows:
            try:
                message = decode(payload)
            except ValueError as exc:
                # It can never be processed: drop it loudly rather than redeliver it forever.
                log.error(
                    "dropping undecodable message %d of topic %r: %s",
                    row_id,
                    self._topic,
                    first_line(exc),
                    extra={"action": "queue.drop", "topic": self._topic, "payload": payload[:500]},
                )
                self._ack(row_id, attempt, key)
                continue
            out.append(_Delivery(self, row_id, message, key, attempt))
        return out

    def _ack(self, row_id: int, attempt: int, key: str | None) -> None:
        if self._closed or self._in_flight.get(row_id) != attempt:
            return
        del self._in_flight[row_id]
        self._queue._acks.add((row_id, attempt, self._token), self._topic if self._ordered and key else None)

    async def _nack(self, delivery: _Delivery, delay: float | None) -> None:
        if self._closed or self._in_flight.get(delivery._id) != delivery.attempt:
            return
        del self._in_flight[delivery._id]
        await self._queue._release(self._topic, self._token, [(delivery._id, delivery.attempt)], delay)

    async def _hand_back(self) -> None:
        """After ``_shutdown``: let running claims finish, then release everything unsettled."""
        if self._claims:
            await asyncio.wait(list(self._claims))
        await self._queue._acks.drain()
        back = list(self._in_flight.items())
        self._in_flight.clear()
        if back:
            try:
                await self._queue._release(self._topic, self._token, back, None)
            except Exception as exc:
                log.warning(
                    "could not hand back %d deliveries (they return when their lease expires): %s",
                    len(back),
                    first_line(exc),
                    extra={"action": "queue.release", "topic": self._topic},
                )

    def _shutdown(self) -> None:
        if not self._closed:
            super()._shutdown()
            self._queue._subs.discard(self)

    async def close(self) -> None:
        if self._closed:
            return
        self._shutdown()
        if self._opened and not self._queue._closed:
            await self._hand_back()


class _BroadcastSubscription(_Subscription):
    iter_batch = 100

    def __init__(self, queue: SQLQueue, topic: str) -> None:
        super().__init__(queue, topic)
        self._position: Position = (0, 0)
        self._again: list[tuple[float, _BroadcastDelivery]] = []  # (due loop time, nacked delivery)

    async def open(self) -> None:
        if self._opened:
            return
        self._check_open()
        queue = self._queue
        await queue._ensure_started()
        self._position = await queue._call("subscribe", queue._broadcast_position, self._topic)
        self._check_open()
        self._opened = True
        queue._bsubs.add(self)
        await queue._subscribed()

    async def receive(self, max_messages: int = 100, timeout: float | None = None) -> list[Delivery]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        await self.open()
        queue = self._queue
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        waker = queue._waker(self._topic)
        decode = queue._types[self._topic].model_validate_json
        while True:
            self._check_open()
            gen = waker.gen
            now = loop.time()
            due = [entry for entry in self._again if entry[0] <= now][:max_messages]
            rows: list[tuple[str | None, str]] = []
            pending = False
            if len(due) < max_messages:
                try:
                    rows, self._position, pending = await queue._broadcast_read(
                        self._topic, self._position, max_messages - len(due)
                    )
                except queue._transient as exc:
                    log.warning(
                        "queue broadcast read failed, retrying: %s",
                        first_line(exc),
                        extra={"action": "queue.broadcast", "topic": self._topic},
                    )
                self._check_open()
            out: list[Delivery] = []
            for entry in due:  # taken only now: a receive cancelled in the read loses nothing
                self._again.remove(entry)
                old = entry[1]
                out.append(_BroadcastDelivery(self, old.message, old.key, old.attempt + 1))
            for key, payload in rows:
                try:
                    out.append(_BroadcastDelivery(self, decode(payload), key, 1))
                except ValueError as exc:
                    log.error(
                        "skipping undecodable broadcast message of topic %r: %s",
                        self._topic,
                        first_line(exc),
                        extra={"action": "queue.drop", "topic": self._topic},
                    )
            if out:
                return out
            # Rows of a transaction that is not yet safe to read (PostgreSQL) are a moment away.
            wait = 0.005 if pending else queue.poll_interval
            if self._again:
                wait = min(wait, min(entry[0] for entry in self._again) - loop.time())
            if deadline is not None:
                if loop.time() >= deadline:
                    return []
                wait = min(wait, deadline - loop.time())
            if waker.gen == gen:
                await self._wait(waker, wait)

    def _redeliver(self, delivery: _BroadcastDelivery, delay: float | None) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._again.append((loop.time() + (delay or 0.0), delivery))
        waker = self._queue._waker(self._topic)
        if delay:
            self._queue._later(delay, lambda: waker.wake(0))
        else:
            waker.wake(0)

    def _shutdown(self) -> None:
        if not self._closed:
            super()._shutdown()
            self._again.clear()
            self._queue._bsubs.discard(self)

    async def close(self) -> None:
        self._shutdown()


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
        self._wakers: dict[str, _Waker] = {}
        self._subs: set[_GroupSubscription] = set()
        self._bsubs: set[_BroadcastSubscription] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # one-off work (hand-backs), awaited on close
        self._loops: list[asyncio.Task[None]] = []  # renewal, cleaner: cancelled on close
        self._timers: set[asyncio.TimerHandle] = set()
        self._acks = _AckBatcher(self)
        self._publishes = _PublishBatcher(self)

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

    def _waker(self, topic: str) -> _Waker:
        waker = self._wakers.get(topic)
        if waker is None:
            waker = self._wakers[topic] = _Waker()
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

    def subscribe(self, topic: str, group: str, *, ordered_by_key: bool = False) -> _GroupSubscription:
        self._check_topic(topic)
        return _GroupSubscription(self, topic, group, ordered_by_key)

    def subscribe_broadcast(self, topic: str) -> _BroadcastSubscription:
        self._check_topic(topic)
        return _BroadcastSubscription(self, topic)

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
