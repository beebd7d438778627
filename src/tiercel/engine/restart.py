"""Restart (same execution), replay (new execution) and change-state, as pure functions (§2.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tiercel.errors import TiercelError
from tiercel.ids import new_id
from tiercel.model.execution import Execution, TaskRun
from tiercel.model.flow import Flow
from tiercel.model.state import State, StateType

_RESTARTABLE = (StateType.FAILED, StateType.PAUSED, StateType.KILLED)


def _error_branch_ids(flow: Flow) -> set[str]:
    nodes = flow.nodes()
    out = set()
    for task_id, node in nodes.items():
        branch_holder = node
        while branch_holder is not None:
            if branch_holder.branch == "errors":
                out.add(task_id)
                break
            branch_holder = nodes.get(branch_holder.parent_id) if branch_holder.parent_id else None
    return out


def restart(execution: Execution, now: datetime, flow: Flow | None = None) -> Execution:
    """Reset failed/paused task runs (and their ancestors) and run the execution again, same id."""
    if not (execution.current.is_terminated or execution.current == StateType.PAUSED):
        raise TiercelError(
            f"Execution {execution.id} is {execution.current}: only terminated or paused executions restart"
        )
    errors_ids = _error_branch_ids(flow) if flow is not None else set()
    runs = [r for r in execution.task_run_list if r.task_id not in errors_ids]
    by_id = {r.id: r for r in runs}
    blocks = {r.id for r in runs if flow is not None and _is_block(flow, r)}
    inside = {d for block in blocks for d in _descendants(execution, block)}
    runs = [r for r in runs if r.id not in inside]
    by_id = {r.id: r for r in runs}
    failed = [r for r in runs if r.current in _RESTARTABLE]
    if not failed:
        raise TiercelError("No task found to restart")
    updated: dict[str, TaskRun] = {}
    for run in failed:
        if flow is not None and run.task_id in flow.nodes():
            task = flow.task(run.task_id)
            flowable = task.kind == "flowable" and run.id not in blocks
        else:
            flowable = any(c.parent_task_run_id == run.id for c in runs)
        target = StateType.RUNNING if flowable else StateType.RESTARTED
        updated[run.id] = run.with_state(target, now)
        parent = by_id.get(run.parent_task_run_id or "")
        while parent is not None:
            current = updated.get(parent.id, parent)
            if current.current != StateType.RUNNING:
                updated[parent.id] = current.with_state(StateType.RUNNING, now)
            parent = by_id.get(parent.parent_task_run_id or "")
    new_runs = tuple(updated.get(r.id, r) for r in runs)
    metadata = execution.metadata.model_copy(update={"attempt_number": execution.metadata.attempt_number + 1})
    restarted = execution.model_copy(
        update={"task_run_list": new_runs, "metadata": metadata, "outputs": None}
    )
    return restarted.with_state(StateType.RESTARTED, now)


def replay(flow: Flow, execution: Execution, now: datetime, task_run_id: str | None = None) -> Execution:
    """A new execution with the same inputs: from scratch, or from ``task_run_id`` onwards."""
    base = execution.model_copy(
        update={
            "id": new_id(),
            "original_id": execution.original_id or execution.id,
            "outputs": None,
            "metadata": execution.metadata.model_copy(update={"attempt_number": 1}),
            "parent_id": execution.id,
        }
    )
    if task_run_id is None:
        return base.model_copy(update={"task_run_list": (), "state": State.new(now)})
    target = execution.find_task_run(task_run_id)
    if target is None:
        raise TiercelError(f"No task found: task run {task_run_id} is not in execution {execution.id}")
    errors_ids = _error_branch_ids(flow)
    ancestors = {a.id for a in execution.ancestors(target)}
    removed = _successors(flow, execution, target)
    kept = [r for r in execution.task_run_list if r.task_id not in errors_ids and r.id not in removed]
    ids = {r.id: new_id() for r in kept}
    out: list[TaskRun] = []
    for original in kept:
        run = original.model_copy(
            update={
                "id": ids[original.id],
                "execution_id": base.id,
                "parent_task_run_id": ids.get(original.parent_task_run_id or "", original.parent_task_run_id),
            }
        )
        if run.id == ids[target.id]:
            is_flowable = flow.task(run.task_id).kind == "flowable"
            run = run.with_state(StateType.RUNNING if is_flowable else StateType.RESTARTED, now)
        elif original.id in ancestors:
            run = run.with_state(StateType.RUNNING, now)
        out.append(run)
    replayed = base.model_copy(update={"task_run_list": tuple(out)})
    return replayed.with_state(StateType.RESTARTED, now)


def change_task_run_state(
    flow: Flow, execution: Execution, task_run_id: str, state: StateType, now: datetime
) -> Execution:
    """Kestra's "mark as": force one task run's state, set its parents RUNNING, execution RESTARTED."""
    run = execution.find_task_run(task_run_id)
    if run is None:
        raise TiercelError(f"Task run {task_run_id} not found in execution {execution.id}")
    updated = run.with_state(state, now)
    if updated.attempts:
        last = updated.attempts[-1]
        attempts = (
            *updated.attempts[:-1],
            last.model_copy(update={"state": last.state.with_state(state, now)}),
        )
        updated = updated.model_copy(update={"attempts": attempts})
    changes = [updated]
    for ancestor in execution.ancestors(run):
        changes.append(ancestor.with_state(StateType.RUNNING, now))
    return execution.with_task_runs(changes).with_state(StateType.RESTARTED, now)


def _successors(flow: Flow, execution: Execution, target: TaskRun) -> set[str]:
    """Task runs that come after ``target`` in the flow's graph, and everything under them.

    Walking up from the target: inside a sequential parent (Sequential, If, Switch, a sequential
    loop, the flow itself), the runs of the later tasks of the list follow it — in a loop, those of
    every iteration, and the other iterations of the target's own task; inside a parallel parent
    (Parallel, EachParallel, a concurrent ForEach, Dag) nothing does.
    """
    out = _descendants(execution, target.id)
    node = target
    while True:
        parent = execution.find_task_run(node.parent_task_run_id)
        siblings = execution.children_of(node.parent_task_run_id)
        if parent is None:
            order = [t.id for t in flow.tasks]
            parallel = False
        else:
            parent_task = flow.task(parent.task_id)
            order = [t.id for t in parent_task.all_children()]
            parallel = _is_parallel(parent_task)
        if not parallel and node.task_id in order:
            position = order.index(node.task_id)
            for sibling in siblings:
                if sibling.id == node.id or sibling.task_id not in order:
                    continue
                if order.index(sibling.task_id) >= position:
                    out.add(sibling.id)
                    out |= _descendants(execution, sibling.id)
        if parent is None:
            return out
        node = parent


def _is_block(flow: Flow, run: TaskRun) -> bool:
    """A WorkingDirectory run: restarted whole, its children run again from scratch."""
    return run.task_id in flow.nodes() and bool(getattr(flow.task(run.task_id), "worker_side", False))


def _is_parallel(task: Any) -> bool:
    if hasattr(task, "concurrent"):
        return True
    limit = getattr(task, "concurrency_limit", None)
    return limit is not None and limit != 1


def _descendants(execution: Execution, run_id: str) -> set[str]:
    out: set[str] = set()
    stack = [run_id]
    while stack:
        for child in execution.children_of(stack.pop()):
            out.add(child.id)
            stack.append(child.id)
    return out
