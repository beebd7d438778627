"""decide() stays a pure function: it imports no I/O component, directly or transitively."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tiercel.engine.decide as decide_module

FORBIDDEN = (
    "tiercel.queue",
    "tiercel.repository",
    "tiercel.storage",
    "tiercel.api",
    "tiercel.server",
    "tiercel.engine.executor",
    "tiercel.engine.worker",
    "tiercel.engine.runner",
    "sqlalchemy",
    "psycopg",
    "aiosqlite",
    "httpx",
    "fastapi",
    "obstore",
    "google.cloud",
)
ALLOWED_PREFIXES = (
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "typing",
    "tiercel.model",
    "tiercel.plugins.base",
    "tiercel.templating",
    "tiercel.engine",
    "tiercel.crypto",
    "tiercel.flows.inputs",
    "tiercel.errors",
    "tiercel.ids",
)


def test_decide_imports_only_pure_modules() -> None:
    tree = ast.parse(Path(decide_module.__file__).read_text())
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
        elif isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
    offending = [
        m
        for m in imported
        if not m.startswith(ALLOWED_PREFIXES)
        or m.startswith(("tiercel.engine.executor", "tiercel.engine.worker", "tiercel.engine.runner"))
    ]
    assert not offending, f"decide.py imports {offending}"
    assert not [m for m in imported if m.startswith(FORBIDDEN)]


def test_importing_decide_and_templating_loads_no_io_component() -> None:
    code = (
        "import sys, tiercel.engine.decide, tiercel.templating, tiercel.engine.flowable;"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    bad = [m for m in loaded if m.startswith(FORBIDDEN)]
    assert bad == []
