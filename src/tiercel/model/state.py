"""Execution and task-run states, and their transition history (Kestra's ``State``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import computed_field

from tiercel.model.base import Record


class StateType(StrEnum):
    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESTARTED = "RESTARTED"
    KILLING = "KILLING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"
    RETRYING = "RETRYING"
    RETRIED = "RETRIED"
    SKIPPED = "SKIPPED"

    @property
    def is_terminated(self) -> bool:
        return self in TERMINATED

    @property
    def is_created(self) -> bool:
        """CREATED and RESTARTED both mean "dispatch me"."""
        return self in (StateType.CREATED, StateType.RESTARTED)

    @property
    def is_running(self) -> bool:
        return self in (StateType.RUNNING, StateType.KILLING)

    @property
    def is_failed(self) -> bool:
        return self in (StateType.FAILED, StateType.KILLED)


TERMINATED = frozenset(
    {
        StateType.FAILED,
        StateType.WARNING,
        StateType.SUCCESS,
        StateType.KILLED,
        StateType.CANCELLED,
        StateType.RETRIED,
        StateType.SKIPPED,
    }
)


class StateHistory(Record):
    state: StateType
    date: datetime


class State(Record):
    """The current state plus every state it went through, oldest first."""

    current: StateType = StateType.CREATED
    histories: tuple[StateHistory, ...] = ()

    @classmethod
    def new(cls, now: datetime, state: StateType = StateType.CREATED) -> State:
        return cls(current=state, histories=(StateHistory(state=state, date=now),))

    def with_state(self, state: StateType, now: datetime) -> State:
        """Setting the same state twice is a no-op: the history is not appended."""
        if state == self.current and self.histories:
            return self
        return State(current=state, histories=(*self.histories, StateHistory(state=state, date=now)))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def start_date(self) -> datetime | None:
        return self.histories[0].date if self.histories else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def end_date(self) -> datetime | None:
        if self.current.is_terminated and self.histories:
            return self.histories[-1].date
        return None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration(self) -> timedelta | None:
        start, end = self.start_date, self.end_date
        return end - start if start is not None and end is not None else None

    def count(self, state: StateType) -> int:
        return sum(1 for h in self.histories if h.state == state)
