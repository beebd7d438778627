"""The Resume task: one flow resumes another flow's PAUSED execution through the engine."""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tiercel.engine.run_context import RunServices, TaskRunContext
from tiercel.engine.runner import LocalRunner
from tiercel.errors import TaskError
from tiercel.flows.validate import parse_flow
from tiercel.model.execution import Execution, TaskRun
from tiercel.model.messages import WorkerJob
from tiercel.model.state import State, StateType
from tiercel.plugins.core.execution import Resume
from tiercel.storage.local import LocalStorage

NS = "company.team"
TIMEOUT = 10.0
NOW = datetime(2026, 1, 1, tzinfo=UTC)

APPROVAL = """
id: approval
namespace: company.team
tasks:
  - id: ask
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "approved={{ outputs.ask.onResume.approved }}"
"""

RESUMER = """
id: resumer
namespace: company.team
inputs:
  - id: target
    type: STRING
tasks:
  - id: resume
    type: io.kestra.plugin.core.execution.Resume
    executionId: "{{ inputs.target }}"
    namespace: "{{ flow.namespace }}"
    flowId: approval
    inputs:
      approved: "{{ 1 == 1 }}"
"""


@pytest.fixture
async def runner() -> AsyncIterator[LocalRunner]:
    async with LocalRunner() as local:
        for text in (APPROVAL, RESUMER):
            await local.deploy(parse_flow(textwrap.dedent(text).lstrip("\n")))
        yield local


async def _deploy(runner: LocalRunner, text: str) -> None:
    await runner.deploy(parse_flow(textwrap.dedent(text).lstrip("\n")))


def _only(execution: Execution, task_id: str) -> TaskRun:
    runs = [run for run in execution.task_run_list if run.task_id == task_id]
    assert len(runs) == 1, runs
    return runs[0]


async def _paused(runner: LocalRunner) -> Execution:
    created = await runner.create_execution(NS, "approval")
    return await runner.wait(created.id, timeout=TIMEOUT, until=lambda e: e.current == StateType.PAUSED)


async def _error_messages(runner: LocalRunner, execution_id: str) -> list[str]:
    return [entry.message for entry in await runner.logs(execution_id) if entry.level == "ERROR"]


async def test_another_flow_resumes_a_paused_execution_with_inputs(runner: LocalRunner) -> None:
    paused = await _paused(runner)

    resumer = await runner.run(NS, "resumer", {"target": paused.id}, timeout=TIMEOUT)
    assert resumer.current == StateType.SUCCESS
    assert _only(resumer, "resume").outputs == {}

    resumed = await runner.wait(paused.id, timeout=TIMEOUT)
    assert resumed.current == StateType.SUCCESS
    assert _only(resumed, "ask").outputs == {"onResume": {"approved": True}}
    assert _only(resumed, "after").outputs == {"value": "approved=true"}


async def test_resuming_an_execution_that_is_not_paused_fails_the_task(runner: LocalRunner) -> None:
    paused = await _paused(runner)
    await runner.resume(paused.id, {"approved": False})
    done = await runner.wait(paused.id, timeout=TIMEOUT)
    assert done.current == StateType.SUCCESS

    resumer = await runner.run(NS, "resumer", {"target": done.id}, timeout=TIMEOUT)
    assert resumer.current == StateType.FAILED
    assert _only(resumer, "resume").current == StateType.FAILED
    assert await _error_messages(runner, resumer.id) == [f"Execution {done.id} is not PAUSED (state SUCCESS)"]


async def test_resume_checks_the_flow_of_the_target(runner: LocalRunner) -> None:
    await _deploy(runner, RESUMER.replace("flowId: approval", "flowId: other"))
    paused = await _paused(runner)

    resumer = await runner.run(NS, "resumer", {"target": paused.id}, timeout=TIMEOUT)
    assert resumer.current == StateType.FAILED
    messages = await _error_messages(runner, resumer.id)
    assert messages == [f"Execution {paused.id} belongs to flow {NS}.approval, not {NS}.other"]
    assert (await runner.get_execution(paused.id)).current == StateType.PAUSED
    await runner.kill(paused.id)
    await runner.wait(paused.id, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"namespace": NS}, "If `namespace` or `flowId` is set, both must be set."),
        ({"inputs": "[1, 2]"}, "`inputs` must be a map of onResume inputs"),
    ],
)
async def test_bad_properties_fail_before_anything_is_resumed(
    properties: dict[str, Any], message: str, tmp_path: Path
) -> None:
    calls: list[str] = []

    async def resume(execution_id: str, inputs: Any = None, **_: Any) -> None:
        calls.append(execution_id)

    task = Resume.model_validate({"id": "r", "type": "io.kestra.plugin.core.execution.Resume", **properties})
    run = TaskRun(
        id="run1", execution_id="exec1", namespace=NS, flow_id="f", task_id="r", state=State.new(NOW)
    )
    job = WorkerJob(execution_id="exec1", namespace=NS, flow_id="f", task=task, task_run=run, variables={})
    services = RunServices(storage=LocalStorage(tmp_path), resume_execution=resume)
    with pytest.raises(TaskError, match=re.escape(message)):
        await task.run(TaskRunContext(job, services, task=task))
    assert calls == []


async def test_without_an_engine_the_task_fails_with_a_reason(tmp_path: Path) -> None:
    task = Resume.model_validate({"id": "r", "type": "io.kestra.plugin.core.execution.Resume"})
    run = TaskRun(
        id="run1", execution_id="exec1", namespace=NS, flow_id="f", task_id="r", state=State.new(NOW)
    )
    job = WorkerJob(execution_id="exec1", namespace=NS, flow_id="f", task=task, task_run=run, variables={})
    with pytest.raises(TaskError, match="not attached to an engine"):
        await task.run(TaskRunContext(job, RunServices(storage=LocalStorage(tmp_path)), task=task))
