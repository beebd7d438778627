"""LocalRunner end to end: queue, executor, worker, indexer and timers in one process.

Every wait is bounded: ``runner.run``/``runner.wait`` take a timeout far below pytest's.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tiercel.engine.runner import LocalRunner
from tiercel.errors import TiercelError
from tiercel.flows.validate import load_flow_file, parse_flow
from tiercel.model.execution import Execution, TaskRun
from tiercel.model.logs import LogEntry
from tiercel.model.state import StateType
from tiercel.model.task import LogLevel

NS = "company.team"
TIMEOUT = 10.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flows"


@pytest.fixture
async def runner() -> AsyncIterator[LocalRunner]:
    async with LocalRunner() as local:
        yield local


async def deploy(runner: LocalRunner, text: str) -> None:
    await runner.deploy(parse_flow(textwrap.dedent(text).lstrip("\n")))


def runs_of(execution: Execution, task_id: str) -> list[TaskRun]:
    return [run for run in execution.task_run_list if run.task_id == task_id]


def only(execution: Execution, task_id: str) -> TaskRun:
    runs = runs_of(execution, task_id)
    assert len(runs) == 1, runs
    return runs[0]


def is_paused(execution: Execution) -> bool:
    return execution.current == StateType.PAUSED


def is_running_task(task_id: str) -> Callable[[Execution], bool]:
    def check(execution: Execution) -> bool:
        return any(r.task_id == task_id and r.current == StateType.RUNNING for r in execution.task_run_list)

    return check


async def test_hello_world_with_inputs_and_outputs(runner: LocalRunner) -> None:
    await runner.deploy(load_flow_file(EXAMPLES / "hello-world.yaml"))
    execution = await runner.run(NS, "hello-world", {"user": "Ada"}, timeout=TIMEOUT)
    assert execution.current == StateType.SUCCESS
    assert execution.inputs == {"user": "Ada"}
    assert execution.outputs == {"answer": "42"}
    assert only(execution, "answer").outputs == {"value": "42"}
    logs = await runner.logs(execution.id)
    assert [(entry.task_id, entry.message) for entry in logs] == [
        ("hello", f"Hello Ada, this is execution {execution.id}")
    ]


async def test_foreach_outputs_are_nested_by_value(runner: LocalRunner) -> None:
    await deploy(
        runner,
        """
        id: loops
        namespace: company.team
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "item {{ taskrun.value }}"
              - id: inner
                type: io.kestra.plugin.core.flow.ForEach
                values: [1, 2]
                concurrencyLimit: 0
                tasks:
                  - id: pair
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ parents[0].taskrun.value }}{{ taskrun.value }}"
              - id: sibling
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.ret[taskrun.value].value }}"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: >-
              {{ outputs.ret['a'].value }} / {{ outputs.ret.b.value }} / {{ outputs.pair.b['2'].value }}
        outputs:
          - id: all
            type: JSON
            value: "{{ outputs.ret }}"
        """,
    )
    execution = await runner.run(NS, "loops", timeout=TIMEOUT)
    assert execution.current == StateType.SUCCESS
    outer = only(execution, "outer")
    assert {(r.value, r.parent_task_run_id) for r in runs_of(execution, "ret")} == {
        ("a", outer.id),
        ("b", outer.id),
    }
    assert sorted(r.outputs["value"] for r in runs_of(execution, "pair")) == ["a1", "a2", "b1", "b2"]
    assert {r.value: r.outputs["value"] for r in runs_of(execution, "sibling")} == {
        "a": "item a",
        "b": "item b",
    }
    assert only(execution, "after").outputs == {"value": "item a / item b / b2"}
    assert execution.outputs == {"all": {"a": {"value": "item a"}, "b": {"value": "item b"}}}


CHILD = """
id: child
namespace: company.team
inputs:
  - id: name
    type: STRING
  - id: nap
    type: DURATION
    defaults: PT0S
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ inputs.nap }}"
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hi {{ inputs.name }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.greet.value }}"
"""

PARENT = """
id: parent
namespace: company.team
inputs:
  - id: nap
    type: STRING
    defaults: PT0S
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    inputs:
      name: Ada
      nap: "{{ inputs.nap }}"
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.greeting }}"
"""


async def test_subflow_outputs_reach_the_parent(runner: LocalRunner) -> None:
    await deploy(runner, CHILD)
    await deploy(runner, PARENT)
    execution = await runner.run(NS, "parent", timeout=TIMEOUT)
    assert execution.current == StateType.SUCCESS
    call = only(execution, "call")
    assert call.outputs["state"] == "SUCCESS"
    assert call.outputs["outputs"] == {"greeting": "hi Ada"}
    assert only(execution, "echo").outputs == {"value": "hi Ada"}

    child = await runner.get_execution(call.outputs["executionId"])
    assert child.flow_id == "child"
    assert child.current == StateType.SUCCESS
    assert child.inputs["name"] == "Ada"
    assert child.outputs == {"greeting": "hi Ada"}
    assert child.trigger is not None
    assert child.trigger.type == "io.kestra.plugin.core.flow.Subflow"
    assert child.trigger.variables["executionId"] == execution.id


PAUSE = """
id: approval
namespace: company.team
tasks:
  - id: ask
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: reason
        type: STRING
        defaults: no reason
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.ask.onResume.approved }} / {{ outputs.ask.onResume.reason }}"
"""


async def test_pause_then_resume_with_on_resume_inputs(runner: LocalRunner) -> None:
    await deploy(runner, PAUSE)
    created = await runner.create_execution(NS, "approval")
    paused = await runner.wait(created.id, timeout=TIMEOUT, until=is_paused)
    assert only(paused, "ask").current == StateType.PAUSED
    assert runs_of(paused, "after") == []

    await runner.resume(created.id, {"approved": "true"})
    execution = await runner.wait(created.id, timeout=TIMEOUT)
    assert execution.current == StateType.SUCCESS
    assert only(execution, "ask").outputs == {"onResume": {"approved": True, "reason": "no reason"}}
    assert only(execution, "after").outputs == {"value": "true / no reason"}
    assert StateType.PAUSED in [h.state for h in execution.state.histories]


async def test_resume_refuses_a_missing_on_resume_input(runner: LocalRunner) -> None:
    await deploy(runner, PAUSE)
    created = await runner.create_execution(NS, "approval")
    await runner.wait(created.id, timeout=TIMEOUT, until=is_paused)
    with pytest.raises(TiercelError, match=r"Invalid input for `approved`, missing required input"):
        await runner.resume(created.id, {})
    assert (await runner.get_execution(created.id)).current == StateType.PAUSED
    await runner.kill(created.id)
    killed = await runner.wait(created.id, timeout=TIMEOUT)
    assert killed.current == StateType.KILLED
    assert only(killed, "ask").current == StateType.KILLED


async def test_resume_of_a_running_execution_is_refused(runner: LocalRunner) -> None:
    await deploy(runner, SLEEP)
    created = await runner.create_execution(NS, "sleepy")
    await runner.wait(created.id, timeout=TIMEOUT, until=is_running_task("nap"))
    with pytest.raises(TiercelError, match="is not PAUSED"):
        await runner.resume(created.id)
    await runner.kill(created.id)
    await runner.wait(created.id, timeout=TIMEOUT)


SLEEP = """
id: sleepy
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: not reached
"""


async def test_kill_stops_a_running_sleep(runner: LocalRunner) -> None:
    await deploy(runner, SLEEP)
    created = await runner.create_execution(NS, "sleepy")
    await runner.wait(created.id, timeout=TIMEOUT, until=is_running_task("nap"))
    await runner.kill(created.id)
    # The sleep is 60 s: ending within TIMEOUT means the worker interrupted it.
    execution = await runner.wait(created.id, timeout=TIMEOUT)
    assert execution.current == StateType.KILLED
    assert [h.state for h in execution.state.histories][-2:] == [StateType.KILLING, StateType.KILLED]
    nap = only(execution, "nap")
    assert nap.current == StateType.KILLED
    assert nap.attempts is not None and nap.attempts[-1].state.current == StateType.KILLED
    assert runs_of(execution, "never") == []


async def test_stop_leaves_no_task_behind() -> None:
    # A running job must not outlive the runner (it would report to a closed queue).
    before = asyncio.all_tasks()
    local = LocalRunner()
    await local.start()
    try:
        await deploy(local, SLEEP)
        created = await local.create_execution(NS, "sleepy")
        await local.wait(created.id, timeout=TIMEOUT, until=is_running_task("nap"))
    finally:
        await local.stop()
    await asyncio.sleep(0.05)
    leftovers = asyncio.all_tasks() - before - {asyncio.current_task()}
    try:
        assert leftovers == set()
    finally:
        for task in leftovers:
            task.cancel()
        for task in leftovers:
            with contextlib.suppress(BaseException):
                await task


async def test_kill_cascades_to_a_running_subflow(runner: LocalRunner) -> None:
    await deploy(runner, CHILD)
    await deploy(runner, PARENT)
    created = await runner.create_execution(NS, "parent", {"nap": "PT60S"})

    def child_started(execution: Execution) -> bool:
        return any("executionId" in r.outputs for r in runs_of(execution, "call"))

    parent = await runner.wait(created.id, timeout=TIMEOUT, until=child_started)
    child_id = only(parent, "call").outputs["executionId"]
    await runner.wait(child_id, timeout=TIMEOUT, until=is_running_task("nap"))
    await runner.kill(created.id)
    assert (await runner.wait(created.id, timeout=TIMEOUT)).current == StateType.KILLED
    child = await runner.wait(child_id, timeout=TIMEOUT)
    assert child.current == StateType.KILLED
    assert only(child, "nap").current == StateType.KILLED


async def test_retry_then_success(runner: LocalRunner) -> None:
    await deploy(
        runner,
        """
        id: retry
        namespace: company.team
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount < 2 }}"
            errorMessage: "attempt {{ taskrun.attemptsCount }} failed"
            retry:
              type: constant
              interval: PT0.05S
              maxAttempt: 5
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "after {{ tasks.flaky.state }}"
        """,
    )
    execution = await runner.run(NS, "retry", timeout=TIMEOUT)
    assert execution.current == StateType.SUCCESS
    flaky = only(execution, "flaky")
    assert flaky.current == StateType.SUCCESS
    assert [a.state.current for a in flaky.attempts or ()] == [
        StateType.FAILED,
        StateType.FAILED,
        StateType.SUCCESS,
    ]
    assert only(execution, "after").outputs == {"value": "after SUCCESS"}
    # Kestra counts the attempts made before this one: 0 on the first.
    errors = [e.message for e in await runner.logs(execution.id) if e.level == LogLevel.ERROR]
    assert errors == ["attempt 0 failed", "attempt 1 failed"]


async def test_kill_during_a_retry_wait(runner: LocalRunner) -> None:
    await deploy(
        runner,
        """
        id: slow-retry
        namespace: company.team
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: constant
              interval: PT60S
              maxAttempt: 5
        """,
    )
    created = await runner.create_execution(NS, "slow-retry")

    def retry_waiting(execution: Execution) -> bool:
        flaky = runs_of(execution, "flaky")
        return bool(flaky) and [a.state.current for a in flaky[0].attempts or ()] == [StateType.FAILED]

    await runner.wait(created.id, timeout=TIMEOUT, until=retry_waiting)
    await runner.kill(created.id)
    execution = await runner.wait(created.id, timeout=TIMEOUT)
    assert execution.current == StateType.KILLED
    assert only(execution, "flaky").current == StateType.KILLED


async def test_concurrent_executions_stay_apart(runner: LocalRunner) -> None:
    await runner.deploy(load_flow_file(EXAMPLES / "hello-world.yaml"))
    users = [f"user-{i}" for i in range(30)]
    executions = await asyncio.gather(
        *(runner.run(NS, "hello-world", {"user": user}, timeout=TIMEOUT) for user in users)
    )
    assert len({e.id for e in executions}) == len(users)
    for user, execution in zip(users, executions, strict=True):
        assert execution.current == StateType.SUCCESS
        assert execution.inputs == {"user": user}
        messages = [entry.message for entry in await runner.logs(execution.id)]
        assert messages == [f"Hello {user}, this is execution {execution.id}"]


async def test_task_timeout_fails_the_attempt(runner: LocalRunner) -> None:
    await deploy(
        runner,
        """
        id: too-slow
        namespace: company.team
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT30S
            timeout: PT0.2S
        """,
    )
    execution = await runner.run(NS, "too-slow", timeout=TIMEOUT)
    assert execution.current == StateType.FAILED
    assert only(execution, "nap").current == StateType.FAILED


async def test_logs_reach_the_repository(runner: LocalRunner) -> None:
    await deploy(
        runner,
        """
        id: chatty
        namespace: company.team
        tasks:
          - id: first
            type: io.kestra.plugin.core.log.Log
            message: ["one", "two"]
          - id: second
            type: io.kestra.plugin.core.log.Log
            level: WARN
            message: "three {{ execution.id }}"
          - id: quiet
            type: io.kestra.plugin.core.log.Log
            level: DEBUG
            logLevel: INFO
            message: filtered out
        """,
    )
    execution = await runner.run(NS, "chatty", timeout=TIMEOUT)
    assert execution.current == StateType.SUCCESS
    # `flow test` prints the logs right after the execution ends, so they must be indexed by then.
    logs: list[LogEntry] = await runner.logs(execution.id)
    assert [(e.task_id, e.level, e.message) for e in logs] == [
        ("first", LogLevel.INFO, "one"),
        ("first", LogLevel.INFO, "two"),
        ("second", LogLevel.WARN, f"three {execution.id}"),
    ]
    first = only(execution, "first")
    assert all(e.execution_id == execution.id for e in logs)
    assert {e.task_run_id for e in logs if e.task_id == "first"} == {first.id}
    assert all(e.namespace == NS and e.flow_id == "chatty" for e in logs)


async def test_unknown_flow_and_execution_are_not_found(runner: LocalRunner) -> None:
    with pytest.raises(TiercelError, match="not found"):
        await runner.create_execution(NS, "nope")
    with pytest.raises(TiercelError, match="not found"):
        await runner.wait("no-such-execution", timeout=1)
