"""Records to rows and back. Documents travel as JSON text: pydantic writes and parses it in Rust,
and PostgreSQL is handed ``CAST(:value AS jsonb)`` rather than a Python dict."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from tiercel.model.execution import Execution, Label, labels_from
from tiercel.model.logs import LogEntry, MetricEntry
from tiercel.model.messages import ExecutionDelay
from tiercel.model.state import StateType
from tiercel.model.task import LogLevel
from tiercel.plugins.base import WindowState
from tiercel.repository.base import ServiceInstance, TriggerState
from tiercel.repository.sql.tables import to_utc


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def labels_document(labels: Iterable[Label]) -> str:
    """``{key: value}``; the first value of a repeated key wins (as ``Execution.labels_map``)."""
    out: dict[str, str] = {}
    for label in labels:
        out.setdefault(label.key, label.value)
    return dumps(out)


def levels_from(min_level: LogLevel | None) -> list[str] | None:
    """The level names at or above ``min_level`` (``None``: no filter)."""
    if min_level is None:
        return None
    return [level.value for level in LogLevel if level.rank >= min_level.rank]


# -- flows ------------------------------------------------------------------------------------


def flow_document(flow_obj: Any) -> tuple[str | None, str | None]:
    """``(flow_type, flow)`` columns: a pydantic model is kept with its class so it can be rebuilt;
    anything else JSON can hold is kept as is, with no type."""
    if flow_obj is None:
        return None, None
    if isinstance(flow_obj, BaseModel):
        cls = type(flow_obj)
        return f"{cls.__module__}:{cls.__qualname__}", flow_obj.model_dump_json(by_alias=True)
    return None, dumps(flow_obj)


def stamp_flow(flow_obj: Any, revision: int, deleted: bool) -> Any:
    """A pydantic flow with ``revision``/``deleted`` fields gets them set (as the memory backend)."""
    if isinstance(flow_obj, BaseModel):
        fields = type(flow_obj).model_fields
        update = {k: v for k, v in (("revision", revision), ("deleted", deleted)) if k in fields}
        if update:
            return flow_obj.model_copy(update=update)
    return flow_obj


def flow_labels(flow_obj: Any) -> tuple[Label, ...]:
    labels = getattr(flow_obj, "labels", None)
    return labels_from(labels) if labels else ()


def load_flow(flow_type: str | None, document: str | None) -> Any:
    if document is None:
        return None
    data = json.loads(document)
    if flow_type is None:
        return data
    # Python-mode validation of the parsed JSON: the same input a YAML flow is validated from, so
    # the model comes back equal (JSON-mode validation would coerce e.g. "PT1S" strings to durations).
    return _model_class(flow_type).model_validate(data)


def _model_class(flow_type: str) -> type[BaseModel]:
    module_name, _, qualname = flow_type.partition(":")
    target: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise TypeError(f"stored flow type {flow_type} is not a pydantic model")
    if not target.__pydantic_complete__:
        # Flow's task lists are the unions the plugin registry builds; a process that never
        # parsed a flow (a webserver reading stored ones) has not built them yet.
        from tiercel.plugins.registry import default_registry

        default_registry().build()
    return target


# -- executions -------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


def _entered(execution: Execution, state: StateType) -> datetime | None:
    for history in reversed(execution.state.histories):
        if history.state == state:
            return to_utc(history.date)
    return None


def execution_row(execution: Execution) -> dict[str, Any]:
    trigger = execution.trigger
    parent_execution = trigger.variables.get("executionId") if trigger is not None else None
    return {
        "id": execution.id,
        "namespace": execution.namespace,
        "flow_id": execution.flow_id,
        "state": execution.state.current.value,
        "start_date": _utc(execution.state.start_date),
        "end_date": _utc(execution.state.end_date),
        "queued_date": _entered(execution, StateType.QUEUED),
        "parent_id": execution.parent_id,
        "trigger_id": trigger.id if trigger is not None else None,
        "trigger_execution_id": parent_execution if isinstance(parent_execution, str) else None,
        "labels": labels_document(execution.labels),
        "value": execution.to_json(),
    }


def load_execution(document: str) -> Execution:
    return Execution.model_validate_json(document)


# -- logs and metrics -------------------------------------------------------------------------

LOG_COLUMNS = (
    "namespace",
    "flow_id",
    "task_id",
    "execution_id",
    "task_run_id",
    "attempt_number",
    "trigger_id",
    "timestamp",
    "level",
    "thread",
    "message",
)


def log_row(entry: LogEntry) -> dict[str, Any]:
    row = {name: getattr(entry, name) for name in LOG_COLUMNS}
    row["level"] = entry.level.value
    row["timestamp"] = to_utc(entry.timestamp)
    return row


def load_log(row: Mapping[str, Any]) -> LogEntry:
    return LogEntry.model_validate({name: row[name] for name in LOG_COLUMNS})


METRIC_COLUMNS = (
    "namespace",
    "flow_id",
    "task_id",
    "execution_id",
    "task_run_id",
    "type",
    "name",
    "value",
    "timestamp",
    "tags",
)


def metric_row(entry: MetricEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in METRIC_COLUMNS}


def load_metric(row: Mapping[str, Any]) -> MetricEntry:
    return MetricEntry.model_validate({name: row[name] for name in METRIC_COLUMNS})


# -- triggers, timers, services, condition windows --------------------------------------------


def trigger_row(state: TriggerState) -> dict[str, Any]:
    return {
        "namespace": state.namespace,
        "flow_id": state.flow_id,
        "trigger_id": state.trigger_id,
        "next_execution_date": state.next_execution_date,
        "execution_id": state.execution_id,
        "worker_id": state.worker_id,
        "disabled": state.disabled,
        "value": state.to_json(),
    }


def load_trigger(document: str) -> TriggerState:
    return TriggerState.model_validate_json(document)


def delay_row(delay: ExecutionDelay) -> dict[str, Any]:
    return {
        "execution_id": delay.execution_id,
        "kind": delay.kind,
        "task_run_id": delay.task_run_id or "",
        "date": delay.date,
    }


def load_delay(row: Mapping[str, Any]) -> ExecutionDelay:
    return ExecutionDelay(
        execution_id=row["execution_id"],
        kind=row["kind"],
        task_run_id=row["task_run_id"] or None,
        date=row["date"],
    )


SERVICE_COLUMNS = ("id", "role", "host", "pid", "state", "started", "last_heartbeat", "info")


def service_row(instance: ServiceInstance) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in SERVICE_COLUMNS} | {"state": instance.state.value}


def load_service(row: Mapping[str, Any]) -> ServiceInstance:
    return ServiceInstance.model_validate({name: row[name] for name in SERVICE_COLUMNS})


WINDOW_COLUMNS = ("key", "start_date", "end_date", "results")


def window_row(key: str, state: WindowState) -> dict[str, Any]:
    """``results`` keeps each instant as ISO 8601 text in UTC (JSON has no instants)."""
    return {
        "key": key,
        "start_date": to_utc(state.start),
        "end_date": to_utc(state.end),
        "results": {name: to_utc(at).isoformat() for name, at in state.results.items()},
    }


def load_window(row: Mapping[str, Any]) -> WindowState:
    results = {name: datetime.fromisoformat(at) for name, at in row["results"].items()}
    return WindowState(row["start_date"], row["end_date"], results)
