"""One server process: its roles, its heartbeat, its flow folder, and its orderly end.

``tiercel server local|standalone`` run every role here; ``server executor|worker|scheduler|webserver``
one each, many times on many machines against one PostgreSQL. Whatever the roles, the process:

1. builds the components from the configuration and registers itself in the service table (its
   queue claims are tagged with its instance id, so they can be handed on if it dies);
2. starts the engine roles it hosts (``LocalRunner(roles=...)``), the heartbeat (executors also
   check the others' heartbeats), the ``-f`` folder watcher and, for the webserver, uvicorn;
3. on SIGTERM or SIGINT stops taking work, lets running task runs finish for
   ``server.termination_grace_period``, hands the rest back to the queue, records
   ``TERMINATED_GRACEFULLY`` and closes everything. Declared dead by the others (see
   ``engine.liveness``), it cancels its task runs without reporting them and exits with
   ``EXIT_FENCED`` so that a supervisor restarts it with a fresh identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiercel.config import Config
from tiercel.engine.runner import EXECUTOR_ROLE, WORKER_ROLE
from tiercel.repository.base import ServiceState

log = logging.getLogger("tiercel.server")

SCHEDULER_ROLE = "scheduler"
WEBSERVER_ROLE = "webserver"
ALL_ROLES: frozenset[str] = frozenset({EXECUTOR_ROLE, WORKER_ROLE, SCHEDULER_ROLE, WEBSERVER_ROLE})

EXIT_OK = 0
EXIT_FENCED = 3
"""The process was declared dead by the cluster and stopped itself; restart it."""


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    roles: frozenset[str]
    flow_path: str | None = None
    host: str | None = None
    port: int | None = None
    threads: int | None = None
    """Worker concurrency (``--threads``); default ``worker.threads``."""
    watch_interval: float = 1.0


def role_name(roles: Collection[str]) -> str:
    """How the service table names this process: its single role, or ``standalone``."""
    return next(iter(roles)) if len(roles) == 1 else "standalone"


class ServerProcess:
    def __init__(self, config: Config, options: ProcessOptions) -> None:
        unknown = set(options.roles) - ALL_ROLES
        if not options.roles or unknown:
            raise ValueError(f"roles must be among {sorted(ALL_ROLES)}, got {sorted(options.roles)}")
        self.config = config
        self.options = options
        self.stopping = asyncio.Event()
        self.fenced = False
        self.ready = asyncio.Event()
        """Set once every role is up (and the webserver listens): tests and benchmarks wait on it."""
        self.runner: Any = None
        self.liveness: Any = None
        self.port: int | None = None

    def request_stop(self) -> None:
        self.stopping.set()

    async def run(self) -> int:
        """Serve until asked to stop (or fenced); return the process exit code."""
        from tiercel.engine.liveness import Liveness
        from tiercel.engine.runner import LocalRunner
        from tiercel.server.wiring import build_components, close_components

        roles = self.options.roles
        threads = self.options.threads or self.config.worker.threads
        components = await build_components(self.config)
        background: list[asyncio.Task[Any]] = []
        try:
            # The slow synchronous start-up (plugin registry, web framework imports) happens before
            # registering: once registered, nothing may keep the event loop from heartbeating.
            runner = self.runner = LocalRunner(
                storage=components.storage,
                queue=components.queue,
                repositories=components.repositories,
                settings=components.settings,
                worker_concurrency=threads,
                roles=roles & {EXECUTOR_ROLE, WORKER_ROLE},
            )
            if WEBSERVER_ROLE in roles:
                import tiercel.api.app  # noqa: F401
            liveness = self.liveness = Liveness(
                components.repositories.services,
                components.queue,
                role_name(roles),
                interval=self.config.liveness.heartbeat_interval.total_seconds(),
                timeout=self.config.liveness.timeout.total_seconds(),
                coordinator=EXECUTOR_ROLE in roles,
                on_fenced=self._on_fenced,
                info={"roles": sorted(roles), "threads": threads if WORKER_ROLE in roles else None},
            )
            await liveness.start()
            background.append(asyncio.create_task(liveness.run(), name="liveness"))  # beat from now on
            runner.liveness = liveness
            runner.task_runner.worker_id = liveness.id  # attempts name the process that ran them
            await runner.start()
            if EXECUTOR_ROLE in roles:
                background.append(
                    asyncio.create_task(self._recover(runner, liveness.timeout), name="recovery")
                )
            if self.options.flow_path:
                from tiercel.server.flow_watch import FlowFolder

                folder = FlowFolder(runner, self.options.flow_path, interval=self.options.watch_interval)
                await folder.sync()
                background.append(asyncio.create_task(folder.run(), name="flow-folder"))
            server = None
            if WEBSERVER_ROLE in roles:
                server = await self._start_webserver(runner, background)
            self._install_signal_handlers()
            log.info(
                "%s %s is up (roles: %s%s)",
                role_name(roles),
                liveness.id,
                ", ".join(sorted(roles)),
                f", {threads} worker threads" if WORKER_ROLE in roles else "",
            )
            self.ready.set()
            await self.stopping.wait()
            await self._shut_down(runner, liveness, server, background)
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.runner is not None:
                await self.runner.stop()
            await close_components(components)
        return EXIT_FENCED if self.fenced else EXIT_OK

    async def _start_webserver(self, runner: Any, background: list[asyncio.Task[Any]]) -> Any:
        import uvicorn

        from tiercel.api.app import create_app

        host = self.options.host or self.config.server.host
        port = self.options.port if self.options.port is not None else self.config.server.port

        class _Server(uvicorn.Server):
            def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
                return contextlib.nullcontext()  # the process handles SIGTERM/SIGINT and drains first

        server = _Server(
            uvicorn.Config(create_app(runner), host=host, port=port, log_level="warning", lifespan="off")
        )
        task = asyncio.create_task(server.serve(), name="webserver")
        background.append(task)
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start (port in use, …)
                raise RuntimeError("the webserver stopped before it started")
            await asyncio.sleep(0.02)
        self.port = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        log.info("webserver listening on http://%s:%s/ (API at /api/v1, docs at /docs)", host, self.port)
        return server

    async def _shut_down(self, runner: Any, liveness: Any, server: Any, background: list[Any]) -> None:
        if self.fenced:
            return
        await liveness.set_state(ServiceState.TERMINATING)
        if server is not None:
            server.should_exit = True
        grace = self.config.server.termination_grace_period.total_seconds()
        log.info("stopping: running task runs get up to %gs to finish", grace)
        handed_back = await runner.drain(grace)
        if handed_back:
            log.warning("%d task run(s) did not finish in time: handed back to other workers", handed_back)
        await liveness.set_state(ServiceState.TERMINATED_GRACEFULLY)

    async def _recover(self, runner: Any, period: float) -> None:
        """Executions whose start was never announced (their creator died in between) are started;
        MultipleCondition windows that have ended are removed."""
        while True:
            try:
                await runner.resend_stuck_starts(older_than=period)
                await runner.repos.windows.expire(runner.clock.now())
            except Exception as exc:
                log.warning("recovery pass failed: %s", exc)
            await asyncio.sleep(period)

    async def _on_fenced(self) -> None:
        self.fenced = True
        if self.runner is not None:
            self.runner.abandon()
        self.stopping.set()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)


def ensure_data_dirs(config: Config) -> None:
    """SQLite needs the folder of its database file to exist."""
    url = str(config.datasource.url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
