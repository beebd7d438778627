"""``tiercel flow validate`` and ``tiercel flow test``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from tiercel.errors import TiercelError


@click.group()
def flow() -> None:
    """Validate and test flows."""


@flow.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def validate(paths: tuple[str, ...]) -> None:
    """Validate flow files (directories are searched for *.yml / *.yaml)."""
    from tiercel.flows.validate import flow_files, load_flow_file

    files = flow_files(paths)
    if not files:
        raise click.ClickException("no flow files found")
    bad = 0
    for path in files:
        try:
            parsed = load_flow_file(path)
        except TiercelError as exc:
            bad += 1
            click.secho(f"✗ {exc}", fg="red", err=True)
        else:
            click.echo(f"✓ {path}  ({parsed.flow.namespace}.{parsed.flow.id})")
    click.echo(f"{len(files) - bad} valid, {bad} invalid")
    if bad:
        sys.exit(1)


def _parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--input")
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise click.BadParameter(f"file not found: {path}", param_hint="--input")
            inputs[key] = path
        else:
            inputs[key] = value
    return inputs


@flow.command("test")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--flows",
    "flows_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Directory of other flows this flow needs (subflows).",
)
@click.option("--input", "-i", "inputs", multiple=True, help="KEY=VALUE, or KEY=@PATH for a FILE input.")
@click.option("--json", "as_json", is_flag=True, help="Print only the final execution as JSON.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the end.")
def test(file: str, flows_dir: str | None, inputs: tuple[str, ...], as_json: bool, timeout: float) -> None:
    """Run FILE to a terminal state in this process and show the result."""
    try:
        code = asyncio.run(_test(file, flows_dir, _parse_inputs(inputs), as_json, timeout))
    except TiercelError as exc:
        click.secho(f"Cannot run the flow: {exc}", fg="red", err=True)
        sys.exit(1)
    except TimeoutError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(1)
    sys.exit(code)


async def _test(
    file: str, flows_dir: str | None, inputs: dict[str, Any], as_json: bool, timeout: float
) -> int:
    from tiercel.engine.runner import LocalRunner
    from tiercel.flows.validate import flow_files, load_flow_file

    parsed = load_flow_file(file)
    async with LocalRunner(settings=settings_from_env(os.environ)) as runner:
        if flows_dir:
            for path in flow_files([flows_dir]):
                if Path(path).resolve() != Path(file).resolve():
                    await runner.deploy(load_flow_file(path))
        flow = await runner.deploy(parsed)
        execution = await runner.create_execution(flow.namespace, flow.id, inputs)
        if as_json:
            final = await runner.wait(execution.id, timeout=timeout)
            click.echo(final.to_json())
            return 0
        from tiercel.cli.progress import follow

        final = await follow(runner, execution.id, timeout)
        logs = await runner.logs(final.id)
        from tiercel.cli.progress import summary

        summary(final, logs)
        return 0


def settings_from_env(environ: Mapping[str, str]) -> Any:
    """Kestra's ``envs`` (``KESTRA_*`` variables, prefix stripped, lower-cased) and the encryption
    key for SECRET inputs (``TIERCEL_ENCRYPTION__SECRET_KEY``, the future ``encryption.secret_key``)."""
    from tiercel.engine.decide import Settings

    envs = {k[len("KESTRA_") :].lower(): v for k, v in environ.items() if k.startswith("KESTRA_")}
    return Settings(envs=envs, encryption_key=environ.get("TIERCEL_ENCRYPTION__SECRET_KEY") or None)


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
