"""The queue: the protocol, its errors and the engine's topics; backends are loaded through
``tiercel.queue`` entry points (``memory`` here, SQL ones later)."""

from __future__ import annotations

from tiercel.queue.base import (
    DEFAULT_TOPICS,
    Delivery,
    Queue,
    QueueClosed,
    QueueError,
    Subscription,
    SubscriptionBase,
    Topic,
)

__all__ = [
    "DEFAULT_TOPICS",
    "Delivery",
    "Queue",
    "QueueClosed",
    "QueueError",
    "Subscription",
    "SubscriptionBase",
    "Topic",
]
