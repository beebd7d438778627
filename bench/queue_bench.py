"""Queue throughput and latency on the SQL backends (and memory, for scale).

    .venv/bin/python bench/queue_bench.py                      # sqlite and postgres, 20,000 messages
    .venv/bin/python bench/queue_bench.py --backends postgres --messages 50000 --consumers 8

For each backend, on fresh storage (a temporary SQLite file; a new PostgreSQL database on
``TIERCEL_TEST_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``, dropped after):

* ``publish``: ``publish_many`` in batches of ``--batch``, nobody consuming (one group exists);
* ``consume``: ``--consumers`` subscriptions of one group drain what was published, each
  ``receive(max_messages=--receive)`` then ``ack()`` per delivery (acks are group-committed);
* ``both``: publishing and consuming at the same time, clock stopped at the last ack (the issue's
  "emitted and consumed with 4 consumers" figure, target >= 5,000 msg/s on PostgreSQL);
* ``round trip``: one ``publish`` at a time to an idle consumer, time until it has the message
  (p50 / p99 of 300).

Everything runs in this one process (Python is usually the bottleneck; the server gets the
other core). Benchmarks inform: the exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

from tiercel.model.base import Record
from tiercel.queue.base import DEFAULT_TOPICS, Queue

ADMIN_URL = os.environ.get("TIERCEL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TOPIC = "bench"
TARGETS = {"postgres": 5000.0}


class Job(Record):
    n: int
    execution_id: str = "5gH2kQ9xR1bT0aLmVwYzC3"
    task_id: str = "hello"
    payload: dict[str, Any] = {"message": "Hello World", "values": [1, 2, 3]}


TOPICS = {**DEFAULT_TOPICS, TOPIC: Job}


class Row(NamedTuple):
    """One phase as printed, and its rate as a number (``None`` for the round trip) for targets."""

    phase: str
    rate: str
    elapsed: str
    per_second: float | None = None


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    import psycopg

    name = f"tiercel_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def open_queue(backend: str, durable: bool = True) -> AsyncIterator[Queue]:
    with contextlib.ExitStack() as stack:
        queue: Any
        if backend == "memory":
            from tiercel.queue.memory import MemoryQueue

            queue = MemoryQueue(TOPICS, serialize=True)
        elif backend == "sqlite":
            from tiercel.queue.sqlite import SQLiteQueue

            directory = tempfile.mkdtemp(prefix="tiercel-bench-")
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
            queue = SQLiteQueue(f"sqlite:///{directory}/queue.db", TOPICS)
            await queue.open()
        elif backend == "postgres":
            from tiercel.queue.postgres import PostgresQueue

            queue = PostgresQueue(stack.enter_context(_pg_database()), TOPICS, durable_publish=durable)
            await queue.open()
        else:
            raise SystemExit(f"unknown backend {backend!r}")
        try:
            yield queue
        finally:
            await queue.close()


async def publish(queue: Queue, start: int, total: int, batch: int, publishers: int = 1) -> None:
    """Publish ``total`` messages in batches of ``batch``, from ``publishers`` concurrent tasks."""
    firsts = list(range(start, start + total, batch))

    async def one(mine: list[int]) -> None:
        for first in mine:
            count = min(batch, start + total - first)
            await queue.publish_many(TOPIC, [Job(n=i) for i in range(first, first + count)], key=f"k{first}")

    await asyncio.gather(*(one(firsts[p::publishers]) for p in range(publishers)))


async def consume(queue: Queue, total: int, consumers: int, receive: int) -> float:
    """Drain ``total`` messages with ``consumers`` subscriptions; return when the last was acked."""
    seen = 0
    finished = asyncio.Event()
    subs = [queue.subscribe(TOPIC, "bench") for _ in range(consumers)]
    for sub in subs:
        await sub.open()

    async def one(sub: Any) -> None:
        nonlocal seen
        while seen < total:
            for delivery in await sub.receive(max_messages=receive, timeout=0.2):
                await delivery.ack()
                seen += 1
        finished.set()

    tasks = [asyncio.create_task(one(sub)) for sub in subs]
    await finished.wait()
    done = time.perf_counter()
    await asyncio.gather(*tasks)
    for sub in subs:
        await sub.close()
    return done


async def run_backend(backend: str, args: argparse.Namespace) -> list[Row]:
    n = args.messages
    rows: list[Row] = []
    async with open_queue(backend, not args.fast_publish) as queue:
        first = queue.subscribe(TOPIC, "bench")
        await first.open()
        await first.close()

        started = time.perf_counter()
        await publish(queue, 0, n, args.batch, args.publishers)
        elapsed = time.perf_counter() - started
        rows.append(Row("publish", f"{n / elapsed:,.0f} msg/s", f"{elapsed:.2f} s", n / elapsed))

        started = time.perf_counter()
        done = await consume(queue, n, args.consumers, args.receive)
        elapsed = done - started
        rows.append(Row("consume", f"{n / elapsed:,.0f} msg/s", f"{elapsed:.2f} s", n / elapsed))

        started = time.perf_counter()
        consumer = asyncio.create_task(consume(queue, n, args.consumers, args.receive))
        await publish(queue, n, n, args.batch, args.publishers)
        done = await consumer
        elapsed = done - started
        rows.append(Row("both", f"{n / elapsed:,.0f} msg/s", f"{elapsed:.2f} s", n / elapsed))

        latencies: list[float] = []
        async with queue.subscribe(TOPIC, "bench") as sub:
            for i in range(300):
                sent = time.perf_counter()
                await queue.publish(TOPIC, Job(n=i))
                [delivery] = await sub.receive(max_messages=1, timeout=5)
                latencies.append(time.perf_counter() - sent)
                await delivery.ack()
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        rows.append(Row("round trip", f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms"))
        remaining = await queue.depth(TOPIC, "bench")
        if remaining:
            raise SystemExit(f"{backend}: {remaining} messages left unacknowledged")
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The options, with the defaults ``make bench`` uses (bench/server_bench.py parses ``[]``)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="comma-separated (memory, sqlite, postgres)"
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="messages per publish_many")
    parser.add_argument("--receive", type=int, default=100, help="max_messages per receive")
    parser.add_argument("--publishers", type=int, default=1, help="concurrent publishing tasks")
    parser.add_argument(
        "--fast-publish", action="store_true", help="postgres: durable_publish=False (no flush per publish)"
    )
    return parser


async def main() -> None:
    args = build_parser().parse_args()

    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {args.messages:,} messages, "
        f"{args.consumers} consumers, {args.publishers} publisher(s) in batches of {args.batch}, "
        f"receive up to {args.receive}"
    )
    print(f"{'backend':<10} {'phase':<11} {'rate':>16} {'time':>12}  target")
    for backend in args.backends.split(","):
        for row in await run_backend(backend.strip(), args):
            target = ""
            if row.phase == "both" and backend in TARGETS and row.per_second is not None:
                verdict = "PASS" if row.per_second >= TARGETS[backend] else "MISSED"
                target = f">= {TARGETS[backend]:,.0f} msg/s {verdict}"
            print(f"{backend:<10} {row.phase:<11} {row.rate:>16} {row.elapsed:>12}  {target}")


if __name__ == "__main__":
    asyncio.run(main())
