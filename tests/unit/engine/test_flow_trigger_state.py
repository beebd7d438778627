"""flow_trigger_state: Flow trigger windows and ``stopAfter`` kept in the repositories, so that a
restart (a new repositories instance over the same storage) or another executor sees them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.engine.test_flow_triggers import MULTIPLE, NOW, PRECONDITIONS, listener, run_of
from tiercel.engine.executions import new_execution
from tiercel.engine.flow_trigger_state import apply_stop_after, evaluate_flow_triggers, may_stop_trigger
from tiercel.engine.flow_triggers import FLOW_TRIGGER_TYPE
from tiercel.model.execution import Execution, ExecutionTrigger
from tiercel.model.flow import Flow
from tiercel.model.state import StateType
from tiercel.repository.base import Repositories, TriggerState
from tiercel.repository.memory import MemoryRepositories

WAIT = 5.0


class Storage:
    """Repositories over one test's storage; ``open()`` again is a restart (memory: the same
    instance, it has nothing else to restart from)."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.url = f"sqlite:///{directory}/tiercel.db"
        self.opened: list[Repositories] = []

    async def open(self) -> Repositories:
        if self.kind == "memory":
            if not self.opened:
                self.opened.append(MemoryRepositories())
            return self.opened[0]
        from tiercel.repository.sqlite import SqliteRepositories

        repos = SqliteRepositories(self.url)
        await repos.open()
        self.opened.append(repos)
        return repos


@pytest.fixture(params=["memory", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    found = Storage(request.param, tmp_path)
    try:
        yield found
    finally:
        for repos in reversed(found.opened):
            with contextlib.suppress(Exception):
                await repos.close()


async def fire(
    repos: Repositories, run: tuple[Execution, Flow], candidates: list[Flow], minutes: float = 0
) -> list[str]:
    execution, flow = run
    now = NOW + timedelta(minutes=minutes)
    started = await evaluate_flow_triggers(repos, execution, flow, candidates, now)
    return [f"{item.flow.id}/{item.trigger_id}" for item in started]


async def test_a_multiple_condition_window_survives_a_restart(storage: Storage) -> None:
    candidates = [listener(MULTIPLE)]
    assert await fire(await storage.open(), run_of("a"), candidates) == []
    restarted = await storage.open()
    assert await fire(restarted, run_of("b"), candidates, minutes=10) == ["listener/both"]
    assert await fire(await storage.open(), run_of("b"), candidates, minutes=11) == []  # reset on success


async def test_preconditions_survive_a_restart(storage: Storage) -> None:
    candidates = [listener(PRECONDITIONS)]
    assert await fire(await storage.open(), run_of("b"), candidates) == []
    assert await fire(await storage.open(), run_of("a", StateType.FAILED), candidates) == ["listener/pre"]


async def test_an_expired_window_is_forgotten(storage: Storage) -> None:
    candidates = [listener(MULTIPLE)]
    repos = await storage.open()
    assert await fire(repos, run_of("a"), candidates) == []
    assert await fire(await storage.open(), run_of("b"), candidates, minutes=60) == []  # next hour's window
    assert await repos.windows.expire(NOW + timedelta(hours=3)) == 1  # b's window, also ended now


NESTED = """
- id: nested
  type: io.kestra.plugin.core.trigger.Flow
  conditions:
    - type: io.kestra.plugin.core.condition.Or
      conditions:
        - id: inner
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


async def test_a_window_nested_in_another_condition_is_kept_too(storage: Storage) -> None:
    candidates = [listener(NESTED)]
    assert await fire(await storage.open(), run_of("a"), candidates) == []
    assert await fire(await storage.open(), run_of("b"), candidates, minutes=5) == ["listener/nested"]


async def test_concurrent_executors_share_one_window(storage: Storage) -> None:
    """a and b end at once on two executors: exactly one of them completes the window."""
    candidates = [listener(MULTIPLE)]
    first, second = await storage.open(), await storage.open()
    for _ in range(3):
        async with asyncio.timeout(WAIT):
            results = await asyncio.gather(
                fire(first, run_of("a"), candidates), fire(second, run_of("b"), candidates)
            )
        assert sorted(results) == [[], ["listener/both"]]


STOPPING = """
- id: once
  type: io.kestra.plugin.core.trigger.Flow
  stopAfter: [SUCCESS]
  conditions:
    - type: io.kestra.plugin.core.condition.ExecutionFlow
      namespace: company.team
      flowId: a
"""


def triggered(flow: Flow, trigger_id: str, state: StateType) -> Execution:
    trigger = ExecutionTrigger(id=trigger_id, type=FLOW_TRIGGER_TYPE, variables={"executionId": "up"})
    return new_execution(flow, NOW, trigger=trigger).with_state(StateType.RUNNING, NOW).with_state(state, NOW)


async def test_stop_after_disables_the_trigger_for_good(storage: Storage) -> None:
    flow = listener(STOPPING)
    repos = await storage.open()
    assert await fire(repos, run_of("a"), [flow]) == ["listener/once"]

    await apply_stop_after(repos, triggered(flow, "once", StateType.FAILED), flow)  # not a stopAfter state
    assert await fire(repos, run_of("a"), [flow]) == ["listener/once"]

    await apply_stop_after(repos, triggered(flow, "once", StateType.SUCCESS), flow)
    state = await repos.triggers.get(flow.namespace, flow.id, "once")
    assert state is not None and state.disabled
    assert await fire(await storage.open(), run_of("a"), [flow]) == []  # after a restart too


async def test_stop_after_keeps_what_the_trigger_state_held(storage: Storage) -> None:
    flow = listener(STOPPING)
    repos = await storage.open()
    await repos.triggers.save(
        TriggerState(namespace=flow.namespace, flow_id=flow.id, trigger_id="once", worker_id="w")
    )
    await apply_stop_after(repos, triggered(flow, "once", StateType.SUCCESS), flow)
    state = await repos.triggers.get(flow.namespace, flow.id, "once")
    assert state is not None and state.disabled and state.worker_id == "w"
    assert state.updated_date == NOW


async def test_stop_after_ignores_other_executions(storage: Storage) -> None:
    flow = listener(STOPPING)
    repos = await storage.open()
    running = triggered(flow, "once", StateType.SUCCESS).with_state(StateType.RUNNING, NOW)
    other_trigger = triggered(flow, "another", StateType.SUCCESS)
    manual = new_execution(flow, NOW).with_state(StateType.RUNNING, NOW).with_state(StateType.SUCCESS, NOW)
    assert not may_stop_trigger(running) and not may_stop_trigger(manual)
    assert may_stop_trigger(other_trigger)
    for execution in (running, other_trigger, manual):
        await apply_stop_after(repos, execution, flow)
    await apply_stop_after(repos, triggered(flow, "once", StateType.SUCCESS), None)  # flow deleted
    assert await repos.triggers.list() == []
    assert await fire(repos, run_of("a"), [flow]) == ["listener/once"]
