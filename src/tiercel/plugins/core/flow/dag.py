"""Dag: run each task as soon as everything it depends on has finished."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from tiercel.engine.flowable import _run_all, enabled, guess_final_state, run_list, runs_by_task
from tiercel.model.base import Model
from tiercel.model.state import StateType
from tiercel.plugins.base import ChildRun, FlowableContext, FlowableTask, Task

if TYPE_CHECKING:
    from tiercel.plugins.base import Task as AnyTask


class DagTask(Model):
    task: AnyTask
    depends_on: list[str] | None = None


class Dag(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag"]
    tasks: list[DagTask] = Field(min_length=1)
    concurrent: int = Field(default=0, ge=0)
    errors: list[AnyTask] | None = None
    finally_: list[AnyTask] | None = Field(default=None, alias="finally")

    @model_validator(mode="after")
    def _check_graph(self) -> Dag:
        ids = [t.task.id for t in self.tasks]
        known = set(ids)
        deps = {t.task.id: list(t.depends_on or []) for t in self.tasks}
        for task_id, needs in deps.items():
            missing = [d for d in needs if d not in known]
            if missing:
                raise ValueError(f"Dag task '{task_id}' depends on unknown task(s): {', '.join(missing)}")
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = " -> ".join([*path[path.index(node) :], node])
                raise ValueError(f"Dag has a cyclic dependency: {cycle}")
            state[node] = 1
            for dep in deps[node]:
                visit(dep, [*path, node])
            state[node] = 2

        for node in ids:
            visit(node, [])
        return self

    def branches(self) -> Mapping[str, Sequence[Task]]:
        return {
            "tasks": [t.task for t in self.tasks],
            "errors": self.errors or [],
            "finally": self.finally_ or [],
        }

    def _step(self, ctx: FlowableContext) -> tuple[list[ChildRun], StateType | None]:
        tasks = [t for t in self.tasks if not t.task.disabled]
        plain = [t.task for t in tasks]
        children = ctx.children
        runs = runs_by_task(children, plain)
        errors, finally_ = enabled(self.errors), enabled(self.finally_)
        err_runs = runs_by_task(children, errors) if errors else {}
        failed = any(r.current in (StateType.FAILED, StateType.KILLED) for r in runs.values())
        running = any(not r.current.is_terminated for r in runs.values())
        if failed or err_runs:
            if errors:
                nexts, done = run_list(err_runs, errors)
                if nexts:
                    return nexts, None
                if not done or running:
                    return [], None
            elif running:
                return [], None
        else:
            active = sum(1 for r in runs.values() if not r.current.is_terminated)
            nexts = []
            for dag_task in tasks:
                if dag_task.task.id in runs:
                    continue
                if self.concurrent and active + len(nexts) >= self.concurrent:
                    break
                needs = [d for d in dag_task.depends_on or [] if d in {t.id for t in plain}]
                if all(d in runs and runs[d].current.is_terminated for d in needs):
                    nexts.append(ChildRun(dag_task.task))
            if nexts:
                return nexts, None
            if running or len(runs) < len(tasks):
                return [], None
        fin_runs = runs_by_task(children, finally_) if finally_ else {}
        if finally_:
            nexts, fin_done = _run_all(fin_runs, finally_, None)
            if nexts or not fin_done:
                return nexts, None
        return [], guess_final_state([*runs.values(), *fin_runs.values()])

    def resolve_next(self, ctx: FlowableContext) -> list[ChildRun]:
        return self._step(ctx)[0]

    def resolve_state(self, ctx: FlowableContext) -> StateType | None:
        return self._step(ctx)[1]
