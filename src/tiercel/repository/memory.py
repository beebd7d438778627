"""In-process repositories: dicts and lists, nothing persisted. Used by ``tiercel flow test`` and
``server local --memory``, and as the reference the contract suite holds SQL backends to.

Every method runs without awaiting, so each one is atomic with respect to other tasks.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from tiercel.errors import NotFoundError
from tiercel.model.execution import Execution, Label, labels_from
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.messages import ExecutionDelay
from tiercel.model.state import StateType
from tiercel.model.task import LogLevel
from tiercel.plugins.base import WindowState, window_key
from tiercel.repository.base import (
    CONCURRENCY_STATES,
    EXECUTION_SORT_KEYS,
    LIVE_SERVICE_STATES,
    ExecutionFilter,
    FlowRecord,
    LogFilter,
    Page,
    PendingWindows,
    ServiceInstance,
    ServiceState,
    TriggerState,
    labels_match,
    namespace_matches,
)
from tiercel.repository.locks import KeyedLocks


def _paginate(items: builtins.list[Any], page: int, size: int) -> Page[Any]:
    if page < 1 or size < 1:
        raise ValueError(f"page and size must be at least 1 (got page={page}, size={size})")
    start = (page - 1) * size
    return Page(items[start : start + size], len(items))


def _contains(needle: str | None, *haystack: str | None) -> bool:
    if not needle:
        return True
    needle = needle.lower()
    return any(h is not None and needle in h.lower() for h in haystack)


# -- flows ------------------------------------------------------------------------------------


def _stamped(flow_obj: Any, revision: int, deleted: bool) -> Any:
    if isinstance(flow_obj, BaseModel):
        fields = type(flow_obj).model_fields
        update = {k: v for k, v in (("revision", revision), ("deleted", deleted)) if k in fields}
        if update:
            return flow_obj.model_copy(update=update)
    return flow_obj


def _labels_of(flow_obj: Any) -> tuple[Label, ...]:
    labels = getattr(flow_obj, "labels", None)
    return labels_from(labels) if labels else ()


class MemoryFlowRepository:
    def __init__(self) -> None:
        self._revisions: dict[tuple[str, str], builtins.list[FlowRecord]] = {}

    async def save(self, namespace: str, id: str, source: str, flow_obj: Any) -> int:
        revisions = self._revisions.setdefault((namespace, id), [])
        if revisions:
            last = revisions[-1]
            if not last.deleted and last.source == source:
                return last.revision
        revision = revisions[-1].revision + 1 if revisions else 1
        revisions.append(
            FlowRecord(
                namespace=namespace,
                id=id,
                revision=revision,
                source=source,
                deleted=False,
                flow=_stamped(flow_obj, revision, deleted=False),
                labels=_labels_of(flow_obj),
            )
        )
        return revision

    async def get(
        self, namespace: str, id: str, revision: int | None = None, allow_deleted: bool = False
    ) -> FlowRecord | None:
        revisions = self._revisions.get((namespace, id))
        if not revisions:
            return None
        if revision is None:
            found = revisions[-1]
        elif 1 <= revision <= len(revisions):
            found = revisions[revision - 1]
        else:
            return None
        return None if found.deleted and not allow_deleted else found

    async def revisions(self, namespace: str, id: str) -> Sequence[FlowRecord]:
        return builtins.list(self._revisions.get((namespace, id), ()))

    async def delete(self, namespace: str, id: str) -> int:
        revisions = self._revisions.get((namespace, id))
        if not revisions or revisions[-1].deleted:
            raise NotFoundError(f"flow {namespace}.{id} does not exist")
        last = revisions[-1]
        revision = last.revision + 1
        revisions.append(
            FlowRecord(
                namespace=namespace,
                id=id,
                revision=revision,
                source=last.source,
                deleted=True,
                flow=_stamped(last.flow, revision, deleted=True),
                labels=last.labels,
            )
        )
        return revision

    def _live(self) -> Iterable[FlowRecord]:
        return (revs[-1] for revs in self._revisions.values() if revs and not revs[-1].deleted)

    async def list(
        self,
        namespace_prefix: str | None = None,
        q: str | None = None,
        labels: Mapping[str, str] | None = None,
        page: int = 1,
        size: int = 25,
    ) -> Page[FlowRecord]:
        found = [
            f
            for f in self._live()
            if namespace_matches(f.namespace, namespace_prefix)
            and _contains(q, f.namespace, f.id)
            and labels_match({lb.key: lb.value for lb in reversed(f.labels)}, labels)
        ]
        found.sort(key=lambda f: (f.namespace, f.id))
        return _paginate(found, page, size)

    async def namespaces(self) -> Sequence[str]:
        return sorted({f.namespace for f in self._live()})


# -- executions -------------------------------------------------------------------------------


class _Locked:
    __slots__ = ("_id", "_open", "_pending", "execution")

    def __init__(self, execution_id: str, execution: Execution | None) -> None:
        self._id = execution_id
        self.execution = execution
        self._pending: Execution | None = None
        self._open = True

    async def save(self, execution: Execution) -> None:
        if not self._open:
            raise RuntimeError("the execution lock was released; save through a new lock")
        if execution.id != self._id:
            raise ValueError(f"lock is on execution {self._id}, not {execution.id}")
        self._pending = execution


_SORT_VALUES: dict[str, Callable[[Execution], Any]] = {
    "start_date": lambda e: e.state.start_date,
    "end_date": lambda e: e.state.end_date,
    "id": lambda e: e.id,
    "namespace": lambda e: e.namespace,
    "flow_id": lambda e: e.flow_id,
    "state": lambda e: e.state.current.value,
}


def _execution_matches(e: Execution, f: ExecutionFilter) -> bool:
    if not namespace_matches(e.namespace, f.namespace):
        return False
    if f.flow_id is not None and e.flow_id != f.flow_id:
        return False
    if f.states is not None and e.state.current not in f.states:
        return False
    if f.parent_id is not None and e.parent_id != f.parent_id:
        return False
    if f.start_date is not None:
        start = e.state.start_date
        if start is None or start < f.start_date:
            return False
    if f.end_date is not None:
        end = e.state.end_date
        if end is None or end > f.end_date:
            return False
    if f.labels and not labels_match(e.labels_map(), f.labels):
        return False
    return _contains(f.q, e.id, e.namespace, e.flow_id, *(lb.value for lb in e.labels))


def _nulls_last(value: Any) -> tuple[bool, Any]:
    return (value is None, 0 if value is None else value)


def _entered(e: Execution, state: StateType) -> datetime | None:
    for history in reversed(e.state.histories):
        if history.state == state:
            return history.date
    return None


class MemoryExecutionRepository:
    def __init__(self) -> None:
        self._executions: dict[str, Execution] = {}
        self._by_flow: dict[tuple[str, str], set[str]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, builtins.list[int]]] = {}

    def _put(self, execution: Execution) -> None:
        previous = self._executions.get(execution.id)
        if previous is not None and (previous.namespace, previous.flow_id) != (
            execution.namespace,
            execution.flow_id,
        ):
            self._by_flow[(previous.namespace, previous.flow_id)].discard(previous.id)
        self._executions[execution.id] = execution
        self._by_flow.setdefault((execution.namespace, execution.flow_id), set()).add(execution.id)

    async def save(self, execution: Execution) -> None:
        self._put(execution)

    async def get(self, id: str) -> Execution | None:
        return self._executions.get(id)

    async def delete(self, id: str) -> bool:
        execution = self._executions.pop(id, None)
        if execution is None:
            return False
        self._by_flow[(execution.namespace, execution.flow_id)].discard(id)
        return True

    async def search(
        self,
        filter: ExecutionFilter | None = None,
        page: int = 1,
        size: int = 25,
        sort: str = "-start_date",
    ) -> Page[Execution]:
        descending = sort.startswith("-")
        field = sort.removeprefix("-")
        if field not in EXECUTION_SORT_KEYS:
            raise ValueError(f"cannot sort executions by {field!r}; use one of {sorted(EXECUTION_SORT_KEYS)}")
        value = _SORT_VALUES[field]
        where = filter or ExecutionFilter()
        found = [e for e in self._executions.values() if _execution_matches(e, where)]

        def key(e: Execution) -> tuple[bool, Any, str]:
            # NULLs last ascending, first descending (PostgreSQL's default order).
            return (*_nulls_last(value(e)), e.id)

        found.sort(key=key, reverse=descending)
        return _paginate(found, page, size)

    async def children(self, parent_id: str) -> Sequence[Execution]:
        found = [e for e in self._executions.values() if e.parent_id == parent_id]
        found.sort(key=lambda e: (*_nulls_last(e.state.start_date), e.id))
        return found

    def _of_flow(self, namespace: str, flow_id: str) -> Iterable[Execution]:
        return (self._executions[i] for i in self._by_flow.get((namespace, flow_id), ()))

    async def count_running(
        self, namespace: str, flow_id: str, states: Collection[StateType] = CONCURRENCY_STATES
    ) -> int:
        return sum(1 for e in self._of_flow(namespace, flow_id) if e.state.current in states)

    async def oldest_queued(self, namespace: str, flow_id: str) -> Execution | None:
        queued = [e for e in self._of_flow(namespace, flow_id) if e.state.current == StateType.QUEUED]
        if not queued:
            return None
        return min(queued, key=lambda e: (*_nulls_last(_entered(e, StateType.QUEUED)), e.id))

    @asynccontextmanager
    async def lock(self, execution_id: str) -> AsyncIterator[_Locked]:
        entry = self._locks.get(execution_id)
        if entry is None:
            entry = self._locks[execution_id] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                locked = _Locked(execution_id, self._executions.get(execution_id))
                try:
                    yield locked
                    if locked._pending is not None:
                        self._put(locked._pending)
                finally:
                    locked._open = False
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[execution_id]


# -- logs and metrics -------------------------------------------------------------------------


class MemoryLogRepository:
    def __init__(self) -> None:
        self._by_execution: dict[str | None, builtins.list[LogEntry]] = {}

    async def append(self, entries: Iterable[LogEntry]) -> None:
        for entry in entries:
            self._by_execution.setdefault(entry.execution_id, []).append(entry)

    async def find(
        self,
        execution_id: str,
        min_level: LogLevel | None = None,
        task_run_id: str | None = None,
        task_id: str | None = None,
        attempt: int | None = None,
    ) -> Sequence[LogEntry]:
        rank = min_level.rank if min_level is not None else -1
        found = [
            e
            for e in self._by_execution.get(execution_id, ())
            if e.level.rank >= rank
            and (task_run_id is None or e.task_run_id == task_run_id)
            and (task_id is None or e.task_id == task_id)
            and (attempt is None or e.attempt_number == attempt)
        ]
        found.sort(key=lambda e: e.timestamp)
        return found

    async def search(
        self, filter: LogFilter | None = None, page: int = 1, size: int = 50, sort: str = "-timestamp"
    ) -> Page[LogEntry]:
        if sort not in ("timestamp", "-timestamp"):
            raise ValueError(f"cannot sort logs by {sort!r}; use 'timestamp' or '-timestamp'")
        f = filter or LogFilter()
        if f.execution_id is not None:
            pool: Iterable[LogEntry] = self._by_execution.get(f.execution_id, ())
        else:
            pool = (e for entries in self._by_execution.values() for e in entries)
        rank = f.min_level.rank if f.min_level is not None else -1
        found = [
            e
            for e in pool
            if e.level.rank >= rank
            and namespace_matches(e.namespace, f.namespace)
            and (f.flow_id is None or e.flow_id == f.flow_id)
            and (f.task_id is None or e.task_id == f.task_id)
            and (f.trigger_id is None or e.trigger_id == f.trigger_id)
            and (f.start_date is None or e.timestamp >= f.start_date)
            and (f.end_date is None or e.timestamp <= f.end_date)
            and _contains(f.q, e.message)
        ]
        if sort == "-timestamp":
            found.reverse()  # newest first; entries logged at the same instant: last appended first
        found.sort(key=lambda e: e.timestamp, reverse=sort == "-timestamp")
        return _paginate(found, page, size)

    async def delete_by_execution(self, execution_id: str) -> int:
        return len(self._by_execution.pop(execution_id, ()))


class MemoryMetricRepository:
    def __init__(self) -> None:
        self._by_execution: dict[str | None, builtins.list[MetricEntry]] = {}

    async def append(self, entries: Iterable[MetricEntry]) -> None:
        for entry in entries:
            self._by_execution.setdefault(entry.execution_id, []).append(entry)

    async def find(self, execution_id: str, task_run_id: str | None = None) -> Sequence[MetricEntry]:
        found = [
            m
            for m in self._by_execution.get(execution_id, ())
            if task_run_id is None or m.task_run_id == task_run_id
        ]
        found.sort(key=lambda m: m.timestamp)
        return found

    async def delete_by_execution(self, execution_id: str) -> int:
        return len(self._by_execution.pop(execution_id, ()))


# -- triggers ---------------------------------------------------------------------------------


class MemoryTriggerRepository:
    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str], TriggerState] = {}

    async def save(self, state: TriggerState) -> None:
        self._states[(state.namespace, state.flow_id, state.trigger_id)] = state

    async def get(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerState | None:
        return self._states.get((namespace, flow_id, trigger_id))

    async def list(
        self, namespace_prefix: str | None = None, flow_id: str | None = None
    ) -> Sequence[TriggerState]:
        return [
            state
            for key, state in sorted(self._states.items())
            if namespace_matches(state.namespace, namespace_prefix)
            and (flow_id is None or state.flow_id == flow_id)
        ]

    async def delete(self, namespace: str, flow_id: str, trigger_id: str) -> bool:
        return self._states.pop((namespace, flow_id, trigger_id), None) is not None


class MemoryRepositories:
    """The ``memory`` repository backend: every repository, in this process only."""

    def __init__(self) -> None:
        self.flows = MemoryFlowRepository()
        self.executions = MemoryExecutionRepository()
        self.logs = MemoryLogRepository()
        self.metrics = MemoryMetricRepository()
        self.triggers = MemoryTriggerRepository()
        self.delays = MemoryDelayRepository()
        self.services = MemoryServiceRepository()
        self.windows = MemoryConditionWindowRepository()

    async def close(self) -> None:
        return None


# -- executor timers, service instances and condition windows -----------------------------------


def _delay_key(delay: ExecutionDelay) -> tuple[str, str, str]:
    return (delay.execution_id, delay.kind, delay.task_run_id or "")


class MemoryDelayRepository:
    def __init__(self) -> None:
        self._delays: dict[tuple[str, str, str], ExecutionDelay] = {}

    async def schedule(self, delay: ExecutionDelay) -> None:
        self._delays[_delay_key(delay)] = delay

    def _sorted(self) -> builtins.list[ExecutionDelay]:
        return sorted(self._delays.values(), key=lambda d: (d.date, *_delay_key(d)))

    async def due(self, now: datetime, limit: int = 100) -> builtins.list[ExecutionDelay]:
        return [d for d in self._sorted() if d.date <= now][:limit]

    async def next_date(self) -> datetime | None:
        return min((d.date for d in self._delays.values()), default=None)

    async def delete(self, delay: ExecutionDelay) -> bool:
        key = _delay_key(delay)
        stored = self._delays.get(key)
        if stored is None or stored.date != delay.date:
            return False
        del self._delays[key]
        return True

    async def delete_execution(self, execution_id: str) -> int:
        keys = [key for key in self._delays if key[0] == execution_id]
        for key in keys:
            del self._delays[key]
        return len(keys)


class MemoryServiceRepository:
    def __init__(self) -> None:
        self._instances: dict[str, ServiceInstance] = {}

    async def register(self, instance: ServiceInstance) -> None:
        self._instances[instance.id] = instance

    async def get(self, id: str) -> ServiceInstance | None:
        return self._instances.get(id)

    async def heartbeat(self, id: str, now: datetime) -> ServiceInstance | None:
        instance = self._instances.get(id)
        if instance is None:
            return None
        instance = self._instances[id] = instance.model_copy(update={"last_heartbeat": now})
        return instance

    async def list(
        self, role: str | None = None, states: Collection[ServiceState] | None = None
    ) -> Sequence[ServiceInstance]:
        found = [
            i
            for i in self._instances.values()
            if (role is None or i.role == role) and (states is None or i.state in states)
        ]
        return sorted(found, key=lambda i: (i.started, i.id))

    async def mark(
        self, id: str, state: ServiceState, only_from: Collection[ServiceState] | None = None
    ) -> bool:
        instance = self._instances.get(id)
        if instance is None or (only_from is not None and instance.state not in only_from):
            return False
        self._instances[id] = instance.model_copy(update={"state": state})
        return True

    async def stale(
        self, older_than: datetime, states: Collection[ServiceState] = LIVE_SERVICE_STATES
    ) -> Sequence[ServiceInstance]:
        found = [i for i in self._instances.values() if i.state in states and i.last_heartbeat < older_than]
        return sorted(found, key=lambda i: (i.last_heartbeat, i.id))

    async def delete(self, id: str) -> bool:
        return self._instances.pop(id, None) is not None


class MemoryConditionWindowRepository:
    def __init__(self) -> None:
        self._windows: dict[str, WindowState] = {}
        self._locks = KeyedLocks()

    async def get(self, key: str, now: datetime) -> WindowState | None:
        state = self._windows.get(key)
        return state if state is not None and state.end > now else None

    async def save(self, key: str, state: WindowState) -> None:
        self._windows[key] = state

    async def delete(self, key: str) -> bool:
        return self._windows.pop(key, None) is not None

    async def expire(self, now: datetime) -> int:
        ended = [key for key, state in self._windows.items() if state.end <= now]
        for key in ended:
            del self._windows[key]
        return len(ended)

    @asynccontextmanager
    async def lock(self, scopes: Collection[str]) -> AsyncIterator[PendingWindows]:
        async with self._locks.hold_all(scopes):
            prefixes = tuple(window_key(scope, "") for scope in scopes)
            stored = {k: state for k, state in self._windows.items() if k.startswith(prefixes)}
            locked = PendingWindows(scopes, stored)
            try:
                yield locked
            finally:
                locked.close()
            for key, state in locked.changes.items():
                if state is None:
                    self._windows.pop(key, None)
                else:
                    self._windows[key] = state
