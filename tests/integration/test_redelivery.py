"""At-least-once delivery, exactly-once effect, on the real SQL queues and repositories.

A message can arrive twice: a consumer died after acting and before acking, an executor replayed an
event after a crash. The same events delivered again must change nothing, and a job redelivered
after its task run ended must not run the task again.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import postgres
from tiercel.engine.executor import EXECUTOR_TOPIC
from tiercel.engine.runner import WORKER_GROUP, LocalRunner
from tiercel.flows.validate import parse_flow
from tiercel.model.messages import ExecutorEvent, WorkerJob, WorkerTaskResult
from tiercel.model.state import StateType

FLOW = textwrap.dedent(
    """\
    id: twice
    namespace: company.team
    tasks:
      - id: first
        type: io.kestra.plugin.core.output.OutputValues
        values: {x: 1}
      - id: second
        type: io.kestra.plugin.core.log.Log
        message: "x={{ outputs.first.values.x }}"
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tiercel.db'}"
        return
    with postgres.fresh_database() as database:
        yield database


def backends(url: str) -> tuple[Any, Any]:
    """A new queue and repositories over the database at ``url`` (what one process opens)."""
    if url.startswith("sqlite"):
        from tiercel.queue.sqlite import SQLiteQueue
        from tiercel.repository.sqlite import SqliteRepositories

        return SQLiteQueue(url), SqliteRepositories(url)
    from tiercel.queue.postgres import PostgresQueue
    from tiercel.repository.postgres import PostgresRepositories

    return PostgresQueue(url), PostgresRepositories(url)


@contextlib.asynccontextmanager
async def process(url: str, roles: tuple[str, ...] = ("executor", "worker")) -> AsyncIterator[LocalRunner]:
    queue, repositories = backends(url)
    try:
        async with LocalRunner(queue=queue, repositories=repositories, roles=roles) as runner:
            yield runner
    finally:
        await repositories.close()


async def settled(runner: LocalRunner, group: str, topic: str) -> None:
    """Until the group has handled everything published to it (bounded)."""
    async with asyncio.timeout(10):
        while await runner.queue.depth(topic, group):
            await asyncio.sleep(0.02)


async def test_the_same_events_delivered_again_change_nothing(url: str) -> None:
    async with process(url) as runner:
        await replay_everything(runner)


async def replay_everything(runner: LocalRunner) -> None:
    await runner.deploy(parse_flow(FLOW))
    done = await runner.run("company.team", "twice", timeout=20)
    assert done.current == StateType.SUCCESS
    replayed: list[Any] = [ExecutorEvent(execution_id=done.id, kind="start")]
    replayed += [
        ExecutorEvent(
            execution_id=done.id, kind="result", result=WorkerTaskResult(execution_id=done.id, task_run=run)
        )
        for run in done.task_run_list
    ]
    await runner.queue.publish_many(EXECUTOR_TOPIC, replayed, key=done.id)
    await settled(runner, "executor", EXECUTOR_TOPIC)
    again = await runner.get_execution(done.id)
    assert again.model_dump() == done.model_dump()
    assert len([e for e in await runner.logs(done.id) if e.message == "x=1"]) == 1


async def test_a_job_redelivered_after_its_task_run_ended_is_not_run_again(url: str) -> None:
    async with process(url) as runner:
        await runner.deploy(parse_flow(FLOW))
        done = await runner.run("company.team", "twice", timeout=20)
        flow = await runner.get_flow("company.team", "twice")
    assert flow is not None
    second = next(r for r in done.task_run_list if r.task_id == "second")
    stale = WorkerJob(
        execution_id=done.id,
        namespace=done.namespace,
        flow_id=done.flow_id,
        task=flow.task("second"),
        task_run=second,
        variables={"outputs": {"first": {"values": {"x": 1}}}},
    )
    # What a worker that died after running the job, before acking it, leaves behind.
    queue, repositories = backends(url)
    async with queue.subscribe("worker_jobs", WORKER_GROUP) as dying:
        await queue.publish("worker_jobs", stale, key=done.id)
        assert len(await dying.receive(timeout=5)) == 1
    await queue.close()
    await repositories.close()

    async with process(url, roles=("worker",)) as worker:
        await settled(worker, WORKER_GROUP, "worker_jobs")
        assert len([e for e in await worker.logs(done.id) if e.message == "x=1"]) == 1
        assert (await worker.get_execution(done.id)).model_dump() == done.model_dump()
