"""Subflow: start another flow's execution, optionally wait for it and take its outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from tiercel.model.base import Model
from tiercel.model.state import StateType
from tiercel.plugins.base import ExecutableTask, FlowableContext, SubflowRequest

_TRANSMITTED = (StateType.FAILED, StateType.KILLED, StateType.WARNING, StateType.PAUSED, StateType.CANCELLED)


def render_labels(raw: Any, render: Callable[[Any], Any]) -> dict[str, str]:
    """The child execution's labels: ``raw`` is a map or Kestra's ``[{key, value}]`` list; values are
    rendered (keys are not) and both become strings, as Kestra's ``Label`` holds text."""
    if not raw:
        return {}
    items = raw.items() if isinstance(raw, Mapping) else ((i["key"], i["value"]) for i in raw)
    return {str(key): str(render(value)) for key, value in items}


class SubflowProperties(Model):
    """What to start and how to follow it: the properties Subflow and ForEachItem share with Kestra.

    One declaration so the two tasks (and ForEachItem's synthetic executable child) accept the same
    YAML and build their ``SubflowRequest`` the same way.
    """

    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: dict[str, Any] | None = None
    labels: Any = None
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False

    def subflow_properties(self) -> dict[str, Any]:
        """These properties as keyword arguments, to hand them on to another task unchanged."""
        return {name: getattr(self, name) for name in SubflowProperties.model_fields}

    def subflow_request(self, namespace: str, flow_id: str, render: Callable[[Any], Any]) -> SubflowRequest:
        """A request to start ``namespace.flow_id``, ``render`` evaluating the inputs and label values.

        The caller renders the target and picks the variables: ForEachItem renders once per batch.
        """
        labels = render_labels(self.labels, render)  # before the inputs, as both tasks always did
        return SubflowRequest(
            namespace=namespace,
            flow_id=flow_id,
            revision=self.revision,
            inputs=render(self.inputs or {}),
            labels=labels,
            wait=self.wait,
            transmit_failed=self.transmit_failed,
            inherit_labels=self.inherit_labels,
        )


class Subflow(SubflowProperties, ExecutableTask):
    type: Literal[
        "io.kestra.plugin.core.flow.Subflow",
        "io.kestra.core.tasks.flows.Subflow",
        "io.kestra.core.tasks.flows.Flow",
        "io.kestra.plugin.core.flow.Flow",
    ]
    schedule_date: datetime | str | None = None
    outputs: dict[str, Any] | None = None

    def subflow_requests(self, ctx: FlowableContext) -> list[SubflowRequest]:
        target = str(ctx.render(self.namespace)), str(ctx.render(self.flow_id))
        return [self.subflow_request(*target, ctx.render)]

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
