"""WorkingDirectory: children run one after the other on one worker, in one shared directory.

The executor ships the whole block to a worker as a single job (``worker_side``); the worker
creates the children's task runs as it goes and reports them with the block's result. If the block
fails, its ``errors`` branch then runs on the executor like any flowable's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tiercel.engine.flowable import container_step
from tiercel.model.state import StateType
from tiercel.plugins.base import ChildRun, FlowableContext, FlowableTask, Task

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask


class WorkingDirectory(FlowableTask):
    type: Literal[
        "io.kestra.plugin.core.flow.WorkingDirectory", "io.kestra.core.tasks.flows.WorkingDirectory"
    ]
    tasks: list[AnyTask] = Field(min_length=1)
    errors: list[AnyTask] | None = None
    finally_: list[AnyTask] | None = Field(default=None, alias="finally")
    input_files: Any = None
    output_files: list[str] | None = None
    namespace_files: Any = None
    cache: Any = None

    worker_side: bool = Field(default=True, exclude=True, frozen=True)

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {"tasks": self.tasks, "errors": self.errors or [], "finally": self.finally_ or []}

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return container_step(ctx.children, self.tasks, self.errors, self.finally_).nexts

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        step = container_step(ctx.children, self.tasks, self.errors, self.finally_)
        return step.state
