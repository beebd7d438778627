"""Flow triggers: which flows an execution's state change starts (Kestra's ``FlowTriggerService``).

``evaluate`` is pure apart from the condition store that windowed conditions (``MultipleCondition``,
``preconditions``) write to. The caller creates the executions it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiercel.engine.variables import execution_variables, labels_variable
from tiercel.model.execution import Execution, Label, labels_from
from tiercel.model.flow import Flow
from tiercel.plugins.base import ConditionContext, MultipleConditionStore
from tiercel.plugins.core.conditions import MultipleCondition
from tiercel.plugins.core.triggers import FlowTrigger

log = logging.getLogger(__name__)

FLOW_TRIGGER_TYPE = "io.kestra.plugin.core.trigger.Flow"


@dataclass(frozen=True)
class TriggeredExecution:
    """An execution a Flow trigger asks for: ``inputs`` are rendered but not yet validated."""

    flow: Flow
    trigger_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: tuple[Label, ...] = ()
    trigger_variables: dict[str, Any] = field(default_factory=dict)


def trigger_variables(upstream: Execution) -> dict[str, Any]:
    """``trigger.*`` in the started execution: who triggered it, in which state, with which outputs."""
    return {
        "executionId": upstream.id,
        "namespace": upstream.namespace,
        "flowId": upstream.flow_id,
        "flowRevision": upstream.flow_revision,
        "state": upstream.current.value,
        "outputs": dict(upstream.outputs or {}),
        "labels": labels_variable(upstream),
    }


def flow_triggers(flow: Flow) -> list[FlowTrigger]:
    """The enabled Flow triggers of an enabled flow."""
    if flow.disabled or flow.deleted:
        return []
    return [t for t in flow.triggers or [] if isinstance(t, FlowTrigger) and not t.disabled]


def trigger_scope(flow: Flow, trigger: FlowTrigger) -> str:
    """Where the trigger's windowed conditions keep their state (``ConditionContext.scope``)."""
    return f"{flow.uid}/{trigger.id}"


def listening(upstream: Execution, candidates: Iterable[Flow]) -> list[tuple[Flow, FlowTrigger]]:
    """The enabled Flow triggers among ``candidates`` that listen to ``upstream``'s current state.

    A flow never listens to its own executions (that would loop).
    """
    own = f"{upstream.namespace}.{upstream.flow_id}"
    return [
        (flow, trigger)
        for flow in candidates
        if flow.uid != own
        for trigger in flow_triggers(flow)
        if upstream.current in trigger.listened_states
    ]


def evaluate(
    upstream: Execution,
    upstream_flow: Flow | None,
    candidates: Iterable[Flow],
    now: datetime,
    store: MultipleConditionStore | None = None,
    *,
    globals_: Mapping[str, Any] | None = None,
    envs: Mapping[str, Any] | None = None,
    stopped: Collection[tuple[str, str]] = (),
) -> list[TriggeredExecution]:
    """The executions that ``upstream``, in its current state, starts among ``candidates``.

    ``stopped`` holds the ``(flow uid, trigger id)`` pairs disabled by ``stopAfter``. A trigger whose
    conditions or inputs fail to evaluate is logged and skipped; the others still fire.
    """
    active = [(f, t) for f, t in listening(upstream, candidates) if (f.uid, t.id) not in stopped]
    if not active:
        return []
    trigger_vars = trigger_variables(upstream)
    variables = {
        **execution_variables(upstream_flow, upstream, globals_=globals_, envs=envs),
        "trigger": trigger_vars,
    }
    out: list[TriggeredExecution] = []
    for flow, trigger in active:
        ctx = ConditionContext(
            execution=upstream,
            now=now,
            flow=flow,
            execution_flow=upstream_flow,
            variables=variables,
            store=store,
            scope=trigger_scope(flow, trigger),
        )
        try:
            if not _conditions_hold(trigger, ctx):
                continue
            inputs = _render(trigger.inputs or {}, variables)
            labels = labels_from(_render(trigger.labels, variables))
        except Exception as exc:
            log.warning(
                "Flow trigger %s of %s not evaluated for execution %s: %s",
                trigger.id,
                flow.uid,
                upstream.id,
                exc,
                extra={"execution_id": upstream.id, "action": "flow_trigger"},
            )
            continue
        out.append(TriggeredExecution(flow, trigger.id, inputs, labels, dict(trigger_vars)))
    return out


def _conditions_hold(trigger: FlowTrigger, ctx: ConditionContext) -> bool:
    """Plain conditions first; windowed ones record this execution only when the plain ones hold."""
    conditions = trigger.parsed_conditions()
    plain = [c for c in conditions if not isinstance(c, MultipleCondition)]
    if not all(c.test(ctx) for c in plain):
        return False
    windowed = [c.test(ctx) for c in conditions if isinstance(c, MultipleCondition)]
    if not all(windowed):
        return False
    return trigger.preconditions is None or trigger.preconditions.test(ctx)


def _render(value: Any, variables: Mapping[str, Any]) -> Any:
    from tiercel.templating import render_value

    return render_value(value, variables)
