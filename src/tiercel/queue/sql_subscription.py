"""Subscriptions of the SQL queues, their deliveries, and the in-process wake-ups they wait on.

The rows and statements are the dialect's (``sqlite``, ``postgres``); what is here is the same for
both: claiming (shielded, so a cancelled receive hands its rows back), fenced settling, the hand-back
on close, broadcast positions and local redelivery of nacked broadcast messages, and ``Line``,
which keeps n new messages from costing much more than n queries however many consumers wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from typing import TYPE_CHECKING

from tiercel.model.base import Record
from tiercel.queue.base import Delivery, QueueClosed, QueueError, SubscriptionBase

if TYPE_CHECKING:
    from tiercel.queue.sql_base import SQLQueue

log = logging.getLogger(__name__)

ClaimedRow = tuple[int, str | None, int, str]
"""A claimed delivery: (delivery id, key, attempt, payload JSON)."""


def claim_prefix(consumer_id: str) -> str:
    """The start of every claim token of a consumer's subscriptions (see ``release_consumer``)."""
    return f"{consumer_id}/"


Position = tuple[int, int]
"""Where a broadcast subscriber stands: (transaction id, message id); only the order matters."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Line:
    """This process's consumers of one competing group, so that n new messages cost about n queries.

    A wake-up for n messages wakes n waiting receivers, each of which queries once (one that is
    cancelled or closed first passes its wake-up on; one that fills its batch wakes the next).
    What no waiter takes bumps ``gen``: receivers that are busy rather than waiting query when they
    come back. ``drained_at`` is the ``gen`` at which a query last came back short; while ``gen``
    has not moved past it there is nothing new to look for, so a receiver goes straight to waiting
    (still polling every ``poll_interval`` for what no wake-up announces: expired leases, other
    processes on SQLite).
    """

    __slots__ = ("drained_at", "gen", "waiters")

    def __init__(self) -> None:
        self.gen = 1
        self.drained_at = 0
        self.waiters: deque[asyncio.Future[bool]] = deque()

    def wake(self, n: int | None) -> None:
        """``n`` messages may be ready (None: unknown, wake everyone)."""
        woken = 0
        while self.waiters and (n is None or woken < n):
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(True)
                woken += 1
        if n is None or woken < n:
            self.gen += 1


class Waker:
    """Wake-ups of one topic: every broadcast waiter, and a ``Line`` per competing group.

    ``gen`` counts wake-ups, so a broadcast receiver notices one that came while it was reading.
    """

    __slots__ = ("broadcast", "gen", "lines")

    def __init__(self) -> None:
        self.gen = 0
        self.broadcast: set[asyncio.Future[bool]] = set()
        self.lines: dict[str, Line] = {}

    def line(self, group: str) -> Line:
        line = self.lines.get(group)
        if line is None:
            line = self.lines[group] = Line()
        return line

    def wake(self, n: int | None = None) -> None:
        """Wake every broadcast waiter, and each group for ``n`` new messages (None: unknown)."""
        self.gen += 1
        waiters, self.broadcast = self.broadcast, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)
        if n != 0:
            for line in self.lines.values():
                line.wake(n)


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


def _woken(fut: asyncio.Future[bool]) -> bool:
    return fut.done() and not fut.cancelled() and fut.result()


class _Delivery:
    __slots__ = ("_id", "_settled", "_sub", "attempt", "key", "message")

    def __init__(self, sub: GroupSubscription, row_id: int, message: Record, key: str | None, attempt: int):
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

    def __init__(self, sub: BroadcastSubscription, message: Record, key: str | None, attempt: int):
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

    async def _wait(self, waker: Waker, timeout: float, line: Line | None = None) -> bool:
        """Sleep until woken (True), or this subscription closes or ``timeout`` passes (False)."""
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        if line is None:
            waker.broadcast.add(fut)
        else:
            line.waiters.append(fut)
        self._waiting.add(fut)
        handle = loop.call_later(timeout, _expire, fut)
        try:
            await fut
        except asyncio.CancelledError:
            if line is not None and _woken(fut):
                line.wake(1)  # the wake-up was meant for a message: pass it on
            raise
        finally:
            handle.cancel()
            self._waiting.discard(fut)
            if line is None:
                waker.broadcast.discard(fut)
            elif not _woken(fut):
                with contextlib.suppress(ValueError):
                    line.waiters.remove(fut)
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


class GroupSubscription(_Subscription):
    def __init__(self, queue: SQLQueue, topic: str, group: str, ordered: bool) -> None:
        super().__init__(queue, topic)
        self._group = group
        self._ordered = ordered
        owner = queue.consumer_id
        self._token = (claim_prefix(owner) if owner else "") + secrets.token_hex(16)
        self._in_flight: dict[int, int] = {}  # delivery id -> attempt, claimed and not settled
        self._look = True  # query on the next turn even if the line says drained
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
        line = waker.line(self._group)
        while True:
            self._check_open()
            gen = line.gen
            if self._look or gen != line.drained_at or timeout == 0:
                self._look = False
                rows = await self._claim(max_messages)
                self._check_open()
                if len(rows) < max_messages:
                    line.drained_at = max(line.drained_at, gen)
                else:
                    line.wake(1)  # there may be more: let another consumer look
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
            if line.gen == gen:
                woken = await self._wait(waker, wait, line)
                if woken and self._closed:
                    line.wake(1)  # meant for a message: pass it on
                self._look = True  # woken, or a poll

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


class BroadcastSubscription(_Subscription):
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
