"""Tasks about executions: Fail, Assert, Resume (runnable); Labels, SetVariables, Exit (applied by
the executor, since they change the execution)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tiercel.errors import TaskError
from tiercel.model.state import StateType
from tiercel.plugins.base import (
    ExecutionChange,
    ExecutionTask,
    FlowableContext,
    RunContext,
    RunnableTask,
    TaskFailure,
)


class Fail(RunnableTask):
    type: Literal["io.kestra.plugin.core.execution.Fail", "io.kestra.core.tasks.executions.Fail"]
    condition: Any = None
    error_message: str = "Task failure"

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        if self.condition is not None:
            from tiercel.templating import is_truthy

            if not is_truthy(ctx.render(self.condition)):
                return None
        raise TaskFailure(str(ctx.render(self.error_message)))


class Assert(RunnableTask):
    type: Literal["io.kestra.plugin.core.execution.Assert"]
    conditions: list[Any]
    error_message: str | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        from tiercel.templating import is_truthy

        failed = 0
        for condition in self.conditions:
            if not is_truthy(ctx.render(condition)):
                failed += 1
                ctx.logger.error(f"Assertion `{condition}` failed!")
        if failed:
            message = (
                ctx.render(self.error_message) if self.error_message else f"{failed} assertion(s) failed"
            )
            raise TaskFailure(str(message))
        return None


class Resume(RunnableTask):
    """Resume a PAUSED execution (by default this one) with optional ``onResume`` inputs.

    The engine does the resuming through ``ctx.services.resume_execution``: it validates the inputs
    against the paused task's ``onResume`` declarations and refuses an execution that is not PAUSED;
    its refusal becomes this task's failure message. As in Kestra, ``namespace`` and ``flowId`` go
    together, and when given the execution must belong to that flow.
    """

    type: Literal["io.kestra.plugin.core.execution.Resume"]
    execution_id: str | None = None
    namespace: str | None = None
    flow_id: str | None = None
    inputs: Any = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        resume = getattr(ctx.services, "resume_execution", None)
        if resume is None:
            raise TaskError("Resuming executions is not available: this worker is not attached to an engine")
        namespace = str(ctx.render(self.namespace)) if self.namespace else None
        flow_id = str(ctx.render(self.flow_id)) if self.flow_id else None
        if (namespace is None) != (flow_id is None):
            raise TaskError("If `namespace` or `flowId` is set, both must be set.")
        execution_id = str(ctx.render(self.execution_id)) if self.execution_id else ctx.execution_id
        await resume(execution_id, self._inputs(ctx), namespace=namespace, flow_id=flow_id)
        ctx.logger.debug(f"Resumed the execution {execution_id}")
        return None

    def _inputs(self, ctx: RunContext) -> dict[str, Any]:
        if self.inputs is None:
            return {}
        rendered = ctx.render(self.inputs)
        if isinstance(rendered, str):
            import json

            try:
                rendered = json.loads(rendered)
            except ValueError:
                rendered = None
        if not isinstance(rendered, Mapping):
            raise TaskError(f"`inputs` must be a map of onResume inputs, got {self.inputs!r}")
        return dict(rendered)


class Labels(ExecutionTask):
    type: Literal["io.kestra.plugin.core.execution.Labels", "io.kestra.core.tasks.executions.Labels"]
    labels: Any

    def change(self, ctx: FlowableContext) -> ExecutionChange:
        raw = ctx.render(self.labels)
        if isinstance(raw, str):
            import json

            raw = json.loads(raw)
        items = raw.items() if isinstance(raw, Mapping) else ((i["key"], i["value"]) for i in raw)
        labels = {}
        for key, value in items:
            if str(key).startswith("system."):
                continue
            labels[str(key)] = "true" if value is True else "false" if value is False else str(value)
        return ExecutionChange(labels=labels)


class SetVariables(ExecutionTask):
    type: Literal["io.kestra.plugin.core.execution.SetVariables"]
    variables: dict[str, Any]
    overwrite: bool = True

    def change(self, ctx: FlowableContext) -> ExecutionChange:
        values = ctx.render(self.variables)
        if not self.overwrite:
            existing = ctx.execution.variables
            clash = [k for k in values if k in existing]
            if clash:
                raise ValueError(f"`overwrite` is false and variables already exist: {', '.join(clash)}")
        return ExecutionChange(variables=values)


class Exit(ExecutionTask):
    type: Literal["io.kestra.plugin.core.execution.Exit"]
    state: Literal["SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELED", "CANCELLED"] = "SUCCESS"

    def change(self, ctx: FlowableContext) -> ExecutionChange:
        state = "CANCELLED" if self.state == "CANCELED" else self.state
        return ExecutionChange(exit_state=StateType(state))
