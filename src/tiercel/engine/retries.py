"""Retry rules: which policy applies to a failed task run, and when it may run again (§1.3).

The policy is the task's own ``retry``, else the nearest ancestor flowable's, else the flow's.
Delays count from the end of the last attempt; ``maxAttempt`` counts the first attempt;
``maxDuration`` is measured from the first attempt (or, for CREATE_NEW_EXECUTION, from the first
execution of the chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tiercel.engine.attempts import attempt_end
from tiercel.model.execution import Execution, TaskRun
from tiercel.model.flow import Flow
from tiercel.model.state import StateType
from tiercel.model.task import RetryBehavior
from tiercel.plugins.base import Task


@dataclass(frozen=True)
class RetryPlan:
    date: datetime
    new_execution: bool


def policy_for(flow: Flow, execution: Execution, run: TaskRun, task: Task) -> Any:
    if task.retry is not None:
        return task.retry
    for ancestor in execution.ancestors(run):
        parent_task = flow.task(ancestor.task_id)
        if parent_task.retry is not None:
            return parent_task.retry
    return flow.retry


def plan(flow: Flow, execution: Execution, run: TaskRun, task: Task, now: datetime) -> RetryPlan | None:
    """When the failed ``run`` is retried, or None when no policy applies or it is exhausted."""
    if execution.current in (StateType.KILLING, StateType.KILLED):
        return None
    policy = policy_for(flow, execution, run, task)
    if policy is None:
        return None
    ended = attempt_end(run, now)
    if policy.behavior == RetryBehavior.CREATE_NEW_EXECUTION:
        first = execution.metadata.original_created_date or execution.state.start_date or now
        at = policy.next_date(first, ended, execution.metadata.attempt_number)
        return None if at is None else RetryPlan(at, new_execution=True)
    attempts = run.attempts or ()
    if not attempts:
        return None
    first_start = attempts[0].state.start_date or now
    at = policy.next_date(first_start, ended, len(attempts))
    return None if at is None else RetryPlan(at, new_execution=False)
