"""Flow triggers on the in-process engine: an upstream execution's state changes start listener flows.

Every wait is bounded (``TIMEOUT``), far below pytest's own timeout.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator

import pytest

from tiercel.engine.runner import LocalRunner
from tiercel.flows.validate import parse_flow
from tiercel.model.execution import Execution
from tiercel.model.state import StateType
from tiercel.repository.base import ExecutionFilter

NS = "company.team"
TIMEOUT = 10.0

UPSTREAM = """
id: upstream
namespace: company.team
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
outputs:
  - id: count
    type: INT
    value: "{{ outputs.count.value }}"
tasks:
  - id: count
    type: io.kestra.plugin.core.debug.Return
    format: "41"
  - id: maybe-fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.fail }}"
"""

LISTENER = """
id: listener
namespace: company.team
inputs:
  - id: count
    type: INT
  - id: origin
    type: STRING
outputs:
  - id: next
    type: INT
    value: "{{ inputs.count + 1 }}"
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.origin }} ended {{ trigger.state }}"
triggers:
  - id: after-upstream
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      count: "{{ trigger.outputs.count }}"
      origin: "{{ trigger.flowId }}/{{ trigger.executionId }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: company.team
        flowId: upstream
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


@pytest.fixture
async def runner() -> AsyncIterator[LocalRunner]:
    async with LocalRunner() as local:
        yield local


async def deploy(runner: LocalRunner, text: str) -> None:
    await runner.deploy(parse_flow(textwrap.dedent(text).lstrip("\n")))


async def executions_of(runner: LocalRunner, flow_id: str) -> list[Execution]:
    page = await runner.repos.executions.search(ExecutionFilter(namespace=NS, flow_id=flow_id), size=100)
    return list(page.items)


async def wait_finished(runner: LocalRunner, flow_id: str, count: int) -> list[Execution]:
    """The first ``count`` finished executions of ``flow_id``, oldest first."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = [e for e in await executions_of(runner, flow_id) if e.current.is_terminated]
        if len(found) >= count:
            return sorted(found, key=lambda e: e.state.histories[0].date)[:count]
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} finished executions of {flow_id}, expected {count}")
        await asyncio.sleep(0.02)


async def test_listener_starts_after_the_upstream_ends_with_its_outputs(runner: LocalRunner) -> None:
    await deploy(runner, UPSTREAM)
    await deploy(runner, LISTENER)
    upstream = await runner.run(NS, "upstream", timeout=TIMEOUT)
    assert upstream.current == StateType.SUCCESS
    [listener] = await wait_finished(runner, "listener", 1)
    assert listener.current == StateType.SUCCESS
    assert listener.inputs == {"count": 41, "origin": f"upstream/{upstream.id}"}
    assert listener.outputs == {"next": 42}
    assert listener.trigger is not None
    assert listener.trigger.id == "after-upstream"
    assert listener.trigger.type == "io.kestra.plugin.core.trigger.Flow"
    assert listener.trigger.variables["executionId"] == upstream.id
    assert listener.trigger.variables["state"] == "SUCCESS"
    say = next(r for r in listener.task_run_list if r.task_id == "say")
    assert say.outputs["value"] == f"upstream/{upstream.id} ended SUCCESS"


async def test_a_failed_upstream_does_not_match_the_conditions(runner: LocalRunner) -> None:
    await deploy(runner, UPSTREAM)
    await deploy(runner, LISTENER)
    failed = await runner.run(NS, "upstream", {"fail": "true"}, timeout=TIMEOUT)
    assert failed.current == StateType.FAILED
    await runner.run(NS, "upstream", timeout=TIMEOUT)
    await wait_finished(runner, "listener", 1)
    assert len(await executions_of(runner, "listener")) == 1


async def test_listener_of_non_terminal_states_runs_once_per_change(runner: LocalRunner) -> None:
    await deploy(runner, UPSTREAM)
    await deploy(
        runner,
        """
        id: watcher
        namespace: company.team
        outputs:
          - id: seen
            type: STRING
            value: "{{ trigger.state }}"
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.state }}"
        triggers:
          - id: watch
            type: io.kestra.plugin.core.trigger.Flow
            states: [RUNNING, SUCCESS]
        """,
    )
    await runner.run(NS, "upstream", timeout=TIMEOUT)
    watched = await wait_finished(runner, "watcher", 2)
    assert sorted((e.outputs or {}).get("seen") for e in watched) == ["RUNNING", "SUCCESS"]


async def test_invalid_trigger_inputs_start_the_execution_unvalidated(runner: LocalRunner) -> None:
    """Kestra does not validate a Flow trigger's inputs: a missing required input does not block it."""
    await deploy(runner, UPSTREAM)
    await deploy(runner, LISTENER.replace('      count: "{{ trigger.outputs.count }}"\n', ""))
    await runner.run(NS, "upstream", timeout=TIMEOUT)
    [listener] = await wait_finished(runner, "listener", 1)
    assert "count" not in listener.inputs


async def test_a_broken_trigger_does_not_stop_the_upstream_or_the_others(runner: LocalRunner) -> None:
    await deploy(runner, UPSTREAM)
    await deploy(runner, LISTENER)
    broken = LISTENER.replace("id: listener", "id: broken").replace("trigger.outputs.count", "outputs.nope.x")
    await deploy(runner, broken)
    upstream = await runner.run(NS, "upstream", timeout=TIMEOUT)
    assert upstream.current == StateType.SUCCESS
    await wait_finished(runner, "listener", 1)
    assert await executions_of(runner, "broken") == []


async def test_stop_after_disables_the_trigger(runner: LocalRunner) -> None:
    await deploy(runner, UPSTREAM)
    await deploy(
        runner,
        LISTENER.replace("        in: [SUCCESS]\n", "        in: [SUCCESS]\n    stopAfter: [SUCCESS]\n"),
    )
    await runner.run(NS, "upstream", timeout=TIMEOUT)
    await wait_finished(runner, "listener", 1)
    await runner.run(NS, "upstream", timeout=TIMEOUT)
    await asyncio.sleep(0.2)
    assert len(await executions_of(runner, "listener")) == 1


async def test_multiple_condition_fires_once_both_upstreams_succeeded(runner: LocalRunner) -> None:
    for flow_id in ("a", "b"):
        await deploy(runner, UPSTREAM.replace("id: upstream", f"id: {flow_id}"))
    await deploy(
        runner,
        """
        id: both
        namespace: company.team
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.flowId }}"
        triggers:
          - id: both
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - id: ab
                type: io.kestra.plugin.core.condition.MultipleCondition
                window: P1D
                conditions:
                  a:
                    type: io.kestra.plugin.core.condition.ExecutionFlow
                    namespace: company.team
                    flowId: a
                  b:
                    type: io.kestra.plugin.core.condition.ExecutionFlow
                    namespace: company.team
                    flowId: b
        """,
    )
    await runner.run(NS, "a", timeout=TIMEOUT)
    await runner.run(NS, "a", timeout=TIMEOUT)
    assert await executions_of(runner, "both") == []
    b = await runner.run(NS, "b", timeout=TIMEOUT)
    [both] = await wait_finished(runner, "both", 1)
    assert both.trigger is not None and both.trigger.variables["executionId"] == b.id
