"""The queue: how Tiercel's roles talk to each other (ARCHITECTURE §1).

A queue carries immutable pydantic records on named **topics**. Each topic has one message type,
known to the queue through a ``topics`` mapping given at construction (``DEFAULT_TOPICS`` holds the
engine's own); backends that leave the process serialise with ``Record.to_json`` and re-validate
with that type, so a consumer always gets an instance of the topic's type.

Two ways to consume a topic:

* **competing consumers** (``subscribe(topic, group)``): every message goes to one consumer of the
  group; every group gets every message. Delivery is at least once: a message that is not
  acknowledged is delivered again. The executor, workers and indexers consume this way.
* **broadcast** (``subscribe_broadcast(topic)``): every live subscriber sees every message published
  after it subscribed; nothing is kept for subscribers that are gone. UI followers and kill
  listeners consume this way.

Never acknowledge a message before its effect is durable (reliability-security §1.9): a crash between
the two loses it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Protocol, runtime_checkable

from tiercel.errors import TiercelError
from tiercel.model.base import Record
from tiercel.model.execution import Execution
from tiercel.model.messages import (
    ExecutionKilled,
    ExecutorEvent,
    FlowChanged,
    LogBatch,
    SubflowExecutionResult,
    WorkerJob,
    WorkerTaskResult,
)


class QueueError(TiercelError):
    """The queue refused an operation (unknown topic, conflicting group options, …)."""


class QueueClosed(QueueError):
    """The queue or the subscription is closed."""


class Topic(StrEnum):
    """The engine's topics. Members are strings, so they go wherever a topic name is expected."""

    EXECUTIONS = "executions"
    """Executions for the executor to (re)process: new, resumed, restarted (competing, key = id)."""
    EXECUTION_UPDATES = "execution_updates"
    """Every saved execution state, for UI followers and subflow parents (broadcast)."""
    WORKER_JOBS = "worker_jobs"
    """Task runs to execute (competing, one group per worker group)."""
    WORKER_RESULTS = "worker_results"
    """Task-run states reported by workers (competing, key = execution id)."""
    KILLS = "kills"
    """Kill requests (broadcast to workers, competing for the executor)."""
    SUBFLOW_RESULTS = "subflow_results"
    """A child execution ended: tell its parent task run (competing, key = parent execution id)."""
    LOGS = "logs"
    """Log lines and metrics of task runs, batched (competing, for the indexer)."""
    EXECUTOR = "executor"
    """Events for the executor: starts, worker results, kills, timers (competing, key = execution id)."""
    FLOWS = "flows"
    """A flow was deployed or deleted, so other processes refresh their caches (broadcast)."""


DEFAULT_TOPICS: Mapping[str, type[Record]] = MappingProxyType(
    {
        Topic.EXECUTIONS: Execution,
        Topic.EXECUTION_UPDATES: Execution,
        Topic.WORKER_JOBS: WorkerJob,
        Topic.WORKER_RESULTS: WorkerTaskResult,
        Topic.KILLS: ExecutionKilled,
        Topic.SUBFLOW_RESULTS: SubflowExecutionResult,
        Topic.LOGS: LogBatch,
        Topic.EXECUTOR: ExecutorEvent,
        Topic.FLOWS: FlowChanged,
    }
)
"""Topic name -> message type. Backends take ``topics=`` to extend it (tests, plugins)."""


@runtime_checkable
class Delivery(Protocol):
    """One message handed to one consumer.

    Settle every delivery exactly once, with ``ack`` or ``nack``; further calls are ignored. A
    delivery that is never settled is delivered again when its subscription closes (or, on backends
    with leases, when the lease expires). Settling after the subscription closed has no effect:
    the message has already been put back.
    """

    message: Record
    """The record, an instance of the topic's type. Treat it as read-only, nested dicts included."""
    key: str | None
    """The key given to ``publish`` (usually the execution id)."""
    attempt: int
    """1 for the first delivery to this group, +1 for each redelivery (spot poison messages)."""

    async def ack(self) -> None:
        """The message is processed and its effect is durable: never deliver it again to this group.

        Call only after the effect is saved. On a broadcast subscription this does nothing.
        """
        ...

    async def nack(self, delay: float | None = None) -> None:
        """Give the message back: it is delivered again (to any consumer of the group).

        ``delay`` (seconds) holds it back at least that long. Under ``ordered_by_key`` it goes back to
        the head of its key's line and the key stays busy until it is redelivered and settled, so
        per-key order survives a nack. On a broadcast subscription it is redelivered to the same
        subscriber.
        """
        ...


class Subscription(Protocol):
    """A consumer's handle on a topic, created by ``Queue.subscribe`` or ``Queue.subscribe_broadcast``.

    Use it as ``async with queue.subscribe(...) as sub:``; ``async for delivery in sub`` yields
    deliveries one at a time and ends when the subscription or the queue is closed. Closing puts
    every unsettled delivery back (competing groups) so another consumer gets it.
    """

    async def open(self) -> None:
        """Register the subscription with the backend; idempotent.

        Messages published after ``open`` returns are guaranteed to reach this subscription.
        ``async with`` and the first ``receive`` call it. (The memory backend registers already in
        ``subscribe``; backends with a server need I/O, which a synchronous ``subscribe`` cannot do.)
        """
        ...

    async def receive(self, max_messages: int = 100, timeout: float | None = None) -> list[Delivery]:
        """Wait for at least one message and return up to ``max_messages`` of them.

        Returns ``[]`` if nothing arrived within ``timeout`` seconds (``None`` waits forever,
        ``0`` only takes what is ready). First deliveries of a group leave in publish order;
        redeliveries may come out of order (except per key under ``ordered_by_key``). Every returned
        delivery is in flight until settled, so ask only for what you will process soon: a large
        batch hides messages from the other consumers of the group.

        Raises:
            QueueClosed: the subscription or the queue is closed (also wakes a waiting receive).
            ValueError: ``max_messages`` < 1.
        """
        ...

    async def close(self) -> None:
        """Stop receiving; unsettled deliveries of a competing group are delivered again. Idempotent."""
        ...

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> Delivery: ...


class Queue(Protocol):
    """Topics of records with competing and broadcast consumers; at-least-once delivery.

    All methods are safe to call from many tasks at once. A message is delivered to every
    competing group that exists when it is published; a group exists from its first ``subscribe``
    (in any process, on shared backends) until the queue's storage is dropped, so messages published
    while a group has no consumer wait for it.
    """

    supports_redelivery_across_restarts: bool
    """Unacknowledged messages survive a restart of the process (False for memory)."""
    supports_ordered_by_key: bool
    """``subscribe(..., ordered_by_key=True)`` is honoured."""
    supports_delayed_nack: bool
    """``nack(delay=...)`` holds the message back for the delay."""

    async def publish(self, topic: str, message: Record, key: str | None = None) -> None:
        """Append ``message`` to ``topic``; once this returns it will be delivered to every group.

        ``key`` (the execution id, by convention) drives ``ordered_by_key`` groups. Publishing to a
        topic nobody subscribed to is not an error: the message is dropped.

        Raises:
            QueueError: the topic is not registered.
            TypeError: ``message`` is not an instance of the topic's type.
            QueueClosed: the queue is closed.
        """
        ...

    async def publish_many(self, topic: str, messages: Iterable[Record], key: str | None = None) -> None:
        """Publish several messages with the same key, in order, all or none (one transaction on SQL).

        Raises what ``publish`` raises; nothing is published if any message is refused.
        """
        ...

    def subscribe(self, topic: str, group: str, *, ordered_by_key: bool = False) -> Subscription:
        """Join the competing consumer ``group`` of ``topic``.

        With ``ordered_by_key``, messages that share a key are handed out one at a time, in publish
        order: the next one leaves only when the previous one is acked (a nack puts it back first in
        line). Messages without a key are not constrained. Every subscription of a group must agree on
        the flag.

        Raises:
            QueueError: unknown topic, or ``ordered_by_key`` differs from the group's.
            QueueClosed: the queue is closed.
        """
        ...

    def subscribe_broadcast(self, topic: str) -> Subscription:
        """Receive every message published to ``topic`` from now on, until the subscription closes.

        Nothing is kept for a closed subscriber, and a subscriber that does not keep up buffers
        (memory) or re-reads (SQL) what it missed while subscribed.
        """
        ...

    consumer_id: str | None
    """The service-instance id of the process using this queue (set before subscribing), so that
    ``release_consumer`` can find what it holds; ``None`` outside a server."""

    async def release_consumer(self, consumer_id: str) -> int:
        """Deliver again, now, every message claimed by the subscriptions of ``consumer_id``: a
        process declared dead by the liveness check. Returns how many were handed back (always 0
        for in-process backends, whose consumers die with the queue)."""
        ...

    async def depth(self, topic: str, group: str) -> int:
        """How many messages of ``topic`` the group has not acknowledged yet (waiting, delayed or in
        flight); 0 for a group that does not exist. For metrics and tests, not for control flow."""
        ...

    async def close(self) -> None:
        """Close every subscription (waking blocked receivers) and refuse further publishes. Idempotent."""
        ...


class SubscriptionBase:
    """The protocol's plumbing (context manager, async iteration) over ``receive`` and ``close``.

    Backends subclass it and implement ``receive`` and ``close`` (and ``open`` when they need I/O).
    Iteration fetches ``iter_batch`` messages at a time; keep it small for competing groups so one
    consumer does not hoard work the others could do.
    """

    iter_batch: int = 1

    def __init__(self) -> None:
        self._iter_buffer: deque[Delivery] = deque()

    async def open(self) -> None:
        return None

    async def receive(self, max_messages: int = 100, timeout: float | None = None) -> list[Delivery]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> SubscriptionBase:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> SubscriptionBase:
        return self

    async def __anext__(self) -> Delivery:
        if not self._iter_buffer:
            try:
                self._iter_buffer.extend(await self.receive(max_messages=self.iter_batch))
            except QueueClosed:
                raise StopAsyncIteration from None
        return self._iter_buffer.popleft()


def check_message(topics: Mapping[str, type[Record]], topic: str, message: object) -> None:
    """Raise the errors ``Queue.publish`` documents for a message that does not belong on ``topic``."""
    expected = topics.get(topic)
    if expected is None:
        raise QueueError(f"unknown topic {topic!r}: register its message type with the queue's topics=")
    if not isinstance(message, expected):
        raise TypeError(f"topic {topic!r} carries {expected.__name__}, got {type(message).__name__}")
