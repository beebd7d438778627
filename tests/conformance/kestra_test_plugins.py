"""Tiercel stand-ins for the Java plugins that exist only on Kestra's test classpath.

Kestra's own tests run some corpus flows with test-only tasks (``io.kestra.core.tasks.test.*``,
``io.kestra.core.runners.test.*``). These are test fixtures, not product plugins: they are registered
in the conformance tests only (``tests/conformance/conftest.py``), and a Tiercel without them refuses
those flows with "Invalid type". Each class does what ``test_plugin`` / ``skipped[].reason`` of
expectations.yaml say the Java task does, and nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tiercel.model.state import StateType
from tiercel.plugins.base import FlowableContext, RunContext, RunnableTask, TaskFailure, Trigger
from tiercel.plugins.core.flow.sequential import Sequential
from tiercel.plugins.core.flow.subflow import Subflow
from tiercel.plugins.registry import PluginRegistry, default_registry


class TaskThatFail(RunnableTask):
    """Fails, keeping the output ``{message: <rendered message>}`` on the failed task run."""

    type: Literal["io.kestra.core.runners.test.TaskThatFail"]
    message: str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        raise TaskFailure("An exception occurs", outputs={"message": ctx.render(self.message)})


class NullOutputTask(RunnableTask):
    """Returns the single output ``value``, null (kept, not dropped)."""

    type: Literal["io.kestra.core.tasks.test.NullOutputTask"]

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        return {"value": None}


class Read(RunnableTask):
    """Output ``value``: the content of ``path`` (rendered) inside the task's working directory.

    Kestra joins the path to the working directory even when it starts with ``/``; a missing file
    fails the task.
    """

    type: Literal["io.kestra.core.tasks.test.Read"]
    path: str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        from tiercel.plugins.core.storage import safe_local_path

        relative = str(ctx.render(self.path)).lstrip("/")
        target = safe_local_path(ctx.working_dir(), relative)
        if not target.is_file():
            raise TaskFailure(f"No file '{self.path}' in the working directory")
        return {"value": target.read_text(encoding="utf-8")}


class Encrypted(RunnableTask):
    """Output ``value``: the rendered ``format`` in Kestra's encrypted form (``aes_encrypted``)."""

    type: Literal["io.kestra.core.tasks.test.Encrypted"]
    format: str | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        from tiercel.crypto import sealed

        key = getattr(ctx.services, "encryption_key", None)
        if key is None:
            raise TaskFailure("Unable to encrypt the output: encryption is not configured")
        return {"value": sealed(key, str(ctx.render(self.format or "")))}


class TaskWithAlias(RunnableTask):
    """Logs ``message`` at INFO (unrendered, as the Java task does); known by two type names."""

    type: Literal["io.kestra.core.runners.test.TaskWithAlias", "io.kestra.core.runners.test.task.Alias"]
    message: str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        ctx.logger.info(self.message)
        return None


class TriggerWithAlias(Trigger):
    """A polling trigger known by an alias; Kestra's AliasTest only checks that the name resolves."""

    type: Literal["io.kestra.core.runners.test.TriggerWithAlias", "io.kestra.core.runners.test.trigger.Alias"]
    duration: int = 1000


class DynamicTask(RunnableTask):
    """Fails with "Task failed" when ``fail`` is true, else succeeds with no outputs.

    The Java task also injects one synthetic task run through ``RunContext.dynamicWorkerResult``;
    a Tiercel runnable task has no way to add task runs, so that part is not reproduced.
    """

    type: Literal["io.kestra.core.tasks.test.DynamicTask"]
    fail: bool = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        if self.fail:
            raise TaskFailure("Task failed")
        return None


class BadSequential(Sequential):
    """A Sequential whose state resolution throws."""

    type: Literal["io.kestra.core.tasks.test.BadSequential"]  # type: ignore[assignment]

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        raise RuntimeError("BAM")


class BadExecutable(Subflow):
    """A Subflow whose result hook throws once the child execution ends."""

    type: Literal["io.kestra.core.tasks.test.BadExecutable"]  # type: ignore[assignment]

    def subflow_result(
        self,
        ctx: FlowableContext,
        child_state: StateType,
        child_outputs: Mapping[str, Any] | None,
        child_id: str,
    ) -> tuple[StateType | None, dict[str, Any]]:
        raise RuntimeError("An error!")


class WorkerTaskResultTooLarge(RunnableTask):
    """Output ``value``: 1,100,000 ``a`` characters (Kestra uses it against the JDBC queue's 1 MiB limit)."""

    type: Literal["io.kestra.core.runners.test.WorkerTaskResultTooLarge"]

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        return {"value": "a" * 1_100_000}


SHIMS: tuple[type[Any], ...] = (
    TaskThatFail,
    NullOutputTask,
    Read,
    Encrypted,
    TaskWithAlias,
    TriggerWithAlias,
    DynamicTask,
    BadSequential,
    BadExecutable,
    WorkerTaskResultTooLarge,
)


def register(registry: PluginRegistry | None = None) -> PluginRegistry:
    """Add the shims to ``registry`` (the process-wide one by default) and rebuild its models.

    Idempotent: a registry that already maps every shim name to its shim is only rebuilt, which is
    a no-op unless another registry built the flow models since.
    """
    registry = registry or default_registry()
    known = {**registry.tasks, **registry.triggers}
    missing = [cls for cls in SHIMS if any(known.get(name) is not cls for name in cls.type_names())]
    if missing:
        registry.register(*missing)
    registry.build()
    return registry


def shim_type_names() -> set[str]:
    return {name for cls in SHIMS for name in cls.type_names()}
