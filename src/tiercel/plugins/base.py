"""The contracts plugins implement.

Kestra splits tasks by *where* they run, and so do we:

- ``RunnableTask``: runs on a worker (``async run(ctx)``), may do I/O, returns outputs.
- ``FlowableTask``: runs inside the executor's pure ``decide()``; it only says which child task
  runs to create next and what its own state is, from the task runs it can see. No I/O.
- ``ExecutableTask``: creates other executions (Subflow); the executor shell does the creating.
- ``ExecutionTask``: changes the execution itself (labels, variables, exit) inside ``decide()``.

Plugin classes are pydantic models; the ``type`` field is a ``Literal`` of the Kestra type name
followed by its old aliases, which is how the registry discovers names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, get_args

from tiercel.model.base import Model, OpenModel
from tiercel.model.state import StateType
from tiercel.model.task import TaskProperties

if TYPE_CHECKING:
    from tiercel.model.execution import Execution, TaskRun
    from tiercel.model.flow import Flow


class Task(TaskProperties):
    """Base of every task plugin."""

    kind: ClassVar[Literal["runnable", "flowable", "executable", "execution"]] = "runnable"

    @classmethod
    def type_names(cls) -> tuple[str, ...]:
        """The Kestra type name first, then aliases (read from the ``type`` Literal)."""
        annotation = cls.model_fields["type"].annotation
        return tuple(str(a) for a in get_args(annotation))

    def branches(self) -> Mapping[str, Sequence[Task]]:
        """Child task lists by branch name (``tasks``, ``errors``, ``finally``, ``then``, …)."""
        return {}

    def all_children(self) -> list[Task]:
        out: list[Task] = []
        for tasks in self.branches().values():
            out.extend(tasks)
        return out


# -- runnable -----------------------------------------------------------------------------


class TaskLogger(Protocol):
    def trace(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...
    def log(self, level: str, message: str) -> None: ...


class RunContext(Protocol):
    """What a runnable task gets from the worker. Implemented in ``tiercel.engine.run_context``."""

    @property
    def variables(self) -> Mapping[str, Any]: ...
    @property
    def logger(self) -> TaskLogger: ...
    @property
    def task_run(self) -> TaskRun: ...
    @property
    def namespace(self) -> str: ...
    @property
    def flow_id(self) -> str: ...
    @property
    def execution_id(self) -> str: ...

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any: ...
    def render_typed(self, template: Any, extra: Mapping[str, Any] | None = None) -> Any: ...
    def metric(
        self, name: str, value: float, kind: str = "counter", tags: Mapping[str, str] | None = None
    ) -> None: ...
    def working_dir(self) -> Path: ...
    async def put_file(self, path: Path, name: str | None = None) -> str: ...
    async def put_bytes(self, data: bytes, name: str) -> str: ...
    async def read_bytes(self, uri: str) -> bytes: ...
    async def open_file(self, uri: str) -> Path: ...
    @property
    def kv(self) -> Any: ...
    @property
    def services(self) -> Any: ...


class RunnableTask(Task):
    kind: ClassVar[Literal["runnable", "flowable", "executable", "execution"]] = "runnable"

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        raise NotImplementedError


class BlockingTask(RunnableTask):
    """A task whose code blocks (a synchronous SDK, CPU work): ``run_blocking`` runs in a thread,
    so the worker's event loop keeps serving other tasks. A timeout or a kill stops waiting for
    the thread; Python cannot interrupt it, so long loops should check ``ctx`` for cancellation."""

    def run_blocking(self, ctx: RunContext) -> Mapping[str, Any] | None:
        raise NotImplementedError

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        import asyncio

        return await asyncio.to_thread(self.run_blocking, ctx)


class TaskFailure(Exception):
    """Raised by a task to fail with a message, optionally keeping outputs on the failed run."""

    def __init__(
        self, message: str, outputs: Mapping[str, Any] | None = None, state: StateType = StateType.FAILED
    ):
        super().__init__(message)
        self.outputs = dict(outputs or {})
        self.state = state


# -- flowable -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildRun:
    """A child task run a flowable asks the executor to create."""

    task: Task
    value: str | None = None
    iteration: int | None = None


class FlowableContext(Protocol):
    """What a flowable sees inside ``decide()``. Implemented in ``tiercel.engine.flowable``."""

    @property
    def now(self) -> datetime: ...
    @property
    def execution(self) -> Execution: ...
    @property
    def task_run(self) -> TaskRun: ...
    @property
    def children(self) -> list[TaskRun]: ...

    def render(self, value: Any) -> Any: ...
    def render_typed(self, template: Any) -> Any: ...
    def set_outputs(self, outputs: Mapping[str, Any]) -> None: ...


class FlowableTask(Task):
    kind: ClassVar[Literal["runnable", "flowable", "executable", "execution"]] = "flowable"

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        """Child task runs to create now (may be empty while children run)."""
        raise NotImplementedError

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        """The terminal state once the children are done, else None."""
        raise NotImplementedError

    def final_outputs(self, ctx: FlowableContext) -> Mapping[str, Any] | None:
        return None


# -- executable (subflows) ----------------------------------------------------------------


@dataclass(frozen=True)
class SubflowRequest:
    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    schedule_date: datetime | None = None


class ExecutableTask(Task):
    kind: ClassVar[Literal["runnable", "flowable", "executable", "execution"]] = "executable"

    def subflow_requests(self, ctx: FlowableContext) -> list[SubflowRequest]:
        raise NotImplementedError

    def child_created(self, ctx: FlowableContext, child_id: str) -> tuple[StateType | None, dict[str, Any]]:
        """A child execution exists: the run's new outputs, and its state if that ends it."""
        return None, {**ctx.task_run.outputs, "executionId": child_id}

    def subflow_result(
        self,
        ctx: FlowableContext,
        child_state: StateType,
        child_outputs: Mapping[str, Any] | None,
        child_id: str,
    ) -> tuple[StateType | None, dict[str, Any]]:
        """A child execution ended: the run's new outputs, and its state (None = more to come)."""
        raise NotImplementedError


# -- execution-updating -------------------------------------------------------------------


@dataclass
class ExecutionChange:
    """What an execution task does to its execution (applied by ``decide()``)."""

    labels: Mapping[str, str] | None = None
    variables: Mapping[str, Any] | None = None
    exit_state: StateType | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    state: StateType = StateType.SUCCESS
    message: str | None = None


class ExecutionTask(Task):
    kind: ClassVar[Literal["runnable", "flowable", "executable", "execution"]] = "execution"

    def change(self, ctx: FlowableContext) -> ExecutionChange:
        raise NotImplementedError


# -- triggers and conditions --------------------------------------------------------------


class Trigger(OpenModel):
    """Base of trigger plugins; trigger semantics arrive with the scheduler."""

    id: str
    type: str
    description: str | None = None
    disabled: bool = False
    conditions: list[Any] | None = None
    inputs: dict[str, Any] | None = None
    labels: Any = None
    stop_after: list[str] | None = None

    @classmethod
    def type_names(cls) -> tuple[str, ...]:
        return tuple(str(a) for a in get_args(cls.model_fields["type"].annotation))


@dataclass(frozen=True)
class WindowState:
    """What a windowed condition remembers: its window, and when each sub-condition was met."""

    start: datetime
    end: datetime
    results: Mapping[str, datetime] = field(default_factory=dict)


class MultipleConditionStore(Protocol):
    """State shared by the evaluations of windowed conditions (``MultipleCondition``, preconditions).

    Keys are opaque strings (flow uid, trigger id and condition id). An entry whose ``end`` is not
    after ``now`` has expired: ``get`` never returns it.
    """

    def get(self, key: str, now: datetime) -> WindowState | None: ...
    def save(self, key: str, state: WindowState) -> None: ...
    def delete(self, key: str) -> None: ...


def window_key(scope: str, condition_id: str) -> str:
    """The store key of one windowed condition of ``scope`` (``ConditionContext.scope``). Every key
    of a scope starts with ``window_key(scope, "")``: a persistent store locks and loads by scope."""
    return f"{scope}/{condition_id}"


@dataclass(frozen=True)
class ConditionContext:
    """What a condition is tested against.

    ``execution`` is the execution being looked at (for a Flow trigger, the upstream one) and
    ``execution_flow`` its flow; ``flow`` is the flow that owns the trigger. ``variables`` are what
    expressions render with. ``store`` and ``scope`` (flow uid + trigger id) let windowed conditions
    remember past evaluations; without a store they judge the current execution alone.
    """

    execution: Execution
    now: datetime
    flow: Flow | None = None
    execution_flow: Flow | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    store: MultipleConditionStore | None = None
    scope: str = ""


class Condition(OpenModel):
    """Base of condition plugins: ``test`` is pure apart from ``ctx.store``."""

    type: str

    @classmethod
    def type_names(cls) -> tuple[str, ...]:
        return tuple(str(a) for a in get_args(cls.model_fields["type"].annotation))

    def test(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError


__all__ = [
    "BlockingTask",
    "ChildRun",
    "Condition",
    "ConditionContext",
    "ExecutableTask",
    "ExecutionChange",
    "ExecutionTask",
    "FlowableContext",
    "FlowableTask",
    "Model",
    "MultipleConditionStore",
    "RunContext",
    "RunnableTask",
    "SubflowRequest",
    "Task",
    "TaskFailure",
    "TaskLogger",
    "Trigger",
    "WindowState",
    "window_key",
]
