"""Liveness: heartbeats, dead-process detection with hand-back of its queue claims, self-fencing.

Runs on the memory repositories and a real SQLite queue (in a temporary file), with intervals of
tens of milliseconds; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tiercel.engine.liveness import Liveness
from tiercel.model.messages import ExecutionKilled
from tiercel.queue.sqlite import SQLiteQueue
from tiercel.repository.base import ServiceInstance, ServiceState
from tiercel.repository.memory import MemoryRepositories

INTERVAL = 0.02
TIMEOUT = 0.1


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SQLiteQueue]:
    q = SQLiteQueue(f"sqlite:///{tmp_path / 'q.db'}")
    await q.open()
    try:
        yield q
    finally:
        await q.close()


def liveness(repos: MemoryRepositories, queue: object, role: str, **kwargs: object) -> Liveness:
    return Liveness(repos.services, queue, role, interval=INTERVAL, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


async def test_start_registers_and_heartbeats_move_forward(queue: SQLiteQueue) -> None:
    repos = MemoryRepositories()
    me = liveness(repos, queue, "worker")
    await me.start()
    assert queue.consumer_id == me.id
    first = await repos.services.get(me.id)
    assert first is not None and first.state == ServiceState.RUNNING and first.role == "worker"
    await asyncio.sleep(0.01)
    await me.beat()
    later = await repos.services.get(me.id)
    assert later is not None and later.last_heartbeat > first.last_heartbeat


async def test_a_silent_worker_is_declared_dead_and_its_claims_go_to_the_others(
    tmp_path: Path, queue: SQLiteQueue
) -> None:
    repos = MemoryRepositories()
    dead_queue = SQLiteQueue(f"sqlite:///{tmp_path / 'q.db'}")
    await dead_queue.open()
    try:
        worker = liveness(repos, dead_queue, "worker")
        await worker.start()
        held = dead_queue.subscribe("kills", "workers")
        await held.open()
        other = queue.subscribe("kills", "workers")
        await other.open()
        await queue.publish("kills", ExecutionKilled(execution_id="e1"))
        [claimed] = await held.receive(timeout=2)

        coordinator = liveness(repos, queue, "executor", coordinator=True)
        await coordinator.start()
        assert await coordinator.check() == []  # not silent yet, and we only just started
        async with asyncio.timeout(5):  # the worker stops beating; the coordinator keeps going
            while True:
                await coordinator.beat()
                declared = await coordinator.check()
                if declared:
                    break
                await asyncio.sleep(INTERVAL)
        assert [d.id for d in declared] == [worker.id]
        stored = await repos.services.get(worker.id)
        assert stored is not None and stored.state == ServiceState.NOT_RUNNING
        [again] = await other.receive(timeout=2)
        assert again.message == claimed.message and again.attempt == 2
        await again.ack()
    finally:
        await dead_queue.close()


async def test_a_process_declared_dead_fences_itself_once(queue: SQLiteQueue) -> None:
    repos = MemoryRepositories()
    calls: list[str] = []

    async def fenced() -> None:
        calls.append("fenced")

    me = liveness(repos, queue, "worker", on_fenced=fenced)
    await me.start()
    assert await me.still_alive()
    await repos.services.mark(me.id, ServiceState.DISCONNECTED)
    await me.beat()
    await me.beat()
    assert calls == ["fenced"]
    assert me.fenced and not await me.still_alive()
    async with asyncio.timeout(2):
        await me.run()  # returns at once: a fenced process does not heartbeat any more


async def test_still_alive_asks_the_repository_once_its_last_heartbeat_is_old(queue: SQLiteQueue) -> None:
    repos = MemoryRepositories()
    me = liveness(repos, queue, "worker")
    await me.start()
    await repos.services.mark(me.id, ServiceState.NOT_RUNNING)
    assert await me.still_alive()  # fresh heartbeat: trusted without a query
    await asyncio.sleep(TIMEOUT / 2 + 0.01)
    assert not await me.still_alive()


async def test_a_dead_process_of_this_host_is_declared_at_once(queue: SQLiteQueue) -> None:
    repos = MemoryRepositories()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    coordinator = liveness(repos, queue, "executor", coordinator=True)
    await coordinator.start()
    now = coordinator.clock.now()
    ghost = ServiceInstance(
        id="ghost",
        role="standalone",
        host=coordinator.instance.host,
        pid=int(gone.stdout),
        started=now,
        last_heartbeat=now,
    )
    await repos.services.register(ghost)
    assert [d.id for d in await coordinator.check()] == ["ghost"]


async def test_nobody_is_judged_before_the_coordinator_has_been_healthy_for_a_timeout(
    queue: SQLiteQueue,
) -> None:
    repos = MemoryRepositories()
    coordinator = liveness(repos, queue, "executor", coordinator=True)
    await coordinator.start()
    now = coordinator.clock.now()
    old = now - timedelta(seconds=60)
    await repos.services.register(
        ServiceInstance(id="far", role="worker", host="elsewhere", pid=1, started=old, last_heartbeat=old)
    )
    assert await coordinator.check() == []  # we may have been cut off ourselves: wait a timeout
    await asyncio.sleep(TIMEOUT + 0.01)
    await coordinator.beat()
    assert [d.id for d in await coordinator.check()] == ["far"]


def test_timeout_must_exceed_the_interval() -> None:
    with pytest.raises(ValueError, match="longer than the heartbeat interval"):
        Liveness(MemoryRepositories().services, None, "worker", interval=2, timeout=1)
