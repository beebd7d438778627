"""evaluate(): which flows an upstream execution's state starts, without a runner."""

from __future__ import annotations

import logging
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from tiercel.engine.executions import new_execution
from tiercel.engine.flow_triggers import evaluate, flow_triggers
from tiercel.flows.validate import parse_flow
from tiercel.model.execution import Execution, TaskRun
from tiercel.model.flow import Flow
from tiercel.model.state import State, StateType
from tiercel.plugins.core.condition_windows import MemoryMultipleConditionStore

NOW = datetime(2026, 3, 7, 10, tzinfo=UTC)
NS = "company.team"


def load(text: str) -> Flow:
    return parse_flow(textwrap.dedent(text).lstrip("\n")).flow


def listener(triggers: str, flow_id: str = "listener", extra: str = "") -> Flow:
    body = textwrap.indent(textwrap.dedent(triggers).strip("\n"), "  ")
    return load(
        f"""
id: {flow_id}
namespace: {NS}
{textwrap.dedent(extra).strip()}
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
{body}
"""
    )


UPSTREAM = load(
    """
    id: upstream
    namespace: company.team
    labels:
      team: data
    outputs:
      - id: count
        type: INT
        value: "{{ outputs.t.value }}"
    tasks:
      - id: t
        type: io.kestra.plugin.core.debug.Return
        format: "3"
    """
)


def upstream(state: StateType = StateType.SUCCESS, flow: Flow = UPSTREAM) -> Execution:
    ex = new_execution(flow, NOW, execution_id="up1")
    run = TaskRun(
        id="r1", execution_id=ex.id, namespace=ex.namespace, flow_id=ex.flow_id, task_id="t",
        state=State.new(NOW, StateType.SUCCESS), outputs={"value": "3"},
    )  # fmt: skip
    return ex.with_task_runs([run]).with_state(state, NOW).model_copy(update={"outputs": {"count": 3}})


SIMPLE = """
- id: on-success
  type: io.kestra.plugin.core.trigger.Flow
  inputs:
    task-value: "{{ outputs.t.value }}"
    flow-output: "{{ trigger.outputs.count }}"
    from: "{{ trigger.namespace }}.{{ trigger.flowId }}/{{ trigger.executionId }}"
  labels:
    origin: "{{ trigger.flowId }}"
  conditions:
    - type: io.kestra.plugin.core.condition.ExecutionFlow
      namespace: company.team
      flowId: upstream
"""


def test_a_matching_trigger_renders_inputs_labels_and_trigger_variables() -> None:
    [started] = evaluate(upstream(), UPSTREAM, [listener(SIMPLE)], NOW)
    assert started.flow.id == "listener"
    assert started.trigger_id == "on-success"
    assert started.inputs == {"task-value": "3", "flow-output": "3", "from": "company.team.upstream/up1"}
    assert [(label.key, label.value) for label in started.labels] == [("origin", "upstream")]
    assert started.trigger_variables == {
        "executionId": "up1",
        "namespace": NS,
        "flowId": "upstream",
        "flowRevision": 1,
        "state": "SUCCESS",
        "outputs": {"count": 3},
        "labels": {"team": "data", "system": {"correlationId": "up1"}},
    }


def test_states_default_to_terminal_ones() -> None:
    assert evaluate(upstream(StateType.RUNNING), UPSTREAM, [listener(SIMPLE)], NOW) == []
    assert len(evaluate(upstream(StateType.FAILED), UPSTREAM, [listener(SIMPLE)], NOW)) == 1


def test_listed_states_include_non_terminal_ones() -> None:
    flow = listener(SIMPLE.replace("  inputs:", "  states: [RUNNING, PAUSED]\n  inputs:"))
    assert len(evaluate(upstream(StateType.PAUSED), UPSTREAM, [flow], NOW)) == 1
    assert evaluate(upstream(StateType.SUCCESS), UPSTREAM, [flow], NOW) == []


def test_conditions_must_all_hold() -> None:
    failing = SIMPLE + "    - type: io.kestra.plugin.core.condition.ExecutionStatus\n      in: [FAILED]\n"
    assert evaluate(upstream(), UPSTREAM, [listener(failing)], NOW) == []


def test_disabled_flows_and_triggers_and_stopped_triggers_do_not_fire() -> None:
    flow = listener(SIMPLE)
    assert evaluate(upstream(), UPSTREAM, [flow.model_copy(update={"disabled": True})], NOW) == []
    assert evaluate(upstream(), UPSTREAM, [listener(SIMPLE + "  disabled: true\n")], NOW) == []
    assert evaluate(upstream(), UPSTREAM, [flow], NOW, stopped={(flow.uid, "on-success")}) == []
    assert flow_triggers(flow) and not flow_triggers(flow.model_copy(update={"deleted": True}))


def test_a_flow_never_listens_to_itself() -> None:
    namespace_wide = """
    - id: any
      type: io.kestra.plugin.core.trigger.Flow
      conditions:
        - type: io.kestra.plugin.core.condition.ExecutionNamespace
          namespace: company.team
    """
    flow = listener(namespace_wide)
    own = new_execution(flow, NOW).with_state(StateType.SUCCESS, NOW)
    assert evaluate(own, flow, [flow], NOW) == []
    assert len(evaluate(upstream(), UPSTREAM, [flow], NOW)) == 1


def test_a_failing_trigger_is_logged_and_the_others_still_fire(caplog: pytest.LogCaptureFixture) -> None:
    broken = listener(SIMPLE.replace("{{ outputs.t.value }}", "{{ outputs.nope.value }}"), "broken")
    with caplog.at_level(logging.WARNING, logger="tiercel.engine.flow_triggers"):
        started = evaluate(upstream(), UPSTREAM, [broken, listener(SIMPLE)], NOW)
    assert [s.flow.id for s in started] == ["listener"]
    assert "on-success of company.team.broken" in caplog.text


MULTIPLE = """
- id: both
  type: io.kestra.plugin.core.trigger.Flow
  conditions:
    - type: io.kestra.plugin.core.condition.ExecutionStatus
      in: [SUCCESS]
    - id: multiple
      type: io.kestra.plugin.core.condition.MultipleCondition
      window: PT1H
      conditions:
        a:
          type: io.kestra.plugin.core.condition.ExecutionFlow
          namespace: company.team
          flowId: a
        b:
          type: io.kestra.plugin.core.condition.ExecutionFlow
          namespace: company.team
          flowId: b
"""


def run_of(flow_id: str, state: StateType = StateType.SUCCESS) -> tuple[Execution, Flow]:
    task = "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
    flow = load(f"id: {flow_id}\nnamespace: {NS}\ntasks:\n{task}")
    return new_execution(flow, NOW).with_state(state, NOW), flow


def test_multiple_condition_across_executions() -> None:
    store, candidates = MemoryMultipleConditionStore(), [listener(MULTIPLE)]
    assert evaluate(*run_of("a"), candidates, NOW, store) == []
    assert evaluate(*run_of("b", StateType.FAILED), candidates, NOW, store) == []  # plain condition fails
    b, b_flow = run_of("b")
    [started] = evaluate(b, b_flow, candidates, NOW + timedelta(minutes=10), store)
    assert started.trigger_variables["executionId"] == b.id
    assert evaluate(b, b_flow, candidates, NOW + timedelta(minutes=11), store) == []  # reset


def test_multiple_condition_window_expires() -> None:
    store, candidates = MemoryMultipleConditionStore(), [listener(MULTIPLE)]
    assert evaluate(*run_of("a"), candidates, NOW, store) == []
    assert evaluate(*run_of("b"), candidates, NOW + timedelta(hours=1), store) == []


PRECONDITIONS = """
- id: pre
  type: io.kestra.plugin.core.trigger.Flow
  preconditions:
    id: pre
    flows:
      - namespace: company.team
        flowId: a
        states: [SUCCESS, FAILED]
      - namespace: company.team
        flowId: b
    where:
      - id: ns
        filters:
          - field: NAMESPACE
            type: STARTS_WITH
            value: company
          - field: FLOW_ID
            type: EQUAL_TO
            value: a
"""


def test_preconditions_across_executions() -> None:
    store, candidates = MemoryMultipleConditionStore(), [listener(PRECONDITIONS)]
    assert evaluate(*run_of("b"), candidates, NOW, store) == []
    assert len(evaluate(*run_of("a", StateType.FAILED), candidates, NOW, store)) == 1
    assert evaluate(*run_of("a"), candidates, NOW, store) == []
