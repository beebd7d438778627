"""Flow trigger state kept in the repositories, so that it survives restarts and every executor
shares it: the windows of ``MultipleCondition`` and ``preconditions`` (``Repositories.windows``) and
the triggers that ``stopAfter`` disabled (``TriggerState.disabled``, as Kestra does).

``flow_triggers.evaluate`` stays pure: it runs on the windows of the triggers that listen, locked
and loaded up front, and what it records is written back when it returns. The lock is per trigger,
so two executors evaluating executions that feed one window take turns instead of each
overwriting the other's results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tiercel.engine.flow_triggers import (
    FLOW_TRIGGER_TYPE,
    TriggeredExecution,
    evaluate,
    listening,
    trigger_scope,
)
from tiercel.model.execution import Execution
from tiercel.model.flow import Flow
from tiercel.plugins.core.triggers import FlowTrigger
from tiercel.repository.base import Repositories, TriggerRepository, TriggerState


async def stopped_triggers(
    triggers: TriggerRepository, pairs: Iterable[tuple[Flow, FlowTrigger]]
) -> set[tuple[str, str]]:
    """The ``(flow uid, trigger id)`` of ``pairs`` whose stored trigger state is disabled."""
    stopped: set[tuple[str, str]] = set()
    for flow, trigger in pairs:
        state = await triggers.get(flow.namespace, flow.id, trigger.id)
        if state is not None and state.disabled:
            stopped.add((flow.uid, trigger.id))
    return stopped


async def evaluate_flow_triggers(
    repos: Repositories,
    execution: Execution,
    upstream_flow: Flow | None,
    live_flows: Iterable[Flow],
    now: datetime,
    *,
    globals_: Mapping[str, Any] | None = None,
    envs: Mapping[str, Any] | None = None,
) -> list[TriggeredExecution]:
    """``flow_triggers.evaluate`` of ``execution``'s new state over ``live_flows``, on the stored
    state: disabled triggers are skipped, and the windows of the listening triggers are locked for
    the evaluation and saved with what it recorded. The caller starts the executions returned."""
    candidates = listening(execution, live_flows)
    if not candidates:
        return []
    stopped = await stopped_triggers(repos.triggers, candidates)
    active = [(flow, trigger) for flow, trigger in candidates if (flow.uid, trigger.id) not in stopped]
    if not active:
        return []
    flows = list({flow.uid: flow for flow, _ in active}.values())
    async with repos.windows.lock([trigger_scope(flow, trigger) for flow, trigger in active]) as windows:
        return evaluate(
            execution, upstream_flow, flows, now, windows, globals_=globals_, envs=envs, stopped=stopped
        )


def may_stop_trigger(execution: Execution) -> bool:
    """Whether ``apply_stop_after`` can do anything for ``execution`` (started by a Flow trigger and
    terminated): a cheap check to make before looking its flow up."""
    origin = execution.trigger
    return origin is not None and origin.type == FLOW_TRIGGER_TYPE and execution.current.is_terminated


async def apply_stop_after(repos: Repositories, execution: Execution, flow: Flow | None) -> None:
    """A Flow trigger whose execution ends in one of its ``stopAfter`` states stops firing: its
    trigger state is saved disabled. ``flow`` is the current flow of ``execution`` (``None``: gone)."""
    origin = execution.trigger
    if flow is None or origin is None or not may_stop_trigger(execution):
        return
    for trigger in flow.triggers or []:
        if trigger.id == origin.id and execution.current.value in (trigger.stop_after or []):
            await _disable(repos.triggers, flow.namespace, flow.id, trigger.id, execution.state.end_date)


async def _disable(
    triggers: TriggerRepository, namespace: str, flow_id: str, trigger_id: str, at: datetime | None
) -> None:
    state = await triggers.get(namespace, flow_id, trigger_id)
    if state is not None and state.disabled:
        return
    state = state or TriggerState(namespace=namespace, flow_id=flow_id, trigger_id=trigger_id)
    await triggers.save(state.model_copy(update={"disabled": True, "updated_date": at}))
