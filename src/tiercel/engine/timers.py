"""Timers for executor delays (retries, pause delays, scheduled starts, SLA deadlines).

``MemoryTimers`` keeps them in a heap (tests, throwaway runs); ``RepositoryTimers`` keeps them in
the repository's delay table so they survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from tiercel.clock import Clock

log = logging.getLogger(__name__)

Fire = Callable[[str, str, str | None], Awaitable[None]]


class MemoryTimers:
    def __init__(self, clock: Clock, fire: Fire) -> None:
        self._clock = clock
        self._fire = fire
        self._heap: list[tuple[datetime, int, str, str, str | None]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._keys: set[tuple[str, str, str | None]] = set()

    def schedule(self, execution_id: str, kind: str, date: datetime, task_run_id: str | None = None) -> None:
        key = (execution_id, kind, task_run_id)
        if key in self._keys:
            return
        self._keys.add(key)
        heapq.heappush(self._heap, (date, next(self._seq), execution_id, kind, task_run_id))
        self._wake.set()

    def pending(self) -> int:
        return len(self._heap)

    def next_date(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    async def fire_due(self) -> int:
        now = self._clock.now()
        fired = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, execution_id, kind, task_run_id = heapq.heappop(self._heap)
            self._keys.discard((execution_id, kind, task_run_id))
            await self._fire(execution_id, kind, task_run_id)
            fired += 1
        return fired

    async def run(self) -> None:
        while True:
            await self.fire_due()
            self._wake.clear()
            delay = 1.0
            if self._heap:
                delay = max(0.0, (self._heap[0][0] - self._clock.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 1.0))


class RepositoryTimers:
    """Timers kept in the repository (``DelayRepository``), so a restart loses none.

    A due timer is fired (its event published) and then deleted: at least once. ``decide()`` ignores
    a timer whose task run is no longer waiting for it, so a repeat is harmless.
    """

    def __init__(self, clock: Clock, fire: Fire, delays: Any, poll_interval: float = 1.0) -> None:
        self._clock = clock
        self._fire = fire
        self._delays = delays
        self._poll = poll_interval
        self._wake = asyncio.Event()

    async def schedule(
        self, execution_id: str, kind: str, date: datetime, task_run_id: str | None = None
    ) -> None:
        from tiercel.model.messages import ExecutionDelay

        await self._delays.schedule(
            ExecutionDelay(execution_id=execution_id, kind=kind, date=date, task_run_id=task_run_id)
        )
        self._wake.set()

    async def fire_due(self) -> int:
        fired = 0
        while True:
            due = await self._delays.due(self._clock.now(), limit=100)
            if not due:
                return fired
            for delay in due:
                await self._fire(delay.execution_id, delay.kind, delay.task_run_id)
                await self._delays.delete(delay)
                fired += 1

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due()
                self._wake.clear()
                next_date = await self._delays.next_date()
            except Exception:
                log.exception("timer pass failed; retrying")
                next_date = None
            delay = self._poll
            if next_date is not None:
                delay = min(self._poll, max(0.0, (next_date - self._clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
