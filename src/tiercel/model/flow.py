"""The Flow: Kestra's top-level document (§1.1).

Task lists are typed ``AnyTask``: the discriminated union of every task plugin, which the plugin
registry supplies when it (re)builds the models (see ``tiercel.plugins.registry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, StringConstraints

from tiercel.model.base import Model
from tiercel.model.execution import Label, labels_from
from tiercel.model.inputs import Input, Output
from tiercel.model.task import Retry

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask
    from tiercel.plugins.base import Trigger as AnyTrigger

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class ConcurrencyBehavior(StrEnum):
    QUEUE = "QUEUE"
    CANCEL = "CANCEL"
    FAIL = "FAIL"


class Concurrency(Model):
    limit: Annotated[int, Field(gt=0)]
    behavior: ConcurrencyBehavior = ConcurrencyBehavior.QUEUE


class PluginDefault(Model):
    type: str
    forced: bool = False
    values: dict[str, Any] = Field(default_factory=dict)


class Sla(Model):
    id: str
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    behavior: Literal["FAIL", "CANCEL", "NONE"] = "FAIL"
    labels: Any = None
    duration: timedelta | None = None
    assert_: str | None = Field(default=None, alias="assert")


Labels = Annotated[tuple[Label, ...], BeforeValidator(labels_from)]


@dataclass(frozen=True)
class TaskNode:
    """Where a task sits in the flow: its parent task (None = the flow) and branch name."""

    task: AnyTask
    parent_id: str | None
    branch: str


class Flow(Model):
    id: Annotated[str, StringConstraints(pattern=FLOW_ID_PATTERN, min_length=1, max_length=100)]
    namespace: Annotated[str, StringConstraints(pattern=NAMESPACE_PATTERN, min_length=1, max_length=150)]
    revision: int | None = None
    description: str | None = None
    labels: Labels = ()
    inputs: list[Input] | None = None
    outputs: list[Output] | None = None
    variables: dict[str, Any] | None = None
    tasks: Annotated[list[AnyTask], Field(min_length=1)]
    errors: list[AnyTask] | None = None
    finally_: list[AnyTask] | None = Field(default=None, alias="finally")
    after_execution: list[AnyTask] | None = None
    listeners: list[Any] | None = None
    triggers: list[AnyTrigger] | None = None
    plugin_defaults: list[PluginDefault] | None = Field(default=None, alias="pluginDefaults")
    task_defaults: list[PluginDefault] | None = None
    concurrency: Concurrency | None = None
    retry: Retry | None = None
    sla: list[Sla] | None = None
    disabled: bool = False
    deleted: bool = False
    tenant_id: str | None = None

    _nodes: dict[str, TaskNode] | None = PrivateAttr(default=None)

    def branches(self) -> dict[str, list[AnyTask]]:
        return {
            "tasks": self.tasks,
            "errors": self.errors or [],
            "finally": self.finally_ or [],
            "afterExecution": self.after_execution or [],
        }

    def nodes(self) -> dict[str, TaskNode]:
        """Every task of the flow by id (ids are unique across the whole flow)."""
        if self._nodes is None:
            nodes: dict[str, TaskNode] = {}

            def walk(parent: str | None, branches: dict[str, Any]) -> None:
                for branch, tasks in branches.items():
                    for task in tasks:
                        nodes.setdefault(task.id, TaskNode(task, parent, branch))
                        walk(task.id, dict(task.branches()))

            walk(None, self.branches())
            self._nodes = nodes
        return self._nodes

    def task(self, task_id: str) -> AnyTask:
        return self.nodes()[task_id].task

    def all_task_ids(self) -> list[str]:
        """All task ids in document order, duplicates included (for validation)."""
        out: list[str] = []

        def walk(branches: dict[str, Any]) -> None:
            for tasks in branches.values():
                for task in tasks:
                    out.append(task.id)
                    walk(dict(task.branches()))

        walk(self.branches())
        return out

    @property
    def uid(self) -> str:
        return f"{self.namespace}.{self.id}"


class FlowWithSource(Model):
    """A flow plus the YAML it came from, kept verbatim."""

    flow: Flow
    source: str
