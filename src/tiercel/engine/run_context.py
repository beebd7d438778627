"""The ``RunContext`` a runnable task gets for one attempt (one ``WorkerJob``).

The worker builds one per task run, so construction only stores references; everything else
(render variables, working directory, logger, KV facade) is created on first use.

Template functions and I/O: templating is synchronous, storage is async. Functions such as
``read()``, ``kv()``, ``fileSize()`` and ``errorLogs()`` therefore run their coroutine through
:func:`run_blocking`: directly with ``asyncio.run`` when no loop runs in the calling thread (the
worker may render inside ``asyncio.to_thread``), otherwise on a helper thread with its own loop
while the caller waits. The second case blocks the worker's loop for the duration of that one
small read, which is the price of a synchronous template language; it requires storage backends
not to bind their clients to a single event loop (``LocalStorage`` does not).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from tiercel.clock import Clock, SystemClock
from tiercel.errors import ConfigError, StorageError, TemplateError
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.task import LogLevel
from tiercel.storage.base import Storage
from tiercel.storage.kv import KVEntry, KVStore, KVType
from tiercel.storage.uri import (
    InvalidStorageURI,
    StorageURI,
    execution_prefix,
    namespace_file_uri,
    namespace_files_prefix,
    task_output_prefix,
)

if TYPE_CHECKING:
    from tiercel.model.execution import TaskRun
    from tiercel.model.messages import WorkerJob
    from tiercel.plugins.base import Task

T = TypeVar("T")

LogFetcher = Callable[..., Awaitable[list[LogEntry]]]
"""``await fetch_logs(namespace=, flow_id=, execution_id=, task_ids=None, min_level=LogLevel.TRACE)``:
the stored logs of one execution, oldest first, at ``min_level`` or above, optionally only of the
given task ids."""


class ExecutionResumer(Protocol):
    """``await resume_execution(execution_id, inputs, namespace=, flow_id=)``: resume a PAUSED execution.

    ``inputs`` are the paused task's ``onResume`` values, validated by the engine. When ``namespace`` and
    ``flow_id`` are given the execution must belong to that flow. Raises ``TiercelError`` (the message is
    meant for the user) when the execution does not exist, is not PAUSED, belongs to another flow or
    the inputs are invalid.
    """

    def __call__(
        self,
        execution_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> Awaitable[None]: ...


_LEVEL_ALIASES = {"WARNING": "WARN", "FATAL": "ERROR", "CRITICAL": "ERROR"}
_MASK_RUN = "*" * 9
_MASK_LABEL = "**masked*"
_executor: ThreadPoolExecutor | None = None


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, whether or not a loop runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tiercel-render-io")
    return _executor.submit(asyncio.run, coro).result()


def parse_level(level: str | LogLevel) -> LogLevel:
    if isinstance(level, LogLevel):
        return level
    name = str(level).upper()
    return LogLevel(_LEVEL_ALIASES.get(name, name))


@dataclass
class RunServices:
    """What every task run of a worker shares: storage, KV, log access, secrets and settings.

    ``secrets`` is an environment-like map: ``secret('my_key')`` reads ``SECRET_MY_KEY`` and
    base64-decodes it (Kestra's open-source secret backend). ``environ`` feeds ``{{ envs.* }}``
    (keys starting with ``env_prefix``, prefix stripped, lower-cased) when the executor did not
    already put ``envs`` in the job's variables; it defaults to ``os.environ``.

    ``resume_execution`` is how the Resume task reaches another execution: a worker holds no
    repository or queue of its own, and resuming must go through the engine's own checks (PAUSED
    state, ``onResume`` inputs), so the runner hands its resume operation in. ``None`` where no
    engine is attached (unit tests of single tasks): the Resume task then fails with a reason.
    """

    storage: Storage
    kv: KVStore | None = None
    fetch_logs: LogFetcher | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    env_prefix: str = "KESTRA_"
    globals: Mapping[str, Any] = field(default_factory=dict)
    encryption_key: str | None = None
    clock: Clock = field(default_factory=SystemClock)
    environ: Mapping[str, str] | None = None
    resume_execution: ExecutionResumer | None = None
    _envs: dict[str, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kv is None:
            self.kv = KVStore(self.storage, self.clock)

    @property
    def kv_store(self) -> KVStore:
        if self.kv is None:  # pragma: no cover - set in __post_init__
            raise ConfigError("RunServices has no KV store")
        return self.kv

    def envs(self) -> dict[str, str]:
        if self._envs is None:
            source = os.environ if self.environ is None else self.environ
            n = len(self.env_prefix)
            self._envs = {k[n:].lower(): v for k, v in source.items() if k.startswith(self.env_prefix)}
        return self._envs

    def secret(self, key: str) -> str:
        """The decoded secret ``key`` (case-insensitive); ``TemplateError`` if unset or not base64."""
        from tiercel.templating.services import secret_from_env

        return secret_from_env(key, self.secrets)


class RunLogger:
    """The task's logger: keeps ``LogEntry`` records at or above the task's ``logLevel``,
    with every registered secret masked."""

    __slots__ = ("_ctx", "threshold")

    def __init__(self, ctx: TaskRunContext, threshold: LogLevel) -> None:
        self._ctx = ctx
        self.threshold = threshold

    def log(self, level: str | LogLevel, message: str) -> None:
        lvl = parse_level(level)
        if lvl.rank < self.threshold.rank:
            return
        ctx = self._ctx
        ctx.logs.append(
            LogEntry(
                **ctx.record_origin(),
                attempt_number=max(ctx.task_run.attempt_count, 1),
                timestamp=ctx.services.clock.now(),
                level=lvl,
                message=ctx.mask(str(message)),
            )
        )

    def trace(self, message: str) -> None:
        self.log(LogLevel.TRACE, message)

    def debug(self, message: str) -> None:
        self.log(LogLevel.DEBUG, message)

    def info(self, message: str) -> None:
        self.log(LogLevel.INFO, message)

    def warn(self, message: str) -> None:
        self.log(LogLevel.WARN, message)

    warning = warn

    def error(self, message: str) -> None:
        self.log(LogLevel.ERROR, message)


class NamespaceKV:
    """The KV store bound to one namespace (``ctx.kv`` is bound to the flow's namespace)."""

    __slots__ = ("_store", "namespace")

    def __init__(self, store: KVStore, namespace: str) -> None:
        self._store = store
        self.namespace = namespace

    def of(self, namespace: str) -> NamespaceKV:
        return NamespaceKV(self._store, namespace)

    async def get(self, key: str, error_on_missing: bool = False) -> Any:
        return await self._store.get_value(self.namespace, key, error_on_missing)

    async def entry(self, key: str) -> KVEntry | None:
        return await self._store.get(self.namespace, key)

    async def set(
        self,
        key: str,
        value: Any,
        ttl: timedelta | None = None,
        overwrite: bool = True,
        kv_type: KVType | str | None = None,
    ) -> KVEntry:
        return await self._store.set(
            self.namespace, key, value, ttl=ttl, overwrite=overwrite, kv_type=kv_type
        )

    async def delete(self, key: str) -> bool:
        return await self._store.delete(self.namespace, key)

    async def list(self, prefix: str | None = None) -> builtins.list[KVEntry]:
        return await self._store.list(self.namespace, prefix)


class TemplateServices:
    """The I/O-backed template functions for one task run (``RenderServices`` of templating).

    Each function checks authorisation itself: ``read``/``fileSize`` accept only files of this
    execution, of the execution that triggered it (a parent flow or a flow trigger), or the
    flow namespace's files; URIs are canonicalised before the prefix check.
    """

    __slots__ = ("_ctx",)

    def __init__(self, ctx: TaskRunContext) -> None:
        self._ctx = ctx

    @property
    def encryption_key(self) -> str | None:
        return self._ctx.services.encryption_key

    def _authorize(self, path: str) -> StorageURI:
        ctx = self._ctx
        text = str(path)
        try:
            if text.startswith("kestra://"):
                uri = StorageURI.parse(text)
                if not any(uri.is_under(prefix) for prefix in self._allowed_prefixes()):
                    raise TemplateError(
                        f"Cannot read '{text}': it does not belong to the current execution, the execution "
                        f"that triggered it, or the namespace files of '{ctx.namespace}'"
                    )
                return uri
            if "://" in text:
                raise TemplateError(
                    f"Cannot read '{text}': only kestra:/// URIs and namespace file paths are allowed"
                )
            return namespace_file_uri(ctx.namespace, text)
        except InvalidStorageURI as exc:
            raise TemplateError(str(exc)) from None

    def _allowed_prefixes(self) -> list[StorageURI]:
        ctx = self._ctx
        prefixes = [
            execution_prefix(ctx.namespace, ctx.flow_id, ctx.execution_id),
            namespace_files_prefix(ctx.namespace),
        ]
        trigger = ctx.variables.get("trigger")
        if isinstance(trigger, Mapping):
            ns, flow, execution = trigger.get("namespace"), trigger.get("flowId"), trigger.get("executionId")
            if isinstance(ns, str) and isinstance(flow, str) and isinstance(execution, str):
                with contextlib.suppress(InvalidStorageURI):
                    prefixes.append(execution_prefix(ns, flow, execution))
        return prefixes

    def read(self, path: str) -> str:
        uri = self._authorize(path)
        try:
            data = run_blocking(self._ctx.services.storage.get_bytes(uri))
        except StorageError as exc:
            raise TemplateError(str(exc)) from None
        return data.decode("utf-8", errors="replace")

    def file_size(self, path: str) -> int:
        uri = self._authorize(path)
        try:
            return run_blocking(self._ctx.services.storage.attributes(uri)).size
        except StorageError as exc:
            raise TemplateError(str(exc)) from None

    def file_uri(self, path: str) -> str:
        try:
            return str(namespace_file_uri(self._ctx.namespace, str(path)))
        except InvalidStorageURI as exc:
            raise TemplateError(str(exc)) from None

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = False) -> Any:
        ns = namespace or self._ctx.namespace
        store = self._ctx.services.kv_store
        return run_blocking(store.get_value(ns, key, error_on_missing))

    def secret(self, key: str) -> str:
        value = self._ctx.services.secret(key)
        self._ctx.register_secret(value)
        return value

    def error_logs(self) -> list[dict[str, Any]]:
        ctx = self._ctx
        fetch = ctx.services.fetch_logs
        if fetch is None:
            return []
        entries = run_blocking(
            _call(
                fetch,
                namespace=ctx.namespace,
                flow_id=ctx.flow_id,
                execution_id=ctx.execution_id,
                min_level=LogLevel.ERROR,
            )
        )
        return [entry.to_dict() for entry in entries if entry.level == LogLevel.ERROR]


async def _call(fn: LogFetcher, **kwargs: Any) -> list[LogEntry]:
    return await fn(**kwargs)


class _FromJob(Generic[T]):
    """A read-only attribute of the context that is the job's attribute of the same name.

    A task run's identity (task run, namespace, flow, execution) is its job's: read through, never
    copied, so the context cannot disagree with the job it runs.
    """

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, ctx: None, owner: type) -> _FromJob[T]: ...
    @overload
    def __get__(self, ctx: TaskRunContext, owner: type | None = None) -> T: ...
    def __get__(self, ctx: TaskRunContext | None, owner: type | None = None) -> T | _FromJob[T]:
        return self if ctx is None else getattr(ctx.job, self.name)


class TaskRunContext:
    """The ``RunContext`` of ``tiercel.plugins.base`` for one worker job.

    Args:
        job: the worker job (task definition, task run, render variables).
        services: storage, KV, secrets and settings shared by the worker.
        task: the validated task, when the worker has it (gives ``logLevel`` without a dict lookup).
        working_dir: a directory shared by several tasks (``WorkingDirectory``); it is used as is
            and never removed by :meth:`close`. Without it a private temp dir is created on demand.

    The worker drains ``logs`` and ``metrics`` and calls :meth:`close` (or :meth:`aclose`) after
    the attempt. Values given to :meth:`register_secret`, and every ``secret()`` result, are
    masked in log messages and in :meth:`mask`.
    """

    __slots__ = (
        "_kv",
        "_logger",
        "_output_prefix",
        "_owns_working_dir",
        "_secrets",
        "_services_view",
        "_task",
        "_variables",
        "_working_dir",
        "job",
        "logs",
        "metrics",
        "services",
    )

    def __init__(
        self,
        job: WorkerJob,
        services: RunServices,
        *,
        task: Task | None = None,
        working_dir: Path | None = None,
    ) -> None:
        self.job = job
        self.services = services
        self._task = task
        self._working_dir = working_dir
        self._owns_working_dir = False
        self.logs: list[LogEntry] = []
        self.metrics: list[MetricEntry] = []
        self._secrets: list[str] | None = None
        self._variables: dict[str, Any] | None = None
        self._logger: RunLogger | None = None
        self._kv: NamespaceKV | None = None
        self._output_prefix: StorageURI | None = None
        self._services_view: TemplateServices | None = None

    # -- identity ---------------------------------------------------------------------------
    task_run: _FromJob[TaskRun] = _FromJob()
    namespace: _FromJob[str] = _FromJob()
    flow_id: _FromJob[str] = _FromJob()
    execution_id: _FromJob[str] = _FromJob()

    def record_origin(self) -> dict[str, str]:
        """Where a log line or metric of this task run comes from: the ids both records carry."""
        run = self.task_run
        return {
            "namespace": self.namespace,
            "flow_id": self.flow_id,
            "task_id": run.task_id,
            "execution_id": self.execution_id,
            "task_run_id": run.id,
        }

    # -- rendering --------------------------------------------------------------------------
    @property
    def template_services(self) -> TemplateServices:
        if self._services_view is None:
            self._services_view = TemplateServices(self)
        return self._services_view

    @property
    def variables(self) -> Mapping[str, Any]:
        if self._variables is None:
            from tiercel.templating import SERVICES_KEY

            variables = dict(self.job.variables)
            if "envs" not in variables:
                variables["envs"] = self.services.envs()
            if "globals" not in variables:
                variables["globals"] = dict(self.services.globals)
            variables[SERVICES_KEY] = self.template_services
            self._variables = variables
        return self._variables

    def _vars(self, extra: Mapping[str, Any] | None) -> Mapping[str, Any]:
        return self.variables if not extra else {**self.variables, **extra}

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render strings (recursively inside lists and maps) with the task run's variables."""
        from tiercel.templating import render_value

        return render_value(value, self._vars(extra))

    def render_typed(self, template: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render one expression keeping its native type (conditions, typed properties)."""
        from tiercel.templating import render_typed

        return render_typed(template, self._vars(extra))

    # -- secrets ----------------------------------------------------------------------------
    def register_secret(self, value: str) -> None:
        """Mask ``value`` in every later log message (SECRET inputs, decrypted values)."""
        if not value:
            return
        if self._secrets is None:
            self._secrets = []
        if value not in self._secrets:
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` with each registered secret replaced by as many ``*``; the first run of nine
        ``*`` then reads ``**masked*`` (Kestra's rendering of masked values)."""
        if not self._secrets:
            return text
        hit = False
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "*" * len(secret))
                hit = True
        return text.replace(_MASK_RUN, _MASK_LABEL, 1) if hit else text

    # -- logs and metrics -------------------------------------------------------------------
    @property
    def logger(self) -> RunLogger:
        if self._logger is None:
            self._logger = RunLogger(self, self._threshold())
        return self._logger

    def _threshold(self) -> LogLevel:
        level: Any = getattr(self._task, "log_level", None) if self._task is not None else None
        if level is None and isinstance(self.job.task, Mapping):
            level = self.job.task.get("logLevel") or self.job.task.get("log_level")
        try:
            return parse_level(level) if level else LogLevel.TRACE
        except ValueError:
            return LogLevel.TRACE

    def metric(
        self, name: str, value: float, kind: str = "counter", tags: Mapping[str, str] | None = None
    ) -> None:
        if kind not in ("counter", "timer", "gauge"):
            raise ValueError(f"Unknown metric type '{kind}': expected counter, timer or gauge")
        self.metrics.append(
            MetricEntry(
                **self.record_origin(),
                type=kind,
                name=name,
                value=float(value),
                timestamp=self.services.clock.now(),
                tags={str(k): str(v) for k, v in (tags or {}).items()},
            )
        )

    # -- files ------------------------------------------------------------------------------
    def working_dir(self) -> Path:
        if self._working_dir is None:
            self._working_dir = Path(tempfile.mkdtemp(prefix="tiercel-task-"))
            self._owns_working_dir = True
        return self._working_dir

    @property
    def output_prefix(self) -> StorageURI:
        """Where this task run's files go: ``…/executions/<id>/tasks/<task>/<task run id>``."""
        if self._output_prefix is None:
            run = self.task_run
            self._output_prefix = task_output_prefix(
                self.namespace, self.flow_id, self.execution_id, run.task_id, run.id
            )
        return self._output_prefix

    async def put_file(self, path: Path, name: str | None = None) -> str:
        """Upload a local file as an output of this task run; ``name`` may contain sub-folders."""
        return await self.services.storage.put(self.output_prefix.join(name or Path(path).name), Path(path))

    async def put_bytes(self, data: bytes, name: str) -> str:
        return await self.services.storage.put(self.output_prefix.join(name), data)

    async def put_stream(self, source: Any, name: str) -> str:
        """Upload an async iterable of chunks as an output of this task run."""
        return await self.services.storage.put(self.output_prefix.join(name), source)

    async def read_bytes(self, uri: str) -> bytes:
        return await self.services.storage.get_bytes(uri)

    async def open_file(self, uri: str) -> Path:
        """Download ``uri`` into the working directory (streamed) and return the local path."""
        parsed = StorageURI.parse(uri)
        target = _unique_path(self.working_dir(), parsed.name or "file")
        stream = await self.services.storage.get(parsed)
        try:
            with open(target, "wb") as out:
                async for chunk in stream:
                    await asyncio.to_thread(out.write, chunk)
        finally:
            await stream.aclose()
        return target

    # -- KV -----------------------------------------------------------------------------------
    @property
    def kv(self) -> NamespaceKV:
        if self._kv is None:
            self._kv = NamespaceKV(self.services.kv_store, self.namespace)
        return self._kv

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove the private working directory, if one was created."""
        if self._owns_working_dir and self._working_dir is not None:
            shutil.rmtree(self._working_dir, ignore_errors=True)
            self._working_dir = None
            self._owns_working_dir = False

    async def aclose(self) -> None:
        if self._owns_working_dir:
            await asyncio.to_thread(self.close)


def _unique_path(folder: Path, name: str) -> Path:
    candidate = folder / name
    if not candidate.exists():
        return candidate
    stem, suffix = os.path.splitext(name)
    n = 1
    while (folder / f"{stem}-{n}{suffix}").exists():
        n += 1
    return folder / f"{stem}-{n}{suffix}"


__all__ = [
    "ExecutionResumer",
    "LogFetcher",
    "NamespaceKV",
    "RunLogger",
    "RunServices",
    "TaskRunContext",
    "TemplateServices",
    "parse_level",
    "run_blocking",
]
