"""What ``decide()`` consumes. Each event is immutable data; the executor shell builds them from
queue messages, timers and API calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tiercel.model.execution import TaskRun
from tiercel.model.state import StateType


@dataclass(frozen=True)
class Start:
    """A new execution: ``running`` counts the flow's executions already running (concurrency)."""

    running: int = 0


@dataclass(frozen=True)
class Continue:
    """Re-evaluate (after a restart, a flow change, or to drive a QUEUED execution forward)."""


@dataclass(frozen=True)
class Unqueue:
    """A concurrency slot opened: a QUEUED execution may run."""


@dataclass(frozen=True)
class TaskResult:
    """A task run as reported by a worker (RUNNING, then terminal with outputs)."""

    task_run: TaskRun
    dynamic_task_runs: tuple[TaskRun, ...] = ()


@dataclass(frozen=True)
class SubflowResult:
    """A child execution was created (state RUNNING) or ended; or could not be created (FAILED)."""

    task_run_id: str
    state: StateType
    child_execution_id: str | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    task_outputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class Kill:
    pass


@dataclass(frozen=True)
class Resume:
    """Resume a paused execution; ``outputs`` are the validated onResume inputs."""

    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimerFired:
    kind: str
    task_run_id: str | None = None


Event = Start | Continue | Unqueue | TaskResult | SubflowResult | Kill | Resume | TimerFired
