"""Ways to run the CLI in tests: in-process through click, or in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner, Result

from tiercel.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "flows"


def invoke(*args: str) -> Result:
    """Run ``tiercel ARGS`` in-process; fail if anything but ``SystemExit`` escaped the command.

    ``CliRunner`` turns an uncaught exception into exit code 1, which would let a crash pass for a
    clean "invalid flow" exit, so the exception is checked here.
    """
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"tiercel {' '.join(args)} raised {result.exception!r}\n{result.output}")
    return result


def run_process(
    args: Sequence[str], *, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tiercel ARGS`` in a fresh interpreter (where tracebacks and imports are real)."""
    return subprocess.run(
        [sys.executable, "-m", "tiercel", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
