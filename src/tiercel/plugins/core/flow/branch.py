"""If and Switch: choose one task list at run time, evaluated once and kept in the outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tiercel.engine.flowable import Step, container_step
from tiercel.errors import TaskError
from tiercel.model.state import StateType
from tiercel.plugins.base import ChildRun, FlowableContext, FlowableTask, Task

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask


class _Branching(FlowableTask):
    errors: list[AnyTask] | None = None
    finally_: list[AnyTask] | None = Field(default=None, alias="finally")

    def chosen(self, ctx: FlowableContext) -> list[Task]:
        raise NotImplementedError

    def step(self, ctx: FlowableContext) -> Step:
        return container_step(ctx.children, self.chosen(ctx), self.errors, self.finally_)

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return self.step(ctx).nexts

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        return self.step(ctx).state


class If(_Branching):
    type: Literal["io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If"]
    condition: Any
    then: list[AnyTask] = Field(min_length=1)
    else_: list[AnyTask] | None = Field(default=None, alias="else")

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {
            "then": self.then,
            "else": self.else_ or [],
            "errors": self.errors or [],
            "finally": self.finally_ or [],
        }

    def chosen(self, ctx: FlowableContext) -> list[Task]:
        if "evaluationResult" not in ctx.outputs:
            from tiercel.templating import is_truthy

            raw = self.condition
            result = is_truthy(ctx.render(raw) if isinstance(raw, str) else raw)
            ctx.set_outputs({"evaluationResult": result})
        return list(self.then) if ctx.outputs["evaluationResult"] else list(self.else_ or [])


class Switch(_Branching):
    type: Literal["io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch"]
    value: Any
    cases: dict[str, list[AnyTask]] | None = None
    defaults: list[AnyTask] | None = None

    def branches(self) -> Mapping[str, Sequence[Task]]:
        out: dict[str, Sequence[Task]] = {f"case:{k}": v for k, v in (self.cases or {}).items()}
        out["defaults"] = self.defaults or []
        out["errors"] = self.errors or []
        out["finally"] = self.finally_ or []
        return out

    def chosen(self, ctx: FlowableContext) -> list[Task]:
        if "value" not in ctx.outputs:
            rendered = ctx.render(self.value) if isinstance(self.value, str) else self.value
            key = _key(rendered)
            matched = key in (self.cases or {})
            if not matched and not self.defaults:
                raise TaskError(
                    f"Switch did not find any matching case for value '{key}' and has no defaults"
                )
            ctx.set_outputs({"value": key, "defaults": not matched})
        if ctx.outputs["defaults"]:
            return list(self.defaults or [])
        return list((self.cases or {})[ctx.outputs["value"]])


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
