"""Sequential, Parallel and the deprecated AllowFailure: a task list with errors/finally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tiercel.engine.flowable import Step, container_step
from tiercel.model.state import StateType
from tiercel.plugins.base import ChildRun, FlowableContext, FlowableTask, Task

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask


class _ListFlowable(FlowableTask):
    """A flowable with a ``tasks`` list plus local ``errors`` and ``finally`` lists."""

    tasks: list[AnyTask] = Field(min_length=1)
    errors: list[AnyTask] | None = None
    finally_: list[AnyTask] | None = Field(default=None, alias="finally")

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {"tasks": self.tasks, "errors": self.errors or [], "finally": self.finally_ or []}

    def step(self, ctx: FlowableContext) -> Step:
        return container_step(ctx.children, self.tasks, self.errors, self.finally_)

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return self.step(ctx).nexts

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        return self.step(ctx).state


class Sequential(_ListFlowable):
    type: Literal["io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential"]


class Parallel(_ListFlowable):
    type: Literal["io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel"]
    concurrent: int = Field(default=0, ge=0)

    def step(self, ctx: FlowableContext) -> Step:
        return container_step(
            ctx.children, self.tasks, self.errors, self.finally_, concurrent=self.concurrent
        )


class AllowFailure(_ListFlowable):
    """Deprecated: a Sequential whose failure becomes a WARNING once its errors branch ran."""

    type: Literal["io.kestra.plugin.core.flow.AllowFailure", "io.kestra.core.tasks.flows.AllowFailure"]

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        state = self.step(ctx).state
        return StateType.WARNING if state == StateType.FAILED else state
