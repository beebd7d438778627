"""Separate ``server webserver|executor|worker|scheduler`` processes on one PostgreSQL.

What a scale-out deployment must survive, with real processes: work spread over two workers,
``kill -9`` of a worker in the middle of a task (the task runs exactly once more, elsewhere),
``kill -9`` of the executor (a new one finishes every execution), SIGTERM of a busy worker (it
finishes its task first, or hands it back after the grace period). Liveness runs with a 0.3 s
heartbeat and a 1.5 s timeout so each scenario takes seconds; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import postgres
from tests.support.cluster import Cluster, postgres_settings, wait_for

pytestmark = pytest.mark.slow

SLOW_FLOW = """
id: slow
namespace: company.faults
inputs:
  - id: seconds
    type: STRING
    defaults: PT3S
tasks:
  - id: block
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: started
        type: io.kestra.plugin.core.log.Log
        message: "started {{ taskrun.parentId }}"
      - id: wait
        type: io.kestra.plugin.core.flow.Sleep
        duration: "{{ inputs.seconds }}"
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "done"
"""

QUICK_FLOW = """
id: quick
namespace: company.faults
tasks:
  - id: first
    type: io.kestra.plugin.core.output.OutputValues
    values:
      x: 1
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.first.values.x }}"
"""


WORKERS = ("worker-1", "worker-2")


@contextlib.contextmanager
def deployment(tmp_path: Path, **settings: str) -> Iterator[tuple[Cluster, str]]:
    """A webserver (loading the flows), an executor and two workers, started at once."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "slow.yaml").write_text(SLOW_FLOW)
    (flows / "quick.yaml").write_text(QUICK_FLOW)
    with postgres.fresh_database() as url:
        c = Cluster(
            tmp_path,
            postgres_settings(
                url,
                tmp_path / "storage",
                liveness__heartbeat_interval="0.3s",
                liveness__timeout="1.5s",
                worker__threads="4",
                **settings,
            ),
        )
        try:
            c.start_many(
                {
                    "webserver": ("webserver", "-f", str(flows)),
                    "executor": ("executor",),
                    WORKERS[0]: ("worker",),
                    WORKERS[1]: ("worker",),
                }
            )
            c.wait_healthy()
            yield c, url
        finally:
            c.stop_all()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    with deployment(tmp_path) as running:
        yield running


def start_execution(c: Cluster, flow_id: str, **inputs: str) -> str:
    with c.client() as http:
        response = http.post(f"/api/v1/executions/company.faults/{flow_id}", files=_form(inputs))
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


def _form(inputs: dict[str, str]) -> dict[str, Any]:
    return {name: (None, value) for name, value in inputs.items()} or {"_": (None, "")}


def execution(c: Cluster, execution_id: str) -> dict[str, Any]:
    with c.client() as http:
        response = http.get(f"/api/v1/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())


def finished(c: Cluster, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        ex = execution(c, execution_id)
        runs = ex["taskRunList"]
        terminal = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"}
        ended = ex["state"]["current"] in terminal and all(r["state"]["current"] in terminal for r in runs)
        return ex if ended else None

    return wait_for(f"execution {execution_id} to end", done, timeout, interval=0.1)  # type: ignore[no-any-return]


def started_lines(c: Cluster, execution_id: str) -> list[str]:
    with c.client() as http:
        logs = http.get(f"/api/v1/logs/{execution_id}").json()
    return [entry["message"] for entry in logs if str(entry["message"]).startswith("started ")]


def worker_of(url: str, c: Cluster, execution_id: str) -> int:
    """The pid of the worker process running the ``block`` task run (from its attempt's worker id)."""

    def running_attempt() -> str | None:
        for run in execution(c, execution_id)["taskRunList"]:
            if run["taskId"] == "block" and run["state"]["current"] == "RUNNING":
                attempts = run.get("attempts") or []
                if attempts and attempts[-1].get("workerId"):
                    return str(attempts[-1]["workerId"])
        return None

    worker_id = wait_for("the block task run to be RUNNING on a worker", running_attempt, 20)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pid FROM service_instances WHERE id = %s", (worker_id,)).fetchone()
    assert row is not None, f"no service instance {worker_id}"
    return int(row[0])


def test_roles_in_separate_processes_run_flows_and_share_work(cluster: tuple[Cluster, str]) -> None:
    c, url = cluster
    c.start("scheduler", "scheduler")
    ids = [start_execution(c, "quick") for _ in range(20)]
    for execution_id in ids:
        assert finished(c, execution_id)["state"]["current"] == "SUCCESS"
    with psycopg.connect(url) as conn:
        roles = sorted(
            r[0] for r in conn.execute("SELECT role FROM service_instances WHERE state = 'RUNNING'")
        )
    assert roles == ["executor", "scheduler", "webserver", "worker", "worker"]


def test_kill_9_of_a_worker_mid_task_runs_the_task_exactly_once_more_elsewhere(
    cluster: tuple[Cluster, str],
) -> None:
    c, url = cluster
    execution_id = start_execution(c, "slow", seconds="PT2S")
    victim_pid = worker_of(url, c, execution_id)
    wait_for("the first run to log its start", lambda: started_lines(c, execution_id), 10)
    victim = next(name for name in WORKERS if c.pid(name) == victim_pid)
    c.kill9(victim)

    ex = finished(c, execution_id, timeout=30)
    assert ex["state"]["current"] == "SUCCESS"
    assert len(started_lines(c, execution_id)) == 2  # the killed run and exactly one more
    block = next(r for r in ex["taskRunList"] if r["taskId"] == "block")
    with psycopg.connect(url) as conn:
        survivor = conn.execute(
            "SELECT pid FROM service_instances WHERE id = %s", (block["attempts"][-1]["workerId"],)
        ).fetchone()
        dead = conn.execute(
            "SELECT state FROM service_instances WHERE pid = %s AND role = 'worker'", (victim_pid,)
        ).fetchone()
    assert survivor is not None and survivor[0] != victim_pid
    assert dead is not None and dead[0] == "NOT_RUNNING"
    assert "declared dead" in c.log("executor")


def test_kill_9_of_the_executor_mid_run_and_a_new_one_finishes_every_execution(
    cluster: tuple[Cluster, str],
) -> None:
    c, _ = cluster
    ids = [start_execution(c, "slow", seconds="PT1S") for _ in range(4)]
    ids += [start_execution(c, "quick") for _ in range(10)]
    c.kill9("executor")
    ids += [start_execution(c, "quick") for _ in range(5)]  # accepted while no executor runs
    c.start("executor-2", "executor")
    for execution_id in ids:
        assert finished(c, execution_id, timeout=40)["state"]["current"] == "SUCCESS"


def test_sigterm_lets_a_running_task_finish_before_the_worker_exits(cluster: tuple[Cluster, str]) -> None:
    c, url = cluster
    execution_id = start_execution(c, "slow", seconds="PT2S")
    busy = next(name for name in WORKERS if c.pid(name) == worker_of(url, c, execution_id))
    assert c.terminate(busy) == 0
    ex = finished(c, execution_id)
    assert ex["state"]["current"] == "SUCCESS"
    assert len(started_lines(c, execution_id)) == 1  # finished by the stopping worker, not run again
    with psycopg.connect(url) as conn:
        states = [r[0] for r in conn.execute("SELECT state FROM service_instances WHERE role = 'worker'")]
    assert "TERMINATED_GRACEFULLY" in states


def test_after_the_grace_period_a_stopping_worker_hands_its_task_back(tmp_path: Path) -> None:
    with deployment(tmp_path, server__termination_grace_period="0.5s") as (c, url):
        execution_id = start_execution(c, "slow", seconds="PT3S")
        busy = next(name for name in WORKERS if c.pid(name) == worker_of(url, c, execution_id))
        assert c.terminate(busy) == 0
        assert "handed back" in c.log(busy)
        ex = finished(c, execution_id)
        assert ex["state"]["current"] == "SUCCESS"
        assert len(started_lines(c, execution_id)) == 2  # the interrupted run and the one elsewhere


def test_a_postgresql_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    """The database goes away under a running deployment and comes back: the processes reconnect,
    and every execution, started before or after, ends SUCCESS."""
    from tests.support.private_postgres import private_postgres

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "slow.yaml").write_text(SLOW_FLOW)
    (flows / "quick.yaml").write_text(QUICK_FLOW)
    with private_postgres() as pg:
        c = Cluster(tmp_path, postgres_settings(pg.url, tmp_path / "storage"))
        try:
            c.start("server", "standalone", "-f", str(flows))
            c.wait_healthy()
            ids = [start_execution(c, "slow", seconds="PT1S") for _ in range(3)]
            ids += [start_execution(c, "quick") for _ in range(10)]
            pg.restart()
            ids += [_retrying(lambda: start_execution(c, "quick")) for _ in range(5)]
            for execution_id in ids:
                assert finished(c, execution_id, timeout=60)["state"]["current"] == "SUCCESS"
        finally:
            c.stop_all()


def _retrying(call: Any, attempts: int = 50) -> Any:
    """The API may answer 5xx for a moment while the database comes back; a client retries."""
    for _ in range(attempts - 1):
        try:
            return call()
        except AssertionError:
            time.sleep(0.2)
    return call()
