"""Shared resolution logic for flowable tasks, and the context they see inside ``decide()``.

A flowable's children are grouped in *lists* (``tasks``, ``errors``, ``finally``). A list runs
sequentially or with a concurrency cap; once a normal child FAILED the flowable stops starting normal
children and runs its ``errors`` list; ``finally`` runs last either way. The flowable's own state is
computed from the normal and ``finally`` children only: an ``errors`` branch never rescues a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tiercel.model.execution import Execution, TaskRun
from tiercel.model.state import TERMINATED, StateType
from tiercel.plugins.base import ChildRun, Task

if TYPE_CHECKING:
    pass

_ACTIVE_DONE = frozenset({StateType.SUCCESS, StateType.WARNING, StateType.SKIPPED, StateType.CANCELLED})


def guess_final_state(runs: Sequence[TaskRun]) -> StateType:
    """Worst state wins: KILLED, then FAILED, WARNING, PAUSED, else SUCCESS."""
    states = {r.current for r in runs}
    for state in (StateType.KILLED, StateType.FAILED, StateType.WARNING, StateType.PAUSED):
        if state in states:
            return state
    if StateType.RETRIED in states:
        return StateType.FAILED
    return StateType.SUCCESS


def runs_by_task(
    children: Sequence[TaskRun], tasks: Sequence[Task], value: str | None = None, match_value: bool = False
) -> dict[str, TaskRun]:
    ids = {t.id for t in tasks}
    out: dict[str, TaskRun] = {}
    for run in children:
        if run.task_id in ids and (not match_value or run.value == value):
            out[run.task_id] = run
    return out


def enabled(tasks: Sequence[Task] | None) -> list[Task]:
    return [t for t in (tasks or ()) if not t.disabled]


def run_list(
    runs: Mapping[str, TaskRun],
    tasks: Sequence[Task],
    *,
    value: str | None = None,
    concurrent: int | None = None,
) -> tuple[list[ChildRun], bool]:
    """Next runs of one task list, and whether the list is done.

    ``concurrent=None`` is sequential; ``0`` is unlimited; ``n`` caps non-terminated runs. A list
    stops starting new runs once one FAILED; it is done when nothing started is still going.
    """
    if concurrent is None:
        for task in tasks:
            run = runs.get(task.id)
            if run is None:
                return [ChildRun(task, value)], False
            if not run.current.is_terminated:
                return [], False
            if run.current in (StateType.FAILED, StateType.KILLED):
                return [], True
        return [], True
    active = sum(1 for r in runs.values() if not r.current.is_terminated)
    failed = any(r.current in (StateType.FAILED, StateType.KILLED) for r in runs.values())
    nexts: list[ChildRun] = []
    if not failed:
        for task in tasks:
            if task.id in runs:
                continue
            if concurrent and active + len(nexts) >= concurrent:
                break
            nexts.append(ChildRun(task, value))
    started_all = failed or all(t.id in runs for t in tasks)
    return nexts, (not nexts and active == 0 and started_all)


@dataclass
class Step:
    nexts: list[ChildRun] = field(default_factory=list)
    state: StateType | None = None


def container_step(
    children: Sequence[TaskRun],
    tasks: Sequence[Task],
    errors: Sequence[Task] | None = None,
    finally_: Sequence[Task] | None = None,
    *,
    value: str | None = None,
    match_value: bool = False,
    concurrent: int | None = None,
) -> Step:
    """Resolve one task list with its ``errors`` and ``finally`` branches."""
    tasks, errors, finally_ = enabled(tasks), enabled(errors), enabled(finally_)
    normal = runs_by_task(children, tasks, value, match_value)
    err_runs = runs_by_task(children, errors, value, match_value) if errors else {}
    failed = any(r.current in (StateType.FAILED, StateType.KILLED) for r in normal.values())
    if failed or err_runs:
        still_running = any(not r.current.is_terminated for r in normal.values())
        if errors:
            nexts, done = run_list(err_runs, errors, value=value)
            if nexts:
                return Step(nexts)
            main_done = done and not still_running
        else:
            main_done = not still_running
    else:
        nexts, main_done = run_list(normal, tasks, value=value, concurrent=concurrent)
        if nexts:
            return Step(nexts)
    if not main_done:
        return Step()
    fin_runs = runs_by_task(children, finally_, value, match_value) if finally_ else {}
    if finally_:
        nexts, fin_done = _run_all(fin_runs, finally_, value)
        if nexts or not fin_done:
            return Step(nexts)
    return Step(state=guess_final_state([*normal.values(), *fin_runs.values()]))


def _run_all(
    runs: Mapping[str, TaskRun], tasks: Sequence[Task], value: str | None
) -> tuple[list[ChildRun], bool]:
    """Run ``tasks`` one after the other: (the next child to create, whether all have ended).

    A failed child does not stop the others, so this serves ``finally`` blocks (they all run) and
    each value group of a sequential ForEach (the caller stops creating groups after a failure).
    """
    for task in tasks:
        run = runs.get(task.id)
        if run is None:
            return [ChildRun(task, value)], False
        if not run.current.is_terminated:
            return [], False
    return [], True


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{" in value
    if isinstance(value, Mapping):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


class FlowableCtx:
    """The ``FlowableContext`` handed to flowable tasks by ``decide()``."""

    def __init__(
        self,
        execution: Execution,
        task_run: TaskRun,
        now: datetime,
        variables: Callable[[TaskRun], Mapping[str, Any]],
    ) -> None:
        self._execution = execution
        self._task_run = task_run
        self._now = now
        self._variables = variables
        self.new_outputs: dict[str, Any] | None = None
        self.memo: dict[str, Any] = {}
        self.child_task_outputs: dict[str, Any] | None = None

    @property
    def now(self) -> datetime:
        return self._now

    @property
    def execution(self) -> Execution:
        return self._execution

    @property
    def task_run(self) -> TaskRun:
        return self._task_run

    @property
    def children(self) -> list[TaskRun]:
        return self._execution.children_of(self._task_run.id)

    @property
    def outputs(self) -> Mapping[str, Any]:
        if self.new_outputs is not None:
            return self.new_outputs
        return self._task_run.outputs

    def variables(self) -> Mapping[str, Any]:
        return self._variables(self._task_run)

    def render(self, value: Any) -> Any:
        if not _has_template(value):
            return value
        from tiercel.templating import render_value

        return render_value(value, self.variables())

    def render_typed(self, template: Any) -> Any:
        if not isinstance(template, str):
            return self.render(template)
        if "{" not in template:
            return template
        from tiercel.templating import render_typed

        return render_typed(template, self.variables())

    def set_outputs(self, outputs: Mapping[str, Any]) -> None:
        merged = dict(self.outputs)
        merged.update(outputs)
        self.new_outputs = merged


def group_step(
    children: Sequence[TaskRun],
    groups: Sequence[str | None],
    tasks: Sequence[Task],
    errors: Sequence[Task] | None = None,
    finally_: Sequence[Task] | None = None,
    *,
    group_limit: int = 1,
    in_group_concurrent: int | None = None,
) -> Step:
    """Loops: run ``tasks`` once per group value, at most ``group_limit`` groups at once (0 = all).

    Within a group the tasks run sequentially (``in_group_concurrent=None``) or in parallel.
    After a failure no new group starts; the ``errors`` branch runs once, then ``finally``.
    """
    tasks, errors, finally_ = enabled(tasks), enabled(errors), enabled(finally_)
    task_ids = {t.id for t in tasks}
    by_value: dict[str | None, list[TaskRun]] = {}
    by_value_task: dict[str | None, dict[str, TaskRun]] = {}
    normal: list[TaskRun] = []
    failed = running = False
    for run in children:
        if run.task_id in task_ids:
            by_value.setdefault(run.value, []).append(run)
            by_value_task.setdefault(run.value, {})[run.task_id] = run
            normal.append(run)
            current = run.state.current
            if current is StateType.FAILED or current is StateType.KILLED:
                failed = True
            elif current not in TERMINATED:
                running = True
    err_runs = runs_by_task(children, errors) if errors else {}
    if failed or err_runs:
        if errors:
            nexts, done = run_list(err_runs, errors)
            if nexts:
                return Step(nexts)
            main_done = done and not running
        else:
            main_done = not running
    else:
        nexts: list[ChildRun] = []
        active = 0
        all_done = True
        for value in groups:
            runs = by_value.get(value)
            if runs is None:
                all_done = False
                continue
            if in_group_concurrent is None:
                group_nexts, group_done = _run_all(by_value_task[value], tasks, value)
            else:
                step = container_step(
                    runs, tasks, value=value, match_value=True, concurrent=in_group_concurrent
                )
                group_nexts, group_done = step.nexts, step.state is not None
            if not group_done:
                all_done = False
                active += 1
                nexts.extend(group_nexts)
        for value in groups:
            if value in by_value:
                continue
            if group_limit and active >= group_limit:
                break
            step = container_step([], tasks, value=value, match_value=True, concurrent=in_group_concurrent)
            nexts.extend(step.nexts)
            active += 1
        if nexts:
            return Step(nexts)
        main_done = all_done
    if not main_done:
        return Step()
    fin_runs = runs_by_task(children, finally_) if finally_ else {}
    if finally_:
        nexts2, fin_done = _run_all(fin_runs, finally_, None)
        if nexts2 or not fin_done:
            return Step(nexts2)
    return Step(state=guess_final_state([*normal, *fin_runs.values()]))
