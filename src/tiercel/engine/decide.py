"""The executor's brain: a pure function from (flow, execution, events, now) to a Decision.

``decide()`` applies events (worker results, kills, timers, resumes) to an execution, resolves
flowable tasks until nothing changes, and returns the new execution plus the commands the executor
shell must carry out (run a task, start a subflow, set a timer, …). It performs no I/O and reads no
clock: everything it knows arrives as arguments, so it is tested exhaustively without servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tiercel.engine import retries, sla
from tiercel.engine.attempts import close_attempt, dispatched, joinable, worker_done, worker_side
from tiercel.engine.commands import (
    Command,
    CreateExecution,
    Decision,
    EmitLogs,
    ExecutionEnded,
    KillSubflows,
    KillTasks,
    RunTask,
    ScheduleTimer,
    StartSubflow,
)
from tiercel.engine.events import (
    Continue,
    Event,
    Kill,
    Resume,
    Start,
    SubflowResult,
    TaskResult,
    TimerFired,
    Unqueue,
)
from tiercel.engine.executions import new_attempt_execution
from tiercel.engine.flowable import FlowableCtx, container_step
from tiercel.engine.variables import execution_variables, task_run_variables
from tiercel.errors import TiercelError
from tiercel.ids import new_id
from tiercel.model.execution import Execution, Label, TaskRun, TaskRunAttempt
from tiercel.model.flow import ConcurrencyBehavior, Flow
from tiercel.model.logs import LogEntry
from tiercel.model.messages import WorkerJob
from tiercel.model.state import State, StateType
from tiercel.model.task import LogLevel
from tiercel.plugins.base import ChildRun, ExecutableTask, ExecutionTask, FlowableTask, Task

MAX_PASSES = 1000

RESUME_FLOW = "RESUME_FLOW"
RESTART_FAILED_TASK = "RESTART_FAILED_TASK"
CONTINUE_FLOWABLE = "CONTINUE_FLOWABLE"
RESUME_PAUSE = "RESUME_PAUSE"
PAUSE_TIMEOUT = "PAUSE_TIMEOUT"


@dataclass(frozen=True)
class Settings:
    """Static data the variables need (configuration, not I/O)."""

    globals: Mapping[str, Any] = field(default_factory=dict)
    envs: Mapping[str, Any] = field(default_factory=dict)
    encryption_key: str | None = None


def decide(
    flow: Flow, execution: Execution, events: Sequence[Event], now: datetime, settings: Settings | None = None
) -> Decision:
    return _Decider(flow, execution, now, settings or Settings()).run(events)


class _Decider:
    def __init__(self, flow: Flow, execution: Execution, now: datetime, settings: Settings) -> None:
        self.flow = flow
        self._ex = execution
        self._pending: dict[str, TaskRun] = {}
        self.now = now
        self.settings = settings
        self.commands: list[Command] = []
        self.logs: list[LogEntry] = []
        self.original = execution
        self._ended = False
        self._vars_for: Execution | None = None
        self._vars: dict[str, Any] = {}

    # -- plumbing --------------------------------------------------------------------------
    def run(self, events: Sequence[Event]) -> Decision:
        for event in events:
            self.apply(event)
        for _ in range(MAX_PASSES):
            before = self.ex
            self.step()
            if self.ex is before:
                break
        if self.logs:
            self.commands.insert(0, EmitLogs(tuple(self.logs)))
        return Decision(self.ex, tuple(self.commands))

    @property
    def ex(self) -> Execution:
        """The execution with every task-run update applied (updates are batched: one copy of the
        task-run list per batch instead of one per event)."""
        if self._pending:
            self._ex = self._ex.with_task_runs(self._pending.values())
            self._pending = {}
        return self._ex

    @ex.setter
    def ex(self, execution: Execution) -> None:
        self._ex = execution

    def run_of(self, task_run_id: str) -> TaskRun | None:
        """A task run's latest version, without applying the pending updates."""
        return self._pending.get(task_run_id) or self._ex.find_task_run(task_run_id)

    def put(self, *runs: TaskRun) -> None:
        for run in runs:
            self._pending[run.id] = run

    def set_state(self, state: StateType) -> None:
        self.ex = self.ex.with_state(state, self.now)

    def base_variables(self) -> dict[str, Any]:
        if self._vars_for is not self.ex:
            self._vars = execution_variables(
                self.flow,
                self.ex,
                globals_=self.settings.globals,
                envs=self.settings.envs,
                encryption_key=self.settings.encryption_key,
            )
            self._vars_for = self.ex
        return self._vars

    def variables(self, run: TaskRun) -> Mapping[str, Any]:
        return task_run_variables(self.base_variables(), self.ex, self.task(run), run)

    def task(self, run: TaskRun) -> Task:
        return self.flow.task(run.task_id)

    def log(self, run: TaskRun | None, level: LogLevel, message: str) -> None:
        self.logs.append(
            LogEntry(
                namespace=self.ex.namespace,
                flow_id=self.ex.flow_id,
                task_id=run.task_id if run else None,
                execution_id=self.ex.id,
                task_run_id=run.id if run else None,
                attempt_number=run.attempt_count if run else None,
                timestamp=self.now,
                level=level,
                message=message,
            )
        )

    def new_run(self, child: ChildRun, parent: TaskRun | None) -> TaskRun:
        return TaskRun(
            id=new_id(),
            execution_id=self.ex.id,
            namespace=self.ex.namespace,
            flow_id=self.ex.flow_id,
            task_id=child.task.id,
            parent_task_run_id=parent.id if parent else None,
            value=child.value,
            iteration=child.iteration,
            state=State.new(self.now),
        )

    # -- events ----------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        current = self._ex.current  # task-run updates never change the execution's state
        if isinstance(event, Start):
            if current == StateType.CREATED:
                self.start(event)
        elif isinstance(event, Unqueue):
            if current == StateType.QUEUED:
                self.begin()
        elif isinstance(event, TaskResult):
            self.on_task_result(event)
        elif isinstance(event, SubflowResult):
            self.on_subflow_result(event)
        elif isinstance(event, Kill):
            if not current.is_terminated and current != StateType.KILLING:
                if current == StateType.PAUSED:
                    self.set_state(StateType.RESTARTED)
                self.set_state(StateType.KILLING)
                self.commands.append(KillTasks(self.ex.id))
                self.commands.append(KillSubflows(self.ex.id))
        elif isinstance(event, Resume):
            self.on_resume(event.outputs, via_api=True)
        elif isinstance(event, TimerFired):
            self.on_timer(event)
        elif isinstance(event, Continue):
            pass

    def start(self, event: Start) -> None:
        concurrency = self.flow.concurrency
        if concurrency is not None and event.running >= concurrency.limit:
            if concurrency.behavior == ConcurrencyBehavior.QUEUE:
                self.set_state(StateType.QUEUED)
                return
            state = (
                StateType.CANCELLED
                if concurrency.behavior == ConcurrencyBehavior.CANCEL
                else StateType.FAILED
            )
            self.log(None, LogLevel.WARN, f"Flow is limited to {concurrency.limit} concurrent executions")
            self.end(state)
            return
        if self.ex.schedule_date is not None and self.ex.schedule_date > self.now:
            self.commands.append(ScheduleTimer(self.ex.id, RESUME_FLOW, self.ex.schedule_date))
            return
        self.begin()

    def begin(self) -> None:
        """The execution starts running: arm its MAX_DURATION SLAs."""
        self.set_state(StateType.RUNNING)
        for kind, date in sla.max_duration_deadlines(self.flow, self.now):
            self.commands.append(ScheduleTimer(self.ex.id, kind, date))

    def on_task_result(self, event: TaskResult) -> None:
        incoming = event.task_run
        stored = self.run_of(incoming.id)
        if stored is None or not joinable(stored, incoming):
            return
        if event.dynamic_task_runs:
            self.put(*event.dynamic_task_runs)
        if incoming.current.is_terminated:
            task = self.task(incoming)
            if worker_side(task) and incoming.current == StateType.FAILED and task.branches().get("errors"):
                histories = incoming.state.histories[:-1]
                still = State(current=histories[-1].state, histories=histories)
                self.put(incoming.model_copy(update={"state": still}))
            else:
                self.finish(incoming, incoming.current)
        else:
            self.put(incoming)

    def on_subflow_result(self, event: SubflowResult) -> None:
        run = self.ex.find_task_run(event.task_run_id)
        if run is None or run.current.is_terminated:
            return
        task = self.task(run)
        if event.error:
            self.log(run, LogLevel.ERROR, event.error)
            self.finish(run, StateType.FAILED)
            return
        if not isinstance(task, ExecutableTask):
            self.finish(run, event.state if event.state.is_terminated else StateType.FAILED)
            return
        ctx = self.ctx(run)
        if event.task_outputs is not None:
            ctx.child_task_outputs = event.task_outputs
        try:
            if event.state.is_terminated:
                child_id = event.child_execution_id or ""
                state, outputs = task.subflow_result(ctx, event.state, event.outputs, child_id)
            else:
                state, outputs = task.child_created(ctx, event.child_execution_id or "")
        except Exception as exc:
            self.log(run, LogLevel.ERROR, _message(exc))
            self.finish(run, StateType.FAILED)
            return
        run = run.model_copy(update={"outputs": outputs})
        if state is None:
            self.put(run)
        else:
            self.finish(run, state)

    def on_resume(self, outputs: Mapping[str, Any], via_api: bool, task_run_id: str | None = None) -> None:
        if self.ex.current != StateType.PAUSED and task_run_id is None:
            return
        paused = [
            r
            for r in self.ex.task_run_list
            if r.current == StateType.PAUSED
            and (r.id == task_run_id if task_run_id is not None else self._is_pause(r))
        ]
        for run in paused[:1]:
            task = self.task(run)
            resumed = run.model_copy(
                update={"outputs": {**run.outputs, **({"onResume": dict(outputs)} if outputs else {})}}
            )
            resumed = resumed.with_state(StateType.RUNNING, self.now)
            children = list(getattr(task, "tasks", None) or [])
            if not children and getattr(task, "kind", "") == "flowable":
                self.finish(resumed, StateType.SUCCESS)
            else:
                self.put(resumed)
        if self.ex.current == StateType.PAUSED and not any(
            r.current == StateType.PAUSED for r in self.ex.task_run_list if self._is_pause(r)
        ):
            if via_api:
                self.set_state(StateType.RESTARTED)
            self.set_state(StateType.RUNNING)

    def _is_pause(self, run: TaskRun) -> bool:
        return hasattr(self.task(run), "pause_plan")

    def on_timer(self, event: TimerFired) -> None:
        run = self.ex.find_task_run(event.task_run_id)
        if event.kind.startswith(sla.SLA_TIMER_PREFIX):
            self.on_sla_deadline(event.kind)
        elif event.kind == RESUME_FLOW:
            if self.ex.current == StateType.CREATED:
                self.begin()
        elif event.kind == RESTART_FAILED_TASK:
            if run is not None and run.current == StateType.RETRYING:
                self.put(run.with_state(StateType.CREATED, self.now))
                if self.ex.current == StateType.RETRYING and not any(
                    r.current == StateType.RETRYING for r in self.ex.task_run_list
                ):
                    self.set_state(StateType.RUNNING)
        elif event.kind == RESUME_PAUSE:
            if run is not None and run.current == StateType.PAUSED:
                self.on_resume({}, via_api=False, task_run_id=run.id)
        elif event.kind == PAUSE_TIMEOUT:
            if run is not None and run.current == StateType.PAUSED:
                self.log(run, LogLevel.WARN, "Pause timed out")
                self.finish(run, StateType.FAILED)
                if self.ex.current == StateType.PAUSED:
                    self.set_state(StateType.RUNNING)
        elif event.kind == CONTINUE_FLOWABLE and run is not None and run.current == StateType.PAUSED:
            self.restart_loop(run)

    def restart_loop(self, run: TaskRun) -> None:
        """Next iteration of a WaitFor/LoopUntil: drop the children and bump ``iteration``."""
        doomed = self._descendants(run.id)
        kept = tuple(r for r in self.ex.task_run_list if r.id not in doomed)
        updated = run.model_copy(update={"iteration": (run.iteration or 0) + 1}).with_state(
            StateType.RUNNING, self.now
        )
        self.ex = self.ex.model_copy(update={"task_run_list": kept}).with_task_runs([updated])

    def _descendants(self, run_id: str) -> set[str]:
        out: set[str] = set()
        stack = [run_id]
        while stack:
            for child in self.ex.children_of(stack.pop()):
                out.add(child.id)
                stack.append(child.id)
        return out

    # -- terminal handling for one task run -------------------------------------------------
    def finish(self, run: TaskRun, state: StateType, outputs: Mapping[str, Any] | None = None) -> None:
        """Put a task run into a terminal state, applying retry, warningOnRetry and allow* rules."""
        task = self.task(run)
        if outputs is not None:
            run = run.model_copy(update={"outputs": dict(outputs)})
        retryable = task.kind in ("runnable", "executable") or worker_side(task)
        if state == StateType.FAILED and retryable and self.try_retry(run, task):
            return
        run = close_attempt(run.with_state(state, self.now), state, self.now)
        if state == StateType.SUCCESS and run.attempt_count > 1:
            policy = retries.policy_for(self.flow, self.ex, run, task)
            if policy is not None and policy.warning_on_retry:
                state = StateType.WARNING
                run = run.with_state(state, self.now)
        if state == StateType.FAILED and task.allow_failure:
            state = StateType.WARNING
            run = run.with_state(state, self.now)
        if state == StateType.WARNING and task.allow_warning:
            run = run.with_state(StateType.SUCCESS, self.now)
        self.put(run)

    def try_retry(self, run: TaskRun, task: Task) -> bool:
        if self.ex.current in (StateType.KILLING, StateType.KILLED):
            return False
        plan = retries.plan(self.flow, self.ex, run, task, self.now)
        if plan is None:
            return False
        at = plan.date
        if plan.new_execution:
            self.put(run.with_state(StateType.FAILED, self.now).with_state(StateType.RETRIED, self.now))
            replay = new_attempt_execution(self.ex, self.now)
            if at > self.now:
                replay = replay.model_copy(update={"schedule_date": at})
            self.commands.append(CreateExecution(replay))
            self.end(StateType.RETRIED)
            return True
        self.put(run.with_state(StateType.FAILED, self.now).with_state(StateType.RETRYING, self.now))
        if self.ex.current == StateType.RUNNING:
            self.set_state(StateType.RETRYING)
        self.commands.append(ScheduleTimer(self.ex.id, RESTART_FAILED_TASK, at, run.id))
        return True

    # -- one resolution pass ---------------------------------------------------------------
    def step(self) -> None:
        current = self.ex.current
        if current in (StateType.CREATED, StateType.QUEUED):
            return
        if current.is_terminated:
            self.after_execution_step()
            return
        if current == StateType.RESTARTED:
            self.set_state(StateType.RUNNING)
        if self.ex.current == StateType.KILLING:
            self.kill_step()
            return
        self.resolve_flowables()
        if self.ex.current.is_terminated:
            return
        self.resolve_root()
        if self.ex.current.is_terminated:
            self.after_execution_step()
            return
        self.dispatch()

    def ctx(self, run: TaskRun) -> FlowableCtx:
        return FlowableCtx(self.ex, run, self.now, self.variables)

    def resolve_flowables(self) -> None:
        candidates = [
            r.id
            for r in self.ex.task_run_list
            if r.current == StateType.RUNNING
            and self.task(r).kind == "flowable"
            and not (worker_side(self.task(r)) and not worker_done(r))
        ]
        for run_id in candidates:
            run = self.ex.task_run(run_id)
            task = self.task(run)
            assert isinstance(task, FlowableTask)
            ctx = self.ctx(run)
            try:
                plan = self.pause_plan(task, run, ctx)
                if plan:
                    continue
                nexts = task.resolve_next(ctx)
                state = None if nexts else task.resolve_state(ctx)
                outputs = task.final_outputs(ctx) if state is not None and state.is_terminated else None
            except Exception as exc:  # a flowable failing must fail its run, never the executor
                self.log(run, LogLevel.ERROR, _message(exc))
                self.finish(run, StateType.FAILED)
                continue
            if ctx.new_outputs is not None:
                run = run.model_copy(update={"outputs": ctx.new_outputs})
                self.put(run)
            if nexts:
                self.put(*(self.new_run(child, run) for child in nexts))
            elif state == StateType.PAUSED:
                interval = (
                    task.continue_interval(ctx)
                    if hasattr(task, "continue_interval")
                    else timedelta(seconds=1)
                )
                self.put(run.with_state(StateType.PAUSED, self.now))
                self.commands.append(
                    ScheduleTimer(self.ex.id, CONTINUE_FLOWABLE, self.now + interval, run.id)
                )
            elif state is not None:
                merged = {**run.outputs, **(outputs or {})}
                self.finish(run, state, merged)

    def pause_plan(self, task: Task, run: TaskRun, ctx: FlowableCtx) -> bool:
        """Pause a Pause task's run the first time it runs; True when it was paused now."""
        if not hasattr(task, "pause_plan") or run.state.count(StateType.PAUSED) > 0:
            return False
        delay, timeout = task.pause_plan(ctx)  # type: ignore[attr-defined]
        self.put(run.with_state(StateType.PAUSED, self.now))
        if delay is not None:
            self.commands.append(ScheduleTimer(self.ex.id, RESUME_PAUSE, self.now + delay, run.id))
        elif timeout is not None:
            self.commands.append(ScheduleTimer(self.ex.id, PAUSE_TIMEOUT, self.now + timeout, run.id))
        if self.ex.current == StateType.RUNNING:
            self.set_state(StateType.PAUSED)
        return True

    def resolve_root(self) -> None:
        step = container_step(
            self.ex.children_of(None), self.flow.tasks, self.flow.errors, self.flow.finally_
        )
        if step.nexts:
            self.put(*(self.new_run(child, None) for child in step.nexts))
        elif step.state is not None:
            self.end(step.state)

    def dispatch(self) -> None:
        pending = [r for r in self.ex.task_run_list if r.current.is_created and not dispatched(r)]
        if not pending:
            return
        updates: list[TaskRun] = []
        for stale in pending:
            run = self.ex.task_run(stale.id)
            if not run.current.is_created or dispatched(run):
                continue
            task = self.task(run)
            try:
                if not self.run_if(task, run):
                    updates.append(run.with_state(StateType.SKIPPED, self.now))
                    continue
            except Exception as exc:
                self.log(run, LogLevel.ERROR, _message(exc))
                updates.append(run.with_state(StateType.FAILED, self.now))
                continue
            if task.kind == "runnable" or worker_side(task):
                attempt = TaskRunAttempt(state=State.new(self.now))
                run = run.model_copy(update={"attempts": (*(run.attempts or ()), attempt)})
                updates.append(run)
                self.commands.append(RunTask(self.job(task, run)))
            elif task.kind == "flowable":
                updates.append(run.with_state(StateType.RUNNING, self.now))
            elif task.kind == "executable":
                assert isinstance(task, ExecutableTask)
                attempt = TaskRunAttempt(state=State.new(self.now, StateType.RUNNING))
                running = run.with_state(StateType.RUNNING, self.now)
                running = running.model_copy(update={"attempts": (*(run.attempts or ()), attempt)})
                ctx = self.ctx(running)
                try:
                    requests = task.subflow_requests(ctx)
                except Exception as exc:
                    self.log(run, LogLevel.ERROR, _message(exc))
                    failed = running.with_state(StateType.FAILED, self.now)
                    updates.append(close_attempt(failed, StateType.FAILED, self.now))
                    continue
                if ctx.new_outputs is not None:
                    running = running.model_copy(update={"outputs": ctx.new_outputs})
                if not requests:
                    done = running.with_state(StateType.SUCCESS, self.now)
                    updates.append(close_attempt(done, StateType.SUCCESS, self.now))
                    continue
                updates.append(running)
                for request in requests:
                    self.commands.append(StartSubflow(self.ex.id, run.id, request))
            else:
                assert isinstance(task, ExecutionTask)
                self.put(*updates)
                updates = []
                self.apply_execution_task(task, run.with_state(StateType.RUNNING, self.now))
        self.put(*updates)

    def run_if(self, task: Task, run: TaskRun) -> bool:
        condition = task.run_if
        if condition is True or condition == "true":
            return True
        if condition is False:
            return False
        from tiercel.templating import is_truthy, render

        return is_truthy(render(str(condition), self.variables(run)))

    def job(self, task: Task, run: TaskRun) -> WorkerJob:
        variables = dict(self.variables(run))

        inputs = variables.get("inputs") or {}
        secrets = [
            str(inputs[i.id])
            for i in self.flow.inputs or []
            if i.type == "SECRET" and inputs.get(i.id) not in (None, "")
        ]
        return WorkerJob.model_construct(
            masked=secrets,
            execution_id=self.ex.id,
            namespace=self.ex.namespace,
            flow_id=self.ex.flow_id,
            flow_revision=self.ex.flow_revision,
            task=task,
            task_run=run,
            variables=variables,
            version=1,
            kind="task",
        )

    def apply_execution_task(self, task: ExecutionTask, run: TaskRun) -> None:
        ctx = self.ctx(run)
        try:
            change = task.change(ctx)
        except Exception as exc:
            self.log(run, LogLevel.ERROR, _message(exc))
            self.finish(run, StateType.FAILED)
            return
        if change.message:
            self.log(run, LogLevel.INFO, change.message)
        if change.labels:
            labels = {label.key: label.value for label in self.ex.labels}
            labels.update(change.labels)
            self.ex = self.ex.model_copy(
                update={"labels": tuple(Label(key=k, value=v) for k, v in labels.items())}
            )
        if change.variables:
            self.ex = self.ex.model_copy(update={"variables": {**self.ex.variables, **change.variables}})
        self.finish(run.model_copy(update={"outputs": dict(change.outputs)}), change.state)
        if change.exit_state is not None:
            self.exit(change.exit_state)

    def exit(self, state: StateType) -> None:
        if state == StateType.KILLED:
            self.apply(Kill())
            return
        closing = []
        for run in self.ex.task_run_list:
            if not run.current.is_terminated:
                closing.append(
                    run.with_state(
                        StateType.KILLED if run.current.is_running else StateType.SKIPPED, self.now
                    )
                )
        self.put(*closing)
        if closing:
            self.commands.append(KillTasks(self.ex.id))
        self.end(state)

    def kill_step(self) -> None:
        updates = []
        for run in self.ex.task_run_list:
            current = run.current
            if current.is_terminated:
                continue
            kind = self.task(run).kind
            if current.is_created or current in (StateType.PAUSED, StateType.RETRYING):
                updates.append(
                    close_attempt(run.with_state(StateType.KILLED, self.now), StateType.KILLED, self.now)
                )
            elif kind == "flowable":
                children = self.ex.children_of(run.id)
                if all(c.current.is_terminated for c in children):
                    updates.append(run.with_state(StateType.KILLED, self.now))
                elif current != StateType.KILLING:
                    updates.append(run.with_state(StateType.KILLING, self.now))
        self.put(*updates)
        if all(r.current.is_terminated for r in self.ex.task_run_list):
            self.end(StateType.KILLED)

    def on_sla_deadline(self, kind: str) -> None:
        rule = sla.sla_for_timer(self.flow, kind)
        if rule is None or self.ex.current.is_terminated:
            return
        self.log(
            None, LogLevel.WARN, f"SLA '{rule.id}' violated: the execution ran longer than {rule.duration}"
        )
        self.ex = sla.with_sla_labels(self.ex, rule)
        state = sla.violation_state(rule)
        if state is not None:
            self.exit(state)

    def end(self, state: StateType) -> None:
        if state not in (StateType.KILLED, StateType.RETRIED) and self.flow.sla:
            for rule in sla.violated_assertions(self.flow, self.base_variables()):
                self.log(None, LogLevel.WARN, f"SLA '{rule.id}' violated: `{rule.assert_}` is false")
                self.ex = sla.with_sla_labels(self.ex, rule)
                state = sla.violation_state(rule) or state
        outputs: dict[str, Any] | None = self.ex.outputs
        if self.flow.outputs and state not in (StateType.KILLED, StateType.CANCELLED, StateType.RETRIED):
            try:
                outputs = self.flow_outputs()
            except Exception as exc:
                self.log(None, LogLevel.ERROR, f"Failed to render outputs: {_message(exc)}")
                outputs, state = None, StateType.FAILED
        self.ex = self.ex.model_copy(update={"outputs": outputs})
        self.set_state(state)
        if not self.flow.after_execution:
            self.commands.append(ExecutionEnded(self.ex.id, self.ex.current))

    def flow_outputs(self) -> dict[str, Any]:
        from tiercel.flows.inputs import typed_outputs
        from tiercel.templating import render_typed

        variables = self.base_variables()
        from tiercel.templating import render_value

        rendered = {
            o.id: render_typed(o.value, variables)
            if isinstance(o.value, str)
            else render_value(o.value, variables)
            for o in self.flow.outputs or []
        }
        return typed_outputs(self.flow.outputs or [], rendered)

    def after_execution_step(self) -> None:
        tasks = self.flow.after_execution
        if not tasks:
            return
        if self._after_done(self.original):
            return
        ids = {t.id for t in tasks}
        enabled_tasks = [t for t in tasks if not t.disabled]
        from tiercel.engine.flowable import _run_all, runs_by_task

        runs = [r for r in self.ex.children_of(None) if r.task_id in ids]
        nexts, _ = _run_all(runs_by_task(runs, enabled_tasks), enabled_tasks, None)
        if nexts:
            self.put(*(self.new_run(child, None) for child in nexts))
        self.resolve_flowables()
        self.dispatch()
        if self._after_done(self.ex) and not self._ended:
            self._ended = True
            self.commands.append(ExecutionEnded(self.ex.id, self.ex.current))

    def _after_done(self, execution: Execution) -> bool:
        """Every afterExecution task has a terminated run (so the end was already reported)."""
        tasks = [t for t in self.flow.after_execution or [] if not t.disabled]
        if not execution.current.is_terminated:
            return False
        runs = {r.task_id: r for r in execution.children_of(None)}
        return all(t.id in runs and runs[t.id].current.is_terminated for t in tasks)


def _message(exc: BaseException) -> str:
    if isinstance(exc, TiercelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
