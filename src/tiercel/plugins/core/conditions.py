"""Conditions (``io.kestra.plugin.core.condition.*``): pure tests of an execution, a flow or a date.

Each class names Kestra's type first, then the old ``…Condition`` aliases. Triggers keep their
``conditions`` as plain maps and parse them with :func:`parse_condition`, which knows every condition
class of the plugin registry (or the core set before the registry exists).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time
from functools import cached_property
from typing import Any, ClassVar, Literal, get_args

import pydantic
from pydantic import Field, field_validator

from tiercel.model.execution import labels_from
from tiercel.model.state import StateType
from tiercel.model.task import Duration
from tiercel.plugins.base import Condition, ConditionContext, window_key
from tiercel.plugins.core.condition_windows import TimeWindow, record

DayOfWeek = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
DAYS: tuple[str, ...] = get_args(DayOfWeek)


def parse_condition(data: Any) -> Condition:
    """A condition object from its map; ``ValueError`` names an unknown type ("Invalid type: …")."""
    if isinstance(data, Condition):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"a condition must be a map with a `type`, got {data!r}")
    type_name = data.get("type")
    if not type_name:
        raise ValueError("missing required property `type`")
    cls = condition_classes().get(str(type_name))
    if cls is None:
        raise ValueError(f"Invalid type: {type_name}")
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValueError("; ".join(_describe(err, str(type_name)) for err in exc.errors())) from None


def _describe(err: Any, type_name: str) -> str:
    where = ".".join(str(part) for part in err["loc"]) or type_name
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "missing required property"
    return f"{type_name}: {where}: {message}"


def parse_conditions(items: Iterable[Any]) -> list[Condition]:
    return [parse_condition(item) for item in items]


def condition_classes() -> dict[str, type[Condition]]:
    from tiercel.plugins.registry import current_registry

    known = {name: cls for cls in PLUGINS for name in cls.type_names()}
    registry = current_registry()
    if registry is not None:
        known.update(registry.conditions)
    return known


def _render_text(template: str, ctx: ConditionContext) -> str:
    from tiercel.templating import render

    return render(template, ctx.variables)


def _truthy(template: str, ctx: ConditionContext) -> bool:
    from tiercel.templating import is_truthy

    return is_truthy(_render_text(template, ctx))


def _moment(date: str | None, ctx: ConditionContext) -> datetime:
    """The date a date condition looks at: ``date`` rendered, else ``ctx.now``."""
    if date is None:
        return ctx.now
    from tiercel.templating.dates import parse_instant

    return parse_instant(_render_text(date, ctx), ctx.now.tzinfo or UTC)


# -- the execution ---------------------------------------------------------------------------------


class ExecutionFlow(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.ExecutionFlow",
        "io.kestra.plugin.core.condition.ExecutionFlowCondition",
        "io.kestra.core.models.conditions.types.ExecutionFlowCondition",
    ]
    namespace: str
    flow_id: str

    def test(self, ctx: ConditionContext) -> bool:
        return ctx.execution.namespace == self.namespace and ctx.execution.flow_id == self.flow_id


class ExecutionNamespace(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.ExecutionNamespace",
        "io.kestra.plugin.core.condition.ExecutionNamespaceCondition",
        "io.kestra.core.models.conditions.types.ExecutionNamespaceCondition",
    ]
    namespace: str
    comparison: Literal["EQUALS", "PREFIX", "SUFFIX"] | None = None
    prefix: bool = False

    def test(self, ctx: ConditionContext) -> bool:
        actual = ctx.execution.namespace
        comparison = self.comparison or ("PREFIX" if self.prefix else "EQUALS")
        if comparison == "PREFIX":
            return actual.startswith(self.namespace)
        if comparison == "SUFFIX":
            return actual.endswith(self.namespace)
        return actual == self.namespace


class ExecutionStatus(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.ExecutionStatus",
        "io.kestra.plugin.core.condition.ExecutionStatusCondition",
        "io.kestra.core.models.conditions.types.ExecutionStatusCondition",
    ]
    in_: list[StateType] | None = Field(default=None, alias="in")
    not_in: list[StateType] | None = None

    def test(self, ctx: ConditionContext) -> bool:
        return _state_allowed(ctx.execution.current, self.in_, self.not_in)


def _state_allowed(state: StateType, in_: list[StateType] | None, not_in: list[StateType] | None) -> bool:
    return (in_ is None or state in in_) and (not_in is None or state not in not_in)


class ExecutionLabels(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.ExecutionLabels",
        "io.kestra.plugin.core.condition.ExecutionLabelsCondition",
        "io.kestra.core.models.conditions.types.ExecutionLabelsCondition",
    ]
    labels: Any

    def test(self, ctx: ConditionContext) -> bool:
        present = {(label.key, label.value) for label in ctx.execution.labels}
        return all((label.key, label.value) in present for label in labels_from(self.labels))


class ExecutionOutputs(Condition):
    """True when the execution has flow outputs and ``expression`` (seeing ``trigger.outputs``) holds."""

    type: Literal[
        "io.kestra.plugin.core.condition.ExecutionOutputs",
        "io.kestra.plugin.core.condition.ExecutionOutputsCondition",
        "io.kestra.core.models.conditions.types.ExecutionOutputsCondition",
    ]
    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        return bool(ctx.execution.outputs) and _truthy(self.expression, ctx)


class HasRetryAttempt(Condition):
    """True when a retried task run has an attempt whose state is in ``in`` and not in ``notIn``."""

    type: Literal[
        "io.kestra.plugin.core.condition.HasRetryAttempt",
        "io.kestra.plugin.core.condition.HasRetryAttemptCondition",
        "io.kestra.core.models.conditions.types.HasRetryAttemptCondition",
    ]
    in_: list[StateType] | None = Field(default=None, alias="in")
    not_in: list[StateType] | None = None

    def test(self, ctx: ConditionContext) -> bool:
        return any(
            _state_allowed(attempt.state.current, self.in_, self.not_in)
            for run in ctx.execution.task_run_list
            if len(run.attempts or ()) > 1
            for attempt in run.attempts or ()
        )


# -- the flow that owns the trigger ----------------------------------------------------------------


class FlowCondition(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.FlowCondition",
        "io.kestra.core.models.conditions.types.FlowCondition",
    ]
    namespace: str
    flow_id: str

    def test(self, ctx: ConditionContext) -> bool:
        return ctx.flow is not None and (ctx.flow.namespace, ctx.flow.id) == (self.namespace, self.flow_id)


class FlowNamespaceCondition(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.FlowNamespaceCondition",
        "io.kestra.core.models.conditions.types.FlowNamespaceCondition",
    ]
    namespace: str
    prefix: bool = False

    def test(self, ctx: ConditionContext) -> bool:
        if ctx.flow is None:
            return False
        if self.prefix:
            return ctx.flow.namespace.startswith(self.namespace)
        return ctx.flow.namespace == self.namespace


# -- expressions and combinations ------------------------------------------------------------------


class Expression(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.Expression",
        "io.kestra.plugin.core.condition.ExpressionCondition",
        "io.kestra.core.models.conditions.types.VariableCondition",
    ]
    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        return _truthy(self.expression, ctx)


class _Combination(Condition):
    """Conditions over a list of conditions, kept as maps and parsed (checked) at load time."""

    conditions: list[Any] = Field(min_length=1)

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, value: list[Any]) -> list[Any]:
        parse_conditions(value)
        return value

    @cached_property
    def parsed(self) -> list[Condition]:
        return parse_conditions(self.conditions)


class Not(_Combination):
    """True when none of ``conditions`` holds."""

    type: Literal[
        "io.kestra.plugin.core.condition.Not",
        "io.kestra.plugin.core.condition.NotCondition",
        "io.kestra.core.models.conditions.types.NotCondition",
    ]

    def test(self, ctx: ConditionContext) -> bool:
        return not any(condition.test(ctx) for condition in self.parsed)


class Or(_Combination):
    """True when one of ``conditions`` holds."""

    type: Literal[
        "io.kestra.plugin.core.condition.Or",
        "io.kestra.plugin.core.condition.OrCondition",
        "io.kestra.core.models.conditions.types.OrCondition",
    ]

    def test(self, ctx: ConditionContext) -> bool:
        return any(condition.test(ctx) for condition in self.parsed)


# -- dates -----------------------------------------------------------------------------------------


class DayWeek(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.DayWeek",
        "io.kestra.plugin.core.condition.DayWeekCondition",
        "io.kestra.core.models.conditions.types.DayWeekCondition",
    ]
    date: str | None = None
    day_of_week: DayOfWeek

    def test(self, ctx: ConditionContext) -> bool:
        return DAYS[_moment(self.date, ctx).weekday()] == self.day_of_week


class DayWeekInMonth(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.DayWeekInMonth",
        "io.kestra.plugin.core.condition.DayWeekInMonthCondition",
        "io.kestra.core.models.conditions.types.DayWeekInMonthCondition",
    ]
    date: str | None = None
    day_of_week: DayOfWeek
    day_in_month: Literal["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"]

    _ORDINALS: ClassVar[dict[str, int]] = {"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4}

    def test(self, ctx: ConditionContext) -> bool:
        moment = _moment(self.date, ctx)
        if DAYS[moment.weekday()] != self.day_of_week:
            return False
        if self.day_in_month == "LAST":
            return (moment.day + 7) > _days_in_month(moment)
        return (moment.day - 1) // 7 + 1 == self._ORDINALS[self.day_in_month]


def _days_in_month(moment: datetime) -> int:
    import calendar

    return calendar.monthrange(moment.year, moment.month)[1]


class Weekend(Condition):
    type: Literal[
        "io.kestra.plugin.core.condition.Weekend",
        "io.kestra.plugin.core.condition.WeekendCondition",
        "io.kestra.core.models.conditions.types.WeekendCondition",
    ]
    date: str | None = None

    def test(self, ctx: ConditionContext) -> bool:
        return _moment(self.date, ctx).weekday() >= 5


class TimeBetween(Condition):
    """The time of day is strictly after ``after`` and strictly before ``before`` (either may be absent)."""

    type: Literal[
        "io.kestra.plugin.core.condition.TimeBetween",
        "io.kestra.plugin.core.condition.TimeBetweenCondition",
        "io.kestra.core.models.conditions.types.TimeBetweenCondition",
    ]
    date: str | None = None
    after: time | None = None
    before: time | None = None

    def test(self, ctx: ConditionContext) -> bool:
        moment = _moment(self.date, ctx)

        def local(bound: time) -> time:
            zoned = moment.astimezone(bound.tzinfo) if bound.tzinfo is not None else moment
            return zoned.time().replace(tzinfo=bound.tzinfo)

        if self.after is not None and not local(self.after) > self.after:
            return False
        return self.before is None or local(self.before) < self.before


class DateTimeBetween(Condition):
    """The date is strictly after ``after`` and strictly before ``before`` (either may be absent)."""

    type: Literal[
        "io.kestra.plugin.core.condition.DateTimeBetween",
        "io.kestra.plugin.core.condition.DateTimeBetweenCondition",
        "io.kestra.core.models.conditions.types.DateTimeBetweenCondition",
    ]
    date: str | None = None
    after: datetime | None = None
    before: datetime | None = None

    def test(self, ctx: ConditionContext) -> bool:
        moment = _moment(self.date, ctx)
        if self.after is not None and not moment > _aware(self.after, moment):
            return False
        return self.before is None or moment < _aware(self.before, moment)


def _aware(bound: datetime, like: datetime) -> datetime:
    return bound if bound.tzinfo is not None else bound.replace(tzinfo=like.tzinfo)


# -- several executions ----------------------------------------------------------------------------


class MultipleCondition(Condition):
    """Holds once every named sub-condition has held, for some execution, within one time window.

    Each evaluation records the sub-conditions the current execution meets (in ``ctx.store``, under
    ``ctx.scope`` and ``id``); when all are met the results reset (unless ``resetOnSuccess: false``).
    Without a store the current execution must meet them all.
    """

    type: Literal[
        "io.kestra.plugin.core.condition.MultipleCondition",
        "io.kestra.core.models.conditions.types.MultipleCondition",
    ]
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    conditions: dict[str, Any] = Field(min_length=1)
    window: Duration | None = None
    window_advance: Duration | None = None
    time_window: TimeWindow | None = Field(
        default=None, validation_alias=pydantic.AliasChoices("timeWindow", "timeSLA", "sla", "time_window")
    )
    reset_on_success: bool = True

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, value: dict[str, Any]) -> dict[str, Any]:
        parse_conditions(value.values())
        return value

    @cached_property
    def parsed(self) -> dict[str, Condition]:
        return {name: parse_condition(item) for name, item in self.conditions.items()}

    @property
    def effective_window(self) -> TimeWindow:
        if self.time_window is not None:
            return self.time_window
        return TimeWindow(window=self.window, window_advance=self.window_advance)

    def test(self, ctx: ConditionContext) -> bool:
        matched = [name for name, condition in self.parsed.items() if condition.test(ctx)]
        if ctx.store is None:
            return len(matched) == len(self.parsed)
        return record(
            ctx.store,
            window_key(ctx.scope, self.id),
            self.effective_window,
            self.parsed,
            matched,
            ctx.now,
            reset_on_success=self.reset_on_success,
        )


PLUGINS: list[type[Condition]] = [
    ExecutionFlow,
    ExecutionNamespace,
    ExecutionStatus,
    ExecutionLabels,
    ExecutionOutputs,
    HasRetryAttempt,
    FlowCondition,
    FlowNamespaceCondition,
    Expression,
    Not,
    Or,
    DayWeek,
    DayWeekInMonth,
    Weekend,
    TimeBetween,
    DateTimeBetween,
    MultipleCondition,
]
