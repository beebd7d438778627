"""A throwaway PostgreSQL server of our own, for tests that restart or stop the database.

The shared server on 5432 serves every other test in parallel, so a fault test must never restart
it. This one lives in a temporary directory on a free port, runs with ``fsync=off``, and is stopped
(``immediate``) and deleted at the end. As root, the server binaries run as the ``postgres`` user
(PostgreSQL refuses to run as root). Missing binaries skip locally and fail in CI.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import free_port


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class PrivatePostgres:
    def __init__(self, bindir: Path, home: Path) -> None:
        self.bindir = bindir
        self.home = home
        self.data = home / "data"
        self.port = free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as_postgres, str(self.bindir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.home / "log"), "-w", action, *args
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same port."""
        self._ctl("restart", "-m", "fast")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (pg_ctl, initdb) not found and CI is set")
        pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) not found")
    home = Path(tempfile.mkdtemp(prefix="tiercel-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    server = PrivatePostgres(bindir, home)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)
