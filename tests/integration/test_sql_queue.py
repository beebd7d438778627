"""The SQL queues beyond the contract suite: leases across processes (``kill -9``), lost
connections, cross-process wake-ups, the cleaner, and configuration errors.

Runs on ``sqlite`` (a temporary file) and ``postgres`` (a fresh database on the local server).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tiercel.errors import ConfigError
from tiercel.model.base import Record
from tiercel.queue.base import DEFAULT_TOPICS
from tiercel.queue.sql_base import SQLQueue

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "test.ping"
WAIT = 10.0


class Ping(Record):
    n: int


TOPICS = {**DEFAULT_TOPICS, TOPIC: Ping}

# A queue client in another process: ``python -c CHILD <backend> <url> <lease> <mode> [args]``.
CHILD = """
import asyncio, json, sys, time
from tiercel.model.base import Record
from tiercel.queue.base import DEFAULT_TOPICS

class Ping(Record):
    n: int

async def main(backend, url, lease, mode, *args):
    if backend == "sqlite":
        from tiercel.queue.sqlite import SQLiteQueue as Queue
    else:
        from tiercel.queue.postgres import PostgresQueue as Queue
    queue = Queue(url, {**DEFAULT_TOPICS, "test.ping": Ping}, lease=float(lease))
    await queue.open()
    if mode == "hold":  # claim one message, never settle it, wait to be killed
        sub = queue.subscribe("test.ping", "g")
        [d] = await sub.receive(max_messages=1, timeout=10)
        print("claimed", d.message.n, d.attempt, flush=True)
        await asyncio.sleep(3600)
    elif mode == "publish":
        await queue.publish("test.ping", Ping(n=int(args[0])))
        print(json.dumps(time.time()), flush=True)
    elif mode == "consume":  # until the group is empty; print what this process acked
        seen = []
        async with queue.subscribe("test.ping", "g") as sub:
            while True:
                batch = await sub.receive(max_messages=5, timeout=1.0)
                for d in batch:
                    seen.append(d.message.n)
                    await d.ack()
                if not batch and await queue.depth("test.ping", "g") == 0:
                    break
        print(json.dumps(seen), flush=True)
    await queue.close()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/queue.db"
        return
    from tests.support.postgres import fresh_database

    with fresh_database() as database:
        yield database


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.support.postgres import fresh_database

    with fresh_database() as database:
        yield database


@contextlib.asynccontextmanager
async def queues(backend: str, url: str) -> AsyncIterator[Any]:
    """``await factory(**options)``: a queue over ``url``; all are closed on the way out."""
    opened: list[SQLQueue] = []

    async def factory(**options: Any) -> SQLQueue:
        queue: SQLQueue
        if backend == "sqlite":
            from tiercel.queue.sqlite import SQLiteQueue

            queue = SQLiteQueue(url, TOPICS, **options)
        else:
            from tiercel.queue.postgres import PostgresQueue

            queue = PostgresQueue(url, TOPICS, **options)
        await queue.open()
        opened.append(queue)
        return queue

    try:
        yield factory
    finally:
        for queue in reversed(opened):
            await queue.close()


@pytest.fixture
async def open_queue(backend: str, url: str) -> AsyncIterator[Any]:
    """``await open_queue(**options)``: a queue over this test's storage, closed at the end."""
    async with queues(backend, url) as factory:
        yield factory


@pytest.fixture
async def open_pg_queue(pg_url: str) -> AsyncIterator[Any]:
    async with queues("postgres", pg_url) as factory:
        yield factory


@contextlib.contextmanager
def child(backend: str, url: str, lease: float, mode: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run CHILD; on the way out make sure it is dead and its pipes closed."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend, url, str(lease), mode, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT)
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"child exited: {proc.stderr.read()[-2000:]}")
    return line.strip()


def table_rows(backend: str, url: str, table: str) -> int:
    if backend == "sqlite":
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])


# -- leases -------------------------------------------------------------------------------------


async def test_kill_9_holder_redelivers_after_its_lease(backend: str, url: str, open_queue: Any) -> None:
    queue = await open_queue()
    await queue.subscribe(TOPIC, "g").open()
    await queue.publish(TOPIC, Ping(n=7))
    lease = 1.5
    with child(backend, url, lease, "hold") as proc:
        assert await read_line(proc) == "claimed 7 1"
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT)
    async with queue.subscribe(TOPIC, "g") as sub:
        assert await sub.receive(timeout=0) == []  # the dead process's lease still runs
        [d] = await sub.receive(timeout=WAIT)
        assert time.monotonic() - killed_at < lease + 2.0
        assert (d.message.n, d.attempt) == (7, 2)
        await d.ack()
    assert await queue.depth(TOPIC, "g") == 0


async def test_a_live_consumer_keeps_its_lease(open_queue: Any) -> None:
    holder_queue = await open_queue(lease=0.6)
    other_queue = await open_queue(lease=0.6)
    async with holder_queue.subscribe(TOPIC, "g") as holder, other_queue.subscribe(TOPIC, "g") as other:
        await holder_queue.publish(TOPIC, Ping(n=1))
        [d] = await holder.receive(timeout=WAIT)
        await asyncio.sleep(2.0)  # more than three leases: only renewal keeps it
        assert await other.receive(timeout=0.2) == []
        await d.ack()
    assert await other_queue.depth(TOPIC, "g") == 0


async def test_queue_gone_without_closing_redelivers_after_the_lease(open_queue: Any) -> None:
    crashed = await open_queue(lease=0.5)
    sub = crashed.subscribe(TOPIC, "g")
    await sub.open()
    await crashed.publish(TOPIC, Ping(n=3))
    [d] = await sub.receive(timeout=WAIT)
    for task in crashed._loops:  # the process stops: no renewal, no hand-back, no ack
        task.cancel()
    await asyncio.wait(crashed._loops)
    survivor = await open_queue(lease=0.5)
    async with survivor.subscribe(TOPIC, "g") as again:
        [d] = await again.receive(timeout=WAIT)
        assert (d.message.n, d.attempt) == (3, 2)


# -- processes ----------------------------------------------------------------------------------


async def test_competing_processes_share_the_work_exactly_once(
    backend: str, url: str, open_queue: Any
) -> None:
    queue = await open_queue()
    await queue.subscribe(TOPIC, "g").open()
    total = 600
    await queue.publish_many(TOPIC, [Ping(n=i) for i in range(total)])
    seen: list[int] = []
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(child(backend, url, 5.0, "consume")) for _ in range(3)]
        for proc in procs:
            seen.extend(json.loads(await read_line(proc)))
    assert sorted(seen) == list(range(total))


async def test_a_publish_in_another_process_wakes_a_waiting_receiver(
    backend: str, url: str, open_queue: Any
) -> None:
    # PostgreSQL: polling once a minute, only NOTIFY can be this fast. SQLite: the 0.1 s poll.
    queue = await open_queue(poll_interval=60.0 if backend == "postgres" else 0.1)
    async with queue.subscribe(TOPIC, "g") as sub:
        await sub.receive(timeout=0)  # LISTEN is up (postgres) and the table found drained
        waiting = asyncio.create_task(sub.receive(timeout=WAIT))
        with child(backend, url, 5.0, "publish", "5") as proc:
            published_at = json.loads(await read_line(proc))
        [d] = await waiting
        assert time.time() - published_at < 1.0
        assert d.message == Ping(n=5)


async def test_sqlite_instances_in_one_process_wake_each_other(tmp_path: Path) -> None:
    # (PostgreSQL instances wake each other through NOTIFY, tested above.)
    async with queues("sqlite", f"sqlite:///{tmp_path}/queue.db") as open_queue:
        consumer = await open_queue(poll_interval=60.0)
        publisher = await open_queue()
        await _wake_each_other(consumer, publisher)


async def _wake_each_other(consumer: SQLQueue, publisher: SQLQueue) -> None:
    async with consumer.subscribe(TOPIC, "g") as sub:
        await sub.receive(timeout=0)
        waiting = asyncio.create_task(sub.receive(timeout=WAIT))
        await asyncio.sleep(0.05)
        await publisher.publish(TOPIC, Ping(n=1))
        async with asyncio.timeout(1.0):
            [d] = await waiting
        assert d.message == Ping(n=1)


# -- PostgreSQL specifics -------------------------------------------------------------------------


def _backend_pids(url: str, query_prefix: str | None = None) -> list[int]:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return [pid for pid, query in rows if query_prefix is None or (query or "").startswith(query_prefix)]


def _terminate(url: str, pids: list[int]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_postgres_listener_reconnects(pg_url: str, open_pg_queue: Any) -> None:
    url = pg_url
    consumer = await open_pg_queue(poll_interval=60.0)
    publisher = await open_pg_queue()
    async with consumer.subscribe(TOPIC, "g") as sub:
        await sub.receive(timeout=0)
        [listener] = await asyncio.to_thread(_backend_pids, url, "LISTEN")
        await asyncio.to_thread(_terminate, url, [listener])
        async with asyncio.timeout(WAIT):
            while True:  # a new LISTEN connection
                pids = await asyncio.to_thread(_backend_pids, url, "LISTEN")
                if pids and pids != [listener]:
                    break
                await asyncio.sleep(0.05)
        await sub.receive(timeout=0.1)  # the reconnect woke us: drained again
        waiting = asyncio.create_task(sub.receive(timeout=WAIT))
        await asyncio.sleep(0.05)
        await publisher.publish(TOPIC, Ping(n=9))
        async with asyncio.timeout(1.0):
            [d] = await waiting
        assert d.message == Ping(n=9)


async def test_postgres_connections_killed_mid_run_lose_nothing(pg_url: str, open_pg_queue: Any) -> None:
    url = pg_url
    queue = await open_pg_queue(lease=1.0)
    total = 400
    subs = [queue.subscribe(TOPIC, "g") for _ in range(3)]
    for sub in subs:
        await sub.open()
    acked: set[int] = set()

    async def produce() -> None:
        for start in range(0, total, 10):
            await queue.publish_many(TOPIC, [Ping(n=i) for i in range(start, start + 10)])
            await asyncio.sleep(0.005)

    async def consume(sub: Any) -> None:
        while len(acked) < total:
            for d in await sub.receive(max_messages=5, timeout=0.2):
                acked.add(d.message.n)
                await d.ack()

    async def sabotage() -> None:
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(_terminate, url, await asyncio.to_thread(_backend_pids, url))

    async with asyncio.timeout(30):
        await asyncio.gather(produce(), sabotage(), *(consume(sub) for sub in subs))
    assert acked == set(range(total))
    async with asyncio.timeout(WAIT):  # acks lost with a connection come back once, then go
        while await queue.depth(TOPIC, "g"):
            for sub in subs:
                for d in await sub.receive(max_messages=50, timeout=0.2):
                    await d.ack()
    for sub in subs:
        await sub.close()


async def test_postgres_broadcast_sees_a_transaction_that_commits_late(
    pg_url: str, open_pg_queue: Any
) -> None:
    import psycopg

    from tiercel.queue.postgres import _PUBLISH

    url = pg_url
    queue = await open_pg_queue()
    async with queue.subscribe_broadcast(TOPIC) as follower:
        slow = await psycopg.AsyncConnection.connect(url)
        try:
            # An older transaction inserts message 1 (smaller id) and has not committed yet...
            await slow.execute(
                _PUBLISH,
                {
                    "topics": [TOPIC],
                    "keys": [None],
                    "payloads": [Ping(n=1).to_json()],
                    "wake": [TOPIC],
                    "commit": "on",
                    "channel": "tiercel_queue",
                    "me": "test",
                },
            )
            await queue.publish(TOPIC, Ping(n=2))  # ...when a newer one commits message 2.
            assert await follower.receive(timeout=0.3) == []
            await slow.commit()
        finally:
            await slow.close()
        got: list[int] = []
        async with asyncio.timeout(WAIT):
            while len(got) < 2:
                got.extend(d.message.n for d in await follower.receive(timeout=WAIT))
        assert got == [1, 2]


# -- housekeeping -------------------------------------------------------------------------------


async def test_acked_rows_go_at_once_and_the_cleaner_takes_old_messages(
    backend: str, url: str, open_queue: Any
) -> None:
    queue = await open_queue(retention=0.0, clean_interval=3600)
    async with queue.subscribe(TOPIC, "g") as sub:
        await queue.publish_many(TOPIC, [Ping(n=i) for i in range(10)])
        for d in await sub.receive(max_messages=10, timeout=WAIT):
            await d.ack()
        await queue.publish_many(TOPIC, [Ping(n=i) for i in range(10, 13)])  # left pending
        await queue.flush_acks()
        assert table_rows(backend, url, "tiercel_queue_deliveries") == 3
        assert table_rows(backend, url, "tiercel_queue_messages") == 13
        await asyncio.sleep(0.05)
        assert await queue.clean() == 10
        assert table_rows(backend, url, "tiercel_queue_messages") == 3
        got = await sub.receive(max_messages=10, timeout=WAIT)
        assert sorted(d.message.n for d in got) == [10, 11, 12]


async def test_tables_are_created_once_and_reused(backend: str, url: str, open_queue: Any) -> None:
    first = await open_queue()
    await first.subscribe(TOPIC, "g").open()
    await first.publish(TOPIC, Ping(n=1))
    await first.close()
    second = await open_queue()
    assert await second.depth(TOPIC, "g") == 1


# -- configuration ------------------------------------------------------------------------------


async def test_unreachable_postgres_is_one_clear_line_without_password() -> None:
    from tiercel.queue.postgres import PostgresQueue

    queue = PostgresQueue("postgresql://bob:s3cret@127.0.0.1:1/tiercel")
    with pytest.raises(ConfigError) as caught:
        await queue.open()
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "s3cret" not in message
    assert "\n" not in message
    await queue.close()


@pytest.mark.parametrize(
    ("factory", "url"),
    [
        ("postgres", "mysql://bob:s3cret@db/tiercel"),
        ("postgres", "not a url"),
        ("sqlite", "sqlite://"),
        ("sqlite", "postgresql://bob:s3cret@db/tiercel"),
    ],
)
def test_bad_urls_are_refused(factory: str, url: str) -> None:
    from tiercel.queue.postgres import PostgresQueue
    from tiercel.queue.sqlite import SQLiteQueue

    cls = PostgresQueue if factory == "postgres" else SQLiteQueue
    with pytest.raises(ConfigError) as caught:
        cls(url)
    assert "s3cret" not in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_unusable_sqlite_file_is_a_config_error(tmp_path: Path) -> None:
    from tiercel.queue.sqlite import SQLiteQueue

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    for url in (f"sqlite:///{garbage}", "sqlite:////proc/no/such/dir/queue.db"):
        queue = SQLiteQueue(url)
        with pytest.raises(ConfigError) as caught:
            await queue.open()
        assert url in str(caught.value)
        await queue.close()
