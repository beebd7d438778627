"""What crosses process boundaries: every message is a named, versioned pydantic record.

``WorkerJob`` carries the task *definition* as a plain dict (validated again by the worker through
the plugin registry) and the render variables computed by the executor, so a worker needs neither
the flow nor the execution to run a task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_serializer

from tiercel.model.base import Record
from tiercel.model.execution import TaskRun
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.state import StateType

SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


class Message(Record):
    version: int = SCHEMA_VERSION


class WorkerJob(Message):
    """Run one attempt of a runnable task run."""

    kind: Literal["task"] = "task"
    execution_id: str
    namespace: str
    flow_id: str
    flow_revision: int | None = None
    task: Any
    """The task: the plugin object in-process, its JSON dict once serialised (re-validated by
    the worker through the plugin registry)."""
    task_run: TaskRun
    variables: dict[str, Any] = Field(default_factory=dict)
    masked: list[str] = Field(default_factory=list)
    """Values to mask in the task's logs (SECRET inputs)."""

    @field_serializer("task")
    def _task_as_json(self, task: Any) -> Any:
        """In-process the task is the plugin object; on the wire it is its JSON document."""
        dump = getattr(task, "model_dump", None)
        return dump(mode="json", by_alias=True, exclude_none=True) if dump is not None else task

    @field_serializer("variables")
    def _plain_variables(self, variables: Mapping[str, Any]) -> Any:
        """Lazy maps (``outputs``, ``tasks``) become plain JSON when the job leaves the process."""
        return _plain(variables)


class WorkerTaskResult(Message):
    """A task run as the worker last saw it (RUNNING, then terminal with outputs)."""

    execution_id: str
    task_run: TaskRun
    dynamic_task_runs: list[TaskRun] = Field(default_factory=list)


class ExecutionKilled(Message):
    execution_id: str
    state: Literal["REQUESTED", "EXECUTED"] = "REQUESTED"
    cascade: bool = True


class FlowChanged(Message):
    """A flow was deployed or deleted: other processes drop what they cached of its live revision."""

    namespace: str
    flow_id: str
    revision: int
    deleted: bool = False


class SubflowExecutionResult(Message):
    parent_execution_id: str
    parent_task_run_id: str
    child_execution_id: str | None = None
    state: StateType
    outputs: dict[str, Any] | None = None
    task_outputs: dict[str, Any] | None = None
    """The child's task outputs map, for the deprecated Subflow ``outputs`` property."""
    error: str | None = None


class LogBatch(Message):
    logs: list[LogEntry] = Field(default_factory=list)
    metrics: list[MetricEntry] = Field(default_factory=list)


class ExecutionDelay(Message):
    """A timer the executor asked for: fire ``kind`` for the execution at ``date``."""

    execution_id: str
    task_run_id: str | None = None
    date: datetime
    kind: str
    """RESUME_FLOW, RESTART_FAILED_TASK, CONTINUE_FLOWABLE, PAUSE_TIMEOUT, RESUME_PAUSE or SLA:<id>."""


class ExecutorEvent(Message):
    """Something happened to an execution; the executor applies it under the execution's lock.

    One topic carries every kind so the executor can batch all pending events of one execution
    into a single ``decide()`` call.
    """

    execution_id: str
    kind: Literal["start", "continue", "unqueue", "result", "subflow", "kill", "resume", "timer"]
    result: WorkerTaskResult | None = None
    subflow: SubflowExecutionResult | None = None
    resume_outputs: dict[str, Any] | None = None
    timer_kind: str | None = None
    task_run_id: str | None = None
