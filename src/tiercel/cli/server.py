"""``tiercel server local|standalone|executor|worker|scheduler|webserver``.

``local`` is the zero-configuration mode (SQLite and local storage under ``./data`` unless a config
file or ``TIERCEL_*`` variables say otherwise); ``standalone`` runs every role on the configured
backends; the four others run one role each, as many times and on as many machines as needed,
against one PostgreSQL (and shared object storage).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from tiercel.errors import TiercelError

log = logging.getLogger("tiercel.server")


@click.group()
def server() -> None:
    """Run Tiercel's server roles."""


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="tiercel.yml (default: $TIERCEL_CONFIG, else built-in defaults).",
    )(func)
    return click.option(
        "-f",
        "--flow-path",
        type=click.Path(exists=True, file_okay=False),
        help="Deploy the flows of this folder, and keep them in step while the server runs.",
    )(func)


def _listen(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--host", default=None, help="Listen address (default: server.host).")(func)
    return click.option("--port", type=int, default=None, help="Listen port (default: server.port).")(func)


def _threads(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="Task runs executed at once by this worker (default: worker.threads).",
    )(func)


ALL = ("executor", "worker", "scheduler", "webserver")


@server.command("local")
@_common
@_listen
@_threads
def local(
    config_path: str | None, flow_path: str | None, host: str | None, port: int | None, threads: int | None
) -> None:
    """Everything in one process on embedded SQLite and local storage (./data)."""
    _run(ALL, config_path, flow_path, host=host, port=port, threads=threads)


@server.command("standalone")
@_common
@_listen
@_threads
def standalone(
    config_path: str | None, flow_path: str | None, host: str | None, port: int | None, threads: int | None
) -> None:
    """Every role in one process on the configured backends."""
    _run(ALL, config_path, flow_path, host=host, port=port, threads=threads)


@server.command("executor")
@_common
def executor(config_path: str | None, flow_path: str | None) -> None:
    """Apply execution events: decide, persist, send task runs to workers (also timers, flow
    triggers and the dead-process check)."""
    _run(("executor",), config_path, flow_path)


@server.command("worker")
@_common
@_threads
def worker(config_path: str | None, flow_path: str | None, threads: int | None) -> None:
    """Run task runs taken from the queue."""
    _run(("worker",), config_path, flow_path, threads=threads)


@server.command("scheduler")
@_common
def scheduler(config_path: str | None, flow_path: str | None) -> None:
    """Evaluate scheduled triggers (registers and heartbeats; Schedule triggers come with issue 6)."""
    _run(("scheduler",), config_path, flow_path)


@server.command("webserver")
@_common
@_listen
def webserver(config_path: str | None, flow_path: str | None, host: str | None, port: int | None) -> None:
    """Serve the REST API (and, later, the UI)."""
    _run(("webserver",), config_path, flow_path, host=host, port=port)


def _event_loop_runner(main: Any) -> int:
    """Run on uvloop when it is installed (the ``server`` extra): its loop and uvicorn's httptools
    parser cut the CPU each request and queue wake-up costs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _run(
    roles: tuple[str, ...],
    config_path: str | None,
    flow_path: str | None,
    *,
    host: str | None = None,
    port: int | None = None,
    threads: int | None = None,
) -> None:
    from tiercel.config import load_config
    from tiercel.server.process import ProcessOptions, ServerProcess, ensure_data_dirs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        config = load_config(config_path)
        ensure_data_dirs(config)
        process = ServerProcess(
            config,
            ProcessOptions(frozenset(roles), flow_path=flow_path, host=host, port=port, threads=threads),
        )
        code = _event_loop_runner(process.run())
    except TiercelError as exc:
        click.secho(f"Cannot start the server: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
