"""Repositories: where flows, executions, logs, metrics, trigger states and condition windows are
kept and searched.

One protocol per aggregate, all async, bundled by ``Repositories``. Records handed in and out are
immutable; a backend may return the very instance it was given (memory), so treat nested dicts as
read-only too.

Conventions shared by every search:

* a *namespace* filter is a prefix at dot boundaries: ``company`` matches ``company`` and
  ``company.team``, not ``companyx``;
* ``q`` is a case-insensitive substring match on the fields each method names;
* ``labels`` must all match (key and value, exactly);
* pages are 1-based; ``total`` counts every match, not only the page; ``page`` or ``size`` below 1
  raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import Field

from tiercel.model.base import Record
from tiercel.model.execution import Execution, Label
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.messages import ExecutionDelay
from tiercel.model.state import StateType
from tiercel.model.task import LogLevel
from tiercel.plugins.base import WindowState, window_key

T = TypeVar("T")

CONCURRENCY_STATES: frozenset[StateType] = frozenset(
    {
        StateType.SUBMITTED,
        StateType.RUNNING,
        StateType.PAUSED,
        StateType.RESTARTED,
        StateType.KILLING,
        StateType.RETRYING,
    }
)
"""The states that hold a slot of a flow's ``concurrency`` limit: every non-terminal state except
CREATED and QUEUED. Kestra counts only RUNNING and PAUSED; an execution passing through RESTARTED,
RETRYING or KILLING is still at work, and not counting it lets a queued one start beside it."""


class Page(NamedTuple, Generic[T]):
    """One page of a search and the number of matches over all pages; unpacks as ``items, total``."""

    items: list[T]
    total: int


def namespace_matches(namespace: str, prefix: str | None) -> bool:
    """The dot-boundary prefix rule every namespace filter follows."""
    return prefix is None or namespace == prefix or namespace.startswith(prefix + ".")


def labels_match(actual: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    return not wanted or all(actual.get(k) == v for k, v in wanted.items())


# -- flows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One revision of a flow: the YAML kept verbatim plus the parsed flow it was saved with."""

    namespace: str
    id: str
    revision: int
    source: str
    deleted: bool
    flow: Any
    """What the caller saved (a ``Flow``); given back as is. When it is a pydantic model with
    ``revision``/``deleted`` fields, the repository stores a copy with those set."""
    labels: tuple[Label, ...] = ()


class FlowRepository(Protocol):
    """Every revision of every flow. The latest revision, unless it is a deletion, is "the flow"."""

    async def save(self, namespace: str, id: str, source: str, flow_obj: Any) -> int:
        """Store ``source`` as the next revision of the flow and return its number.

        Revisions start at 1 and grow by 1. If the latest revision is live and has exactly this
        source, nothing is stored and its number is returned (saving is idempotent). Saving after a
        deletion creates a new live revision.
        """
        ...

    async def get(
        self, namespace: str, id: str, revision: int | None = None, allow_deleted: bool = False
    ) -> FlowRecord | None:
        """The latest revision (or ``revision``); ``None`` if it does not exist or, unless
        ``allow_deleted``, if it is a deletion."""
        ...

    async def revisions(self, namespace: str, id: str) -> Sequence[FlowRecord]:
        """Every revision, oldest first, deletions included; empty for an unknown flow."""
        ...

    async def delete(self, namespace: str, id: str) -> int:
        """Record a deletion as a new revision (same source, ``deleted=True``) and return its number.

        Raises:
            NotFoundError: there is no live flow to delete.
        """
        ...

    async def list(
        self,
        namespace_prefix: str | None = None,
        q: str | None = None,
        labels: Mapping[str, str] | None = None,
        page: int = 1,
        size: int = 25,
    ) -> Page[FlowRecord]:
        """Live flows (latest revisions), sorted by namespace then id. ``q`` matches namespace and id."""
        ...

    async def namespaces(self) -> Sequence[str]:
        """The distinct namespaces of live flows, sorted."""
        ...


# -- executions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """What ``ExecutionRepository.search`` keeps; ``None`` fields do not filter."""

    namespace: str | None = None
    """Namespace prefix (dot boundaries)."""
    flow_id: str | None = None
    states: Collection[StateType] | None = None
    """Current state is one of these."""
    labels: Mapping[str, str] | None = None
    start_date: datetime | None = None
    """Started at or after this instant."""
    end_date: datetime | None = None
    """Ended at or before this instant; executions still running never match (as in Kestra)."""
    q: str | None = None
    """Substring of the id, namespace, flow id or a label value."""
    parent_id: str | None = None
    """Children of this execution (subflows)."""


EXECUTION_SORT_KEYS = frozenset({"start_date", "end_date", "id", "namespace", "flow_id", "state"})


class LockedExecution(Protocol):
    """What ``ExecutionRepository.lock`` yields: the execution as stored when the lock was taken,
    and a way to write it while the lock is held."""

    execution: Execution | None
    """The stored execution, read under the lock; ``None`` if it does not exist (yet)."""

    async def save(self, execution: Execution) -> None:
        """Write ``execution`` as part of the locked unit: it becomes visible when the block exits
        without an exception, and is discarded if it raises. The last call wins.

        Raises:
            ValueError: ``execution.id`` is not the locked id.
        """
        ...


class ExecutionRepository(Protocol):
    async def save(self, execution: Execution) -> None:
        """Insert or replace the execution with this id. Do not use for an id you hold under ``lock``
        (write through the lock instead: SQL backends would wait on their own row lock)."""
        ...

    async def get(self, id: str) -> Execution | None: ...

    async def delete(self, id: str) -> bool:
        """Remove the execution; ``False`` if it did not exist. Logs and metrics are kept."""
        ...

    async def search(
        self,
        filter: ExecutionFilter | None = None,
        page: int = 1,
        size: int = 25,
        sort: str = "-start_date",
    ) -> Page[Execution]:
        """Executions matching ``filter``, sorted by one of ``EXECUTION_SORT_KEYS`` (``-`` prefix
        for descending; missing values last ascending, first descending), ties broken by id in the
        same direction.

        Raises:
            ValueError: unknown sort key, ``page`` < 1 or ``size`` < 1.
        """
        ...

    async def children(self, parent_id: str) -> Sequence[Execution]:
        """Every execution whose ``parent_id`` is ``parent_id`` (subflows), oldest start first."""
        ...

    async def count_running(
        self, namespace: str, flow_id: str, states: Collection[StateType] = CONCURRENCY_STATES
    ) -> int:
        """How many executions of the flow are in ``states`` (by default those that hold a
        concurrency slot). Call it under the flow's serialisation point, or two executors may both
        see room for one more."""
        ...

    async def oldest_queued(self, namespace: str, flow_id: str) -> Execution | None:
        """The QUEUED execution of the flow that entered QUEUED first (ties: oldest start, then id)."""
        ...

    def lock(self, execution_id: str) -> AbstractAsyncContextManager[LockedExecution]:
        """Exclusive access to one execution across tasks and, on shared backends, processes.

        ``async with repo.lock(id) as locked:`` waits until no other holder remains, then yields the
        current execution; writes made through ``locked.save`` are applied when the block exits
        normally. The lock is held even if the execution does not exist yet. It is not reentrant:
        taking it again inside the block waits forever.
        """
        ...


# -- logs and metrics -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What ``LogRepository.search`` keeps; ``None`` fields do not filter."""

    namespace: str | None = None
    """Namespace prefix (dot boundaries)."""
    flow_id: str | None = None
    execution_id: str | None = None
    task_id: str | None = None
    trigger_id: str | None = None
    min_level: LogLevel | None = None
    start_date: datetime | None = None
    """Logged at or after this instant."""
    end_date: datetime | None = None
    """Logged at or before this instant."""
    q: str | None = None
    """Substring of the message."""


class LogRepository(Protocol):
    async def append(self, entries: Iterable[LogEntry]) -> None:
        """Store the entries. Appending the same entry twice stores it twice (the indexer acks
        after appending, so a redelivered batch may duplicate lines)."""
        ...

    async def find(
        self,
        execution_id: str,
        min_level: LogLevel | None = None,
        task_run_id: str | None = None,
        task_id: str | None = None,
        attempt: int | None = None,
    ) -> Sequence[LogEntry]:
        """One execution's logs at ``min_level`` or above, by timestamp (ties: append order)."""
        ...

    async def search(
        self, filter: LogFilter | None = None, page: int = 1, size: int = 50, sort: str = "-timestamp"
    ) -> Page[LogEntry]:
        """Logs across executions; ``sort`` is ``timestamp`` or ``-timestamp``."""
        ...

    async def delete_by_execution(self, execution_id: str) -> int:
        """Delete an execution's logs and return how many were removed."""
        ...


class MetricRepository(Protocol):
    async def append(self, entries: Iterable[MetricEntry]) -> None: ...

    async def find(self, execution_id: str, task_run_id: str | None = None) -> Sequence[MetricEntry]:
        """One execution's metrics, by timestamp (ties: append order)."""
        ...

    async def delete_by_execution(self, execution_id: str) -> int: ...


# -- triggers ---------------------------------------------------------------------------------


class TriggerState(Record):
    """What the scheduler remembers about one trigger of one flow (Kestra's ``Trigger`` row)."""

    namespace: str
    flow_id: str
    trigger_id: str
    date: datetime | None = None
    """When the trigger last fired (or was evaluated, for polling triggers)."""
    next_execution_date: datetime | None = None
    backfill: dict[str, Any] | None = None
    execution_id: str | None = None
    """The execution this trigger started and is waiting for, if any."""
    evaluate_running_date: datetime | None = None
    worker_id: str | None = None
    disabled: bool = False
    stop_after: tuple[StateType, ...] = Field(default=())
    updated_date: datetime | None = None

    @property
    def uid(self) -> str:
        return f"{self.namespace}_{self.flow_id}_{self.trigger_id}"


class TriggerRepository(Protocol):
    async def save(self, state: TriggerState) -> None:
        """Insert or replace the state of ``(namespace, flow_id, trigger_id)``."""
        ...

    async def get(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerState | None: ...

    async def list(
        self, namespace_prefix: str | None = None, flow_id: str | None = None
    ) -> Sequence[TriggerState]:
        """Trigger states sorted by namespace, flow id, trigger id."""
        ...

    async def delete(self, namespace: str, flow_id: str, trigger_id: str) -> bool: ...


# -- the bundle -------------------------------------------------------------------------------


class Repositories(Protocol):
    """Every repository of one backend, sharing its connection pool; what ``tiercel.repository``
    entry points construct."""

    @property
    def flows(self) -> FlowRepository: ...

    @property
    def executions(self) -> ExecutionRepository: ...

    @property
    def logs(self) -> LogRepository: ...

    @property
    def metrics(self) -> MetricRepository: ...

    @property
    def triggers(self) -> TriggerRepository: ...

    @property
    def delays(self) -> DelayRepository: ...

    @property
    def services(self) -> ServiceRepository: ...

    @property
    def windows(self) -> ConditionWindowRepository: ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...


# -- executor timers ----------------------------------------------------------------------------


class DelayRepository(Protocol):
    """Timers the executor asked for (``ExecutionDelay``: resume a pause, retry a task later, …),
    kept until fired so they survive a restart. One timer per ``(execution_id, kind, task_run_id)``.

    Firing is at least once: whoever polls ``due`` fires a timer, then ``delete``s it; a crash in
    between fires it again after the restart (the executor ignores a timer that no longer applies).
    """

    async def schedule(self, delay: ExecutionDelay) -> None:
        """Insert the timer, or move the date of the one with the same key."""
        ...

    async def due(self, now: datetime, limit: int = 100) -> list[ExecutionDelay]:
        """Up to ``limit`` timers dated at or before ``now``, earliest first (ties: execution id,
        kind, task run id). They stay stored until deleted."""
        ...

    async def next_date(self) -> datetime | None:
        """The date of the earliest timer, to sleep until then; ``None`` when there is none."""
        ...

    async def delete(self, delay: ExecutionDelay) -> bool:
        """Remove the timer if it is still scheduled for ``delay.date``; ``False`` if it is gone or
        was moved meanwhile (a moved timer must fire at its new date)."""
        ...

    async def delete_execution(self, execution_id: str) -> int:
        """Remove every timer of the execution and return how many there were."""
        ...


# -- service instances (liveness) -----------------------------------------------------------------


class ServiceState(StrEnum):
    """Lifecycle of one server process (Kestra's ``Service.ServiceState`` names)."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    DISCONNECTED = "DISCONNECTED"
    """Missed its heartbeats: declared dead by another process, its work handed to others."""
    TERMINATED_GRACEFULLY = "TERMINATED_GRACEFULLY"
    TERMINATED_FORCED = "TERMINATED_FORCED"
    NOT_RUNNING = "NOT_RUNNING"
    """Declared dead and cleaned up after."""


LIVE_SERVICE_STATES: frozenset[ServiceState] = frozenset(
    {ServiceState.CREATED, ServiceState.RUNNING, ServiceState.TERMINATING}
)
"""The states of a process that is expected to heartbeat."""


class ServiceInstance(Record):
    """One running server process (executor, worker, scheduler, webserver) and its last heartbeat."""

    id: str
    role: str
    host: str
    pid: int
    state: ServiceState = ServiceState.RUNNING
    started: datetime
    last_heartbeat: datetime
    info: dict[str, Any] = Field(default_factory=dict)
    """Free-form details (version, worker threads, …); stored, not interpreted."""


class ServiceRepository(Protocol):
    async def register(self, instance: ServiceInstance) -> None:
        """Insert or replace the instance with this id."""
        ...

    async def get(self, id: str) -> ServiceInstance | None: ...

    async def heartbeat(self, id: str, now: datetime) -> ServiceInstance | None:
        """Set ``last_heartbeat`` to ``now`` and return the instance as stored; its ``state`` tells a
        process whether others declared it dead. The state is not changed. ``None`` if unknown."""
        ...

    async def list(
        self, role: str | None = None, states: Collection[ServiceState] | None = None
    ) -> Sequence[ServiceInstance]:
        """Instances (of ``role``, in ``states``), oldest ``started`` first (ties: id)."""
        ...

    async def mark(
        self, id: str, state: ServiceState, only_from: Collection[ServiceState] | None = None
    ) -> bool:
        """Set the state; with ``only_from``, only if the current state is one of those (so that of
        two processes declaring the same worker dead, one wins). ``False`` if nothing changed."""
        ...

    async def stale(
        self, older_than: datetime, states: Collection[ServiceState] = LIVE_SERVICE_STATES
    ) -> Sequence[ServiceInstance]:
        """Instances in ``states`` whose last heartbeat is before ``older_than``, oldest first."""
        ...

    async def delete(self, id: str) -> bool: ...


# -- condition windows ------------------------------------------------------------------------


class LockedWindows(Protocol):
    """What ``ConditionWindowRepository.lock`` yields: a ``MultipleConditionStore`` over the windows
    of the locked scopes, so a Flow trigger evaluation runs on it unchanged. Reads see the windows as
    stored when the lock was taken plus this block's own changes; changes are written when the block
    exits."""

    def get(self, key: str, now: datetime) -> WindowState | None:
        """The window of ``key``; ``None`` if there is none or it ended at or before ``now``.

        Raises:
            ValueError: ``key`` is not in a locked scope.
        """
        ...

    def save(self, key: str, state: WindowState) -> None:
        """Replace the window of ``key`` when the block exits normally.

        Raises:
            ValueError: ``key`` is not in a locked scope.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the window of ``key`` when the block exits normally.

        Raises:
            ValueError: ``key`` is not in a locked scope.
        """
        ...


class PendingWindows:
    """The ``LockedWindows`` every backend yields: the stored windows of the locked scopes and the
    changes made since, ``None`` for a deletion. An expired window read through ``get`` is deleted,
    as ``MemoryMultipleConditionStore`` does."""

    __slots__ = ("_open", "_prefixes", "changes", "stored")

    def __init__(self, scopes: Collection[str], stored: Mapping[str, WindowState]) -> None:
        self._prefixes = tuple(window_key(scope, "") for scope in scopes)
        self._open = True
        self.stored = dict(stored)
        self.changes: dict[str, WindowState | None] = {}

    def _check(self, key: str) -> None:
        if not self._open:
            raise RuntimeError("the window lock was released; change windows through a new lock")
        if not key.startswith(self._prefixes):
            raise ValueError(f"window {key!r} is not in a locked scope")

    def get(self, key: str, now: datetime) -> WindowState | None:
        self._check(key)
        state = self.changes[key] if key in self.changes else self.stored.get(key)
        if state is not None and state.end <= now:
            self.changes[key] = None
            return None
        return state

    def save(self, key: str, state: WindowState) -> None:
        self._check(key)
        self.changes[key] = state

    def delete(self, key: str) -> None:
        self._check(key)
        self.changes[key] = None

    def close(self) -> None:
        self._open = False


class ConditionWindowRepository(Protocol):
    """The time windows of ``MultipleCondition`` and Flow trigger ``preconditions``, by the key the
    condition records under, so that the events a window collects survive a restart and are shared
    by every executor.

    A key is ``{scope}/{condition id}``; the scope (``{flow uid}/{trigger id}``) is the unit of
    locking, because which of a trigger's conditions record (nested in ``Or``/``Not``, from plugins)
    is only known once they are evaluated. Scopes never nest: no scope's keys start with another's.
    A window whose ``end`` is not after ``now`` has expired: reads never return it, ``expire``
    removes it.
    """

    async def get(self, key: str, now: datetime) -> WindowState | None: ...

    async def save(self, key: str, state: WindowState) -> None:
        """Insert or replace the window of ``key``, without the lock (a holder of its scope may
        overwrite it)."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the window of ``key``; ``False`` if there was none."""
        ...

    async def expire(self, now: datetime) -> int:
        """Remove every window that ended at or before ``now`` and return how many there were."""
        ...

    def lock(self, scopes: Collection[str]) -> AbstractAsyncContextManager[LockedWindows]:
        """Exclusive access to the windows of ``scopes`` across tasks and, on PostgreSQL, processes:
        two executors recording events of one window take turns, and neither loses the other's.

        ``async with repo.lock(scopes) as windows:`` waits until no other holder of any of
        ``scopes`` remains, then yields their windows; what ``windows.save``/``windows.delete``
        change is written, all at once, when the block exits normally, and discarded if it raises.
        Scopes are taken in one global order, so overlapping sets do not deadlock. Not reentrant.
        """
        ...
