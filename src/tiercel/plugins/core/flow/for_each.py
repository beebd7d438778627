"""ForEach and the deprecated EachSequential/EachParallel: one group of child runs per value."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr

from tiercel.engine.flowable import Step, group_step
from tiercel.errors import TaskError
from tiercel.model.state import StateType
from tiercel.plugins.base import ChildRun, FlowableContext, FlowableTask, Task

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask


def loop_values(ctx: FlowableContext, raw: Any) -> list[str]:
    """Render and normalise loop values: strings stay, numbers are printed, maps become JSON."""
    values = ctx.render_typed(raw) if isinstance(raw, str) else ctx.render(raw)
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError as exc:
            raise TaskError(f"Unable to parse values as a JSON list: {values!r}") from exc
    if not isinstance(values, list):
        raise TaskError(f"Values must be a list, got {type(values).__name__}")
    nulls = sum(1 for v in values if v is None)
    if nulls:
        raise TaskError(f"Found '{nulls}' null values on Each, with values={_java_repr(values)}")
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        if isinstance(value, (dict, list)):
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            raise TaskError(f"Unsupported loop value type {type(value).__name__}")
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _java_repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_repr(v) for v in value) + "]"
    return str(value)


class _Loop(FlowableTask):
    _static_values: list[str] | None = PrivateAttr(default=None)

    tasks: list[AnyTask] = Field(min_length=1)
    errors: list[AnyTask] | None = None
    finally_: list[AnyTask] | None = Field(default=None, alias="finally")

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {"tasks": self.tasks, "errors": self.errors or [], "finally": self.finally_ or []}

    def raw_values(self) -> Any:
        raise NotImplementedError

    def limits(self) -> tuple[int, int | None]:
        """(groups running at once, 0 = all; concurrency inside a group, None = sequential)."""
        return 1, None

    def step(self, ctx: FlowableContext) -> Step:
        memo = getattr(ctx, "memo", None)
        if memo is not None and "step" in memo:
            return memo["step"]  # type: ignore[no-any-return]
        step = self._step(ctx)
        if memo is not None:
            memo["step"] = step
        return step

    def values_of(self, ctx: FlowableContext) -> list[str]:
        """Loop values; computed once per task when they contain no template."""
        raw = self.raw_values()
        from tiercel.engine.flowable import _has_template

        if _has_template(raw):
            return loop_values(ctx, raw)
        if self._static_values is None:
            self._static_values = loop_values(ctx, raw)
        return self._static_values

    def _step(self, ctx: FlowableContext) -> Step:
        values = self.values_of(ctx)
        group_limit, inner = self.limits()
        return group_step(
            ctx.children,
            values,
            self.tasks,
            self.errors,
            self.finally_,
            group_limit=group_limit,
            in_group_concurrent=inner,
        )

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return self.step(ctx).nexts

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        return self.step(ctx).state


class ForEach(_Loop):
    type: Literal["io.kestra.plugin.core.flow.ForEach"]
    values: Any
    concurrency_limit: int = Field(default=1, ge=0)

    def raw_values(self) -> Any:
        return self.values

    def limits(self) -> tuple[int, int | None]:
        return self.concurrency_limit, None


class EachSequential(_Loop):
    type: Literal["io.kestra.plugin.core.flow.EachSequential", "io.kestra.core.tasks.flows.EachSequential"]
    value: Any

    def raw_values(self) -> Any:
        return self.value


class EachParallel(_Loop):
    type: Literal["io.kestra.plugin.core.flow.EachParallel", "io.kestra.core.tasks.flows.EachParallel"]
    value: Any
    concurrent: int = Field(default=0, ge=0)

    def raw_values(self) -> Any:
        return self.value

    def limits(self) -> tuple[int, int | None]:
        return 0, 0
