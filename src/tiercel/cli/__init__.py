"""The ``tiercel`` command. Subcommands load lazily so ``tiercel --help`` imports almost nothing."""

from __future__ import annotations

import importlib
from typing import Any

import click

_COMMANDS = {
    "flow": ("tiercel.cli.flow", "flow", "Validate and test flows."),
    "server": ("tiercel.cli.server", "server", "Run the server (local, standalone)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, help_) for name, (_, _, help_) in sorted(_COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="tiercel")
def main() -> None:
    """Tiercel: run Kestra flows in Python."""
