"""Repositories: the protocols and filters; backends are loaded through ``tiercel.repository``
entry points (``memory`` here, SQL ones later)."""

from __future__ import annotations

from tiercel.repository.base import (
    CONCURRENCY_STATES,
    EXECUTION_SORT_KEYS,
    ExecutionFilter,
    ExecutionRepository,
    FlowRecord,
    FlowRepository,
    LockedExecution,
    LogFilter,
    LogRepository,
    MetricRepository,
    Page,
    Repositories,
    TriggerRepository,
    TriggerState,
)

__all__ = [
    "CONCURRENCY_STATES",
    "EXECUTION_SORT_KEYS",
    "ExecutionFilter",
    "ExecutionRepository",
    "FlowRecord",
    "FlowRepository",
    "LockedExecution",
    "LogFilter",
    "LogRepository",
    "MetricRepository",
    "Page",
    "Repositories",
    "TriggerRepository",
    "TriggerState",
]
