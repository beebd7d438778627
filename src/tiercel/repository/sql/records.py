"""Dialect-neutral repositories of the smaller aggregates: logs, metrics, trigger states, executor
timers, service instances and condition windows.

Log text search (``LogFilter.q``) is a case-insensitive ``LIKE '%q%'`` on the message, exactly the
substring rule of the protocol, narrowed first by the indexed filters (execution, namespace, flow,
dates). Token indexes (PostgreSQL ``tsvector``, SQLite FTS5) were left out on purpose: they answer
word queries, not substrings, and slow down every log insert.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Text, and_, cast, delete, func, or_, select, update

from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.messages import ExecutionDelay
from tiercel.model.task import LogLevel
from tiercel.plugins.base import WindowState, window_key
from tiercel.repository.base import (
    LIVE_SERVICE_STATES,
    LogFilter,
    Page,
    PendingWindows,
    ServiceInstance,
    ServiceState,
    TriggerState,
)
from tiercel.repository.sql import codec
from tiercel.repository.sql.database import Database
from tiercel.repository.sql.query import check_page, contains, fetch_page, namespace_under, where
from tiercel.repository.sql.tables import (
    condition_windows,
    execution_delays,
    logs,
    metrics,
    service_instances,
    triggers,
)


def _rows(query: Any) -> Any:
    return lambda conn: builtins.list(conn.execute(query).mappings())


def _rowcount(statement: Any) -> Any:
    return lambda conn: int(conn.execute(statement).rowcount)


# -- logs and metrics -------------------------------------------------------------------------

_LOG_COLUMNS = [logs.c[name] for name in codec.LOG_COLUMNS]


class SqlLogRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, entries: Iterable[LogEntry]) -> None:
        rows = [codec.log_row(entry) for entry in entries]
        if rows:
            await self._db.append_logs(rows)

    async def find(
        self,
        execution_id: str,
        min_level: LogLevel | None = None,
        task_run_id: str | None = None,
        task_id: str | None = None,
        attempt: int | None = None,
    ) -> Sequence[LogEntry]:
        levels = codec.levels_from(min_level)
        query = (
            select(*_LOG_COLUMNS)
            .where(
                logs.c.execution_id == execution_id,
                *where(
                    logs.c.level.in_(levels) if levels is not None else None,
                    logs.c.task_run_id == task_run_id if task_run_id is not None else None,
                    logs.c.task_id == task_id if task_id is not None else None,
                    logs.c.attempt_number == attempt if attempt is not None else None,
                ),
            )
            .order_by(logs.c.timestamp, logs.c.seq)
        )
        return [codec.load_log(row) for row in await self._db.read(_rows(query))]

    async def search(
        self, filter: LogFilter | None = None, page: int = 1, size: int = 50, sort: str = "-timestamp"
    ) -> Page[LogEntry]:
        if sort not in ("timestamp", "-timestamp"):
            raise ValueError(f"cannot sort logs by {sort!r}; use 'timestamp' or '-timestamp'")
        check_page(page, size)
        f = filter or LogFilter()
        levels = codec.levels_from(f.min_level)
        order = (
            [logs.c.timestamp.desc(), logs.c.seq.desc()]
            if sort == "-timestamp"
            else [logs.c.timestamp, logs.c.seq]
        )
        query = (
            select(*_LOG_COLUMNS)
            .where(
                *where(
                    logs.c.execution_id == f.execution_id if f.execution_id is not None else None,
                    namespace_under(logs.c.namespace, f.namespace),
                    logs.c.flow_id == f.flow_id if f.flow_id is not None else None,
                    logs.c.task_id == f.task_id if f.task_id is not None else None,
                    logs.c.trigger_id == f.trigger_id if f.trigger_id is not None else None,
                    logs.c.level.in_(levels) if levels is not None else None,
                    logs.c.timestamp >= f.start_date if f.start_date is not None else None,
                    logs.c.timestamp <= f.end_date if f.end_date is not None else None,
                    contains(f.q, logs.c.message),
                )
            )
            .order_by(*order)
        )
        rows, total = await self._db.read(fetch_page, query, page, size)
        return Page([codec.load_log(row._mapping) for row in rows], total)

    async def delete_by_execution(self, execution_id: str) -> int:
        return await self._db.write(_rowcount(delete(logs).where(logs.c.execution_id == execution_id)))


_METRIC_COLUMNS = [metrics.c[name] for name in codec.METRIC_COLUMNS]


class SqlMetricRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, entries: Iterable[MetricEntry]) -> None:
        rows = [codec.metric_row(entry) for entry in entries]
        if rows:
            await self._db.transaction(lambda conn: conn.execute(metrics.insert(), rows))

    async def find(self, execution_id: str, task_run_id: str | None = None) -> Sequence[MetricEntry]:
        query = (
            select(*_METRIC_COLUMNS)
            .where(
                metrics.c.execution_id == execution_id,
                *where(metrics.c.task_run_id == task_run_id if task_run_id is not None else None),
            )
            .order_by(metrics.c.timestamp, metrics.c.seq)
        )
        return [codec.load_metric(row) for row in await self._db.read(_rows(query))]

    async def delete_by_execution(self, execution_id: str) -> int:
        return await self._db.write(_rowcount(delete(metrics).where(metrics.c.execution_id == execution_id)))


# -- triggers ---------------------------------------------------------------------------------


def _trigger_key(namespace: str, flow_id: str, trigger_id: str) -> builtins.list[Any]:
    return [
        triggers.c.namespace == namespace,
        triggers.c.flow_id == flow_id,
        triggers.c.trigger_id == trigger_id,
    ]


class SqlTriggerRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, state: TriggerState) -> None:
        row = codec.trigger_row(state)
        row["value"] = self._db.json_text(row["value"])
        statement = self._db.insert(triggers).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["namespace", "flow_id", "trigger_id"],
            set_={name: statement.excluded[name] for name in row if name not in ("namespace", "flow_id")},
        )
        await self._db.write(lambda conn: conn.execute(statement))

    async def get(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerState | None:
        query = select(cast(triggers.c.value, Text)).where(*_trigger_key(namespace, flow_id, trigger_id))
        document = await self._db.read(lambda conn: conn.execute(query).scalar())
        return None if document is None else codec.load_trigger(document)

    async def list(
        self, namespace_prefix: str | None = None, flow_id: str | None = None
    ) -> Sequence[TriggerState]:
        query = (
            select(cast(triggers.c.value, Text))
            .where(
                *where(
                    namespace_under(triggers.c.namespace, namespace_prefix),
                    triggers.c.flow_id == flow_id if flow_id is not None else None,
                )
            )
            .order_by(triggers.c.namespace, triggers.c.flow_id, triggers.c.trigger_id)
        )
        documents = await self._db.read(lambda conn: builtins.list(conn.execute(query).scalars()))
        return [codec.load_trigger(document) for document in documents]

    async def delete(self, namespace: str, flow_id: str, trigger_id: str) -> bool:
        statement = delete(triggers).where(*_trigger_key(namespace, flow_id, trigger_id))
        return bool(await self._db.write(_rowcount(statement)))


# -- executor timers --------------------------------------------------------------------------


class SqlDelayRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def schedule(self, delay: ExecutionDelay) -> None:
        statement = self._db.insert(execution_delays).values(codec.delay_row(delay))
        statement = statement.on_conflict_do_update(
            index_elements=["execution_id", "kind", "task_run_id"], set_={"date": statement.excluded.date}
        )
        await self._db.write(lambda conn: conn.execute(statement))

    async def due(self, now: datetime, limit: int = 100) -> builtins.list[ExecutionDelay]:
        d = execution_delays.c
        query = (
            select(d.execution_id, d.kind, d.task_run_id, d.date)
            .where(d.date <= now)
            .order_by(d.date, d.execution_id, d.kind, d.task_run_id)
            .limit(limit)
        )
        return [codec.load_delay(row) for row in await self._db.read(_rows(query))]

    async def next_date(self) -> datetime | None:
        query = select(func.min(execution_delays.c.date))
        return await self._db.read(lambda conn: conn.execute(query).scalar())

    async def delete(self, delay: ExecutionDelay) -> bool:
        row = codec.delay_row(delay)
        statement = delete(execution_delays).where(*(execution_delays.c[name] == row[name] for name in row))
        return bool(await self._db.write(_rowcount(statement)))

    async def delete_execution(self, execution_id: str) -> int:
        statement = delete(execution_delays).where(execution_delays.c.execution_id == execution_id)
        return await self._db.write(_rowcount(statement))


# -- service instances ------------------------------------------------------------------------

_SERVICE_COLUMNS = [service_instances.c[name] for name in codec.SERVICE_COLUMNS]


def _states(states: Collection[ServiceState]) -> builtins.list[str]:
    return [ServiceState(state).value for state in states]


class SqlServiceRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, instance: ServiceInstance) -> None:
        row = codec.service_row(instance)
        statement = self._db.insert(service_instances).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["id"], set_={name: statement.excluded[name] for name in row if name != "id"}
        )
        await self._db.write(lambda conn: conn.execute(statement))

    async def _one(self, query: Any, write: bool = False) -> ServiceInstance | None:
        def work(conn: Connection) -> Any:
            return conn.execute(query).mappings().first()

        row = await (self._db.write(work) if write else self._db.read(work))
        return None if row is None else codec.load_service(row)

    async def get(self, id: str) -> ServiceInstance | None:
        return await self._one(select(*_SERVICE_COLUMNS).where(service_instances.c.id == id))

    async def heartbeat(self, id: str, now: datetime) -> ServiceInstance | None:
        statement = (
            update(service_instances)
            .where(service_instances.c.id == id)
            .values(last_heartbeat=now)
            .returning(*_SERVICE_COLUMNS)
        )
        return await self._one(statement, write=True)

    async def list(
        self, role: str | None = None, states: Collection[ServiceState] | None = None
    ) -> Sequence[ServiceInstance]:
        s = service_instances.c
        query = (
            select(*_SERVICE_COLUMNS)
            .where(
                *where(
                    s.role == role if role is not None else None,
                    s.state.in_(_states(states)) if states is not None else None,
                )
            )
            .order_by(s.started, s.id)
        )
        return [codec.load_service(row) for row in await self._db.read(_rows(query))]

    async def mark(
        self, id: str, state: ServiceState, only_from: Collection[ServiceState] | None = None
    ) -> bool:
        s = service_instances.c
        statement = (
            update(service_instances)
            .where(s.id == id, *where(s.state.in_(_states(only_from)) if only_from is not None else None))
            .values(state=ServiceState(state).value)
        )
        return bool(await self._db.write(_rowcount(statement)))

    async def stale(
        self, older_than: datetime, states: Collection[ServiceState] = LIVE_SERVICE_STATES
    ) -> Sequence[ServiceInstance]:
        s = service_instances.c
        query = (
            select(*_SERVICE_COLUMNS)
            .where(s.state.in_(_states(states)), s.last_heartbeat < older_than)
            .order_by(s.last_heartbeat, s.id)
        )
        return [codec.load_service(row) for row in await self._db.read(_rows(query))]

    async def delete(self, id: str) -> bool:
        statement = delete(service_instances).where(service_instances.c.id == id)
        return bool(await self._db.write(_rowcount(statement)))


# -- condition windows ------------------------------------------------------------------------

_WINDOW_COLUMNS = [condition_windows.c[name] for name in codec.WINDOW_COLUMNS]


def _under(scope: str) -> ColumnElement[bool]:
    """Keys of the scope's windows, as an index-friendly range (``0`` follows ``/``)."""
    key = condition_windows.c.key
    return and_(key >= window_key(scope, ""), key < scope + "0")


class SqlConditionWindowRepository:
    """``lock`` holds the database lock ``window:{scope}`` of each scope (``Database.hold``), reads
    their windows, and writes the changes when the block exits, in the same unit."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _upsert(self, rows: builtins.list[dict[str, Any]]) -> Any:
        statement = self._db.insert(condition_windows).values(rows)
        return statement.on_conflict_do_update(
            index_elements=["key"],
            set_={name: statement.excluded[name] for name in codec.WINDOW_COLUMNS if name != "key"},
        )

    async def get(self, key: str, now: datetime) -> WindowState | None:
        w = condition_windows.c
        query = select(*_WINDOW_COLUMNS).where(w.key == key, w.end_date > now)
        rows = await self._db.read(_rows(query))
        return codec.load_window(rows[0]) if rows else None

    async def save(self, key: str, state: WindowState) -> None:
        statement = self._upsert([codec.window_row(key, state)])
        await self._db.write(lambda conn: conn.execute(statement))

    async def delete(self, key: str) -> bool:
        statement = delete(condition_windows).where(condition_windows.c.key == key)
        return bool(await self._db.write(_rowcount(statement)))

    async def expire(self, now: datetime) -> int:
        return await self._db.write(
            _rowcount(delete(condition_windows).where(condition_windows.c.end_date <= now))
        )

    @staticmethod
    def _in_scopes(conn: Connection, scopes: Sequence[str]) -> builtins.list[Any]:
        if not scopes:
            return []
        query = select(*_WINDOW_COLUMNS).where(or_(*map(_under, scopes)))
        return builtins.list(conn.execute(query).mappings())

    def _apply(self, conn: Connection, changes: Mapping[str, WindowState | None]) -> None:
        saved = [codec.window_row(key, state) for key, state in changes.items() if state is not None]
        deleted = [key for key, state in changes.items() if state is None]
        if saved:
            conn.execute(self._upsert(saved))
        if deleted:
            conn.execute(delete(condition_windows).where(condition_windows.c.key.in_(deleted)))

    @asynccontextmanager
    async def lock(self, scopes: Collection[str]) -> AsyncIterator[PendingWindows]:
        ordered = sorted(set(scopes))
        async with self._db.hold([f"window:{scope}" for scope in ordered]) as run:
            rows = await run(self._in_scopes, ordered)
            locked = PendingWindows(ordered, {row["key"]: codec.load_window(row) for row in rows})
            try:
                yield locked
            finally:
                locked.close()
            if locked.changes:
                await run(self._apply, locked.changes)
