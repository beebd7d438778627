"""Time windows for conditions that wait for several events (``MultipleCondition``, Flow trigger
``preconditions``), and the in-memory store that remembers what each window has seen.

A window collects the names of the sub-conditions met so far; it is satisfied once every name has
been met inside it. Fixed windows (``DURATION_WINDOW``, the daily ones) forget everything when a new
window starts; a ``SLIDING_WINDOW`` forgets each result ``window`` after it was recorded.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, time, timedelta
from typing import Literal

from pydantic import model_validator

from tiercel.model.base import Model
from tiercel.model.task import Duration
from tiercel.plugins.base import MultipleConditionStore, WindowState

WindowType = Literal["DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_WINDOW", "DAILY_TIME_DEADLINE"]
DEFAULT_WINDOW = timedelta(days=1)


class TimeWindow(Model):
    """Kestra's ``timeWindow``: by default a 24-hour window starting at midnight."""

    type: WindowType = "DURATION_WINDOW"
    window: Duration | None = None
    window_advance: Duration | None = None
    start_time: time | None = None
    end_time: time | None = None
    deadline: time | None = None

    @model_validator(mode="after")
    def _complete(self) -> TimeWindow:
        if self.type == "DAILY_TIME_WINDOW" and (self.start_time is None or self.end_time is None):
            raise ValueError("a DAILY_TIME_WINDOW needs `startTime` and `endTime`")
        if self.type == "DAILY_TIME_DEADLINE" and self.deadline is None:
            raise ValueError("a DAILY_TIME_DEADLINE needs `deadline`")
        if self.window is not None and self.window <= timedelta(0):
            raise ValueError("`window` must be a positive duration")
        return self

    @property
    def length(self) -> timedelta:
        return self.window or DEFAULT_WINDOW

    def bounds(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The window ``now`` falls in, or None when ``now`` is outside every window (daily types)."""
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.type == "SLIDING_WINDOW":
            return now - self.length, now
        if self.type == "DURATION_WINDOW":
            base = midnight + (self.window_advance or timedelta(0))
            start = base + ((now - base) // self.length) * self.length
            return start, start + self.length
        if self.type == "DAILY_TIME_DEADLINE":
            end = _at(midnight, self.deadline or time.max, now)
            return (midnight, end) if now <= end else None
        start = _at(midnight, self.start_time or time.min, now)
        end = _at(midnight, self.end_time or time.max, now)
        if end <= start:  # the window spans midnight
            if now >= start:
                end += timedelta(days=1)
            else:
                start -= timedelta(days=1)
        return (start, end) if start <= now < end else None


def _at(midnight: datetime, moment: time, now: datetime) -> datetime:
    """Today at ``moment``, in the zone ``moment`` names (else the zone of ``now``)."""
    if moment.tzinfo is None:
        return midnight.replace(
            hour=moment.hour, minute=moment.minute, second=moment.second, microsecond=moment.microsecond
        )
    local = now.astimezone(moment.tzinfo)
    return datetime.combine(local.date(), moment).astimezone(now.tzinfo)


def record(
    store: MultipleConditionStore,
    key: str,
    window: TimeWindow,
    names: Collection[str],
    matched: Collection[str],
    now: datetime,
    *,
    reset_on_success: bool = True,
) -> bool:
    """Record the sub-conditions ``matched`` now; True when every one of ``names`` is met in the window.

    Nothing is recorded outside a window, and an event that matches no sub-condition never
    satisfies the window (it would otherwise fire again for unrelated executions). On success the
    results are cleared unless ``reset_on_success`` is false.
    """
    bounds = window.bounds(now)
    if bounds is None or not matched:
        return False
    start, end = bounds
    sliding = window.type == "SLIDING_WINDOW"
    state = store.get(key, now)
    results: dict[str, datetime] = {}
    if state is not None and (sliding or state.start == start):
        results = {name: at for name, at in state.results.items() if not sliding or at > start}
    results.update(dict.fromkeys(matched, now))
    satisfied = all(name in results for name in names)
    if satisfied and reset_on_success:
        store.delete(key)
    else:
        store.save(key, WindowState(start, now + window.length if sliding else end, results))
    return satisfied


class MemoryMultipleConditionStore:
    """Window state in a dict: enough for one process (``LocalRunner``); lost on restart."""

    def __init__(self) -> None:
        self._entries: dict[str, WindowState] = {}

    def get(self, key: str, now: datetime) -> WindowState | None:
        state = self._entries.get(key)
        if state is not None and state.end <= now:
            del self._entries[key]
            return None
        return state

    def save(self, key: str, state: WindowState) -> None:
        self._entries[key] = state

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def expire(self, now: datetime) -> None:
        """Drop every entry whose window has ended."""
        for key in [k for k, state in self._entries.items() if state.end <= now]:
            del self._entries[key]
