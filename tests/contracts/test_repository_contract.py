"""The repository contracts (tiercel.repository.base), run against every backend in
``REPOSITORY_BACKENDS``. Every wait is bounded with ``asyncio.timeout``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.contracts.conftest import RepositoryBackend
from tiercel.errors import NotFoundError
from tiercel.model.base import Model
from tiercel.model.execution import Execution, Label, labels_from
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.state import State, StateHistory, StateType
from tiercel.model.task import LogLevel
from tiercel.plugins.base import WindowState
from tiercel.repository.base import ExecutionFilter, LogFilter, Repositories, TriggerState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WAIT = 5.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FakeFlow(Model):
    """Stands in for ``Flow``: the repository only relies on ``labels``, ``revision``, ``deleted``."""

    id: str
    namespace: str
    revision: int | None = None
    deleted: bool = False
    labels: tuple[Label, ...] = ()


def flow(namespace: str, id: str, **labels: str) -> FakeFlow:
    return FakeFlow(id=id, namespace=namespace, labels=labels_from(labels))


def source(id: str, namespace: str, extra: str = "") -> str:
    return f"id: {id}\nnamespace: {namespace}\ntasks: []\n{extra}"


async def save_flow(repos: Repositories, namespace: str, id: str, extra: str = "", **labels: str) -> int:
    return await repos.flows.save(namespace, id, source(id, namespace, extra), flow(namespace, id, **labels))


def execution(
    id: str,
    *,
    namespace: str = "company.team",
    flow_id: str = "hello",
    states: tuple[StateType, ...] = (StateType.CREATED, StateType.RUNNING),
    started: float = 0,
    labels: dict[str, str] | None = None,
    parent_id: str | None = None,
    **fields: Any,
) -> Execution:
    """An execution that went through ``states``, one second apart from ``started``."""
    histories = tuple(StateHistory(state=s, date=at(started + i)) for i, s in enumerate(states))
    return Execution(
        id=id,
        namespace=namespace,
        flow_id=flow_id,
        state=State(current=states[-1], histories=histories),
        labels=labels_from(labels),
        parent_id=parent_id,
        **fields,
    )


DONE = (StateType.CREATED, StateType.RUNNING, StateType.SUCCESS)


# -- flows ------------------------------------------------------------------------------------


async def test_flow_revisions_grow_only_when_the_source_changes(repositories: Repositories) -> None:
    flows = repositories.flows
    assert await save_flow(repositories, "company.team", "hello") == 1
    assert await save_flow(repositories, "company.team", "hello") == 1
    assert await save_flow(repositories, "company.team", "hello", extra="# v2\n") == 2
    assert await save_flow(repositories, "company.team", "hello", extra="# v2\n") == 2

    latest = await flows.get("company.team", "hello")
    assert latest is not None
    assert (latest.revision, latest.deleted) == (2, False)
    assert latest.source == source("hello", "company.team", "# v2\n")
    assert latest.flow.revision == 2  # a pydantic flow with a revision field is stamped

    first = await flows.get("company.team", "hello", revision=1)
    assert first is not None and first.source == source("hello", "company.team")
    assert [r.revision for r in await flows.revisions("company.team", "hello")] == [1, 2]

    assert await flows.get("company.team", "hello", revision=3) is None
    assert await flows.get("company.team", "nope") is None
    assert await flows.revisions("company.team", "nope") == []


async def test_flow_source_is_kept_verbatim(repositories: Repositories) -> None:
    text = "id: x\nnamespace: n\n\n# a comment   \ntasks:\n  - id: t  # trailing\n    type: T\n"
    await repositories.flows.save("n", "x", text, None)
    stored = await repositories.flows.get("n", "x")
    assert stored is not None and stored.source == text


async def test_flow_delete_is_a_new_revision(repositories: Repositories) -> None:
    flows = repositories.flows
    await save_flow(repositories, "company.team", "hello")
    await save_flow(repositories, "company.team", "hello", extra="# v2\n")
    assert await flows.delete("company.team", "hello") == 3

    assert await flows.get("company.team", "hello") is None
    deleted = await flows.get("company.team", "hello", allow_deleted=True)
    assert deleted is not None
    assert (deleted.revision, deleted.deleted) == (3, True)
    assert deleted.source == source("hello", "company.team", "# v2\n")
    assert await flows.get("company.team", "hello", revision=3) is None
    assert await flows.get("company.team", "hello", revision=2) is not None
    assert [(r.revision, r.deleted) for r in await flows.revisions("company.team", "hello")] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert (await flows.list()).total == 0
    assert await flows.namespaces() == []

    with pytest.raises(NotFoundError):
        await flows.delete("company.team", "hello")
    with pytest.raises(NotFoundError):
        await flows.delete("company.team", "never")

    # saving again, even the same source, brings it back as a new revision
    assert await save_flow(repositories, "company.team", "hello", extra="# v2\n") == 4
    again = await flows.get("company.team", "hello")
    assert again is not None and (again.revision, again.deleted) == (4, False)


async def test_flow_list_filters_and_pages(repositories: Repositories) -> None:
    await save_flow(repositories, "company", "root", env="prod")
    await save_flow(repositories, "company.team", "alpha", env="prod", team="a")
    await save_flow(repositories, "company.team", "beta", env="dev")
    await save_flow(repositories, "company.team.sub", "gamma")
    await save_flow(repositories, "companyx", "other", env="prod")
    await save_flow(repositories, "company.team", "alpha", extra="# v2\n", env="prod", team="a")

    def ids(page: Any) -> list[str]:
        return [f"{f.namespace}.{f.id}" for f in page.items]

    everything = await repositories.flows.list()
    assert everything.total == 5
    assert ids(everything) == [
        "company.root",
        "company.team.alpha",
        "company.team.beta",
        "company.team.sub.gamma",
        "companyx.other",
    ]
    alpha = next(f for f in everything.items if f.id == "alpha")
    assert alpha.revision == 2

    under_company = await repositories.flows.list(namespace_prefix="company")
    assert under_company.total == 4  # not companyx
    assert ids(await repositories.flows.list(namespace_prefix="company.team")) == [
        "company.team.alpha",
        "company.team.beta",
        "company.team.sub.gamma",
    ]
    assert ids(await repositories.flows.list(q="ALP")) == ["company.team.alpha"]
    assert ids(await repositories.flows.list(q="team.sub")) == ["company.team.sub.gamma"]
    assert ids(await repositories.flows.list(labels={"env": "prod"})) == [
        "company.root",
        "company.team.alpha",
        "companyx.other",
    ]
    assert ids(await repositories.flows.list(labels={"env": "prod", "team": "a"})) == ["company.team.alpha"]
    assert ids(await repositories.flows.list(namespace_prefix="company", labels={"env": "prod"})) == [
        "company.root",
        "company.team.alpha",
    ]

    page2 = await repositories.flows.list(page=2, size=2)
    assert page2.total == 5
    assert ids(page2) == ["company.team.beta", "company.team.sub.gamma"]
    items, total = await repositories.flows.list(page=4, size=2)
    assert (items, total) == ([], 5)
    with pytest.raises(ValueError):
        await repositories.flows.list(page=0)


async def test_flow_namespaces(repositories: Repositories) -> None:
    await save_flow(repositories, "b.team", "one")
    await save_flow(repositories, "a", "one")
    await save_flow(repositories, "b.team", "two")
    await save_flow(repositories, "c", "gone")
    await repositories.flows.delete("c", "gone")
    assert list(await repositories.flows.namespaces()) == ["a", "b.team"]


# -- executions -------------------------------------------------------------------------------


async def test_execution_save_get_replace_delete(repositories: Repositories) -> None:
    executions = repositories.executions
    e = execution("e1")
    await executions.save(e)
    assert await executions.get("e1") == e
    finished = execution("e1", states=DONE)
    await executions.save(finished)
    got = await executions.get("e1")
    assert got is not None and got.state.current == StateType.SUCCESS
    assert (await executions.search()).total == 1
    assert await executions.delete("e1") is True
    assert await executions.get("e1") is None
    assert await executions.delete("e1") is False


async def _seed_executions(repositories: Repositories) -> None:
    for e in [
        execution("a-run", namespace="company", flow_id="f1", started=0, labels={"env": "prod"}),
        execution(
            "b-ok", namespace="company.team", flow_id="f1", states=DONE, started=10, labels={"env": "dev"}
        ),
        execution(
            "c-fail",
            namespace="company.team",
            flow_id="f2",
            states=(StateType.CREATED, StateType.RUNNING, StateType.FAILED),
            started=20,
            labels={"env": "prod", "team": "data"},
        ),
        execution(
            "d-child", namespace="company.team", flow_id="f2", states=DONE, started=30, parent_id="c-fail"
        ),
        execution("e-other", namespace="companyx", flow_id="f1", started=40),
        execution(
            "f-created", namespace="company.team", flow_id="f1", states=(StateType.CREATED,), started=50
        ),
    ]:
        await repositories.executions.save(e)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (ExecutionFilter(), ["a-run", "b-ok", "c-fail", "d-child", "e-other", "f-created"]),
        (ExecutionFilter(namespace="company"), ["a-run", "b-ok", "c-fail", "d-child", "f-created"]),
        (ExecutionFilter(namespace="company.team"), ["b-ok", "c-fail", "d-child", "f-created"]),
        (ExecutionFilter(namespace="company", flow_id="f1"), ["a-run", "b-ok", "f-created"]),
        (ExecutionFilter(states={StateType.SUCCESS, StateType.FAILED}), ["b-ok", "c-fail", "d-child"]),
        (ExecutionFilter(states=[StateType.CREATED]), ["f-created"]),
        (ExecutionFilter(labels={"env": "prod"}), ["a-run", "c-fail"]),
        (ExecutionFilter(labels={"env": "prod", "team": "data"}), ["c-fail"]),
        (ExecutionFilter(start_date=at(20)), ["c-fail", "d-child", "e-other", "f-created"]),
        (ExecutionFilter(end_date=at(25)), ["b-ok", "c-fail"]),  # running ones have no end
        (ExecutionFilter(start_date=at(5), end_date=at(40)), ["b-ok", "c-fail", "d-child"]),
        (ExecutionFilter(q="FAIL"), ["c-fail"]),
        (ExecutionFilter(q="f2"), ["c-fail", "d-child"]),
        (ExecutionFilter(q="data"), ["c-fail"]),  # label values
        (ExecutionFilter(q="companyx"), ["e-other"]),
        (ExecutionFilter(parent_id="c-fail"), ["d-child"]),
        (ExecutionFilter(namespace="nowhere"), []),
    ],
)
async def test_execution_search_filters(
    repositories: Repositories, where: ExecutionFilter, expected: list[str]
) -> None:
    await _seed_executions(repositories)
    found = await repositories.executions.search(where, size=100, sort="id")
    assert [e.id for e in found.items] == expected
    assert found.total == len(expected)


async def test_execution_search_sorts_and_pages(repositories: Repositories) -> None:
    await _seed_executions(repositories)
    executions = repositories.executions
    newest_first = await executions.search()
    assert [e.id for e in newest_first.items] == [
        "f-created",
        "e-other",
        "d-child",
        "c-fail",
        "b-ok",
        "a-run",
    ]
    oldest_first = await executions.search(sort="start_date")
    assert [e.id for e in oldest_first.items][:2] == ["a-run", "b-ok"]
    by_end = await executions.search(
        ExecutionFilter(states={StateType.SUCCESS, StateType.FAILED}), sort="-end_date"
    )
    assert [e.id for e in by_end.items] == ["d-child", "c-fail", "b-ok"]

    page = await executions.search(page=2, size=4)
    assert [e.id for e in page.items] == ["b-ok", "a-run"]
    assert page.total == 6
    items, total = await executions.search(ExecutionFilter(flow_id="f1"), page=1, size=1, sort="id")
    assert ([e.id for e in items], total) == (["a-run"], 4)

    with pytest.raises(ValueError):
        await executions.search(sort="color")
    with pytest.raises(ValueError):
        await executions.search(size=0)


async def test_children(repositories: Repositories) -> None:
    await _seed_executions(repositories)
    await repositories.executions.save(execution("g-child", started=5, parent_id="c-fail"))
    assert [e.id for e in await repositories.executions.children("c-fail")] == ["g-child", "d-child"]
    assert await repositories.executions.children("a-run") == []


async def test_count_running_counts_slots_of_one_flow(repositories: Repositories) -> None:
    c, r = StateType.CREATED, StateType.RUNNING
    for e in [
        execution("run", states=(c, r)),
        execution("paused", states=(c, r, StateType.PAUSED)),
        execution("killing", states=(c, r, StateType.KILLING)),
        execution("restarted", states=(c, r, StateType.FAILED, StateType.RESTARTED)),
        execution("created", states=(c,)),
        execution("queued", states=(c, StateType.QUEUED)),
        execution("done", states=DONE),
        execution("killed", states=(c, r, StateType.KILLED)),
        execution("other-flow", flow_id="other", states=(c, r)),
        execution("other-ns", namespace="elsewhere", states=(c, r)),
    ]:
        await repositories.executions.save(e)
    executions = repositories.executions
    assert await executions.count_running("company.team", "hello") == 4
    assert await executions.count_running("company.team", "hello", states={StateType.RUNNING}) == 1
    assert await executions.count_running("company.team", "missing") == 0

    # a state change is reflected (the flow index follows saves)
    await executions.save(execution("run", states=DONE))
    assert await executions.count_running("company.team", "hello") == 3
    await executions.delete("paused")
    assert await executions.count_running("company.team", "hello") == 2


async def test_oldest_queued(repositories: Repositories) -> None:
    c, q = StateType.CREATED, StateType.QUEUED
    executions = repositories.executions
    assert await executions.oldest_queued("company.team", "hello") is None
    await executions.save(execution("late", states=(c, q), started=10))
    await executions.save(execution("early", states=(c, q), started=5))
    await executions.save(execution("earliest-but-running", states=(c, q, StateType.RUNNING), started=0))
    await executions.save(execution("other-flow", flow_id="other", states=(c, q), started=0))
    oldest = await executions.oldest_queued("company.team", "hello")
    assert oldest is not None and oldest.id == "early"


async def test_lock_gives_exclusive_read_modify_write(repositories: Repositories) -> None:
    executions = repositories.executions
    await executions.save(execution("e1", variables={"n": 0}))
    inside = 0
    most_inside = 0

    async def bump(times: int) -> None:
        nonlocal inside, most_inside
        for _ in range(times):
            async with executions.lock("e1") as locked:
                inside += 1
                most_inside = max(most_inside, inside)
                current = locked.execution
                assert current is not None
                await asyncio.sleep(0)  # let the others try to get in
                await locked.save(current.model_copy(update={"variables": {"n": current.variables["n"] + 1}}))
                await asyncio.sleep(0)
                inside -= 1

    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(bump(20) for _ in range(5)))
    assert most_inside == 1
    final = await executions.get("e1")
    assert final is not None and final.variables["n"] == 100


async def test_locks_on_different_executions_do_not_block_each_other(repositories: Repositories) -> None:
    executions = repositories.executions
    other_inside = asyncio.Event()

    async def hold_one() -> None:
        async with executions.lock("e1"):
            await other_inside.wait()

    async def hold_two() -> None:
        async with executions.lock("e2"):
            other_inside.set()

    async with asyncio.timeout(WAIT):
        await asyncio.gather(hold_one(), hold_two())


async def test_lock_waits_for_the_holder(repositories: Repositories) -> None:
    executions = repositories.executions
    await executions.save(execution("e1"))
    order: list[str] = []
    held = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with executions.lock("e1") as locked:
            held.set()
            await release.wait()
            await locked.save(execution("e1", states=DONE))
            order.append("first")

    async def second() -> None:
        await held.wait()
        async with executions.lock("e1") as locked:
            order.append("second")
            assert locked.execution is not None
            assert locked.execution.state.current == StateType.SUCCESS  # sees the first one's write

    async with asyncio.timeout(WAIT):
        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await held.wait()
        await asyncio.sleep(0.05)
        assert order == []  # second is waiting
        release.set()
        await asyncio.gather(*tasks)
    assert order == ["first", "second"]


async def test_lock_discards_writes_when_the_block_fails(repositories: Repositories) -> None:
    executions = repositories.executions
    await executions.save(execution("e1"))
    with pytest.raises(RuntimeError):
        async with executions.lock("e1") as locked:
            await locked.save(execution("e1", states=DONE))
            raise RuntimeError("executor crashed")
    stored = await executions.get("e1")
    assert stored is not None and stored.state.current == StateType.RUNNING
    async with asyncio.timeout(WAIT), executions.lock("e1"):  # and the lock was released
        pass


async def test_lock_on_a_new_execution(repositories: Repositories) -> None:
    executions = repositories.executions
    async with executions.lock("new") as locked:
        assert locked.execution is None
        with pytest.raises(ValueError):
            await locked.save(execution("someone-else"))
        await locked.save(execution("new"))
        assert await executions.get("new") is None  # not visible before the block ends
    assert await executions.get("new") is not None


# -- logs and metrics -------------------------------------------------------------------------


def log(
    message: str,
    level: LogLevel = LogLevel.INFO,
    *,
    second: float = 0,
    execution_id: str | None = "e1",
    task_id: str | None = "t1",
    task_run_id: str | None = "tr1",
    attempt: int | None = 0,
    namespace: str = "company.team",
    flow_id: str = "hello",
    trigger_id: str | None = None,
) -> LogEntry:
    return LogEntry(
        namespace=namespace,
        flow_id=flow_id,
        task_id=task_id,
        execution_id=execution_id,
        task_run_id=task_run_id,
        attempt_number=attempt,
        trigger_id=trigger_id,
        timestamp=at(second),
        level=level,
        message=message,
    )


async def test_log_find_by_level_task_and_attempt(repositories: Repositories) -> None:
    logs = repositories.logs
    await logs.append(
        [
            log("trace", LogLevel.TRACE, second=1),
            log("debug", LogLevel.DEBUG, second=2),
            log("warn", LogLevel.WARN, second=4),
            log("info", LogLevel.INFO, second=3),
            log("error", LogLevel.ERROR, second=5),
        ]
    )
    await logs.append(
        [
            log("retry", LogLevel.INFO, second=6, attempt=1),
            log("other task", LogLevel.INFO, second=7, task_id="t2", task_run_id="tr2"),
            log("other execution", LogLevel.ERROR, second=8, execution_id="e2"),
        ]
    )

    def messages(entries: Any) -> list[str]:
        return [e.message for e in entries]

    assert messages(await logs.find("e1")) == [
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "retry",
        "other task",
    ]
    assert messages(await logs.find("e1", min_level=LogLevel.WARN)) == ["warn", "error"]
    assert messages(await logs.find("e1", min_level=LogLevel.INFO)) == [
        "info",
        "warn",
        "error",
        "retry",
        "other task",
    ]
    assert messages(await logs.find("e1", min_level=LogLevel.TRACE)) == messages(await logs.find("e1"))
    assert messages(await logs.find("e1", task_run_id="tr2")) == ["other task"]
    assert messages(await logs.find("e1", task_id="t1", attempt=1)) == ["retry"]
    assert messages(await logs.find("e1", task_id="t1", min_level=LogLevel.ERROR)) == ["error"]
    assert await logs.find("nope") == []

    assert await logs.delete_by_execution("e1") == 7
    assert await logs.find("e1") == []
    assert messages(await logs.find("e2")) == ["other execution"]
    assert await logs.delete_by_execution("e1") == 0


async def test_log_find_keeps_append_order_for_equal_timestamps(repositories: Repositories) -> None:
    await repositories.logs.append([log(str(i), second=1) for i in range(20)])
    assert [e.message for e in await repositories.logs.find("e1")] == [str(i) for i in range(20)]


async def test_log_search(repositories: Repositories) -> None:
    logs = repositories.logs
    await logs.append(
        [
            log("starting job", second=1),
            log("disk almost full", LogLevel.WARN, second=2),
            log("job failed", LogLevel.ERROR, second=3, execution_id="e2", flow_id="other"),
            log("in companyx", second=4, namespace="companyx", execution_id="e3"),
            log("trigger says hi", second=5, execution_id=None, task_id=None, trigger_id="schedule"),
        ]
    )

    async def search(**kwargs: Any) -> list[str]:
        page = await logs.search(LogFilter(**kwargs), size=100)
        assert page.total == len(page.items)
        return [e.message for e in page.items]

    assert await search() == [
        "trigger says hi",
        "in companyx",
        "job failed",
        "disk almost full",
        "starting job",
    ]
    assert await search(namespace="company") == [
        "trigger says hi",
        "job failed",
        "disk almost full",
        "starting job",
    ]
    assert await search(flow_id="other") == ["job failed"]
    assert await search(execution_id="e1") == ["disk almost full", "starting job"]
    assert await search(min_level=LogLevel.WARN) == ["job failed", "disk almost full"]
    assert await search(q="JOB") == ["job failed", "starting job"]
    assert await search(trigger_id="schedule") == ["trigger says hi"]
    assert await search(start_date=at(2), end_date=at(3)) == ["job failed", "disk almost full"]

    oldest = await logs.search(sort="timestamp", page=2, size=2)
    assert [e.message for e in oldest.items] == ["job failed", "in companyx"]
    assert oldest.total == 5
    with pytest.raises(ValueError):
        await logs.search(sort="level")


async def test_metrics(repositories: Repositories) -> None:
    metrics = repositories.metrics

    def metric(name: str, second: float, task_run_id: str = "tr1", execution_id: str = "e1") -> MetricEntry:
        return MetricEntry(
            namespace="company.team",
            flow_id="hello",
            task_id="t1",
            execution_id=execution_id,
            task_run_id=task_run_id,
            name=name,
            value=1.5,
            timestamp=at(second),
            tags={"k": "v"},
        )

    await metrics.append([metric("b", 2), metric("a", 1), metric("c", 3, task_run_id="tr2")])
    await metrics.append([metric("x", 1, execution_id="e2")])
    assert [m.name for m in await metrics.find("e1")] == ["a", "b", "c"]
    assert [m.name for m in await metrics.find("e1", task_run_id="tr2")] == ["c"]
    assert (await metrics.find("e1"))[0].tags == {"k": "v"}
    assert await metrics.delete_by_execution("e1") == 3
    assert await metrics.find("e1") == []
    assert [m.name for m in await metrics.find("e2")] == ["x"]


# -- triggers ---------------------------------------------------------------------------------


async def test_trigger_states(repositories: Repositories) -> None:
    triggers = repositories.triggers
    first = TriggerState(
        namespace="company.team", flow_id="hello", trigger_id="daily", next_execution_date=at(60)
    )
    await triggers.save(first)
    await triggers.save(TriggerState(namespace="company", flow_id="a", trigger_id="t"))
    await triggers.save(TriggerState(namespace="companyx", flow_id="a", trigger_id="t"))
    await triggers.save(TriggerState(namespace="company.team", flow_id="hello", trigger_id="hourly"))

    assert await triggers.get("company.team", "hello", "daily") == first
    assert await triggers.get("company.team", "hello", "nope") is None

    fired = first.model_copy(update={"date": at(60), "next_execution_date": at(120), "execution_id": "e1"})
    await triggers.save(fired)
    assert await triggers.get("company.team", "hello", "daily") == fired

    def keys(states: Any) -> list[str]:
        return [f"{s.namespace}/{s.flow_id}/{s.trigger_id}" for s in states]

    assert keys(await triggers.list()) == [
        "company/a/t",
        "company.team/hello/daily",
        "company.team/hello/hourly",
        "companyx/a/t",
    ]
    assert keys(await triggers.list(namespace_prefix="company")) == [
        "company/a/t",
        "company.team/hello/daily",
        "company.team/hello/hourly",
    ]
    assert keys(await triggers.list(flow_id="hello")) == [
        "company.team/hello/daily",
        "company.team/hello/hourly",
    ]

    assert await triggers.delete("company.team", "hello", "daily") is True
    assert await triggers.delete("company.team", "hello", "daily") is False
    assert await triggers.get("company.team", "hello", "daily") is None


def test_trigger_state_round_trips_through_json() -> None:
    state = TriggerState(
        namespace="n",
        flow_id="f",
        trigger_id="t",
        date=at(1),
        backfill={"start": at(0).isoformat(), "paused": False},
        stop_after=(StateType.FAILED,),
    )
    assert TriggerState.model_validate_json(state.to_json()) == state


# -- condition windows ------------------------------------------------------------------------

SCOPE = "company.team.listener/on-both"


def window(start: float, end: float, **results: float) -> WindowState:
    return WindowState(at(start), at(end), {name: at(second) for name, second in results.items()})


async def test_window_save_get_delete_expire(repositories: Repositories) -> None:
    windows = repositories.windows
    paris = timezone(timedelta(hours=1))
    first = WindowState(at(0), at(60), {"a": at(1.000001).astimezone(paris), "b": at(2)})
    await windows.save(f"{SCOPE}/first", first)
    await windows.save(f"{SCOPE}/second", window(0, 30))
    await windows.save("other.flow/t/x", window(0, 90))

    assert await windows.get(f"{SCOPE}/first", at(59)) == first  # the same instants, whatever the zone
    assert await windows.get(f"{SCOPE}/first", at(60)) is None  # ended
    assert await windows.get(f"{SCOPE}/nope", at(0)) is None
    await windows.save(f"{SCOPE}/second", window(30, 45, a=31))
    assert await windows.get(f"{SCOPE}/second", at(40)) == window(30, 45, a=31)

    assert await windows.delete(f"{SCOPE}/second") is True
    assert await windows.delete(f"{SCOPE}/second") is False
    assert await windows.expire(at(60)) == 1
    assert await windows.expire(at(60)) == 0
    assert await windows.get("other.flow/t/x", at(60)) == window(0, 90)


async def test_window_lock_reads_and_writes_its_scopes(repositories: Repositories) -> None:
    windows = repositories.windows
    await windows.save(f"{SCOPE}/m", window(0, 60, a=1))
    await windows.save(f"{SCOPE}/ended", window(0, 10))
    await windows.save(f"{SCOPE}x/m", window(0, 60))  # a scope that merely starts alike
    await windows.save("company.team.listener/on_both/m", window(0, 60))  # '_' is no wildcard

    async with windows.lock([SCOPE, "a.b/t"]) as locked:
        assert locked.get(f"{SCOPE}/m", at(5)) == window(0, 60, a=1)
        assert locked.get(f"{SCOPE}/missing", at(5)) is None
        assert locked.get(f"{SCOPE}/ended", at(20)) is None  # expired: deleted at the end
        with pytest.raises(ValueError):
            locked.get(f"{SCOPE}x/m", at(5))
        with pytest.raises(ValueError):
            locked.save("company.team.listener/on_both/m", window(0, 60))
        locked.save(f"{SCOPE}/m", window(0, 60, a=1, b=2))
        locked.save("a.b/t/new", window(0, 60, c=3))
        assert locked.get(f"{SCOPE}/m", at(5)) == window(0, 60, a=1, b=2)  # its own change
        assert await windows.get(f"{SCOPE}/m", at(5)) == window(0, 60, a=1)  # not yet written
    assert await windows.get(f"{SCOPE}/m", at(5)) == window(0, 60, a=1, b=2)
    assert await windows.get("a.b/t/new", at(5)) == window(0, 60, c=3)
    assert await windows.expire(at(20)) == 0  # the expired one was deleted by the lock
    assert await windows.get(f"{SCOPE}x/m", at(5)) == window(0, 60)

    async with windows.lock([SCOPE]) as locked:
        locked.delete(f"{SCOPE}/m")
    assert await windows.get(f"{SCOPE}/m", at(5)) is None
    async with windows.lock([]) as locked:  # nothing to lock, nothing to read
        with pytest.raises(ValueError):
            locked.get(f"{SCOPE}/m", at(5))


async def test_window_lock_discards_changes_when_the_block_fails(repositories: Repositories) -> None:
    windows = repositories.windows
    await windows.save(f"{SCOPE}/m", window(0, 60, a=1))
    with pytest.raises(RuntimeError):
        async with windows.lock([SCOPE]) as locked:
            locked.save(f"{SCOPE}/m", window(0, 60, a=1, b=2))
            locked.save(f"{SCOPE}/n", window(0, 60))
            raise RuntimeError("evaluation crashed")
    assert await windows.get(f"{SCOPE}/m", at(5)) == window(0, 60, a=1)
    assert await windows.get(f"{SCOPE}/n", at(5)) is None
    with pytest.raises(RuntimeError):
        locked.save(f"{SCOPE}/m", window(0, 60))  # the lock is over
    async with asyncio.timeout(WAIT), windows.lock([SCOPE]):  # and was released
        pass


async def test_window_locks_on_different_scopes_do_not_block_each_other(repositories: Repositories) -> None:
    windows = repositories.windows
    other_inside = asyncio.Event()

    async def hold_one() -> None:
        async with windows.lock(["a.f/t"]):
            await other_inside.wait()

    async def hold_two() -> None:
        async with windows.lock(["a.f/u"]):
            other_inside.set()

    async with asyncio.timeout(WAIT):
        await asyncio.gather(hold_one(), hold_two())


async def test_window_lock_is_exclusive_across_instances(repository_backend: RepositoryBackend) -> None:
    """Read-modify-writes of one window through overlapping scope sets, on two instances (two
    engines on SQL backends), lose no update and never deadlock."""
    first = await repository_backend.open()
    second = await repository_backend.open()
    inside = 0
    most_inside = 0

    async def record(repos: Repositories, scopes: list[str], name: str, times: int) -> None:
        nonlocal inside, most_inside
        for i in range(times):
            async with repos.windows.lock(scopes) as locked:
                inside += 1
                most_inside = max(most_inside, inside)
                current = locked.get(f"{SCOPE}/m", at(0)) or window(0, 60)
                await asyncio.sleep(0.001)  # a real wait, so the others queue up
                locked.save(
                    f"{SCOPE}/m",
                    WindowState(current.start, current.end, {**current.results, f"{name}{i}": at(1)}),
                )
                inside -= 1

    async with asyncio.timeout(WAIT * 2):
        await asyncio.gather(
            record(first, [SCOPE, "z.f/t"], "a", 10),
            record(second, ["z.f/t", SCOPE], "b", 10),
            record(first, [SCOPE], "c", 10),
            record(second, ["a.f/t", SCOPE], "d", 10),
        )
    assert most_inside == 1
    for repos in (first, second):
        final = await repos.windows.get(f"{SCOPE}/m", at(0))
        assert final is not None and len(final.results) == 40
