"""Task logs and metrics: data produced by task runs, stored and searchable."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from tiercel.model.base import Record
from tiercel.model.task import LogLevel


class LogEntry(Record):
    namespace: str
    flow_id: str
    task_id: str | None = None
    execution_id: str | None = None
    task_run_id: str | None = None
    attempt_number: int | None = None
    trigger_id: str | None = None
    timestamp: datetime
    level: LogLevel = LogLevel.INFO
    thread: str | None = None
    message: str


class MetricEntry(Record):
    namespace: str
    flow_id: str
    task_id: str | None = None
    execution_id: str | None = None
    task_run_id: str | None = None
    type: Literal["counter", "timer", "gauge"] = "counter"
    name: str
    value: float
    timestamp: datetime
    tags: dict[str, str] = Field(default_factory=dict)
