"""Predicates and updates on task runs and their attempts, shared by ``decide()`` and the
retry rules: what was dispatched, what a worker finished, which results are stale."""

from __future__ import annotations

from datetime import datetime

from tiercel.model.execution import TaskRun
from tiercel.model.state import StateType
from tiercel.plugins.base import Task


def attempt_end(run: TaskRun, now: datetime) -> datetime:
    """When the last attempt ended (retry delays count from there, not from processing time)."""
    if run.attempts:
        end = run.attempts[-1].state.end_date
        if end is not None:
            return end
    return now


def close_attempt(run: TaskRun, state: StateType, now: datetime) -> TaskRun:
    """Executor-side runs (subflows) keep an attempt like worker runs; end it with the run."""
    attempts = run.attempts
    if not attempts or attempts[-1].state.current.is_terminated:
        return run
    last = attempts[-1]
    closed = last.model_copy(update={"state": last.state.with_state(state, now)})
    return run.model_copy(update={"attempts": (*attempts[:-1], closed)})


def worker_side(task: Task) -> bool:
    """Flowables shipped whole to one worker (WorkingDirectory)."""
    return bool(getattr(task, "worker_side", False))


def worker_done(run: TaskRun) -> bool:
    attempts = run.attempts
    return bool(attempts) and attempts[-1].state.current.is_terminated  # type: ignore[index]


def dispatched(run: TaskRun) -> bool:
    """A runnable run already sent to a worker has a last attempt still CREATED."""
    attempts = run.attempts
    return bool(attempts) and attempts[-1].state.current == StateType.CREATED  # type: ignore[index]


def joinable(stored: TaskRun, incoming: TaskRun) -> bool:
    """Drop duplicate and late worker results (Kestra's ``hasTaskRunJoinable``)."""
    if stored.current.is_terminated:
        return False
    if stored.attempt_count != incoming.attempt_count:
        return False
    if incoming.current == stored.current and len(incoming.state.histories) == len(stored.state.histories):
        return False
    return not len(incoming.state.histories) < len(stored.state.histories)
