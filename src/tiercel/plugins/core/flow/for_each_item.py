"""ForEachItem: split a file into batches and start one subflow execution per batch.

Like Kestra, the task expands into three children: ``<id>_split`` (a worker splits the file),
``<id>_items`` (the executor starts one subflow per batch and counts their end states) and
``<id>_merge`` (a worker merges the subflows' outputs into one file).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from tiercel.engine.flowable import container_step
from tiercel.errors import TaskError
from tiercel.model.base import Model
from tiercel.model.state import StateType
from tiercel.plugins.base import (
    ChildRun,
    ExecutableTask,
    FlowableContext,
    FlowableTask,
    RunContext,
    RunnableTask,
    SubflowRequest,
    Task,
)
from tiercel.plugins.core.flow.subflow import SubflowProperties
from tiercel.plugins.core.storage import Split

_ORDER = (StateType.KILLED, StateType.FAILED, StateType.WARNING, StateType.PAUSED, StateType.CANCELLED)


class Batch(Model):
    rows: int | str | None = None
    bytes: str | None = None
    partitions: int | str | None = None
    separator: str = "\n"


class ForEachItemSplit(Split):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit"]  # type: ignore[assignment]

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        outputs = await super().run(ctx) or {}
        uris = list(outputs.get("uris", []))
        return {"splits": uris, "numberOfBatches": len(uris)}


class ForEachItemExecutable(SubflowProperties, ExecutableTask):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable"]
    split_task_id: str

    def subflow_requests(self, ctx: FlowableContext) -> list[SubflowRequest]:
        split = next(
            (
                r
                for r in ctx.execution.task_runs_of(self.split_task_id)
                if r.parent_task_run_id == ctx.task_run.parent_task_run_id
            ),
            None,
        )
        splits = list((split.outputs if split else {}).get("splits", []))
        if splits:
            counts = {"RUNNING": 0, "SUCCESS": 0}
            if self.wait:
                counts = {"CREATED": len(splits), **counts}
            ctx.set_outputs({"numberOfBatches": len(splits), "iterations": counts})
        target = str(ctx.render(self.namespace)), str(ctx.render(self.flow_id))
        requests = []
        from tiercel.templating import render_value

        for index, uri in enumerate(splits):
            variables = dict(ctx.variables())  # type: ignore[attr-defined]
            variables["taskrun"] = {**variables["taskrun"], "items": uri, "iteration": index}
            render = functools.partial(render_value, variables=variables)
            requests.append(self.subflow_request(*target, render))
        return requests

    def child_created(self, ctx: FlowableContext, child_id: str) -> tuple[StateType | None, dict[str, Any]]:
        outputs = dict(ctx.task_run.outputs)
        iterations = dict(outputs.get("iterations") or {})
        if not self.wait:
            iterations["SUCCESS"] = iterations.get("SUCCESS", 0) + 1
            outputs["iterations"] = iterations
            done = iterations["SUCCESS"] >= outputs.get("numberOfBatches", 0)
            return (StateType.SUCCESS if done else None), outputs
        iterations["CREATED"] = max(0, iterations.get("CREATED", 0) - 1)
        iterations["RUNNING"] = iterations.get("RUNNING", 0) + 1
        outputs["iterations"] = iterations
        return None, outputs

    def subflow_result(
        self,
        ctx: FlowableContext,
        child_state: StateType,
        child_outputs: Mapping[str, Any] | None,
        child_id: str,
    ) -> tuple[StateType | None, dict[str, Any]]:
        outputs = dict(ctx.task_run.outputs)
        iterations = dict(outputs.get("iterations") or {})
        iterations["RUNNING"] = max(0, iterations.get("RUNNING", 0) - 1)
        iterations[child_state.value] = iterations.get(child_state.value, 0) + 1
        outputs["iterations"] = iterations
        if child_outputs:
            collected = dict(outputs.get("subflowOutputs") or {})
            collected[child_id] = dict(child_outputs)
            outputs["subflowOutputs"] = collected
        done = sum(v for k, v in iterations.items() if k not in ("CREATED", "RUNNING"))
        if done < outputs.get("numberOfBatches", 0):
            return None, outputs
        if self.transmit_failed:
            for state in _ORDER:
                if iterations.get(state.value):
                    return state, outputs
        return StateType.SUCCESS, outputs


class ForEachItemMerge(RunnableTask):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs"]
    items_task_id: str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        outputs = ctx.variables.get("outputs", {}).get(self.items_task_id, {})
        collected = outputs.get("subflowOutputs") or {}
        if not collected:
            return {}
        data = "".join(json.dumps(v, default=str) + "\n" for v in collected.values()).encode()
        return {"subflowOutputs": await ctx.put_bytes(data, "outputs.jsonl")}


class ForEachItem(SubflowProperties, FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem", "io.kestra.core.tasks.flows.ForEachItem"]
    items: str
    batch: Batch = Field(default_factory=lambda: Batch(rows=1))
    schedule_date: datetime | str | None = None
    errors: list[Any] | None = None

    _children: list[Task] | None = PrivateAttr(default=None)

    def synthetic(self) -> list[Task]:
        if self._children is None:
            batch = self.batch
            split = ForEachItemSplit.model_validate(
                {
                    "id": f"{self.id}_split",
                    "type": "io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit",
                    "from": self.items,
                    "rows": batch.rows,
                    "bytes": batch.bytes,
                    "partitions": batch.partitions,
                    "separator": batch.separator,
                }
            )
            items = ForEachItemExecutable(
                id=f"{self.id}_items",
                type="io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable",
                split_task_id=split.id,
                **self.subflow_properties(),
            )
            merge = ForEachItemMerge(
                id=f"{self.id}_merge",
                type="io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs",
                items_task_id=items.id,
            )
            self._children = [split, items, merge]
        return self._children

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {"tasks": self.synthetic()}

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return container_step(ctx.children, self.synthetic()).nexts

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        return container_step(ctx.children, self.synthetic()).state

    def final_outputs(self, ctx: FlowableContext) -> Mapping[str, Any] | None:
        items = next((r for r in ctx.children if r.task_id == f"{self.id}_items"), None)
        merge = next((r for r in ctx.children if r.task_id == f"{self.id}_merge"), None)
        out: dict[str, Any] = {}
        if items is not None:
            out["numberOfBatches"] = items.outputs.get("numberOfBatches", 0)
            out["iterations"] = items.outputs.get("iterations", {})
        if merge is not None and merge.outputs.get("subflowOutputs"):
            out["uri"] = merge.outputs["subflowOutputs"]
        return out


PLUGINS = [ForEachItem, ForEachItemSplit, ForEachItemExecutable, ForEachItemMerge]
_ = TaskError
