"""Repository contracts the server roles rely on: executor timers, service instances, and execution
locks held through separately opened instances (two engines on SQL backends). Run against every
backend in ``REPOSITORY_BACKENDS``; every wait is bounded with ``asyncio.timeout``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.contracts.conftest import RepositoryBackend
from tiercel.model.execution import Execution
from tiercel.model.messages import ExecutionDelay
from tiercel.model.state import State, StateType
from tiercel.repository.base import Repositories, ServiceInstance, ServiceState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WAIT = 10.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- executor timers --------------------------------------------------------------------------


def delay(
    execution_id: str, second: float, kind: str = "RESUME_FLOW", task_run_id: str | None = None
) -> ExecutionDelay:
    return ExecutionDelay(execution_id=execution_id, kind=kind, task_run_id=task_run_id, date=at(second))  # type: ignore[arg-type]


async def test_delays_fire_in_date_order(repositories: Repositories) -> None:
    delays = repositories.delays
    assert await delays.next_date() is None
    assert await delays.due(at(100)) == []
    await delays.schedule(delay("e2", 20))
    await delays.schedule(delay("e1", 10, kind="PAUSE_TIMEOUT", task_run_id="tr1"))
    await delays.schedule(delay("e1", 10, kind="RESTART_FAILED_TASK", task_run_id="tr1"))
    await delays.schedule(delay("e3", 30))

    assert await delays.next_date() == at(10)
    due = await delays.due(at(20))
    assert [(d.execution_id, d.kind, d.task_run_id, d.date) for d in due] == [
        ("e1", "PAUSE_TIMEOUT", "tr1", at(10)),
        ("e1", "RESTART_FAILED_TASK", "tr1", at(10)),
        ("e2", "RESUME_FLOW", None, at(20)),
    ]
    assert [d.execution_id for d in await delays.due(at(20), limit=1)] == ["e1"]
    assert await delays.due(at(5)) == []
    assert len(await delays.due(at(20))) == 3  # due() does not remove


async def test_delay_schedule_moves_the_timer_with_the_same_key(repositories: Repositories) -> None:
    delays = repositories.delays
    await delays.schedule(delay("e1", 10))
    await delays.schedule(delay("e1", 50))  # same key (no task run): moved, not added
    await delays.schedule(delay("e1", 10, task_run_id="tr1"))  # another key
    assert [(d.task_run_id, d.date) for d in await delays.due(at(100))] == [("tr1", at(10)), (None, at(50))]


async def test_delay_delete_only_removes_the_timer_still_scheduled(repositories: Repositories) -> None:
    delays = repositories.delays
    fired = delay("e1", 10)
    await delays.schedule(fired)
    await delays.schedule(delay("e1", 60))  # moved while the first date was firing
    assert await delays.delete(fired) is False
    assert [d.date for d in await delays.due(at(100))] == [at(60)]
    assert await delays.delete(delay("e1", 60)) is True
    assert await delays.delete(delay("e1", 60)) is False
    assert await delays.next_date() is None


async def test_delay_delete_execution(repositories: Repositories) -> None:
    delays = repositories.delays
    await delays.schedule(delay("e1", 10))
    await delays.schedule(delay("e1", 20, kind="PAUSE_TIMEOUT", task_run_id="tr1"))
    await delays.schedule(delay("e2", 30))
    assert await delays.delete_execution("e1") == 2
    assert await delays.delete_execution("e1") == 0
    assert [d.execution_id for d in await delays.due(at(100))] == ["e2"]


# -- service instances ------------------------------------------------------------------------


def instance(id: str, role: str = "worker", started: float = 0, **fields: object) -> ServiceInstance:
    return ServiceInstance(
        id=id,
        role=role,
        host="host-1",
        pid=1234,
        started=at(started),
        last_heartbeat=at(started),
        info={"threads": 8, "version": "0.1.0"},
        **fields,  # type: ignore[arg-type]
    )


async def test_service_register_get_list(repositories: Repositories) -> None:
    services = repositories.services
    worker = instance("w1", started=1)
    await services.register(worker)
    await services.register(instance("x1", role="executor", started=0))
    await services.register(instance("w0", started=1))
    assert await services.get("w1") == worker
    assert await services.get("nope") is None
    assert [i.id for i in await services.list()] == ["x1", "w0", "w1"]
    assert [i.id for i in await services.list(role="worker")] == ["w0", "w1"]
    assert [i.id for i in await services.list(states={ServiceState.DISCONNECTED})] == []

    await services.register(worker.model_copy(update={"pid": 99}))  # re-registering replaces
    again = await services.get("w1")
    assert again is not None and again.pid == 99
    assert await services.delete("w1") is True
    assert await services.delete("w1") is False


async def test_service_heartbeat_and_stale(repositories: Repositories) -> None:
    services = repositories.services
    await services.register(instance("w1"))
    await services.register(instance("w2"))
    await services.register(instance("gone", state=ServiceState.TERMINATED_GRACEFULLY))

    beat = await services.heartbeat("w1", at(30))
    assert beat is not None and beat.last_heartbeat == at(30) and beat.state == ServiceState.RUNNING
    assert await services.heartbeat("nope", at(30)) is None

    assert [i.id for i in await services.stale(at(20))] == ["w2"]  # terminated ones are not stale
    assert [i.id for i in await services.stale(at(40))] == ["w2", "w1"]
    assert [i.id for i in await services.stale(at(40), states={ServiceState.TERMINATED_GRACEFULLY})] == [
        "gone"
    ]


async def test_service_mark_is_a_compare_and_set(repositories: Repositories) -> None:
    services = repositories.services
    await services.register(instance("w1"))
    live = {ServiceState.RUNNING}

    async def declare_dead() -> bool:
        return await services.mark("w1", ServiceState.DISCONNECTED, only_from=live)

    async with asyncio.timeout(WAIT):
        outcomes = await asyncio.gather(declare_dead(), declare_dead())
    assert sorted(outcomes) == [False, True]  # one of two executors wins

    beat = await services.heartbeat("w1", at(5))  # the worker learns it was declared dead
    assert beat is not None and beat.state == ServiceState.DISCONNECTED
    assert await services.mark("w1", ServiceState.NOT_RUNNING) is True
    assert await services.mark("nope", ServiceState.NOT_RUNNING) is False
    stored = await services.get("w1")
    assert stored is not None and stored.state == ServiceState.NOT_RUNNING


# -- locks across instances -------------------------------------------------------------------


def counter(value: int) -> Execution:
    return Execution(
        id="e1",
        namespace="company.team",
        flow_id="hello",
        state=State.new(T0, StateType.RUNNING),
        variables={"n": value},
    )


async def test_lock_is_exclusive_across_instances(repository_backend: RepositoryBackend) -> None:
    first = await repository_backend.open()
    second = await repository_backend.open()
    await first.executions.save(counter(0))
    inside = 0
    most_inside = 0

    async def bump(repos: Repositories, times: int) -> None:
        nonlocal inside, most_inside
        for _ in range(times):
            async with repos.executions.lock("e1") as locked:
                inside += 1
                most_inside = max(most_inside, inside)
                current = locked.execution
                assert current is not None
                await asyncio.sleep(0.001)  # a real wait, so the other instance's waiters queue up
                await locked.save(counter(current.variables["n"] + 1))
                inside -= 1

    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(bump(repos, 10) for repos in (first, second, first, second)))
    assert most_inside == 1
    for repos in (first, second):
        final = await repos.executions.get("e1")
        assert final is not None and final.variables["n"] == 40


async def test_lock_on_a_new_execution_is_exclusive_across_instances(
    repository_backend: RepositoryBackend,
) -> None:
    first = await repository_backend.open()
    second = await repository_backend.open()
    seen: list[Execution | None] = []

    async def create_or_bump(repos: Repositories) -> None:
        async with repos.executions.lock("e1") as locked:
            seen.append(locked.execution)
            current = locked.execution
            await asyncio.sleep(0.01)
            await locked.save(counter(0 if current is None else current.variables["n"] + 1))

    async with asyncio.timeout(WAIT):
        await asyncio.gather(create_or_bump(first), create_or_bump(second))
    assert sum(1 for execution in seen if execution is None) == 1  # only one saw it missing
    final = await second.executions.get("e1")
    assert final is not None and final.variables["n"] == 1
