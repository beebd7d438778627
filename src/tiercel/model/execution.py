"""Executions and task runs, in Kestra's JSON shape.

Records are immutable; the engine builds new ones. ``Execution`` caches lookups (task run by id,
children by parent) privately because the executor consults them on every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, PrivateAttr

from tiercel.model.base import Record
from tiercel.model.state import State, StateType


class Label(Record):
    key: str
    value: str


class TaskRunAttempt(Record):
    state: State
    log_file: str | None = None
    worker_id: str | None = None


class TaskRun(Record):
    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    parent_task_run_id: str | None = None
    value: str | None = None
    attempts: tuple[TaskRunAttempt, ...] | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    state: State
    iteration: int | None = None
    items: str | None = None
    dynamic: bool | None = None

    @property
    def current(self) -> StateType:
        return self.state.current

    def with_state(self, state: StateType, now: datetime) -> TaskRun:
        new_state = self.state.with_state(state, now)
        if new_state is self.state:
            return self
        return self.model_copy(update={"state": new_state})

    @property
    def attempt_count(self) -> int:
        return len(self.attempts or ())


class ExecutionTrigger(Record):
    id: str
    type: str
    variables: dict[str, Any] = Field(default_factory=dict)
    log_file: str | None = None


class ExecutionMetadata(Record):
    attempt_number: int = 1
    original_created_date: datetime | None = None


class Execution(Record):
    id: str
    namespace: str
    flow_id: str
    flow_revision: int = 1
    task_run_list: tuple[TaskRun, ...] = ()
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    labels: tuple[Label, ...] = ()
    variables: dict[str, Any] = Field(default_factory=dict)
    state: State
    parent_id: str | None = None
    original_id: str | None = None
    trigger: ExecutionTrigger | None = None
    metadata: ExecutionMetadata = Field(default_factory=ExecutionMetadata)
    schedule_date: datetime | None = None
    deleted: bool = False

    _by_id: dict[str, int] | None = PrivateAttr(default=None)
    _children: dict[str | None, list[TaskRun]] | None = PrivateAttr(default=None)
    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def current(self) -> StateType:
        return self.state.current

    # -- lookups (cached per immutable instance) --------------------------------------------
    def _index(self) -> dict[str, int]:
        if self._by_id is None:
            self._by_id = {tr.id: i for i, tr in enumerate(self.task_run_list)}
        return self._by_id

    def task_run(self, task_run_id: str) -> TaskRun:
        return self.task_run_list[self._index()[task_run_id]]

    def find_task_run(self, task_run_id: str | None) -> TaskRun | None:
        if task_run_id is None:
            return None
        i = self._index().get(task_run_id)
        return None if i is None else self.task_run_list[i]

    def children_of(self, parent_task_run_id: str | None) -> list[TaskRun]:
        if self._children is None:
            children: dict[str | None, list[TaskRun]] = {}
            for tr in self.task_run_list:
                children.setdefault(tr.parent_task_run_id, []).append(tr)
            self._children = children
        return self._children.get(parent_task_run_id, [])

    def task_runs_of(self, task_id: str) -> Iterator[TaskRun]:
        return (tr for tr in self.task_run_list if tr.task_id == task_id)

    def ancestors(self, task_run: TaskRun) -> list[TaskRun]:
        """Parents of a task run, nearest first."""
        out: list[TaskRun] = []
        parent = self.find_task_run(task_run.parent_task_run_id)
        while parent is not None:
            out.append(parent)
            parent = self.find_task_run(parent.parent_task_run_id)
        return out

    def cached(self, key: str, compute: Any) -> Any:
        """Memoise a derived value (e.g. the outputs map) on this immutable instance."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- copy-on-write updates ---------------------------------------------------------------
    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Execution:
        """Copies never inherit the lookup caches: they describe the old instance."""
        new = super().model_copy(update=update, deep=deep)
        new._by_id = None
        new._children = None
        new._cache = {}
        return new

    def with_task_runs(self, task_runs: Iterable[TaskRun]) -> Execution:
        """Replace task runs with the same id, append new ones (order kept)."""
        runs = list(self.task_run_list)
        index = dict(self._index())
        for tr in task_runs:
            i = index.get(tr.id)
            if i is None:
                index[tr.id] = len(runs)
                runs.append(tr)
            else:
                runs[i] = tr
        new = self.model_copy(update={"task_run_list": tuple(runs)})
        new._by_id = index
        return new

    def with_state(self, state: StateType, now: datetime) -> Execution:
        new_state = self.state.with_state(state, now)
        if new_state is self.state:
            return self
        return self.model_copy(update={"state": new_state})

    def labels_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for label in self.labels:
            out.setdefault(label.key, label.value)
        return out


def labels_from(value: Mapping[str, Any] | Iterable[Any] | None) -> tuple[Label, ...]:
    """Accept Kestra's two label forms: a map or a list of ``{key, value}``."""
    if not value:
        return ()
    if isinstance(value, Mapping):
        return tuple(Label(key=str(k), value=_label_str(v)) for k, v in value.items())
    out = []
    for item in value:
        if isinstance(item, Label):
            out.append(item)
        else:
            out.append(Label(key=str(item["key"]), value=_label_str(item["value"])))
    return tuple(out)


def _label_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
