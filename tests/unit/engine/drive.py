"""A deterministic, I/O-free driver for decide(): plays the worker and the timer service.

Runnable tasks complete instantly: ``Fail`` fails, everything else succeeds with the outputs that
``outcomes`` gives (by task id). Timers fire in date order, advancing a fake clock.

With ``render=True`` a ``Return`` task's ``format`` is rendered against the job's variables (what the
worker would do), so tests can check what templates see. ``jobs`` keeps the last job per task run id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tiercel.engine import commands as cmd
from tiercel.engine import events as ev
from tiercel.engine.decide import decide
from tiercel.engine.executions import new_execution
from tiercel.model.execution import Execution, TaskRun, TaskRunAttempt
from tiercel.model.flow import Flow
from tiercel.model.messages import WorkerJob
from tiercel.model.state import State, StateType
from tiercel.plugins.registry import default_registry

T0 = datetime(2026, 1, 1, tzinfo=UTC)

Outcome = Callable[[TaskRun], tuple[StateType, dict[str, Any]]]


def flow_of(data: Mapping[str, Any]) -> Flow:
    default_registry().build()
    return Flow.model_validate({"namespace": "io.kestra.tests", "id": "f", **data})


@dataclass
class Driver:
    flow: Flow
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    now: datetime = T0
    commands: list[Any] = field(default_factory=list)
    timers: list[cmd.ScheduleTimer] = field(default_factory=list)
    hold: set[str] = field(default_factory=set)
    held: list[cmd.RunTask] = field(default_factory=list)
    render: bool = False
    jobs: dict[str, WorkerJob] = field(default_factory=dict)

    def start(self, inputs: Mapping[str, Any] | None = None, running: int = 0) -> Execution:
        execution = new_execution(self.flow, self.now, inputs=inputs)
        return self.feed(execution, [ev.Start(running=running)])

    def feed(self, execution: Execution, events: list[ev.Event], max_steps: int = 10_000) -> Execution:
        pending = list(events)
        for _ in range(max_steps):
            if not pending:
                return execution
            decision = decide(self.flow, execution, pending, self.now)
            execution = decision.execution
            pending = []
            for command in decision.commands:
                self.commands.append(command)
                if isinstance(command, cmd.RunTask):
                    self.jobs[command.job.task_run.id] = command.job
                    if command.job.task_run.task_id in self.hold:
                        self.held.append(command)
                    else:
                        pending.append(self.work(command))
                elif isinstance(command, cmd.ScheduleTimer):
                    self.timers.append(command)
        raise AssertionError("decide did not settle")

    def work(self, command: cmd.RunTask) -> ev.TaskResult:
        run = command.job.task_run
        task = command.job.task
        if run.task_id in self.outcomes:
            state, outputs = self.outcomes[run.task_id](run)
        elif task.type.endswith("Fail"):
            state, outputs = StateType.FAILED, {}
        elif hasattr(task, "format") and self.render:
            from tiercel.templating import render

            fmt = task.format  # type: ignore[attr-defined]
            state, outputs = StateType.SUCCESS, {"value": render(fmt, command.job.variables)}
        elif hasattr(task, "format"):
            state, outputs = StateType.SUCCESS, {"value": f"{run.task_id}:{run.value}"}
        else:
            state, outputs = StateType.SUCCESS, {}
        attempts = list(run.attempts or ())
        last = attempts[-1]
        attempts[-1] = TaskRunAttempt(
            state=last.state.with_state(StateType.RUNNING, self.now).with_state(state, self.now)
        )
        done = run.model_copy(update={"attempts": tuple(attempts), "outputs": outputs})
        done = done.with_state(StateType.RUNNING, self.now).with_state(state, self.now)
        return ev.TaskResult(done)

    def release(self, execution: Execution, task_id: str, state: StateType = StateType.SUCCESS) -> Execution:
        self.hold.discard(task_id)
        events = []
        for command in [c for c in self.held if c.job.task_run.task_id == task_id]:
            self.held.remove(command)
            self.outcomes.setdefault(task_id, lambda run, s=state: (s, {}))
            events.append(self.work(command))
        return self.feed(execution, events)

    def report_running(self, execution: Execution, task_id: str) -> Execution:
        """The worker picked up the held jobs of ``task_id``: report them RUNNING (they stay held)."""
        events: list[ev.Event] = []
        for command in [c for c in self.held if c.job.task_run.task_id == task_id]:
            run = command.job.task_run
            attempts = list(run.attempts or ())
            attempts[-1] = TaskRunAttempt(state=attempts[-1].state.with_state(StateType.RUNNING, self.now))
            running = run.model_copy(update={"attempts": tuple(attempts)})
            events.append(ev.TaskResult(running.with_state(StateType.RUNNING, self.now)))
        return self.feed(execution, events)

    def fire_next(self, execution: Execution, kind: str | None = None) -> Execution:
        """Fire only the earliest pending timer (of ``kind`` when given)."""
        candidates = sorted((t for t in self.timers if kind is None or t.kind == kind), key=lambda t: t.date)
        assert candidates, "no pending timer"
        timer = candidates[0]
        self.timers.remove(timer)
        self.now = max(self.now, timer.date)
        return self.feed(execution, [ev.TimerFired(timer.kind, timer.task_run_id)])

    def of_type(self, kind: type) -> list[Any]:
        """Commands of one type emitted so far, in order."""
        return [c for c in self.commands if isinstance(c, kind)]

    def dispatched(self) -> list[str]:
        """Task ids of the RunTask commands emitted so far, in order."""
        return [c.job.task_run.task_id for c in self.of_type(cmd.RunTask)]

    def fire_timers(self, execution: Execution) -> Execution:
        while self.timers:
            self.timers.sort(key=lambda t: t.date)
            timer = self.timers.pop(0)
            self.now = max(self.now, timer.date)
            execution = self.feed(execution, [ev.TimerFired(timer.kind, timer.task_run_id)])
        return execution

    def advance(self, delta: timedelta) -> None:
        self.now += delta


# Kestra type names, for building flows tersely.
RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"
SEQUENTIAL = "io.kestra.plugin.core.flow.Sequential"
PARALLEL = "io.kestra.plugin.core.flow.Parallel"
FOR_EACH = "io.kestra.plugin.core.flow.ForEach"
IF = "io.kestra.plugin.core.flow.If"
SWITCH = "io.kestra.plugin.core.flow.Switch"
DAG = "io.kestra.plugin.core.flow.Dag"
ALLOW_FAILURE = "io.kestra.plugin.core.flow.AllowFailure"
PAUSE = "io.kestra.plugin.core.flow.Pause"
WAIT_FOR = "io.kestra.plugin.core.flow.WaitFor"
SUBFLOW = "io.kestra.plugin.core.flow.Subflow"
LABELS = "io.kestra.plugin.core.execution.Labels"
SET_VARIABLES = "io.kestra.plugin.core.execution.SetVariables"
EXIT = "io.kestra.plugin.core.execution.Exit"


def ret(task_id: str, fmt: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``Return`` task (succeeds in the driver)."""
    return {"id": task_id, "type": RETURN, "format": fmt if fmt is not None else task_id, **extra}


def fail(task_id: str, **extra: Any) -> dict[str, Any]:
    """A ``Fail`` task (fails in the driver)."""
    return {"id": task_id, "type": FAIL, **extra}


def runs(execution: Execution, task_id: str) -> list[TaskRun]:
    return [r for r in execution.task_run_list if r.task_id == task_id]


def state_of(execution: Execution, task_id: str) -> StateType:
    found = runs(execution, task_id)
    assert found, f"no task run for {task_id}"
    return found[0].current


def history(state: State) -> list[StateType]:
    return [h.state for h in state.histories]


__all__ = [
    "ALLOW_FAILURE",
    "DAG",
    "EXIT",
    "FAIL",
    "FOR_EACH",
    "IF",
    "LABELS",
    "PARALLEL",
    "PAUSE",
    "RETURN",
    "SEQUENTIAL",
    "SET_VARIABLES",
    "SUBFLOW",
    "SWITCH",
    "T0",
    "WAIT_FOR",
    "Driver",
    "State",
    "fail",
    "flow_of",
    "history",
    "ret",
    "runs",
    "state_of",
]
