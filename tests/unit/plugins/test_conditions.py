"""Conditions: each one's test against a hand-built context, and their checks at flow load time."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tiercel.engine.executions import new_execution
from tiercel.engine.variables import execution_variables
from tiercel.errors import ValidationError
from tiercel.flows.validate import parse_flow
from tiercel.model.execution import Execution, TaskRunAttempt
from tiercel.model.flow import Flow
from tiercel.model.state import State, StateType
from tiercel.plugins.base import ConditionContext
from tiercel.plugins.core.conditions import parse_condition
from tiercel.plugins.core.triggers import FlowTrigger
from tiercel.plugins.registry import default_registry

NOW = datetime(2026, 3, 7, 10, 30, tzinfo=UTC)  # a Saturday, the first one of March
C = "io.kestra.plugin.core.condition."


def flow(namespace: str = "company.team", flow_id: str = "upstream", **extra: Any) -> Flow:
    default_registry().build()
    tasks = [{"id": "t", "type": "io.kestra.plugin.core.debug.Return", "format": "x"}]
    return Flow.model_validate({"namespace": namespace, "id": flow_id, "tasks": tasks, **extra})


def execution(
    state: StateType = StateType.SUCCESS,
    *,
    upstream: Flow | None = None,
    labels: dict[str, str] | None = None,
    outputs: dict[str, Any] | None = None,
) -> Execution:
    ex = new_execution(upstream or flow(), NOW, labels=labels)
    return ex.with_state(state, NOW).model_copy(update={"outputs": outputs})


def ctx(ex: Execution | None = None, now: datetime = NOW, owner: Flow | None = None) -> ConditionContext:
    ex = ex or execution()
    variables = {**execution_variables(None, ex), "trigger": {"outputs": ex.outputs or {}}}
    return ConditionContext(execution=ex, now=now, flow=owner, variables=variables)


def holds(data: dict[str, Any], context: ConditionContext | None = None) -> bool:
    return parse_condition(data).test(context or ctx())


def test_execution_flow() -> None:
    assert holds({"type": C + "ExecutionFlow", "namespace": "company.team", "flowId": "upstream"})
    assert not holds({"type": C + "ExecutionFlow", "namespace": "company.team", "flowId": "other"})
    old = "io.kestra.core.models.conditions.types.ExecutionFlowCondition"
    assert holds({"type": old, "namespace": "company.team", "flowId": "upstream"})


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"namespace": "company.team"}, True),
        ({"namespace": "company"}, False),
        ({"namespace": "company", "prefix": True}, True),
        ({"namespace": "company", "comparison": "PREFIX"}, True),
        ({"namespace": "team", "comparison": "SUFFIX"}, True),
        ({"namespace": "team", "comparison": "EQUALS"}, False),
    ],
)
def test_execution_namespace(props: dict[str, Any], expected: bool) -> None:
    assert holds({"type": C + "ExecutionNamespace", **props}) is expected


def test_execution_status() -> None:
    failed = ctx(execution(StateType.FAILED))
    assert holds({"type": C + "ExecutionStatus", "in": ["SUCCESS"]})
    assert not holds({"type": C + "ExecutionStatus", "in": ["SUCCESS"]}, failed)
    assert holds({"type": C + "ExecutionStatus", "notIn": ["SUCCESS"]}, failed)
    assert not holds({"type": C + "ExecutionStatusCondition", "notIn": ["FAILED"]}, failed)


def test_execution_labels_accept_both_label_forms() -> None:
    labelled = ctx(execution(labels={"env": "prod", "team": "a"}))
    assert holds({"type": C + "ExecutionLabels", "labels": {"env": "prod"}}, labelled)
    assert holds({"type": C + "ExecutionLabels", "labels": [{"key": "team", "value": "a"}]}, labelled)
    assert not holds({"type": C + "ExecutionLabels", "labels": {"env": "dev"}}, labelled)


def test_execution_outputs_needs_outputs_and_a_true_expression() -> None:
    condition = {"type": C + "ExecutionOutputs", "expression": "{{ trigger.outputs.count > 2 }}"}
    assert holds(condition, ctx(execution(outputs={"count": 3})))
    assert not holds(condition, ctx(execution(outputs={"count": 1})))
    assert not holds(condition, ctx(execution(outputs=None)))


def test_expression_renders_with_the_context_variables() -> None:
    assert holds({"type": C + "Expression", "expression": "{{ flow.id == 'upstream' }}"})
    assert not holds({"type": C + "ExpressionCondition", "expression": "{{ execution.state == 'FAILED' }}"})


def test_not_and_or() -> None:
    yes = {"type": C + "ExecutionStatus", "in": ["SUCCESS"]}
    no = {"type": C + "ExecutionStatus", "in": ["FAILED"]}
    assert holds({"type": C + "Or", "conditions": [no, yes]})
    assert not holds({"type": C + "Or", "conditions": [no]})
    assert holds({"type": C + "Not", "conditions": [no]})
    assert not holds({"type": C + "Not", "conditions": [no, yes]})


def test_flow_conditions_look_at_the_flow_that_owns_the_trigger() -> None:
    owner = ctx(owner=flow("company.other", "listener"))
    assert holds({"type": C + "FlowCondition", "namespace": "company.other", "flowId": "listener"}, owner)
    assert holds({"type": C + "FlowNamespaceCondition", "namespace": "company", "prefix": True}, owner)
    assert not holds({"type": C + "FlowNamespaceCondition", "namespace": "company"}, owner)


def test_has_retry_attempt() -> None:
    ex = execution()
    attempts = (
        TaskRunAttempt(state=State.new(NOW, StateType.FAILED)),
        TaskRunAttempt(state=State.new(NOW, StateType.SUCCESS)),
    )
    from tiercel.model.execution import TaskRun

    run = TaskRun(
        id="r", execution_id=ex.id, namespace=ex.namespace, flow_id=ex.flow_id, task_id="t",
        state=State.new(NOW, StateType.SUCCESS), attempts=attempts,
    )  # fmt: skip
    retried = ctx(ex.with_task_runs([run]))
    assert holds({"type": C + "HasRetryAttempt", "in": ["FAILED"]}, retried)
    assert not holds({"type": C + "HasRetryAttempt", "in": ["KILLED"]}, retried)
    assert not holds({"type": C + "HasRetryAttempt", "in": ["FAILED"]})


def test_day_conditions_use_now_or_a_rendered_date() -> None:
    assert holds({"type": C + "DayWeek", "dayOfWeek": "SATURDAY"})
    assert not holds({"type": C + "DayWeek", "dayOfWeek": "MONDAY"})
    assert holds({"type": C + "DayWeek", "dayOfWeek": "MONDAY", "date": "2026-03-09T08:00:00Z"})
    assert holds({"type": C + "Weekend"})
    assert not holds({"type": C + "Weekend", "date": "{{ '2026-03-09T08:00:00Z' }}"})


@pytest.mark.parametrize(
    ("day", "which", "expected"),
    [
        ("2026-03-07", "FIRST", True),
        ("2026-03-14", "SECOND", True),
        ("2026-03-14", "FIRST", False),
        ("2026-03-28", "LAST", True),
        ("2026-03-21", "LAST", False),
        ("2026-03-28", "FOURTH", True),
    ],
)
def test_day_week_in_month(day: str, which: str, expected: bool) -> None:
    condition = {"type": C + "DayWeekInMonth", "dayOfWeek": "SATURDAY", "dayInMonth": which}
    assert holds({**condition, "date": f"{day}T12:00:00Z"}) is expected


def test_time_between() -> None:
    assert holds({"type": C + "TimeBetween", "after": "10:00:00", "before": "11:00:00"})
    assert not holds({"type": C + "TimeBetween", "after": "10:45:00"})
    assert not holds({"type": C + "TimeBetween", "before": "10:00:00"})
    # 10:30 UTC is 11:30 at +01:00
    assert holds({"type": C + "TimeBetween", "after": "11:00:00+01:00", "before": "12:00:00+01:00"})


def test_date_time_between() -> None:
    assert holds({"type": C + "DateTimeBetween", "after": "2026-03-01T00:00:00Z"})
    assert not holds({"type": C + "DateTimeBetween", "before": "2026-03-01T00:00:00Z"})
    later = ctx(now=NOW + timedelta(days=30))
    assert not holds(
        {"type": C + "DateTimeBetween", "after": "2026-03-01T00:00:00Z", "before": "2026-04-01T00:00:00Z"},
        later,
    )


def test_parse_condition_names_unknown_types_and_bad_properties() -> None:
    with pytest.raises(ValueError, match=r"Invalid type: io\.kestra\.plugin\.core\.condition\.Nope"):
        parse_condition({"type": C + "Nope"})
    with pytest.raises(ValueError, match=r"Invalid type: x\.Y"):
        parse_condition({"type": C + "Not", "conditions": [{"type": "x.Y"}]})
    with pytest.raises(ValueError, match="flowId: missing required property"):
        parse_condition({"type": C + "ExecutionFlow", "namespace": "a"})


FLOW_WITH = """
id: listener
namespace: company.team
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: listen
    type: io.kestra.plugin.core.trigger.Flow
"""


def load(triggers_tail: str) -> Flow:
    text = FLOW_WITH + textwrap.indent(textwrap.dedent(triggers_tail).strip("\n"), "    ") + "\n"
    return parse_flow(text, "listener.yaml").flow


def test_flow_trigger_with_an_unknown_condition_does_not_load() -> None:
    with pytest.raises(ValidationError) as info:
        load(
            """
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [SUCCESS]
              - type: io.kestra.plugin.core.condition.Unknown
            """
        )
    message = str(info.value)
    assert "Invalid type: io.kestra.plugin.core.condition.Unknown" in message
    assert "listener.yaml:14:" in message  # the unknown condition


def test_flow_trigger_model() -> None:
    loaded = load(
        """
        states: [RUNNING, PAUSED]
        conditions:
          - type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: company.team
            flowId: upstream
        preconditions:
          id: pre
          flows:
            - namespace: company.team
              flowId: a
              states: [SUCCESS]
          where:
            - id: w
              operand: OR
              filters:
                - field: NAMESPACE
                  type: STARTS_WITH
                  value: company
          timeWindow:
            type: SLIDING_WINDOW
            window: PT1H
          resetOnSuccess: false
        stopAfter: [FAILED]
        """
    )
    trigger = (loaded.triggers or [])[0]
    assert isinstance(trigger, FlowTrigger)
    assert trigger.listened_states == {StateType.RUNNING, StateType.PAUSED}
    assert [type(c).__name__ for c in trigger.parsed_conditions()] == ["ExecutionFlow"]
    assert trigger.preconditions is not None
    assert trigger.preconditions.time_window.window == timedelta(hours=1)
    assert trigger.preconditions.reset_on_success is False
    assert trigger.stop_after == ["FAILED"]


def test_flow_trigger_listens_to_terminal_states_by_default() -> None:
    trigger = (load("conditions: []").triggers or [])[0]
    assert isinstance(trigger, FlowTrigger)
    assert StateType.SUCCESS in trigger.listened_states
    assert StateType.RUNNING not in trigger.listened_states


def test_expression_filters_only_test_truth_or_nullness() -> None:
    with pytest.raises(ValidationError, match="does not apply to the field EXPRESSION"):
        load(
            """
            preconditions:
              where:
                - id: w
                  filters:
                    - field: EXPRESSION
                      type: EQUAL_TO
                      value: "{{ true }}"
            """
        )
