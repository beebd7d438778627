"""What the SQL repositories do beyond the shared contract: URLs and errors, real flows read back
by another process, time zones, LIKE metacharacters, and lock waits that are cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support import postgres
from tiercel.errors import ConfigError
from tiercel.flows.validate import load_flow_file
from tiercel.model.execution import Execution
from tiercel.model.logs import LogEntry
from tiercel.model.state import State, StateHistory, StateType
from tiercel.repository.base import ExecutionFilter, LogFilter
from tiercel.repository.postgres import PostgresRepositories
from tiercel.repository.sql.repositories import SqlRepositories
from tiercel.repository.sqlite import SqliteRepositories

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flows" / "loops-and-branches.yaml"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tiercel.db"
    else:
        with postgres.fresh_database() as database_url:
            yield database_url


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[SqlRepositories]:
    repos: SqlRepositories = (
        SqliteRepositories(url) if url.startswith("sqlite") else PostgresRepositories(url)
    )
    await repos.open()
    try:
        yield repos
    finally:
        await repos.close()


# -- URLs and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "bad_url", "expected"),
    [
        (SqliteRepositories, "postgresql://u@h/db", "sqlite:///"),
        (SqliteRepositories, "sqlite:///:memory:", "in-memory"),
        (SqliteRepositories, "sqlite://", "in-memory"),
        (PostgresRepositories, "sqlite:///x.db", "postgresql://"),
        (PostgresRepositories, "postgresql://u:secret@h:notaport/db", "cannot be parsed"),
        (PostgresRepositories, "not a url", "cannot be parsed"),
    ],
)
def test_a_bad_url_is_refused_at_construction(factory: type, bad_url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        factory(bad_url)
    message = str(raised.value)
    assert expected in message and "\n" not in message and "secret" not in message


async def test_an_unreachable_postgres_names_the_url_without_its_password() -> None:
    repos = PostgresRepositories("postgresql://tiercel:secret@127.0.0.1:1/tiercel")
    with pytest.raises(ConfigError) as raised:
        await repos.open()
    await repos.close()
    message = str(raised.value)
    assert "postgresql://tiercel:***@127.0.0.1:1/tiercel" in message
    assert "secret" not in message and "\n" not in message


async def test_a_missing_postgres_database_is_a_config_error() -> None:
    postgres.require_postgres()
    missing = postgres.ADMIN_URL.rpartition("/")[0] + "/tiercel_no_such_database"
    repos = PostgresRepositories(missing)
    with pytest.raises(ConfigError, match="tiercel_no_such_database"):
        await repos.open()
    await repos.close()


async def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    repos = SqliteRepositories(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match=r"garbage\.db"):
        await repos.open()
    await repos.close()


# -- flows, dates, text -----------------------------------------------------------------------


async def test_a_real_flow_is_read_back_by_a_fresh_instance(url: str) -> None:
    parsed = load_flow_file(EXAMPLE)
    async with opened(url) as repos:
        revision = await repos.flows.save(parsed.flow.namespace, parsed.flow.id, parsed.source, parsed.flow)
    async with opened(url) as other:  # nothing cached: decoded from the stored document
        record = await other.flows.get(parsed.flow.namespace, parsed.flow.id)
    assert record is not None and record.revision == revision == 1
    assert record.source == parsed.source
    assert record.flow.model_dump() == parsed.flow.model_copy(update={"revision": 1}).model_dump()
    assert record.labels == parsed.flow.labels


def _execution(id: str, start: datetime) -> Execution:
    histories = (
        StateHistory(state=StateType.CREATED, date=start),
        StateHistory(state=StateType.SUCCESS, date=start),
    )
    return Execution(
        id=id, namespace="n", flow_id="f", state=State(current=StateType.SUCCESS, histories=histories)
    )


async def test_dates_compare_as_instants_whatever_their_time_zone(url: str) -> None:
    plus_two = timezone(timedelta(hours=2))
    async with opened(url) as repos:
        # 01:30+02:00 is 23:30 UTC the day before: earlier than 00:10 UTC
        await repos.executions.save(_execution("early", datetime(2026, 1, 1, 1, 30, tzinfo=plus_two)))
        await repos.executions.save(_execution("late", datetime(2026, 1, 1, 0, 10, tzinfo=UTC)))
        found = await repos.executions.search(sort="start_date")
        assert [e.id for e in found.items] == ["early", "late"]
        after = await repos.executions.search(
            ExecutionFilter(start_date=datetime(2026, 1, 1, 1, 45, tzinfo=plus_two))
        )
        assert [e.id for e in after.items] == ["late"]  # 01:45+02:00 = 23:45 UTC


async def test_like_metacharacters_are_literal(url: str) -> None:
    def entry(message: str, namespace: str = "a_b") -> LogEntry:
        return LogEntry(namespace=namespace, flow_id="f", execution_id="e", timestamp=T0, message=message)

    async with opened(url) as repos:
        await repos.logs.append([entry("100% done"), entry("1000 done"), entry("x", namespace="axb")])
        found = await repos.logs.search(LogFilter(q="100%"))
        assert [e.message for e in found.items] == ["100% done"]
        assert [e.message for e in (await repos.logs.search(LogFilter(namespace="a_b"))).items] == [
            "1000 done",
            "100% done",
        ]


async def test_a_large_log_batch_keeps_its_order(url: str) -> None:
    async with opened(url) as repos:
        await repos.logs.append(
            LogEntry(namespace="n", flow_id="f", execution_id="e", timestamp=T0, message=str(i))
            for i in range(2500)
        )
        found = await repos.logs.find("e")
        assert [e.message for e in found] == [str(i) for i in range(2500)]


# -- locks ------------------------------------------------------------------------------------


async def test_a_cancelled_lock_wait_leaves_the_lock_usable(url: str) -> None:
    async with opened(url) as repos, opened(url) as other:
        await repos.executions.save(_execution("e1", T0))
        held = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with repos.executions.lock("e1") as locked:
                held.set()
                await release.wait()
                assert locked.execution is not None
                await locked.save(locked.execution.model_copy(update={"variables": {"by": "holder"}}))

        task = asyncio.create_task(holder())
        await held.wait()
        for waiter in (repos, other):  # same instance, then another engine
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2), waiter.executions.lock("e1"):
                    pytest.fail("entered a held lock")
        release.set()
        await asyncio.wait_for(task, 5)
        async with asyncio.timeout(5):
            for repository in (repos, other):
                async with repository.executions.lock("e1") as locked:
                    assert locked.execution is not None and locked.execution.variables == {"by": "holder"}


async def test_many_concurrent_log_appends_on_sqlite_all_land(tmp_path: Path) -> None:
    """Regression: a cursor handed back to the event loop and freed there reset a statement the
    writer thread was running ("bad parameter or other API misuse"), and a worker re-ran its task."""
    repos = SqliteRepositories(f"sqlite:///{tmp_path / 'logs.db'}")
    now = datetime.now(UTC)

    async def append(i: int) -> None:
        entries = [
            LogEntry(namespace="a", flow_id="f", execution_id="e", timestamp=now, message=f"{i}-{j}")
            for j in range(1 + i % 4)
        ]
        await repos.logs.append(entries)

    try:
        for round_ in range(5):
            await asyncio.gather(*(append(round_ * 200 + i) for i in range(200)))
        assert len(await repos.logs.find("e")) == sum(1 + i % 4 for i in range(1000))
    finally:
        await repos.close()
