"""Real ``tiercel server …`` processes for integration tests and benchmarks.

A ``Cluster`` starts processes of one deployment (one database, one storage folder), each with its
own log file, and can stop them with SIGTERM or ``kill -9``. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

TIERCEL = [sys.executable, "-m", "tiercel"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Cluster:
    def __init__(self, workdir: Path, settings: Mapping[str, str]) -> None:
        """``settings``: ``TIERCEL_*`` variables shared by every process (backends, liveness, …)."""
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TIERCEL_")}
        self.env.update(settings)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.port: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, name: str, command: str, *args: str, ready: bool = True, timeout: float = 30) -> None:
        """Start ``tiercel server <command> <args>`` as ``name``; wait until it says it is up."""
        argv = [*TIERCEL, "server", command, *args]
        if command in ("webserver", "local", "standalone"):
            self.port = self.port or free_port()
            argv += ["--port", str(self.port)]
        with self.log_path(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                argv, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        if ready:
            self.wait_up(name, timeout)

    def start_many(self, specs: Mapping[str, tuple[str, ...]], timeout: float = 60) -> None:
        """Start several processes at once (``name -> (command, *args)``), then wait for each."""
        for name, (command, *args) in specs.items():
            self.start(name, command, *args, ready=False)
        for name in specs:
            self.wait_up(name, timeout)

    def wait_up(self, name: str, timeout: float = 30) -> None:
        process = self.processes[name]
        marker_count = self.log(name).count(" is up (")

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")
            return self.log(name).count(" is up (") >= max(marker_count, 1)

        wait_for(f"{name} to start", up, timeout)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def kill9(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def terminate(self, name: str, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{name} did not stop on SIGTERM:\n{self.log(name)}") from None

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=timeout)

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the webserver to answer /health", healthy, timeout)


def postgres_settings(url: str, storage: Path, **extra: str) -> dict[str, str]:
    """``TIERCEL_*`` variables for a PostgreSQL deployment with local storage in ``storage``."""
    return {
        "TIERCEL_REPOSITORY__TYPE": "postgres",
        "TIERCEL_QUEUE__TYPE": "postgres",
        "TIERCEL_DATASOURCE__URL": url,
        "TIERCEL_STORAGE__TYPE": "local",
        "TIERCEL_STORAGE__LOCAL__BASE_PATH": str(storage),
        **{f"TIERCEL_{key.upper()}": value for key, value in extra.items()},
    }
