"""Flow SLAs (``sla:``): a maximum duration checked by a timer, and assertions checked at the end.

Pure helpers for ``decide()``: which timers to arm when an execution starts running, which
assertions an ending execution violates, and what a violation does to its state and labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tiercel.model.execution import Execution, Label, labels_from
from tiercel.model.flow import Flow, Sla
from tiercel.model.state import StateType

SLA_TIMER_PREFIX = "SLA:"


def timer_kind(sla: Sla) -> str:
    return f"{SLA_TIMER_PREFIX}{sla.id}"


def max_duration_deadlines(flow: Flow, started: datetime) -> list[tuple[str, datetime]]:
    """(timer kind, date) for every MAX_DURATION SLA, counted from the execution's start."""
    return [
        (timer_kind(sla), started + sla.duration)
        for sla in flow.sla or []
        if sla.type == "MAX_DURATION" and sla.duration is not None
    ]


def sla_for_timer(flow: Flow, kind: str) -> Sla | None:
    sla_id = kind.removeprefix(SLA_TIMER_PREFIX)
    return next((s for s in flow.sla or [] if s.id == sla_id and s.type == "MAX_DURATION"), None)


def violated_assertions(flow: Flow, variables: Mapping[str, Any]) -> list[Sla]:
    """EXECUTION_ASSERTION SLAs whose ``assert`` is falsy for the ending execution."""
    from tiercel.templating import is_truthy, render

    return [
        rule
        for rule in flow.sla or []
        if rule.type == "EXECUTION_ASSERTION"
        and rule.assert_ is not None
        and not is_truthy(render(rule.assert_, variables))
    ]


def violation_state(sla: Sla) -> StateType | None:
    """The state a violation imposes (None for behavior NONE: labels only)."""
    return {"FAIL": StateType.FAILED, "CANCEL": StateType.CANCELLED}.get(sla.behavior)


def with_sla_labels(execution: Execution, sla: Sla) -> Execution:
    added = labels_from(sla.labels)
    if not added:
        return execution
    merged = {label.key: label.value for label in execution.labels}
    merged.update({label.key: label.value for label in added})
    return execution.model_copy(update={"labels": tuple(Label(key=k, value=v) for k, v in merged.items())})
