"""Pause, WaitFor/LoopUntil and Sleep: flow control that waits."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tiercel.engine.flowable import container_step
from tiercel.model.base import Model
from tiercel.model.inputs import Input
from tiercel.model.state import StateType
from tiercel.plugins.base import ChildRun, FlowableContext, FlowableTask, RunContext, RunnableTask, Task
from tiercel.plugins.core.convert import to_duration

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask


class Pause(FlowableTask):
    """Pauses the execution until resumed, or until ``delay`` elapses (auto-resume), or fails
    after ``timeout``. Deprecated ``tasks`` run after the resume."""

    type: Literal["io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause"]
    delay: timedelta | str | None = None
    timeout: timedelta | str | None = None
    pause_duration: timedelta | str | None = None
    behavior: Literal["RESUME", "WARN", "CANCEL", "FAIL"] | None = None
    on_resume: list[Input] | None = None
    tasks: list[AnyTask] | None = None
    errors: list[AnyTask] | None = None

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {"tasks": self.tasks or [], "errors": self.errors or []}

    def pause_plan(self, ctx: FlowableContext) -> tuple[timedelta | None, timedelta | None]:
        """(auto-resume delay, failure timeout), rendered."""
        delay = self.delay if self.delay is not None else None
        if delay is None and self.pause_duration is not None and self.behavior in (None, "RESUME"):
            delay = self.pause_duration
        timeout = self.timeout
        if timeout is None and self.pause_duration is not None and self.behavior == "FAIL":
            timeout = self.pause_duration
        return (
            to_duration(ctx.render(delay), "delay") if delay is not None else None,
            to_duration(ctx.render(timeout), "timeout") if timeout is not None else None,
        )

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return container_step(ctx.children, self.tasks or [], self.errors).nexts

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        if not self.tasks:
            return StateType.SUCCESS
        return container_step(ctx.children, self.tasks, self.errors).state


class CheckFrequency(Model):
    max_iterations: int | None = 100
    max_duration: timedelta | None = timedelta(hours=1)
    interval: timedelta = timedelta(seconds=1)


class WaitFor(FlowableTask):
    """Runs its tasks again and again *until* ``condition`` is true (renamed LoopUntil later)."""

    type: Literal["io.kestra.plugin.core.flow.WaitFor", "io.kestra.plugin.core.flow.LoopUntil"]
    tasks: list[AnyTask] = Field(min_length=1)
    condition: Any
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency)
    fail_on_max_reached: bool = False

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {"tasks": self.tasks}

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        iteration = ctx.task_run.iteration or 0
        if ctx.task_run.outputs.get("iterationCount") != iteration + 1:
            ctx.set_outputs({"iterationCount": iteration + 1})
        nexts = container_step(ctx.children, self.tasks).nexts
        return [ChildRun(c.task, c.value, iteration) for c in nexts]

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        state = container_step(ctx.children, self.tasks).state
        if state is None:
            return None
        count = (ctx.task_run.iteration or 0) + 1
        ctx.set_outputs({"iterationCount": count})
        if state not in (StateType.SUCCESS, StateType.WARNING):
            return state
        from tiercel.templating import is_truthy

        raw = self.condition
        if is_truthy(ctx.render(raw) if isinstance(raw, str) else raw):
            return state
        freq = self.check_frequency
        started = ctx.task_run.state.start_date
        too_long = (
            freq.max_duration is not None and started is not None and ctx.now - started >= freq.max_duration
        )
        if (freq.max_iterations is not None and count >= freq.max_iterations) or too_long:
            return StateType.FAILED if self.fail_on_max_reached else StateType.SUCCESS
        return StateType.PAUSED

    def continue_interval(self, ctx: FlowableContext) -> timedelta:
        return self.check_frequency.interval


def _iso(duration: timedelta) -> str:
    from tiercel.model.inputs import format_duration

    return format_duration(duration)


class Sleep(RunnableTask):
    type: Literal["io.kestra.plugin.core.flow.Sleep", "io.kestra.core.tasks.flows.Sleep"]
    duration: timedelta | str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        duration = to_duration(ctx.render(self.duration))
        ctx.logger.info(f"Waiting for {_iso(duration)}")
        await asyncio.sleep(duration.total_seconds())
        return None
