"""What the SQL repositories need from a database, implemented once per dialect
(``tiercel.repository.sqlite`` and ``tiercel.repository.postgres``).

Dialect-neutral queries are plain functions of a synchronous SQLAlchemy ``Connection`` handed to
``read``/``write``/``transaction``: PostgreSQL runs them on its asyncio engine through
``AsyncConnection.run_sync``; SQLite runs them in a worker thread (one thread hop per operation
instead of one per driver call, which is what makes aiosqlite slow). The few statements on the hot
path (execution get/save/lock, log append) are written by hand in each dialect's module.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Table, TableValuedAlias
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tiercel.errors import ConfigError
from tiercel.model.execution import Execution

T = TypeVar("T")
Upsert = postgresql.Insert | sqlite.Insert
"""An INSERT with ``on_conflict_do_update``/``on_conflict_do_nothing`` and ``excluded``."""
Work = Callable[..., T]
"""A function of a synchronous ``Connection`` (and more arguments) that runs some statements."""
Run = Callable[..., Awaitable[Any]]
"""``run(work, *args)``: runs ``work`` inside what ``Database.hold`` holds and returns its result."""


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def parse_url(url: str, schemes: Iterable[str], example: str) -> URL:
    """``url`` as a SQLAlchemy ``URL`` whose driver-less scheme is one of ``schemes``.

    Raises:
        ConfigError: the URL cannot be parsed or is of another kind.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"datasource URL {redact_url(url)!r} cannot be parsed; expected {example}"
        ) from None
    if parsed.get_backend_name() not in schemes:
        raise ConfigError(f"datasource URL {redact_url(url)!r} is not of the form {example}")
    return parsed


def one_line(exc: BaseException) -> str:
    """The first line of a driver's error message (psycopg's span several)."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


class PendingWrite:
    """The ``LockedExecution`` a SQL backend yields: the execution read under the lock, and the one
    to write when the block exits normally."""

    __slots__ = ("_id", "_open", "execution", "pending")

    def __init__(self, execution_id: str, execution: Execution | None) -> None:
        self._id = execution_id
        self._open = True
        self.execution = execution
        self.pending: Execution | None = None

    async def save(self, execution: Execution) -> None:
        if not self._open:
            raise RuntimeError("the execution lock was released; save through a new lock")
        if execution.id != self._id:
            raise ValueError(f"lock is on execution {self._id}, not {execution.id}")
        self.pending = execution

    def close(self) -> None:
        self._open = False


class Database(ABC):
    """One database: how work runs on it, plus the dialect-specific pieces of the queries."""

    url: str
    """The datasource URL with its password hidden, for messages."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and upgrade the schema to the current migration. Idempotent.

        Raises:
            ConfigError: the database cannot be reached or opened (one line naming the URL).
        """

    @abstractmethod
    async def close(self) -> None:
        """Release every connection. Idempotent."""

    @abstractmethod
    async def read(self, work: Work[T], *args: Any) -> T:
        """Run ``work(connection, *args)`` outside any transaction (each statement sees what is
        committed when it starts)."""

    @abstractmethod
    async def write(self, work: Work[T], *args: Any) -> T:
        """Run ``work`` whose statements each stand alone (no atomicity across them)."""

    @abstractmethod
    async def transaction(self, work: Work[T], *args: Any, key: str | None = None) -> T:
        """Run ``work`` in one write transaction, committed if it returns. Transactions with the
        same ``key`` run one at a time (SQLite runs every write transaction one at a time)."""

    @abstractmethod
    def hold(self, names: Collection[str]) -> AbstractAsyncContextManager[Run]:
        """Exclusive use of the lock ``names`` until the block exits: across the tasks of this
        process and, on PostgreSQL, across processes. Yields ``run(work, *args)``, which runs
        ``work`` in a write transaction; on PostgreSQL every ``run`` of one block shares one
        transaction, committed when the block exits normally."""

    # -- dialect-specific expressions --------------------------------------------------------

    @abstractmethod
    def insert(self, table: Table) -> Upsert:
        """An INSERT of the dialect, which can upsert."""

    @abstractmethod
    def json_text(self, document: str) -> ColumnElement[Any]:
        """A bound JSON document given as text, for a ``Document`` column."""

    @abstractmethod
    def labels_contain(self, column: Any, labels: Mapping[str, str]) -> ColumnElement[bool]:
        """``column`` (a ``{key: value}`` document) has every one of ``labels``."""

    @abstractmethod
    def label_values(self, column: Any) -> TableValuedAlias:
        """The values of a ``{key: value}`` document, as a table with a ``value`` column."""

    # -- hot paths ---------------------------------------------------------------------------

    @abstractmethod
    async def get_execution(self, execution_id: str) -> Execution | None: ...

    @abstractmethod
    async def save_execution(self, execution: Execution) -> None:
        """Insert or replace (the columns come from ``codec.execution_row``)."""

    @abstractmethod
    def lock_execution(self, execution_id: str) -> AbstractAsyncContextManager[PendingWrite]:
        """``ExecutionRepository.lock``."""

    @abstractmethod
    async def append_logs(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Insert log rows (``codec.log_row``) in one batch, in order."""
