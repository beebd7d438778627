"""A Flow trigger's ``preconditions``: upstream flows and ``where`` filters to meet within a time window.

Every ``flows`` entry and every ``where`` entry is one sub-condition; the preconditions hold once
each has been met by some upstream execution inside the window (see ``condition_windows.record``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from tiercel.model.base import Model
from tiercel.model.execution import labels_from
from tiercel.model.state import StateType
from tiercel.plugins.base import ConditionContext, window_key
from tiercel.plugins.core.condition_windows import TimeWindow, record

FilterField = Literal["FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION"]
FilterType = Literal[
    "EQUAL_TO",
    "NOT_EQUAL_TO",
    "IN",
    "NOT_IN",
    "IS_TRUE",
    "IS_FALSE",
    "IS_NULL",
    "IS_NOT_NULL",
    "STARTS_WITH",
    "ENDS_WITH",
    "REGEX",
    "CONTAINS",
]
_EXPRESSION_TYPES = {"IS_TRUE", "IS_FALSE", "IS_NULL", "IS_NOT_NULL"}


class UpstreamFlow(Model):
    """One upstream flow: its executions count when in ``states`` (any, if absent) with ``labels``."""

    namespace: str
    flow_id: str
    states: list[StateType] | None = None
    labels: Any = None

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if (execution.namespace, execution.flow_id) != (self.namespace, self.flow_id):
            return False
        if self.states and execution.current not in self.states:
            return False
        present = {(label.key, label.value) for label in execution.labels}
        return all((label.key, label.value) in present for label in labels_from(self.labels))


class Filter(Model):
    """``field`` of the upstream execution compared by ``type`` with ``value``/``values``.

    For ``EXPRESSION`` the ``value`` is a template rendered against the upstream execution, tested
    with ``IS_TRUE``/``IS_FALSE``/``IS_NULL``/``IS_NOT_NULL``.
    """

    field: FilterField
    type: FilterType
    value: Any = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Filter:
        if self.field == "EXPRESSION" and self.type not in _EXPRESSION_TYPES:
            raise ValueError(f"filter type {self.type} does not apply to the field EXPRESSION")
        if self.field != "EXPRESSION" and self.type in ("IS_TRUE", "IS_FALSE"):
            raise ValueError(f"filter type {self.type} only applies to the field EXPRESSION")
        if self.type in ("IN", "NOT_IN") and self.values is None and self.value is None:
            raise ValueError(f"filter type {self.type} needs `values`")
        return self

    def test(self, ctx: ConditionContext) -> bool:
        if self.field == "EXPRESSION":
            from tiercel.templating import is_truthy, render_typed

            rendered = render_typed(str(self.value), ctx.variables) if self.value is not None else None
            if self.type in ("IS_NULL", "IS_NOT_NULL"):
                return (rendered is None) == (self.type == "IS_NULL")
            return is_truthy(rendered) == (self.type == "IS_TRUE")
        execution = ctx.execution
        subject = {
            "FLOW_ID": execution.flow_id,
            "NAMESPACE": execution.namespace,
            "STATE": execution.current.value,
        }[self.field]
        return _compare(self.type, subject, self.value, self.values)


def _compare(kind: str, subject: str, value: Any, values: list[Any] | None) -> bool:
    text = "" if value is None else str(value)
    options = [str(v) for v in (values if values is not None else [value])]
    if kind == "EQUAL_TO":
        return subject == text
    if kind == "NOT_EQUAL_TO":
        return subject != text
    if kind == "IN":
        return subject in options
    if kind == "NOT_IN":
        return subject not in options
    if kind == "STARTS_WITH":
        return subject.startswith(text)
    if kind == "ENDS_WITH":
        return subject.endswith(text)
    if kind == "CONTAINS":
        return text in subject
    if kind == "REGEX":
        return re.fullmatch(text, subject) is not None
    return kind == "IS_NOT_NULL"  # fields of an execution are never null


class Where(Model):
    """Filters combined with ``operand`` (AND by default)."""

    id: str
    operand: Literal["AND", "OR"] = "AND"
    filters: list[Filter] = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        results = (f.test(ctx) for f in self.filters)
        return all(results) if self.operand == "AND" else any(results)


class Preconditions(Model):
    id: str = Field(default="preconditions", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    flows: list[UpstreamFlow] = Field(default_factory=list)
    where: list[Where] = Field(default_factory=list)
    time_window: TimeWindow = Field(
        default_factory=TimeWindow, validation_alias=AliasChoices("timeWindow", "timeSLA", "time_window")
    )
    reset_on_success: bool = True

    def sub_conditions(self) -> dict[str, Any]:
        named: dict[str, Any] = {f"flows[{i}]": flow for i, flow in enumerate(self.flows)}
        named.update({f"where[{where.id}]": where for where in self.where})
        return named

    def test(self, ctx: ConditionContext) -> bool:
        named = self.sub_conditions()
        if not named:
            return True
        matched = [name for name, condition in named.items() if condition.test(ctx)]
        if ctx.store is None:
            return len(matched) == len(named)
        return record(
            ctx.store,
            window_key(ctx.scope, self.id),
            self.time_window,
            named,
            matched,
            ctx.now,
            reset_on_success=self.reset_on_success,
        )
