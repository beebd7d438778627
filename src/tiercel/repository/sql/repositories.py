"""Dialect-neutral repositories over a :class:`~tiercel.repository.sql.database.Database`: flows and
executions here, the other aggregates in ``records.py``, the bundle at the end.

Queries are SQLAlchemy Core run as functions of a synchronous ``Connection`` (see ``database.py``);
what differs between SQLite and PostgreSQL is asked of the database object.
"""

from __future__ import annotations

import builtins
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    cast,
    delete,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
)

from tiercel.errors import NotFoundError
from tiercel.model.execution import Execution
from tiercel.model.state import StateType
from tiercel.repository.base import (
    CONCURRENCY_STATES,
    EXECUTION_SORT_KEYS,
    ExecutionFilter,
    FlowRecord,
    Page,
)
from tiercel.repository.sql import codec
from tiercel.repository.sql.database import Database, PendingWrite
from tiercel.repository.sql.query import check_page, contains, fetch_page, namespace_under, where
from tiercel.repository.sql.records import (
    SqlConditionWindowRepository,
    SqlDelayRepository,
    SqlLogRepository,
    SqlMetricRepository,
    SqlServiceRepository,
    SqlTriggerRepository,
)
from tiercel.repository.sql.tables import executions, flows

# -- flows ------------------------------------------------------------------------------------

_FLOW_COLUMNS = (
    flows.c.namespace,
    flows.c.id,
    flows.c.revision,
    flows.c.deleted,
    flows.c.source,
    flows.c.flow_type,
    cast(flows.c.flow, Text).label("flow"),
)


class SqlFlowRepository:
    """Revisions are immutable rows, so decoded flows are cached by ``(namespace, id, revision)``
    and a lookup by revision that hits the cache runs no query."""

    CACHE_SIZE = 512

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: OrderedDict[tuple[str, str, int], FlowRecord] = OrderedDict()

    def _record(self, row: Any) -> FlowRecord:
        key = (row.namespace, row.id, row.revision)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        flow_obj = codec.load_flow(row.flow_type, row.flow)
        record = FlowRecord(
            namespace=row.namespace,
            id=row.id,
            revision=row.revision,
            source=row.source,
            deleted=row.deleted,
            flow=flow_obj,
            labels=codec.flow_labels(flow_obj),
        )
        self._cache[key] = record
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return record

    def _insert(self, conn: Connection, record: FlowRecord) -> None:
        flow_type, document = codec.flow_document(record.flow)
        conn.execute(
            flows.insert().values(
                namespace=record.namespace,
                id=record.id,
                revision=record.revision,
                deleted=record.deleted,
                source=record.source,
                labels=self._db.json_text(codec.labels_document(record.labels)),
                flow_type=flow_type,
                flow=null() if document is None else self._db.json_text(document),
                created=datetime.now(UTC),
            )
        )

    @staticmethod
    def _latest(conn: Connection, namespace: str, id: str) -> Any:
        query = (
            select(*_FLOW_COLUMNS)
            .where(flows.c.namespace == namespace, flows.c.id == id)
            .order_by(flows.c.revision.desc())
            .limit(1)
        )
        return conn.execute(query).first()

    async def save(self, namespace: str, id: str, source: str, flow_obj: Any) -> int:
        def work(conn: Connection) -> int:
            last = self._latest(conn, namespace, id)
            if last is not None and not last.deleted and last.source == source:
                return int(last.revision)
            revision = last.revision + 1 if last is not None else 1
            stamped = codec.stamp_flow(flow_obj, revision, deleted=False)
            self._insert(
                conn, FlowRecord(namespace, id, revision, source, False, stamped, codec.flow_labels(flow_obj))
            )
            return revision

        return await self._db.transaction(work, key=f"flow:{namespace}/{id}")

    async def get(
        self, namespace: str, id: str, revision: int | None = None, allow_deleted: bool = False
    ) -> FlowRecord | None:
        if revision is not None:  # a stored revision never changes: the executor's lookups stay in memory
            cached = self._cache.get((namespace, id, revision))
            if cached is not None:
                return None if cached.deleted and not allow_deleted else cached

        def work(conn: Connection) -> Any:
            if revision is None:
                return self._latest(conn, namespace, id)
            query = select(*_FLOW_COLUMNS).where(
                flows.c.namespace == namespace, flows.c.id == id, flows.c.revision == revision
            )
            return conn.execute(query).first()

        row = await self._db.read(work)
        if row is None or (row.deleted and not allow_deleted):
            return None
        return self._record(row)

    async def revisions(self, namespace: str, id: str) -> Sequence[FlowRecord]:
        query = (
            select(*_FLOW_COLUMNS)
            .where(flows.c.namespace == namespace, flows.c.id == id)
            .order_by(flows.c.revision)
        )
        rows = await self._db.read(lambda conn: builtins.list(conn.execute(query)))
        return [self._record(row) for row in rows]

    async def delete(self, namespace: str, id: str) -> int:
        # The flow is decoded here, on the event loop (cached, and model building is not for
        # worker threads); the transaction then only checks nobody saved a revision meanwhile.
        while True:
            last = await self._db.read(self._latest, namespace, id)
            if last is None or last.deleted:
                raise NotFoundError(f"flow {namespace}.{id} does not exist")
            previous = self._record(last)
            revision = previous.revision + 1
            stamped = codec.stamp_flow(previous.flow, revision, deleted=True)
            deletion = FlowRecord(namespace, id, revision, previous.source, True, stamped, previous.labels)

            def work(
                conn: Connection, expected: int = previous.revision, record: FlowRecord = deletion
            ) -> bool:
                current = self._latest(conn, namespace, id)
                if current is None or current.revision != expected:
                    return False
                self._insert(conn, record)
                return True

            if await self._db.transaction(work, key=f"flow:{namespace}/{id}"):
                return revision

    @staticmethod
    def _live() -> Select[Any]:
        latest = (
            select(flows.c.namespace, flows.c.id, func.max(flows.c.revision).label("revision"))
            .group_by(flows.c.namespace, flows.c.id)
            .subquery()
        )
        on = and_(
            flows.c.namespace == latest.c.namespace,
            flows.c.id == latest.c.id,
            flows.c.revision == latest.c.revision,
        )
        return select(*_FLOW_COLUMNS).join_from(flows, latest, on).where(flows.c.deleted == false())

    async def list(
        self,
        namespace_prefix: str | None = None,
        q: str | None = None,
        labels: Mapping[str, str] | None = None,
        page: int = 1,
        size: int = 25,
    ) -> Page[FlowRecord]:
        check_page(page, size)
        query = (
            self._live()
            .where(
                *where(
                    namespace_under(flows.c.namespace, namespace_prefix),
                    contains(q, flows.c.namespace, flows.c.id),
                    self._db.labels_contain(flows.c.labels, labels) if labels else None,
                )
            )
            .order_by(flows.c.namespace, flows.c.id)
        )
        rows, total = await self._db.read(fetch_page, query, page, size)
        return Page([self._record(row) for row in rows], total)

    async def namespaces(self) -> Sequence[str]:
        live = self._live().subquery()
        query = select(live.c.namespace).distinct().order_by(live.c.namespace)
        return await self._db.read(lambda conn: builtins.list(conn.execute(query).scalars()))


# -- executions -------------------------------------------------------------------------------

_DOCUMENT = cast(executions.c.value, Text).label("value")


def _sort(sort: str) -> builtins.list[Any]:
    descending = sort.startswith("-")
    field = sort.removeprefix("-")
    if field not in EXECUTION_SORT_KEYS:
        raise ValueError(f"cannot sort executions by {field!r}; use one of {sorted(EXECUTION_SORT_KEYS)}")
    column = executions.c[field]
    if descending:  # missing values first descending, last ascending (PostgreSQL's default)
        return [column.desc().nulls_first(), executions.c.id.desc()]
    return [column.asc().nulls_last(), executions.c.id.asc()]


class SqlExecutionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, execution: Execution) -> None:
        await self._db.save_execution(execution)

    async def get(self, id: str) -> Execution | None:
        return await self._db.get_execution(id)

    async def delete(self, id: str) -> bool:
        statement = delete(executions).where(executions.c.id == id)
        return bool(await self._db.write(lambda conn: conn.execute(statement).rowcount))

    def _matching(self, f: ExecutionFilter) -> builtins.list[ColumnElement[bool]]:
        text_match = None
        if f.q:
            values = self._db.label_values(executions.c.labels)
            text_match = or_(
                *(
                    c.icontains(f.q, autoescape=True)
                    for c in (executions.c.id, executions.c.namespace, executions.c.flow_id)
                ),
                exists(
                    select(literal(1))
                    .select_from(values)
                    .where(values.c.value.icontains(f.q, autoescape=True))
                ),
            )
        end = f.end_date
        return where(
            namespace_under(executions.c.namespace, f.namespace),
            executions.c.flow_id == f.flow_id if f.flow_id is not None else None,
            executions.c.state.in_([s.value for s in f.states]) if f.states is not None else None,
            self._db.labels_contain(executions.c.labels, f.labels) if f.labels else None,
            executions.c.start_date >= f.start_date if f.start_date is not None else None,
            and_(executions.c.end_date.is_not(None), executions.c.end_date <= end)
            if end is not None
            else None,
            executions.c.parent_id == f.parent_id if f.parent_id is not None else None,
            text_match,
        )

    async def search(
        self,
        filter: ExecutionFilter | None = None,
        page: int = 1,
        size: int = 25,
        sort: str = "-start_date",
    ) -> Page[Execution]:
        order = _sort(sort)
        check_page(page, size)
        query = select(_DOCUMENT).where(*self._matching(filter or ExecutionFilter())).order_by(*order)
        rows, total = await self._db.read(fetch_page, query, page, size)
        return Page([codec.load_execution(row.value) for row in rows], total)

    async def children(self, parent_id: str) -> Sequence[Execution]:
        query = (
            select(_DOCUMENT)
            .where(executions.c.parent_id == parent_id)
            .order_by(executions.c.start_date.asc().nulls_last(), executions.c.id)
        )
        documents = await self._db.read(lambda conn: builtins.list(conn.execute(query).scalars()))
        return [codec.load_execution(document) for document in documents]

    async def count_running(
        self, namespace: str, flow_id: str, states: Collection[StateType] = CONCURRENCY_STATES
    ) -> int:
        query = select(func.count()).where(
            executions.c.namespace == namespace,
            executions.c.flow_id == flow_id,
            executions.c.state.in_([s.value for s in states]),
        )
        return int(await self._db.read(lambda conn: conn.execute(query).scalar_one()))

    async def oldest_queued(self, namespace: str, flow_id: str) -> Execution | None:
        query = (
            select(_DOCUMENT)
            .where(
                executions.c.namespace == namespace,
                executions.c.flow_id == flow_id,
                executions.c.state == StateType.QUEUED.value,
            )
            .order_by(
                executions.c.queued_date.asc().nulls_last(),
                executions.c.start_date.asc().nulls_last(),
                executions.c.id,
            )
            .limit(1)
        )
        document = await self._db.read(lambda conn: conn.execute(query).scalar())
        return None if document is None else codec.load_execution(document)

    def lock(self, execution_id: str) -> AbstractAsyncContextManager[PendingWrite]:
        return self._db.lock_execution(execution_id)


# -- the bundle -------------------------------------------------------------------------------


class SqlRepositories:
    """Every repository over one database. The schema is migrated by ``open()`` (the server wiring
    awaits it at start-up) or, failing that, before the first statement runs."""

    def __init__(self, db: Database) -> None:
        self.database = db
        self.flows = SqlFlowRepository(db)
        self.executions = SqlExecutionRepository(db)
        self.logs = SqlLogRepository(db)
        self.metrics = SqlMetricRepository(db)
        self.triggers = SqlTriggerRepository(db)
        self.delays = SqlDelayRepository(db)
        self.services = SqlServiceRepository(db)
        self.windows = SqlConditionWindowRepository(db)

    async def open(self) -> None:
        """Connect and apply pending migrations. Idempotent.

        Raises:
            ConfigError: the database cannot be reached or opened.
        """
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.database.url!r})"
