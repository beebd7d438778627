"""In-process timers for executor delays (retries, pause delays, scheduled starts).

Kept in memory: this is the timer service of the in-process runner; persistent backends store
delays in their repository so a restart loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime

from tiercel.clock import Clock

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
