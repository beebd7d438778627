from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tiercel.clock import ManualClock
from tiercel.errors import StorageNotFound, TaskError
from tiercel.model.execution import TaskRun
from tiercel.model.logs import LogEntry
from tiercel.model.messages import WorkerJob
from tiercel.model.state import State
from tiercel.model.task import LogLevel
from tiercel.plugins.core import kv, log_fetch, state, storage, templating, trigger
from tiercel.storage import KVKeyNotFound, LocalStorage
from tiercel.storage.uri import execution_prefix

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NS = "io.kestra.tests"
MISSING = "The key 'my-key' does not exist in the namespace 'io.kestra.tests'."


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def services(store: LocalStorage, clock: ManualClock) -> Any:
    from tiercel.engine.run_context import RunServices

    return RunServices(
        storage=store, clock=clock, secrets={"SECRET_PW": base64.b64encode(b"hunter2").decode()}
    )


@pytest.fixture
def make_ctx(services: Any) -> Iterator[Any]:
    from tiercel.engine.run_context import TaskRunContext

    made: list[Any] = []

    def build(
        task_id: str = "t1",
        value: str | None = None,
        run_id: str = "run1",
        working_dir: Path | None = None,
        execution_id: str = "exec1",
    ) -> Any:
        run = TaskRun(
            id=run_id,
            execution_id=execution_id,
            namespace=NS,
            flow_id="flow",
            task_id=task_id,
            state=State.new(NOW),
            value=value,
        )
        variables = {
            "flow": {"id": "flow", "namespace": NS},
            "execution": {"id": execution_id},
            "task": {"id": task_id},
            "taskrun": {"id": run_id, "value": value},
            "inputs": {"name": "world"},
        }
        job = WorkerJob(
            execution_id=execution_id,
            namespace=NS,
            flow_id="flow",
            task={"id": task_id, "type": "x"},
            task_run=run,
            variables=variables,
        )
        ctx = TaskRunContext(job, services, working_dir=working_dir)
        made.append(ctx)
        return ctx

    yield build
    for ctx in made:
        ctx.close()


# -- storage ---------------------------------------------------------------------------------------


async def test_write(make_ctx: Any, store: LocalStorage) -> None:
    task = storage.Write.model_validate(
        {
            "id": "t1",
            "type": "io.kestra.plugin.core.storage.Write",
            "content": "hello {{ inputs.name }}",
            "extension": ".csv",
        }
    )
    out = await task.run(make_ctx())
    assert out["uri"].startswith("kestra:///io/kestra/tests/flow/executions/exec1/tasks/t1/run1/")
    assert out["uri"].endswith(".csv")
    assert await store.get_bytes(out["uri"]) == b"hello world"


async def test_local_files_inputs_and_outputs(make_ctx: Any, store: LocalStorage, tmp_path: Path) -> None:
    shared = tmp_path / "wd"
    shared.mkdir()
    src = await store.put(execution_prefix(NS, "flow", "exec1").join("inputs", "f", "data.bin"), b"\x00\x01")
    first = storage.LocalFiles.model_validate(
        {
            "id": "first",
            "type": "io.kestra.core.tasks.storages.LocalFiles",
            "inputs": {"out/stay.txt": "{{ taskrun.id }}", "input.txt": "Hello World", "copy.bin": src},
        }
    )
    assert await first.run(make_ctx("first", working_dir=shared)) == {"uris": {}}
    assert (shared / "out" / "stay.txt").read_text() == "run1"
    assert (shared / "copy.bin").read_bytes() == b"\x00\x01"
    second = storage.LocalFiles.model_validate(
        {"id": "second", "type": "io.kestra.plugin.core.storage.LocalFiles", "outputs": ["out/*", "*.txt"]}
    )
    out = await second.run(make_ctx("second", run_id="run2", working_dir=shared))
    assert sorted(out["uris"]) == ["input.txt", "out/stay.txt"]
    assert out["uris"]["out/stay.txt"].endswith("/tasks/second/run2/out/stay.txt")
    assert await store.get_bytes(out["uris"]["input.txt"]) == b"Hello World"


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../x", "..\\x", "C:\\x"])
async def test_local_files_refuses_escape(make_ctx: Any, tmp_path: Path, path: str) -> None:
    task = storage.LocalFiles.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.storage.LocalFiles", "inputs": {path: "x"}}
    )
    with pytest.raises(TaskError):
        await task.run(make_ctx(working_dir=tmp_path / "wd2"))
    assert not (tmp_path / "escape.txt").exists()


async def test_concat(make_ctx: Any, store: LocalStorage) -> None:
    a = await store.put("kestra:///io/kestra/tests/flow/executions/exec1/a.txt", b"a")
    b = await store.put("kestra:///io/kestra/tests/flow/executions/exec1/b.txt", b"b")
    task = storage.Concat.model_validate(
        {
            "id": "t1",
            "type": "io.kestra.plugin.core.storage.Concat",
            "files": json.dumps([a, b]),
            "separator": "\n",
            "extension": ".txt",
        }
    )
    out = await task.run(make_ctx())
    assert out["uri"].endswith(".txt")
    assert await store.get_bytes(out["uri"]) == b"a\nb\n"


async def _split(make_ctx: Any, store: LocalStorage, **props: Any) -> list[bytes]:
    src = await store.put("kestra:///io/kestra/tests/flow/executions/exec1/rows.csv", b"1\n22\n333\n4444\n5")
    task = storage.Split.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.storage.Split", "from": src, **props}
    )
    out = await task.run(make_ctx())
    assert all(u.endswith(".csv") for u in out["uris"])
    return [await store.get_bytes(u) for u in out["uris"]]


async def test_split_rows(make_ctx: Any, store: LocalStorage) -> None:
    assert await _split(make_ctx, store, rows=2) == [b"1\n22\n", b"333\n4444\n", b"5\n"]


async def test_split_partitions(make_ctx: Any, store: LocalStorage) -> None:
    assert await _split(make_ctx, store, partitions="2") == [b"1\n333\n5\n", b"22\n4444\n"]


async def test_split_bytes(make_ctx: Any, store: LocalStorage) -> None:
    assert await _split(make_ctx, store, bytes="5") == [b"1\n22\n", b"333\n4444\n", b"5\n"]


async def test_split_needs_one_mode(make_ctx: Any, store: LocalStorage) -> None:
    with pytest.raises(TaskError):
        await _split(make_ctx, store, rows=1, partitions=2)


async def test_size_delete_purge(make_ctx: Any, store: LocalStorage) -> None:
    prefix = execution_prefix(NS, "flow", "exec1")
    uri = await store.put(prefix.join("x.txt"), b"12345")
    await store.put(prefix.join("inputs", "f", "y"), b"y")
    other = await store.put(execution_prefix(NS, "flow", "exec2").join("z"), b"z")
    size = storage.Size.model_validate({"id": "t1", "type": "io.kestra.plugin.core.storage.Size", "uri": uri})
    assert await size.run(make_ctx()) == {"size": 5}
    delete = storage.Delete.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.storage.Delete", "uri": uri}
    )
    assert await delete.run(make_ctx()) == {"uri": uri, "deleted": True}
    assert await delete.run(make_ctx()) == {"uri": uri, "deleted": False}
    strict = delete.model_copy(update={"error_on_missing": True})
    with pytest.raises(StorageNotFound):
        await strict.run(make_ctx())
    folder = storage.Delete.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.storage.Delete", "uri": str(prefix)}
    )
    with pytest.raises(TaskError):
        await folder.run(make_ctx())
    purge = storage.PurgeCurrentExecutionFiles.model_validate(
        {"id": "t1", "type": "io.kestra.core.tasks.storages.PurgeExecution"}
    )
    out = await purge.run(make_ctx())
    assert str(prefix.join("inputs", "f", "y")) in out["uris"]
    assert not await store.exists(prefix)
    assert await store.exists(other)


# -- kv ---------------------------------------------------------------------------------------------


async def test_kv_tasks(make_ctx: Any, services: Any, clock: ManualClock) -> None:
    set_task = kv.Set.model_validate(
        {
            "id": "t1",
            "type": "io.kestra.plugin.core.kv.Set",
            "key": "my-{{ inputs.name }}",
            "value": "42",
            "kvType": "NUMBER",
            "ttl": "PT1H",
        }
    )
    assert await set_task.run(make_ctx()) == {}
    get = kv.Get.model_validate({"id": "t1", "type": "io.kestra.plugin.core.kv.Get", "key": "my-world"})
    assert await get.run(make_ctx()) == {"value": 42}
    keys = kv.GetKeys.model_validate({"id": "t1", "type": "io.kestra.plugin.core.kv.GetKeys", "prefix": "my"})
    assert await keys.run(make_ctx()) == {"keys": ["my-world"]}
    no_overwrite = set_task.model_copy(update={"overwrite": False})
    with pytest.raises(Exception, match="already exists"):
        await no_overwrite.run(make_ctx())
    clock.advance(timedelta(hours=2))
    assert await get.run(make_ctx()) == {}
    delete = kv.Delete.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.kv.Delete", "key": "my-world"}
    )
    assert await delete.run(make_ctx()) == {"deleted": False}


async def test_kv_missing_key_errors(make_ctx: Any) -> None:
    get = kv.Get.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.kv.Get", "key": "my-key", "errorOnMissing": True}
    )
    with pytest.raises(KVKeyNotFound, match=re.escape(MISSING)):
        await get.run(make_ctx())
    delete = kv.Delete.model_validate(
        {"id": "t1", "type": "io.kestra.plugin.core.kv.Delete", "key": "my-key", "errorOnMissing": True}
    )
    with pytest.raises(KVKeyNotFound):
        await delete.run(make_ctx())


async def test_kv_other_namespace(make_ctx: Any, services: Any) -> None:
    set_task = kv.Set.model_validate(
        {
            "id": "t1",
            "type": "io.kestra.plugin.core.kv.Set",
            "key": "k",
            "value": {"a": 1},
            "namespace": "other.ns",
        }
    )
    await set_task.run(make_ctx())
    assert await services.kv.get_value("other.ns", "k") == {"a": 1}
    assert await services.kv.get_value(NS, "k") is None


# -- state --------------------------------------------------------------------------------------------


def _state(cls: type, **props: Any) -> Any:
    kind = cls.__name__
    return cls.model_validate({"id": f"s{kind}", "type": f"io.kestra.plugin.core.state.{kind}", **props})


async def test_state_create_update_delete(make_ctx: Any) -> None:
    get = _state(state.Get, name="{{ inputs.name }}")
    assert await get.run(make_ctx()) == {"count": 0, "data": {}}
    out = await _state(state.Set, name="world", data={"value": 1}).run(make_ctx())
    assert out["count"] == 1 and out["key"].startswith("kestra:///io/kestra/tests/flow/states/world/")
    assert await get.run(make_ctx()) == {"count": 1, "data": {"value": 1}}
    await _state(state.Set, name="world", data={"value": "{{ 1 + 1 }}", "other": True}).run(make_ctx())
    assert await get.run(make_ctx()) == {"count": 2, "data": {"value": "2", "other": True}}
    assert await _state(state.Delete, name="world").run(make_ctx()) == {"deleted": True}
    assert await get.run(make_ctx()) == {"count": 0, "data": {}}
    with pytest.raises(TaskError):
        await _state(state.Delete, name="world", errorOnMissing=True).run(make_ctx())


async def test_state_per_taskrun_value(make_ctx: Any) -> None:
    await _state(state.Set, data={"v": "a"}).run(make_ctx(value="a"))
    await _state(state.Set, data={"v": "b"}).run(make_ctx(value="b"))
    assert (await _state(state.Get).run(make_ctx(value="a")))["data"] == {"v": "a"}
    assert (await _state(state.Get).run(make_ctx(value="b")))["data"] == {"v": "b"}
    assert (await _state(state.Get, taskrunValue=False).run(make_ctx(value="a")))["data"] == {}
    await _state(state.Set, data={"v": "shared"}, namespace=True, taskrunValue=False).run(make_ctx())
    shared = await _state(state.Get, namespace=True, taskrunValue=False).run(make_ctx(value="zzz"))
    assert shared["data"] == {"v": "shared"}


async def test_state_name_cannot_traverse(make_ctx: Any) -> None:
    with pytest.raises(TaskError):
        await _state(state.Get, name="../../x").run(make_ctx())


# -- templating, trigger, log fetch --------------------------------------------------------------


async def test_templated_task(make_ctx: Any) -> None:
    from tiercel.plugins.registry import PluginRegistry

    task = templating.TemplatedTask.model_validate(
        {
            "id": "tpl",
            "type": "io.kestra.plugin.core.templating.TemplatedTask",
            "spec": "type: io.kestra.plugin.core.storage.Write\ncontent: '{{ inputs.name }}'",
        }
    )
    registry = PluginRegistry()
    registry.register(*storage.PLUGINS, *templating.PLUGINS)
    import tiercel.plugins.registry as reg

    previous, reg._default = reg._default, registry
    try:
        out = await task.run(make_ctx("tpl"))
        assert out["uri"].startswith("kestra:///io/kestra/tests/flow/executions/exec1/tasks/tpl/run1/")
        for spec, message in [
            ("type: io.kestra.plugin.core.templating.TemplatedTask\nspec: x", "cannot run another"),
            ("type: nope.Task", "Invalid type: nope.Task"),
            ("type: io.kestra.plugin.core.storage.Write\nunknown: 1", "Invalid templated task"),
            ("[1, 2]", "must be a map"),
        ]:
            bad = task.model_copy(update={"spec": spec})
            with pytest.raises(TaskError, match=message):
                await bad.run(make_ctx("tpl"))
    finally:
        reg._default = previous


async def test_toggle_logs(make_ctx: Any) -> None:
    task = trigger.Toggle.model_validate(
        {
            "id": "disable",
            "type": "io.kestra.core.tasks.trigger.Toggle",
            "trigger": "schedule",
            "enabled": True,
        }
    )
    ctx = make_ctx("disable")
    assert await task.run(ctx) is None
    assert "schedule" in ctx.logs[0].message


async def test_log_fetch(make_ctx: Any, services: Any, store: LocalStorage) -> None:
    def entry(task_id: str, level: LogLevel, message: str, execution_id: str = "exec1") -> LogEntry:
        return LogEntry(
            namespace=NS,
            flow_id="flow",
            task_id=task_id,
            execution_id=execution_id,
            timestamp=NOW,
            level=level,
            message=message,
        )

    logs = [
        entry("task-1", LogLevel.INFO, "task 1"),
        entry("task-1", LogLevel.DEBUG, "debug"),
        entry("task-2", LogLevel.INFO, "task 2"),
        entry("sleep", LogLevel.INFO, "Waiting for PT0.1S"),
    ]

    async def fetch_logs(
        *,
        namespace: str,
        flow_id: str,
        execution_id: str,
        task_ids: list[str] | None = None,
        min_level: LogLevel = LogLevel.TRACE,
    ) -> list[LogEntry]:
        return [e for e in logs if e.execution_id == execution_id and e.level.rank >= min_level.rank]

    services.fetch_logs = fetch_logs
    task = log_fetch.Fetch.model_validate({"id": "get-log-task", "type": "io.kestra.plugin.core.log.Fetch"})
    out = await task.run(make_ctx("get-log-task"))
    assert out["size"] == 3
    lines = (await store.get_bytes(out["uri"])).decode().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["task 1", "task 2", "Waiting for PT0.1S"]
    by_task = log_fetch.Fetch.model_validate(
        {"id": "get-log-task", "type": "io.kestra.plugin.core.log.Fetch", "tasksId": ["task-1"]}
    )
    assert (await by_task.run(make_ctx("get-log-task")))["size"] == 1
    by_id = log_fetch.Fetch.model_validate(
        {
            "id": "get-log-task",
            "type": "io.kestra.plugin.core.log.Fetch",
            "executionId": "{{ execution.id }}",
            "level": "DEBUG",
        }
    )
    assert (await by_id.run(make_ctx("get-log-task")))["size"] == 4


async def test_log_fetch_without_repository(make_ctx: Any) -> None:
    task = log_fetch.Fetch.model_validate({"id": "f", "type": "io.kestra.plugin.core.log.Fetch"})
    with pytest.raises(TaskError):
        await task.run(make_ctx("f"))


def test_plugin_lists_declare_kestra_names() -> None:
    names = {
        n
        for module in (storage, kv, state, templating, trigger, log_fetch)
        for c in module.PLUGINS
        for n in c.type_names()
    }
    for expected in (
        "io.kestra.plugin.core.storage.LocalFiles",
        "io.kestra.plugin.core.kv.Set",
        "io.kestra.core.tasks.states.Get",
        "io.kestra.core.tasks.trigger.Toggle",
        "io.kestra.plugin.core.log.Fetch",
        "io.kestra.core.tasks.templating.TemplatedTask",
    ):
        assert expected in names
