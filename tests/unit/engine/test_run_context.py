from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tiercel.errors import StorageNotFound, TemplateError
from tiercel.model.execution import TaskRun
from tiercel.model.logs import LogEntry
from tiercel.model.messages import WorkerJob
from tiercel.model.state import State
from tiercel.model.task import LogLevel
from tiercel.storage import KVKeyNotFound, LocalStorage
from tiercel.storage.uri import execution_prefix, namespace_file_uri

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(
    task: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    execution_id: str = "exec1",
    value: str | None = None,
) -> WorkerJob:
    run = TaskRun(
        id="run1",
        execution_id=execution_id,
        namespace="io.kestra.tests",
        flow_id="my-flow",
        task_id="t1",
        state=State.new(NOW),
        value=value,
    )
    base = {
        "flow": {"id": "my-flow", "namespace": "io.kestra.tests"},
        "execution": {"id": execution_id},
        "task": {"id": "t1", "type": "io.kestra.plugin.core.log.Log"},
        "taskrun": {"id": "run1", "value": value},
    }
    return WorkerJob(
        execution_id=execution_id,
        namespace="io.kestra.tests",
        flow_id="my-flow",
        task=task or {"id": "t1", "type": "io.kestra.plugin.core.log.Log"},
        task_run=run,
        variables={**base, **(variables or {})},
    )


def encoded(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def services(storage: LocalStorage) -> Any:
    from tiercel.engine.run_context import RunServices

    return RunServices(
        storage=storage,
        secrets={"SECRET_PASSWORD": encoded("password"), "SECRET_LONG": encoded("abcdefghijkl")},
        environ={"KESTRA_TEST1": "true", "OTHER": "x"},
        globals={"string": "string"},
    )


@pytest.fixture
def ctx(services: Any) -> Any:
    from tiercel.engine.run_context import TaskRunContext

    context = TaskRunContext(make_job(), services)
    yield context
    context.close()


def test_construction_is_cheap(services: Any) -> None:
    from tiercel.engine.run_context import TaskRunContext

    job = make_job()
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        TaskRunContext(job, services)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per context"


def test_render_sees_job_variables_envs_and_globals(ctx: Any) -> None:
    assert ctx.render("{{ flow.namespace }}/{{ task.id }}") == "io.kestra.tests/t1"
    assert ctx.render("{{ envs.test1 }} {{ globals.string }}") == "true string"
    assert ctx.render({"k": ["{{ taskrun.id }}"]}) == {"k": ["run1"]}
    assert ctx.render("{{ x }}", extra={"x": 3}) == "3"
    assert ctx.render_typed("{{ 1 + 1 }}") == 2


def test_log_threshold_from_task(services: Any) -> None:
    from tiercel.engine.run_context import TaskRunContext

    ctx = TaskRunContext(make_job(task={"id": "t1", "type": "x", "logLevel": "WARN"}), services)
    ctx.logger.info("dropped")
    ctx.logger.debug("dropped")
    ctx.logger.warn("kept")
    ctx.logger.log("ERROR", "kept too")
    ctx.logger.log("warning", "alias")
    assert [(e.level, e.message) for e in ctx.logs] == [
        (LogLevel.WARN, "kept"),
        (LogLevel.ERROR, "kept too"),
        (LogLevel.WARN, "alias"),
    ]
    entry = ctx.logs[0]
    assert (entry.namespace, entry.flow_id, entry.task_id, entry.execution_id, entry.task_run_id) == (
        "io.kestra.tests",
        "my-flow",
        "t1",
        "exec1",
        "run1",
    )


def test_default_threshold_keeps_everything(ctx: Any) -> None:
    ctx.logger.trace("t")
    ctx.logger.debug("d")
    assert len(ctx.logs) == 2


def test_secret_is_masked_in_logs(ctx: Any) -> None:
    message = ctx.render("pw={{ secret('password') }}")
    assert message == "pw=password"
    ctx.logger.info(message)
    ctx.logger.info("again password and password")
    assert ctx.logs[0].message == "pw=********"
    assert ctx.logs[1].message == "again ******** and ********"


def test_long_secret_mask_label(ctx: Any) -> None:
    ctx.logger.info(ctx.render("{{ secret('LONG') }}"))
    assert ctx.logs[0].message == "**masked****"
    ctx.register_secret("s3cr3t")
    assert ctx.mask("x s3cr3t") == "x ******"
    assert ctx.mask("nothing here *********") == "nothing here *********"


def test_unknown_secret_fails(ctx: Any) -> None:
    with pytest.raises(TemplateError):
        ctx.render("{{ secret('nope') }}")


def test_metrics(ctx: Any) -> None:
    ctx.metric("rows", 3, tags={"table": "a"})
    ctx.metric("duration", 1.5, kind="timer")
    assert [(m.name, m.value, m.type, m.tags) for m in ctx.metrics] == [
        ("rows", 3.0, "counter", {"table": "a"}),
        ("duration", 1.5, "timer", {}),
    ]
    with pytest.raises(ValueError):
        ctx.metric("x", 1, kind="histogram")


async def test_put_and_read_files(ctx: Any, tmp_path: Path) -> None:
    uri = await ctx.put_bytes(b"hello", "out.txt")
    assert uri == "kestra:///io/kestra/tests/my-flow/executions/exec1/tasks/t1/run1/out.txt"
    assert await ctx.read_bytes(uri) == b"hello"
    local = tmp_path / "local.csv"
    local.write_text("a,b")
    uri2 = await ctx.put_file(local)
    assert uri2.endswith("/run1/local.csv")
    path = await ctx.open_file(uri2)
    assert path.parent == ctx.working_dir() and path.read_text() == "a,b"
    again = await ctx.open_file(uri2)
    assert again != path and again.read_text() == "a,b"
    with pytest.raises(StorageNotFound):
        await ctx.read_bytes("kestra:///io/kestra/tests/missing")


def test_working_dir_lifecycle(services: Any, tmp_path: Path) -> None:
    from tiercel.engine.run_context import TaskRunContext

    ctx = TaskRunContext(make_job(), services)
    wd = ctx.working_dir()
    assert wd.is_dir() and ctx.working_dir() == wd
    ctx.close()
    assert not wd.exists()
    shared = tmp_path / "shared"
    shared.mkdir()
    ctx2 = TaskRunContext(make_job(), services, working_dir=shared)
    assert ctx2.working_dir() == shared
    ctx2.close()
    assert shared.exists()


async def test_read_is_scoped(ctx: Any, storage: LocalStorage) -> None:
    own = execution_prefix("io.kestra.tests", "my-flow", "exec1").join("inputs", "f", "a.txt")
    other = execution_prefix("io.kestra.tests", "my-flow", "exec2").join("inputs", "f", "b.txt")
    ns_file = namespace_file_uri("io.kestra.tests", "scripts/x.sql")
    await storage.put(own, b"mine")
    await storage.put(other, b"not mine")
    await storage.put(ns_file, b"select 1")
    assert ctx.render("{{ read('" + str(own) + "') }}") == "mine"
    assert ctx.render("{{ read('scripts/x.sql') }}") == "select 1"
    assert ctx.render("{{ fileSize('" + str(own) + "') }}") == "4"
    assert ctx.render("{{ fileURI('scripts/x.sql') }}") == str(ns_file)
    traversal = str(own.parent) + "/../../../exec2/inputs/f/b.txt"
    for path in (str(other), traversal, "../my-flow/executions/exec2/inputs/f/b.txt", "file:///etc/passwd"):
        with pytest.raises(TemplateError):
            ctx.render("{{ read('" + path + "') }}")


async def test_read_allows_the_triggering_execution(services: Any, storage: LocalStorage) -> None:
    from tiercel.engine.run_context import TaskRunContext

    parent = execution_prefix("io.kestra.parent", "parent-flow", "p1").join("tasks", "split", "r", "0.txt")
    await storage.put(parent, b"items")
    trigger = {"namespace": "io.kestra.parent", "flowId": "parent-flow", "executionId": "p1"}
    ctx = TaskRunContext(make_job(variables={"trigger": trigger}), services)
    assert ctx.render("{{ read('" + str(parent) + "') }}") == "items"


async def test_kv_function_from_async_code(ctx: Any, services: Any) -> None:
    await services.kv.set("io.kestra.tests", "my-key", {"field": "value"})
    assert ctx.render("{{ kv('my-key').field }}") == "value"
    assert ctx.render("{{ kv('other', 'io.kestra.tests', false) ?? 'none' }}") == "none"
    with pytest.raises(
        Exception, match=re.escape("The key 'other' does not exist in the namespace 'io.kestra.tests'.")
    ):
        ctx.render("{{ kv('other', 'io.kestra.tests', true) }}")


def test_kv_function_from_sync_code(ctx: Any, services: Any) -> None:
    from tiercel.engine.run_context import run_blocking

    run_blocking(services.kv.set("io.kestra.tests", "k", 1))
    assert ctx.template_services.kv("k", None, False) == 1
    with pytest.raises(KVKeyNotFound):
        ctx.template_services.kv("missing", None, True)


async def test_kv_facade(ctx: Any) -> None:
    await ctx.kv.set("a", "b")
    assert await ctx.kv.get("a") == "b"
    assert [e.key for e in await ctx.kv.list()] == ["a"]
    assert await ctx.kv.delete("a")
    assert await ctx.kv.of("elsewhere").get("a") is None


async def test_error_logs(services: Any) -> None:
    from tiercel.engine.run_context import TaskRunContext

    seen: dict[str, Any] = {}

    async def fetch_logs(**kwargs: Any) -> list[LogEntry]:
        seen.update(kwargs)
        return [
            LogEntry(
                namespace="io.kestra.tests",
                flow_id="my-flow",
                task_id="failed",
                execution_id="exec1",
                timestamp=NOW,
                level=LogLevel.ERROR,
                message="boom",
            ),
        ]

    services.fetch_logs = fetch_logs
    ctx = TaskRunContext(make_job(), services)
    out = ctx.render("{% for log in errorLogs() %}{{ log.taskId }}: {{ log.message }}{% endfor %}")
    assert out == "failed: boom"
    assert seen["execution_id"] == "exec1" and seen["min_level"] is LogLevel.ERROR
