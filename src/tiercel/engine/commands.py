"""What ``decide()`` emits: effects for the executor shell to carry out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tiercel.model.execution import Execution
from tiercel.model.logs import LogEntry
from tiercel.model.messages import WorkerJob
from tiercel.model.state import StateType
from tiercel.plugins.base import SubflowRequest


@dataclass(frozen=True)
class RunTask:
    job: WorkerJob


@dataclass(frozen=True)
class KillTasks:
    """Ask workers to stop every running task of the execution."""

    execution_id: str


@dataclass(frozen=True)
class StartSubflow:
    parent_execution_id: str
    parent_task_run_id: str
    request: SubflowRequest


@dataclass(frozen=True)
class KillSubflows:
    """Cascade a kill to the child executions of this execution."""

    parent_execution_id: str


@dataclass(frozen=True)
class ScheduleTimer:
    execution_id: str
    kind: str
    date: datetime
    task_run_id: str | None = None


@dataclass(frozen=True)
class EmitLogs:
    logs: tuple[LogEntry, ...]


@dataclass(frozen=True)
class ExecutionEnded:
    """The execution reached a terminal state: free its concurrency slot, notify its parent."""

    execution_id: str
    state: StateType


@dataclass(frozen=True)
class CreateExecution:
    """A new execution to start (retry with CREATE_NEW_EXECUTION)."""

    execution: Execution


Command = (
    RunTask
    | KillTasks
    | StartSubflow
    | KillSubflows
    | ScheduleTimer
    | EmitLogs
    | ExecutionEnded
    | CreateExecution
)


@dataclass(frozen=True)
class Decision:
    execution: Execution
    commands: tuple[Command, ...]
