"""The variables a template sees for one task run (Kestra's ``RunVariables``).

Derived maps that cost O(task runs) to build — ``outputs`` and ``tasks`` — are computed once per
immutable execution snapshot and shared by every render of that snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tiercel.model.execution import Execution, TaskRun

if TYPE_CHECKING:
    from tiercel.model.flow import Flow
    from tiercel.plugins.base import Task


class LazyMap(Mapping[str, Any]):
    """A read-only map built on first use: most templates never look at ``outputs``."""

    __slots__ = ("_build", "_data")

    def __init__(self, build: Callable[[], Mapping[str, Any]]) -> None:
        self._build = build
        self._data: Mapping[str, Any] | None = None

    def _get(self) -> Mapping[str, Any]:
        if self._data is None:
            self._data = self._build()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, key: object) -> bool:
        return key in self._get()

    def __repr__(self) -> str:
        return f"LazyMap({dict(self._get())!r})"


def materialize(value: Any) -> Any:
    """Plain dicts and lists all the way down (for serialising variables)."""
    if isinstance(value, Mapping):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v) for v in value]
    return value


def outputs_map(execution: Execution) -> dict[str, Any]:
    """``outputs.<taskId>``, nested by the loop values of the run's ancestors then its own (§2.5)."""
    return execution.cached("outputs", lambda: _build_outputs(execution))


def _value_path(execution: Execution, run: TaskRun) -> list[str]:
    path = [a.value for a in reversed(execution.ancestors(run)) if a.value is not None]
    if run.value is not None:
        path.append(run.value)
    return path


def _build_outputs(execution: Execution) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for run in execution.task_run_list:
        if not run.outputs:
            continue
        path = _value_path(execution, run) if (run.value is not None or run.parent_task_run_id) else []
        if not path:
            out[run.task_id] = run.outputs
            continue
        node = out.setdefault(run.task_id, {})
        if not isinstance(node, dict):
            node = out[run.task_id] = {}
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = run.outputs
    return out


def _opened(encryption_key: str | None, outputs: dict[str, Any]) -> dict[str, Any]:
    """Encrypted outputs are decrypted for templates (Kestra's ``RunVariables`` does the same)."""
    if encryption_key is None:
        return outputs
    from tiercel.crypto import open_sealed

    return open_sealed(encryption_key, outputs)  # type: ignore[no-any-return]


def tasks_map(execution: Execution) -> dict[str, Any]:
    """``tasks.<id>.state`` or ``tasks.<id>.<value>.state``."""

    def build() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for run in execution.task_run_list:
            entry = {"state": run.current.value}
            if run.value is None:
                out[run.task_id] = entry
            else:
                out.setdefault(run.task_id, {})[run.value] = entry
        return out

    return execution.cached("tasks", build)


def labels_variable(execution: Execution) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in execution.labels:
        if label.key.startswith("system."):
            out.setdefault("system", {}).setdefault(label.key[len("system.") :], label.value)
        else:
            out.setdefault(label.key, label.value)
    return out


def inputs_variable(
    flow: Flow | None, execution: Execution, encryption_key: str | None = None
) -> dict[str, Any]:
    """Execution inputs (SECRET ones decrypted) plus the defaults of inputs not supplied."""

    def build() -> dict[str, Any]:
        from tiercel.crypto import open_sealed

        inputs = {k: open_sealed(encryption_key, v) for k, v in execution.inputs.items()}
        if flow is not None and flow.inputs:
            for declared in flow.inputs:
                if declared.id not in inputs and declared.defaults is not None:
                    inputs[declared.id] = declared.defaults
        if any("." in k for k in inputs):
            from tiercel.flows.inputs import nest_dotted

            return nest_dotted(inputs)
        return inputs

    return execution.cached("inputs", build)


def execution_variables(
    flow: Flow | None,
    execution: Execution,
    *,
    globals_: Mapping[str, Any] | None = None,
    envs: Mapping[str, Any] | None = None,
    encryption_key: str | None = None,
) -> dict[str, Any]:
    """Variables that do not depend on a task run."""
    variables: dict[str, Any] = {
        "flow": {
            "id": execution.flow_id,
            "namespace": execution.namespace,
            "revision": execution.flow_revision,
            "tenantId": None,
        },
        "execution": {
            "id": execution.id,
            "startDate": execution.state.start_date,
            "originalId": execution.original_id or execution.id,
            "state": execution.current.value,
        },
        "outputs": LazyMap(lambda: _opened(encryption_key, outputs_map(execution))),
        "tasks": LazyMap(lambda: tasks_map(execution)),
        "labels": labels_variable(execution),
        "envs": dict(envs or {}),
        "globals": dict(globals_ or {}),
    }
    if execution.inputs or (flow is not None and flow.inputs):
        variables["inputs"] = inputs_variable(flow, execution, encryption_key)
    flow_vars = dict((flow.variables or {}) if flow is not None else {})
    flow_vars.update(execution.variables)
    variables["vars"] = flow_vars
    if execution.trigger is not None:
        variables["trigger"] = execution.trigger.variables
    if execution.parent_id is not None or (execution.trigger and execution.trigger.type.endswith("Subflow")):
        pass
    return variables


def task_run_variables(
    base: Mapping[str, Any], execution: Execution, task: Task, run: TaskRun
) -> dict[str, Any]:
    """Add ``task``, ``taskrun``, ``parent`` and ``parents`` for one task run."""
    variables = dict(base)
    variables["task"] = {"id": task.id, "type": task.type}
    variables["taskrun"] = {
        "id": run.id,
        "startDate": run.state.start_date,
        "attemptsCount": sum(1 for a in run.attempts or () if a.state.current.is_terminated),
        "parentId": run.parent_task_run_id,
        "value": run.value,
        "iteration": run.iteration,
    }
    if run.items is not None:
        variables["taskrun"]["items"] = run.items
    if run.parent_task_run_id is not None:
        parents = []
        for ancestor in execution.ancestors(run):
            if ancestor.value is None and not ancestor.outputs:
                continue
            entry: dict[str, Any] = {"taskrun": {"value": ancestor.value}}
            if ancestor.outputs:
                entry["outputs"] = ancestor.outputs
            parents.append(entry)
        if parents:
            variables["parent"] = parents[0]
            variables["parents"] = parents
    return variables
