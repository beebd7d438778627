"""Properties every task has (Kestra's ``Task``), and retry policies."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints

from tiercel.model.base import Model

TASK_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN, max_length=100)]


def _iso_duration(value: Any) -> Any:
    """Java's Duration.parse accepts lower-case designators (``PT0.25s``); so do we."""
    if isinstance(value, str) and value[:1] in ("P", "p", "-"):
        return value.upper()
    return value


Duration = Annotated[timedelta, BeforeValidator(_iso_duration)]


class LogLevel(StrEnum):
    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {LogLevel.TRACE: 0, LogLevel.DEBUG: 1, LogLevel.INFO: 2, LogLevel.WARN: 3, LogLevel.ERROR: 4}


class RetryBehavior(StrEnum):
    RETRY_FAILED_TASK = "RETRY_FAILED_TASK"
    CREATE_NEW_EXECUTION = "CREATE_NEW_EXECUTION"


class _Retry(Model):
    max_attempt: Annotated[int, Field(ge=1)] | None = Field(default=None, alias="maxAttempt")
    max_duration: Duration | None = None
    warning_on_retry: bool = False
    behavior: RetryBehavior = RetryBehavior.RETRY_FAILED_TASK

    def delay(self, attempt: int) -> timedelta:
        """Delay before attempt number ``attempt + 1`` (``attempt`` counts attempts made)."""
        raise NotImplementedError

    def next_date(self, first_attempt_start: datetime, last_end: datetime, attempts: int) -> datetime | None:
        """When the next attempt may start, or None when the policy is exhausted."""
        if self.max_attempt is not None and attempts >= self.max_attempt:
            return None
        at = last_end + self.delay(attempts)
        if self.max_duration is not None and at - first_attempt_start > self.max_duration:
            return None
        return at


class ConstantRetry(_Retry):
    type: Literal["constant"]
    interval: Duration

    def delay(self, attempt: int) -> timedelta:
        return self.interval


class ExponentialRetry(_Retry):
    type: Literal["exponential"]
    interval: Duration
    max_interval: Duration
    delay_factor: float | None = None

    def delay(self, attempt: int) -> timedelta:
        factor = self.delay_factor if self.delay_factor is not None else 2.0
        return min(self.interval * (factor ** max(attempt - 1, 0)), self.max_interval)


class RandomRetry(_Retry):
    type: Literal["random"]
    min_interval: Duration
    max_interval: Duration

    def delay(self, attempt: int) -> timedelta:
        lo, hi = self.min_interval.total_seconds(), self.max_interval.total_seconds()
        return timedelta(seconds=random.uniform(lo, hi))


Retry = Annotated[ConstantRetry | ExponentialRetry | RandomRetry, Field(discriminator="type")]


class WorkerGroup(Model):
    key: str | None = None
    fallback: Literal["FAIL", "WAIT", "CANCEL"] | None = None


class TaskProperties(Model):
    """The common task properties of Kestra §1.3. Plugin classes add their own fields."""

    id: TaskId
    type: str
    description: str | None = None
    retry: Retry | None = None
    timeout: Duration | str | None = None
    disabled: bool = False
    allow_failure: bool = False
    allow_warning: bool = False
    log_level: LogLevel | None = None
    log_to_file: bool = False
    run_if: str | bool = "true"
    worker_group: WorkerGroup | None = None
    version: str | None = None

    def extra_properties(self) -> dict[str, Any]:
        """The plugin-specific properties (for display and JSON schemas)."""
        common = set(TaskProperties.model_fields)
        return {k: v for k, v in self.model_dump(by_alias=True).items() if k not in common}
