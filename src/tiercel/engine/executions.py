"""Creating executions: labels, correlation id, trigger information (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tiercel.ids import new_id
from tiercel.model.execution import Execution, ExecutionMetadata, ExecutionTrigger, Label, labels_from
from tiercel.model.flow import Flow
from tiercel.model.state import State

CORRELATION_ID = "system.correlationId"


def new_execution(
    flow: Flow,
    now: datetime,
    *,
    inputs: Mapping[str, Any] | None = None,
    labels: Mapping[str, Any] | Iterable[Any] | None = None,
    trigger: ExecutionTrigger | None = None,
    parent_id: str | None = None,
    schedule_date: datetime | None = None,
    execution_id: str | None = None,
) -> Execution:
    execution_id = execution_id or new_id()
    merged: dict[str, str] = {}
    for label in flow.labels:
        if not label.key.startswith("system."):
            merged[label.key] = label.value
    for label in labels_from(labels):
        merged[label.key] = label.value
    merged.setdefault(CORRELATION_ID, execution_id)
    return Execution(
        id=execution_id,
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        inputs=dict(inputs or {}),
        labels=tuple(Label(key=k, value=v) for k, v in merged.items()),
        state=State.new(now),
        trigger=trigger,
        parent_id=parent_id,
        schedule_date=schedule_date,
        metadata=ExecutionMetadata(attempt_number=1, original_created_date=now),
    )


def new_attempt_execution(execution: Execution, now: datetime) -> Execution:
    """A fresh execution replaying ``execution`` from scratch (retry with CREATE_NEW_EXECUTION)."""
    metadata = execution.metadata.model_copy(
        update={
            "attempt_number": execution.metadata.attempt_number + 1,
            "original_created_date": execution.metadata.original_created_date or execution.state.start_date,
        }
    )
    return execution.model_copy(
        update={
            "id": new_id(),
            "task_run_list": (),
            "state": State.new(now),
            "outputs": None,
            "original_id": execution.original_id or execution.id,
            "metadata": metadata,
        }
    )
