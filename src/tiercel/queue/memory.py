"""In-process queue: asyncio only, nothing persisted. Used by ``tiercel flow test`` and
``server local --memory``, and as the reference the contract suite holds other backends to.

Messages are passed by reference: records are frozen, and consumers must not mutate the dicts
inside them either. ``serialize=True`` round-trips every message through JSON instead (each
delivery gets its own copy), which catches records that would not survive a real backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from tiercel.model.base import Record
from tiercel.queue.base import (
    DEFAULT_TOPICS,
    Delivery,
    QueueClosed,
    QueueError,
    SubscriptionBase,
    check_message,
)

# What sits in a line: (the record or its JSON, key, deliveries so far).
_Entry = tuple[Record | str, str | None, int]


class _Inbox:
    """Entries ready to hand out, and the receivers waiting for them.

    Invariant: while ``ready`` is not empty, every waiting receiver has been woken or no receiver
    waits, because every push wakes one waiter.
    """

    __slots__ = ("ready", "waiters")

    def __init__(self) -> None:
        self.ready: deque[_Entry] = deque()
        self.waiters: deque[asyncio.Future[bool]] = deque()

    def push(self, entry: _Entry) -> None:
        self.ready.append(entry)
        if self.waiters:
            self.wake()

    def wake(self) -> None:
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(True)
                return


class _Group:
    """One competing consumer group: a shared inbox plus per-key holds."""

    __slots__ = ("held", "inbox", "ordered", "subscriptions", "timers", "unacked")

    def __init__(self, ordered: bool) -> None:
        self.inbox = _Inbox()
        self.ordered = ordered
        # ordered_by_key: a key is present while one of its messages is ready, in flight or delayed;
        # its deque holds the messages waiting behind that one.
        self.held: dict[str, deque[_Entry]] = {}
        self.unacked = 0
        self.subscriptions: set[_GroupSubscription] = set()
        self.timers: set[asyncio.TimerHandle] = set()

    def add(self, payload: Record | str, key: str | None) -> None:
        self.unacked += 1
        if self.ordered and key is not None:
            behind = self.held.get(key)
            if behind is not None:
                behind.append((payload, key, 0))
                return
            self.held[key] = deque()
        self.inbox.push((payload, key, 0))

    def release(self, key: str) -> None:
        behind = self.held[key]
        if behind:
            self.inbox.push(behind.popleft())
        else:
            del self.held[key]


class _Topic:
    __slots__ = ("broadcast", "groups")

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.broadcast: set[_BroadcastSubscription] = set()


class _Delivery:
    __slots__ = ("_payload", "_settled", "_sub", "attempt", "key", "message")

    def __init__(
        self, message: Record, payload: Record | str, key: str | None, attempt: int, sub: _Subscription
    ) -> None:
        self.message = message
        self.key = key
        self.attempt = attempt
        self._payload = payload
        self._sub = sub
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._sub._settle(self, None, requeue=False)

    async def nack(self, delay: float | None = None) -> None:
        if not self._settled:
            self._settled = True
            self._sub._settle(self, delay, requeue=True)

    def __repr__(self) -> str:
        return f"<Delivery {type(self.message).__name__} key={self.key!r} attempt={self.attempt}>"


class _Subscription(SubscriptionBase):
    """Receiving from an inbox; subclasses decide what settling and closing do."""

    def __init__(self, queue: MemoryQueue, inbox: _Inbox) -> None:
        super().__init__()
        self._queue = queue
        self._inbox = inbox
        self._closed = False
        self._waiting: set[asyncio.Future[bool]] = set()

    async def receive(self, max_messages: int = 100, timeout: float | None = None) -> list[Delivery]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        # Yield once even when messages are ready, so a consumer that never waits on anything else
        # cannot starve the other tasks of the loop (and competing consumers take turns).
        await asyncio.sleep(0)
        if self._closed:
            raise QueueClosed("subscription is closed")
        ready = self._inbox.ready
        if not ready and not await self._wait(timeout):
            return []
        decode = self._queue._decoders
        out: list[Delivery] = []
        for _ in range(min(max_messages, len(ready))):
            payload, key, attempts = ready.popleft()
            message = payload if decode is None else decode[self._topic](payload)  # type: ignore[arg-type]
            out.append(_Delivery(message, payload, key, attempts + 1, self))  # type: ignore[arg-type]
        self._track(out)
        return out

    async def _wait(self, timeout: float | None) -> bool:
        """Wait until the inbox has something; False when ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        inbox = self._inbox
        while not inbox.ready:
            handle = None
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
            fut: asyncio.Future[bool] = loop.create_future()
            inbox.waiters.append(fut)
            self._waiting.add(fut)
            if deadline is not None:
                handle = loop.call_later(remaining, _expire, fut)
            try:
                await fut
            except asyncio.CancelledError:
                # If a push woke us just before the cancel, hand the wake-up to someone else.
                if fut.done() and not fut.cancelled() and fut.result():
                    inbox.wake()
                raise
            finally:
                self._waiting.discard(fut)
                if handle is not None:
                    handle.cancel()
                if fut.cancelled() or not fut.result():
                    _discard(inbox.waiters, fut)  # not popped by a push: do not let dead waiters pile up
            if self._closed:
                raise QueueClosed("subscription is closed")
        return True

    @property
    def _topic(self) -> str:
        raise NotImplementedError

    def _track(self, deliveries: list[Delivery]) -> None:
        return None

    def _settle(self, delivery: _Delivery, delay: float | None, *, requeue: bool) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Close without awaiting: wake our blocked receivers (they raise QueueClosed)."""
        self._closed = True
        self._iter_buffer.clear()
        for fut in self._waiting:
            if not fut.done():
                fut.set_result(False)


class _GroupSubscription(_Subscription):
    def __init__(self, queue: MemoryQueue, topic: str, group: _Group) -> None:
        super().__init__(queue, group.inbox)
        self._topic_name = topic
        self._group = group
        self._in_flight: dict[_Delivery, None] = {}

    @property
    def _topic(self) -> str:
        return self._topic_name

    def _track(self, deliveries: list[Delivery]) -> None:
        self._in_flight.update(dict.fromkeys(deliveries))  # type: ignore[arg-type]

    def _settle(self, delivery: _Delivery, delay: float | None, *, requeue: bool) -> None:
        if self._closed:
            return
        del self._in_flight[delivery]
        group = self._group
        if requeue:
            entry = (delivery._payload, delivery.key, delivery.attempt)
            if delay is not None and delay > 0:
                _push_later(group.timers, group.inbox, entry, delay)
            else:
                group.inbox.push(entry)
        else:
            group.unacked -= 1
            if group.ordered and delivery.key is not None:
                group.release(delivery.key)

    def _shutdown(self) -> None:
        if self._closed:
            return
        super()._shutdown()
        self._group.subscriptions.discard(self)
        inbox = self._group.inbox
        # Put unsettled deliveries back at the head of the line, in the order they left it.
        for delivery in reversed(self._in_flight):
            delivery._settled = True
            inbox.ready.appendleft((delivery._payload, delivery.key, delivery.attempt))
        for _ in range(min(len(self._in_flight), len(inbox.waiters))):
            inbox.wake()
        self._in_flight.clear()

    async def close(self) -> None:
        self._shutdown()


class _BroadcastSubscription(_Subscription):
    iter_batch = 100

    def __init__(self, queue: MemoryQueue, topic: str, state: _Topic) -> None:
        super().__init__(queue, _Inbox())
        self._topic_name = topic
        self._state = state

    @property
    def _topic(self) -> str:
        return self._topic_name

    def _settle(self, delivery: _Delivery, delay: float | None, *, requeue: bool) -> None:
        if self._closed or not requeue:
            return
        entry = (delivery._payload, delivery.key, delivery.attempt)
        if delay is not None and delay > 0:
            _push_later(self._queue._timers, self._inbox, entry, delay)
        else:
            self._inbox.push(entry)

    def _shutdown(self) -> None:
        if self._closed:
            return
        super()._shutdown()
        self._state.broadcast.discard(self)
        self._inbox.ready.clear()

    async def close(self) -> None:
        self._shutdown()


class MemoryQueue:
    """The ``memory`` queue backend. See ``tiercel.queue.base.Queue`` for the contract."""

    supports_redelivery_across_restarts = False
    supports_ordered_by_key = True
    supports_delayed_nack = True

    def __init__(self, topics: Mapping[str, type[Record]] | None = None, *, serialize: bool = False) -> None:
        self._types: Mapping[str, type[Record]] = dict(DEFAULT_TOPICS if topics is None else topics)
        self._decoders: dict[str, Callable[[str], Record]] | None = (
            {name: t.model_validate_json for name, t in self._types.items()} if serialize else None
        )
        self._topics: dict[str, _Topic] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False
        self.consumer_id: str | None = None

    def _state(self, topic: str) -> _Topic:
        if self._closed:
            raise QueueClosed("queue is closed")
        state = self._topics.get(topic)
        if state is None:
            if topic not in self._types:
                raise QueueError(f"unknown topic {topic!r}: register its message type with topics=")
            state = self._topics[topic] = _Topic()
        return state

    async def publish(self, topic: str, message: Record, key: str | None = None) -> None:
        if self._closed:
            raise QueueClosed("queue is closed")
        check_message(self._types, topic, message)
        state = self._topics.get(topic)
        if state is not None:
            self._deliver(state, message.to_json() if self._decoders is not None else message, key)

    async def publish_many(self, topic: str, messages: Iterable[Record], key: str | None = None) -> None:
        if self._closed:
            raise QueueClosed("queue is closed")
        batch = list(messages)
        for message in batch:
            check_message(self._types, topic, message)
        state = self._topics.get(topic)
        if state is None:
            return
        for message in batch:
            self._deliver(state, message.to_json() if self._decoders is not None else message, key)

    def _deliver(self, state: _Topic, payload: Record | str, key: str | None) -> None:
        for group in state.groups.values():
            group.add(payload, key)
        for sub in state.broadcast:
            sub._inbox.push((payload, key, 0))

    def subscribe(self, topic: str, group: str, *, ordered_by_key: bool = False) -> _GroupSubscription:
        state = self._state(topic)
        existing = state.groups.get(group)
        if existing is None:
            existing = state.groups[group] = _Group(ordered_by_key)
        elif existing.ordered != ordered_by_key:
            raise QueueError(
                f"group {group!r} of topic {topic!r} has ordered_by_key={existing.ordered}; "
                f"every subscription of a group must agree"
            )
        sub = _GroupSubscription(self, topic, existing)
        existing.subscriptions.add(sub)
        return sub

    def subscribe_broadcast(self, topic: str) -> _BroadcastSubscription:
        state = self._state(topic)
        sub = _BroadcastSubscription(self, topic, state)
        state.broadcast.add(sub)
        return sub

    async def release_consumer(self, consumer_id: str) -> int:
        """Nothing to do: a memory queue lives and dies with its only process."""
        return 0

    async def depth(self, topic: str, group: str) -> int:
        state = self._topics.get(topic)
        found = state.groups.get(group) if state is not None else None
        return 0 if found is None else found.unacked

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for state in self._topics.values():
            for group in state.groups.values():
                for sub in list(group.subscriptions):
                    sub._shutdown()
                for handle in group.timers:
                    handle.cancel()
                group.timers.clear()
            for bsub in list(state.broadcast):
                bsub._shutdown()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    async def __aenter__(self) -> MemoryQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _push_later(timers: set[asyncio.TimerHandle], inbox: _Inbox, entry: _Entry, delay: float) -> None:
    """Push ``entry`` after ``delay`` seconds; the handle sits in ``timers`` until then (for close)."""

    def fire() -> None:
        timers.discard(handle)
        inbox.push(entry)

    handle = asyncio.get_running_loop().call_later(delay, fire)
    timers.add(handle)


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


def _discard(waiters: deque[asyncio.Future[bool]], fut: asyncio.Future[bool]) -> None:
    with contextlib.suppress(ValueError):
        waiters.remove(fut)
