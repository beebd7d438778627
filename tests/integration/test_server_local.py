"""``tiercel server local`` as a user starts it: a real process on SQLite, flows from a folder,
executions through the HTTP API, a clean stop on SIGTERM, and state kept across a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flows"
TIERCEL = [sys.executable, "-m", "tiercel"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cwd: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERCEL_")}
    return subprocess.Popen(
        [*TIERCEL, "server", "local", "-f", str(EXAMPLES), "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(base: str, process: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy in time")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"server did not stop on SIGTERM:\n{out}") from None
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    process = _start(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process)
        yield base, tmp_path
    finally:
        if process.poll() is None:
            _stop(process)


def test_runs_an_example_flow_through_the_api(server: tuple[str, Path]) -> None:
    base, cwd = server
    answer = httpx.post(
        f"{base}/api/v1/executions/company.team/hello-world",
        params={"wait": "true"},
        data={"user": "Ada"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    execution = answer.json()
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["outputs"] == {"answer": "42"}
    logs = httpx.get(f"{base}/api/v1/logs/{execution['id']}", timeout=5).json()
    assert any("Hello Ada" in entry["message"] for entry in logs)
    assert (cwd / "data" / "tiercel.db").exists()


def test_state_survives_a_restart(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    first = _start(tmp_path, port)
    try:
        _wait_healthy(base, first)
        execution = httpx.post(
            f"{base}/api/v1/executions/company.team/hello-world", params={"wait": "true"}, timeout=30
        ).json()
    finally:
        _stop(first)
    second = _start(tmp_path, port)
    try:
        _wait_healthy(base, second)
        again = httpx.get(f"{base}/api/v1/executions/{execution['id']}", timeout=5).json()
        assert again["state"]["current"] == "SUCCESS"
        flow = httpx.get(f"{base}/api/v1/flows/company.team/hello-world", timeout=5).json()
        assert flow["revision"] == 1  # the same source keeps its revision across restarts
    finally:
        _stop(second)


def test_kill_9_of_the_whole_server_mid_run_then_a_restart_finishes_every_execution(tmp_path: Path) -> None:
    """Nothing stays CREATED or RUNNING: the restarted server sees its predecessor's process is gone,
    takes back what it held in the queue at once, and runs the interrupted task runs again."""
    from tests.integration.test_server_roles import QUICK_FLOW, SLOW_FLOW, finished, start_execution
    from tests.support.cluster import Cluster

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "slow.yaml").write_text(SLOW_FLOW)
    (flows / "quick.yaml").write_text(QUICK_FLOW)
    c = Cluster(tmp_path, {})
    try:
        c.start("first", "local", "-f", str(flows))
        c.wait_healthy()
        ids = [start_execution(c, "slow", seconds="PT2S") for _ in range(3)]
        ids += [start_execution(c, "quick") for _ in range(20)]
        time.sleep(0.5)  # some running, some done, some not started
        c.kill9("first")
        c.start("second", "local", "-f", str(flows))
        c.wait_healthy()
        for execution_id in ids:
            assert finished(c, execution_id, timeout=30)["state"]["current"] == "SUCCESS"
        assert "declared dead (its process is gone)" in c.log("second")
    finally:
        c.stop_all()
