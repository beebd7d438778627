"""The executor role: the I/O shell around ``decide()``.

It consumes executor events, groups them per execution, and for each execution — under the
repository's lock on that execution — loads it, calls ``decide()`` once with every pending event,
saves the result, then carries out the commands. Events are acknowledged only after the new state
is saved and the commands are published, so a crash replays them; ``decide()`` ignores duplicates.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from tiercel.clock import Clock, SystemClock
from tiercel.engine import commands as cmd
from tiercel.engine import events as ev
from tiercel.engine.decide import Settings, decide
from tiercel.engine.executions import CORRELATION_ID, new_execution
from tiercel.engine.variables import outputs_map
from tiercel.errors import TiercelError
from tiercel.model.execution import Execution, ExecutionTrigger
from tiercel.model.flow import Flow
from tiercel.model.logs import LogEntry
from tiercel.model.messages import ExecutorEvent, LogBatch, SubflowExecutionResult
from tiercel.model.state import StateType
from tiercel.model.task import LogLevel

log = logging.getLogger(__name__)

EXECUTOR_TOPIC = "executor"
SUBFLOW_TRIGGER = "io.kestra.plugin.core.flow.Subflow"


def crash_decision(execution: Execution, exc: Exception, now: Any) -> cmd.Decision:
    """A bug must never leave an execution stuck: fail it, say why, and end it (Kestra does too)."""
    runs = [
        run.with_state(StateType.FAILED, now) if not run.current.is_terminated else run
        for run in execution.task_run_list
    ]
    failed = execution.with_task_runs(runs).with_state(StateType.FAILED, now)
    entry = LogEntry(
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        execution_id=execution.id,
        timestamp=now,
        level=LogLevel.ERROR,
        message=f"Internal error while processing the execution: {type(exc).__name__}: {exc}",
    )
    return cmd.Decision(failed, (cmd.EmitLogs((entry,)), cmd.ExecutionEnded(failed.id, StateType.FAILED)))


class FlowSource(Protocol):
    async def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow | None: ...


class Publisher(Protocol):
    async def publish(self, topic: str, message: Any, key: str | None = None) -> None: ...
    async def publish_many(self, topic: str, messages: Any, key: str | None = None) -> None: ...


class Executor:
    def __init__(
        self,
        queue: Publisher,
        repositories: Any,
        flows: FlowSource,
        *,
        clock: Clock | None = None,
        settings: Settings | None = None,
        schedule_timer: Callable[[str, str, Any, str | None], None] | None = None,
        resolve_inputs: Callable[[Flow, dict[str, Any], str], Awaitable[dict[str, Any]]] | None = None,
        on_update: Callable[[Execution], None] | None = None,
        log_sink: Callable[[list[LogEntry]], Awaitable[None]] | None = None,
        on_state_change: Callable[[Execution, Execution | None], Awaitable[None]] | None = None,
    ) -> None:
        self.queue = queue
        self.repos = repositories
        self.flows = flows
        self.clock = clock or SystemClock()
        self.settings = settings or Settings()
        self.schedule_timer = schedule_timer
        self.resolve_inputs = resolve_inputs
        self.on_update = on_update
        self.log_sink = log_sink
        self.on_state_change = on_state_change

    async def handle_batch(self, events: Sequence[ExecutorEvent]) -> None:
        grouped: dict[str, list[ExecutorEvent]] = {}
        for event in events:
            grouped.setdefault(event.execution_id, []).append(event)
        for execution_id, group in grouped.items():
            await self.handle(execution_id, group)

    async def handle(self, execution_id: str, events: Sequence[ExecutorEvent]) -> Execution | None:
        async with self.repos.executions.lock(execution_id) as locked:
            execution = locked.execution
            if execution is None:
                log.warning("event for unknown execution %s dropped", execution_id)
                return None
            flow = await self.flows.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
            if flow is None:
                failed = execution.with_state(StateType.FAILED, self.clock.now())
                await locked.save(failed)
                missing = True
            else:
                missing = False
                decide_events = [await self._to_event(execution, flow, e) for e in events]
                try:
                    decision = decide(flow, execution, decide_events, self.clock.now(), self.settings)
                except Exception as exc:
                    log.exception("decide() failed for execution %s", execution.id)
                    decision = crash_decision(execution, exc, self.clock.now())
                new = decision.execution
                if new is not execution:
                    await locked.save(new)
                # Commands go out before the new state commits (at the block's end): a crash in
                # between replays the event and sends them again (at least once), never loses them.
                for command in decision.commands:
                    await self.carry_out(command, new, flow)
        if missing:
            await self.emit_logs(
                [self._log(execution, f"Flow {execution.namespace}.{execution.flow_id} not found")]
            )
            if self.on_update is not None:
                self.on_update(failed)
            return failed
        if new.current != execution.current:
            await self.state_changed(new, execution)
        if new is not execution and self.on_update is not None:
            self.on_update(new)
        return new

    async def state_changed(self, execution: Execution, previous: Execution | None) -> None:
        """Tell ``on_state_change`` (flow triggers) once the new state is saved; its errors stay its own."""
        if self.on_state_change is None:
            return
        try:
            await self.on_state_change(execution, previous)
        except Exception:
            log.exception("state-change hook failed for execution %s", execution.id)

    async def _to_event(self, execution: Execution, flow: Flow, event: ExecutorEvent) -> ev.Event:
        kind = event.kind
        if kind == "start":
            running = 0
            if flow.concurrency is not None and execution.current == StateType.CREATED:
                running = await self.repos.executions.count_running(execution.namespace, execution.flow_id)
            return ev.Start(running=running)
        if kind == "result" and event.result is not None:
            return ev.TaskResult(event.result.task_run, tuple(event.result.dynamic_task_runs))
        if kind == "subflow" and event.subflow is not None:
            s = event.subflow
            return ev.SubflowResult(
                s.parent_task_run_id, s.state, s.child_execution_id, s.outputs, s.error, s.task_outputs
            )
        if kind == "kill":
            return ev.Kill()
        if kind == "resume":
            return ev.Resume(dict(event.resume_outputs or {}))
        if kind == "timer" and event.timer_kind:
            return ev.TimerFired(event.timer_kind, event.task_run_id)
        if kind == "unqueue":
            return ev.Unqueue()
        return ev.Continue()

    def _log(self, execution: Execution, message: str, level: LogLevel = LogLevel.ERROR) -> LogEntry:
        return LogEntry(
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            execution_id=execution.id,
            timestamp=self.clock.now(),
            level=level,
            message=message,
        )

    async def emit_logs(self, logs: Sequence[LogEntry]) -> None:
        if self.log_sink is not None:
            await self.log_sink(list(logs))
        else:
            await self.queue.publish("logs", LogBatch(logs=list(logs)))

    async def send(self, execution_id: str, **fields: Any) -> None:
        await self.queue.publish(
            EXECUTOR_TOPIC, ExecutorEvent(execution_id=execution_id, **fields), key=execution_id
        )

    # -- commands ------------------------------------------------------------------------
    async def carry_out(self, command: cmd.Command, execution: Execution, flow: Flow) -> None:
        if isinstance(command, cmd.RunTask):
            await self.queue.publish("worker_jobs", command.job, key=execution.id)
        elif isinstance(command, cmd.EmitLogs):
            await self.emit_logs(command.logs)
        elif isinstance(command, cmd.ScheduleTimer):
            if self.schedule_timer is None:
                raise TiercelError("no timer service configured")
            scheduled = self.schedule_timer(
                command.execution_id, command.kind, command.date, command.task_run_id
            )
            if inspect.isawaitable(scheduled):
                await scheduled
        elif isinstance(command, cmd.KillTasks):
            from tiercel.model.messages import ExecutionKilled

            await self.queue.publish(
                "kills", ExecutionKilled(execution_id=command.execution_id, state="EXECUTED")
            )
        elif isinstance(command, cmd.KillSubflows):
            for child in await self.repos.executions.children(command.parent_execution_id):
                if not child.current.is_terminated:
                    await self.send(child.id, kind="kill")
        elif isinstance(command, cmd.StartSubflow):
            await self.start_subflow(execution, command)
        elif isinstance(command, cmd.CreateExecution):
            await self.repos.executions.save(command.execution)
            await self.send(command.execution.id, kind="start")
        elif isinstance(command, cmd.ExecutionEnded):
            await self.on_end(execution, flow)

    async def start_subflow(self, parent: Execution, command: cmd.StartSubflow) -> None:
        request = command.request
        run_id = command.parent_task_run_id

        async def reply(state: StateType, child_id: str | None = None, error: str | None = None) -> None:
            result = SubflowExecutionResult(
                parent_execution_id=parent.id,
                parent_task_run_id=run_id,
                child_execution_id=child_id,
                state=state,
                error=error,
            )
            await self.send(parent.id, kind="subflow", subflow=result)

        flow = await self.flows.get_flow(request.namespace, request.flow_id, request.revision)
        if flow is None or flow.disabled:
            what = "disabled" if flow is not None else "not found"
            await reply(
                StateType.FAILED,
                error=f"Unable to start subflow: flow {request.namespace}.{request.flow_id} {what}",
            )
            return
        run = parent.find_task_run(run_id)
        trigger = ExecutionTrigger(
            id=run.task_id if run else "subflow",
            type=SUBFLOW_TRIGGER,
            variables={
                "executionId": parent.id,
                "namespace": parent.namespace,
                "flowId": parent.flow_id,
                "flowRevision": parent.flow_revision,
                "taskRunId": run_id,
            },
        )
        labels: dict[str, str] = {}
        if request.inherit_labels:
            labels.update({lb.key: lb.value for lb in parent.labels if not lb.key.startswith("system.")})
        labels.update(request.labels)
        labels[CORRELATION_ID] = parent.labels_map().get(CORRELATION_ID, parent.id)
        from tiercel.ids import new_id

        child_id = new_id()
        try:
            inputs = dict(request.inputs)
            if self.resolve_inputs is not None:
                inputs = await self.resolve_inputs(flow, inputs, child_id)
        except TiercelError as exc:
            await reply(StateType.FAILED, error=str(exc))
            return
        child = new_execution(
            flow,
            self.clock.now(),
            inputs=inputs,
            labels=labels,
            trigger=trigger,
            parent_id=parent.id,
            execution_id=child_id,
        )
        await self.repos.executions.save(child)
        await self.send(child.id, kind="start")
        await reply(StateType.RUNNING, child.id)

    async def on_end(self, execution: Execution, flow: Flow) -> None:
        trigger = execution.trigger
        if execution.parent_id and trigger is not None and trigger.type == SUBFLOW_TRIGGER:
            run_id = trigger.variables.get("taskRunId")
            if run_id:
                result = SubflowExecutionResult(
                    parent_execution_id=execution.parent_id,
                    parent_task_run_id=run_id,
                    child_execution_id=execution.id,
                    state=execution.current,
                    outputs=execution.outputs,
                    task_outputs=outputs_map(execution),
                )
                await self.send(execution.parent_id, kind="subflow", subflow=result)
        if flow.concurrency is not None:
            queued = await self.repos.executions.oldest_queued(execution.namespace, execution.flow_id)
            if queued is not None:
                await self.send(queued.id, kind="unqueue")
