"""Subflow: start another flow's execution, optionally wait for it and take its outputs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from tiercel.model.state import StateType
from tiercel.plugins.base import ExecutableTask, FlowableContext, SubflowRequest

_TRANSMITTED = (StateType.FAILED, StateType.KILLED, StateType.WARNING, StateType.PAUSED, StateType.CANCELLED)


class Subflow(ExecutableTask):
    type: Literal[
        "io.kestra.plugin.core.flow.Subflow",
        "io.kestra.core.tasks.flows.Subflow",
        "io.kestra.core.tasks.flows.Flow",
        "io.kestra.plugin.core.flow.Flow",
    ]
    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: dict[str, Any] | None = None
    labels: Any = None
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    schedule_date: datetime | str | None = None
    outputs: dict[str, Any] | None = None

    def subflow_requests(self, ctx: FlowableContext) -> list[SubflowRequest]:
        labels: dict[str, str] = {}
        raw = self.labels or {}
        items = raw.items() if isinstance(raw, Mapping) else ((i["key"], i["value"]) for i in raw)
        for key, value in items:
            labels[str(key)] = str(ctx.render(value))
        return [
            SubflowRequest(
                namespace=str(ctx.render(self.namespace)),
                flow_id=str(ctx.render(self.flow_id)),
                revision=self.revision,
                inputs=ctx.render(self.inputs or {}),
                labels=labels,
                wait=self.wait,
                transmit_failed=self.transmit_failed,
                inherit_labels=self.inherit_labels,
            )
        ]

    def child_created(self, ctx: FlowableContext, child_id: str) -> tuple[StateType | None, dict[str, Any]]:
        outputs = {**ctx.task_run.outputs, "executionId": child_id}
        return (None if self.wait else StateType.SUCCESS), outputs

    def _legacy_outputs(self, ctx: FlowableContext) -> dict[str, Any]:
        """Deprecated ``outputs``: rendered against the child execution's task outputs."""
        from tiercel.templating import render_value

        variables = dict(ctx.variables())  # type: ignore[attr-defined]
        variables["outputs"] = getattr(ctx, "child_task_outputs", None) or {}
        return dict(render_value(self.outputs or {}, variables))

    def subflow_result(
        self,
        ctx: FlowableContext,
        child_state: StateType,
        child_outputs: Mapping[str, Any] | None,
        child_id: str,
    ) -> tuple[StateType | None, dict[str, Any]]:
        outputs: dict[str, Any] = dict(ctx.task_run.outputs)
        outputs["executionId"] = child_id or outputs.get("executionId")
        if not self.wait:
            return StateType.SUCCESS, outputs
        outputs["state"] = child_state.value
        if child_outputs is not None:
            outputs["outputs"] = dict(child_outputs)
        if self.outputs:
            outputs["outputs"] = {**outputs.get("outputs", {}), **self._legacy_outputs(ctx)}
        if self.transmit_failed and child_state in _TRANSMITTED:
            return child_state, outputs
        return StateType.SUCCESS, outputs
