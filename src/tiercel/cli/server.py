"""``tiercel server local|standalone``: every role and the webserver in one process.

``local`` is the zero-configuration mode (SQLite and local storage under ``./data`` unless a
config file or ``TIERCEL_*`` variables say otherwise); ``standalone`` is the same process on the
configured backends. Separate executor/worker/scheduler/webserver processes come next.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from tiercel.errors import TiercelError

log = logging.getLogger("tiercel.server")


@click.group()
def server() -> None:
    """Run Tiercel's server roles."""


def _options(func):  # type: ignore[no-untyped-def]
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="tiercel.yml (default: $TIERCEL_CONFIG, else built-in defaults).",
    )(func)
    func = click.option(
        "-f",
        "--flow-path",
        type=click.Path(exists=True, file_okay=False),
        help="Load the flows of this folder at start-up.",
    )(func)
    func = click.option("--host", default=None, help="Listen address (default: server.host).")(func)
    func = click.option("--port", type=int, default=None, help="Listen port (default: server.port).")(func)
    return func


@server.command("local")
@_options
def local(config_path: str | None, flow_path: str | None, host: str | None, port: int | None) -> None:
    """Everything in one process on embedded SQLite and local storage (./data)."""
    _run(config_path, flow_path, host, port)


@server.command("standalone")
@_options
def standalone(config_path: str | None, flow_path: str | None, host: str | None, port: int | None) -> None:
    """Every role in one process on the configured backends."""
    _run(config_path, flow_path, host, port)


def _run(config_path: str | None, flow_path: str | None, host: str | None, port: int | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(config_path, flow_path, host, port))
    except TiercelError as exc:
        click.secho(f"Cannot start the server: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


async def serve(config_path: str | None, flow_path: str | None, host: str | None, port: int | None) -> None:
    import uvicorn

    from tiercel.api.app import create_app
    from tiercel.config import load_config
    from tiercel.engine.runner import LocalRunner
    from tiercel.flows.validate import flow_files, load_flow_file
    from tiercel.server.wiring import build_components, close_components

    config = load_config(config_path)
    _ensure_data_dirs(config)
    components = await build_components(config)
    try:
        runner = LocalRunner(
            storage=components.storage,
            queue=components.queue,
            repositories=components.repositories,
            settings=components.settings,
        )
        async with runner:
            if flow_path:
                for path in flow_files([flow_path]):
                    try:
                        flow = await runner.deploy(load_flow_file(path))
                        log.info(
                            "loaded %s.%s (revision %s) from %s", flow.namespace, flow.id, flow.revision, path
                        )
                    except TiercelError as exc:
                        log.error("%s", exc)
            app = create_app(runner)
            listen_host = host or config.server.host
            listen_port = port if port is not None else config.server.port
            log.info("Tiercel is up: http://%s:%s/ (API at /api/v1, docs at /docs)", listen_host, listen_port)
            uv = uvicorn.Server(uvicorn.Config(app, host=listen_host, port=listen_port, log_level="warning"))
            await uv.serve()
    finally:
        await close_components(components)


def _ensure_data_dirs(config: object) -> None:
    """SQLite needs the folder of its database file to exist."""
    url = str(getattr(getattr(config, "datasource", None), "url", ""))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
