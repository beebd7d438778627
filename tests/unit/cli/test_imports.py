"""``import tiercel`` and ``tiercel --help`` stay light: no web framework, database driver or cloud SDK.

Checked in a fresh interpreter, because the test process itself has imported half the world.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.unit.cli.helpers import invoke, run_process

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg_pool",
    "boto3",
    "botocore",
    "obstore",
    "google.cloud",
)

PROBE = """
import json, sys
{body}
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print("\\n@@MODULES@@" + json.dumps(loaded))
"""

HELP = """
from tiercel.cli import main
try:
    main(["--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""


def _loaded_heavy_modules(body: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=heavy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.rpartition("@@MODULES@@")[2]))


@pytest.mark.parametrize("body", ["import tiercel", HELP], ids=["import tiercel", "tiercel --help"])
def test_startup_imports_no_heavy_library(body: str) -> None:
    assert _loaded_heavy_modules(body) == []


def test_probe_sees_modules_that_are_imported() -> None:
    # None of HEAVY is installed in the dev environment, so prove the probe would notice one.
    assert "click" in _loaded_heavy_modules(HELP, heavy=("click",))


def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Commands:" in result.output
    assert "flow" in result.output


def test_flow_help_lists_subcommands() -> None:
    result = invoke("flow", "--help")
    assert result.exit_code == 0
    assert "validate" in result.output
    assert "test" in result.output


def test_python_dash_m_runs_the_cli() -> None:
    proc = run_process(["--help"])
    assert proc.returncode == 0, proc.stderr
    assert "flow" in proc.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert "0." in result.output
