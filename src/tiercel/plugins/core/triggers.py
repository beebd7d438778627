"""Trigger types. ``Flow`` triggers are evaluated by ``tiercel.engine.flow_triggers``; the others are
declared so flows that use them validate, and get their behaviour from the scheduler.

Until the scheduler exists these models keep every property (``extra="allow"``) beyond the few
they name, so no valid Kestra flow is rejected for its triggers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from tiercel.model.state import TERMINATED, StateType
from tiercel.plugins.base import Condition, Trigger
from tiercel.plugins.core.preconditions import Preconditions


def _known_condition(value: Any) -> Any:
    """Parse a condition map to check it (``ValueError`` names an unknown type); keep the map."""
    from tiercel.plugins.core.conditions import parse_condition

    parse_condition(value)
    return value


ConditionMap = Annotated[Any, AfterValidator(_known_condition)]


class Schedule(Trigger):
    type: Literal["io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule"]
    cron: str
    timezone: str | None = None
    with_seconds: bool = False
    backfill: dict[str, Any] | None = None
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] | None = None


class ScheduleOnDates(Trigger):
    type: Literal["io.kestra.plugin.core.trigger.ScheduleOnDates"]
    dates: list[Any]


class FlowTrigger(Trigger):
    """Start this flow when another flow's execution changes state (``engine.flow_triggers``).

    ``conditions`` stay plain maps (parsed when evaluated); they are checked here so a flow with an
    unknown or malformed condition does not load.
    """

    type: Literal["io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow"]
    states: list[StateType] | None = None
    conditions: list[ConditionMap] | None = None
    preconditions: Preconditions | None = None

    @property
    def listened_states(self) -> frozenset[StateType]:
        """``states``, by default every terminal state."""
        return frozenset(self.states) if self.states else TERMINATED

    def parsed_conditions(self) -> list[Condition]:
        from tiercel.plugins.core.conditions import parse_conditions

        return parse_conditions(self.conditions or [])


class Webhook(Trigger):
    type: Literal["io.kestra.plugin.core.trigger.Webhook", "io.kestra.core.models.triggers.types.Webhook"]
    key: str


class HttpTrigger(Trigger):
    type: Literal["io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"]
    uri: str
    interval: str | None = None


PLUGINS = [Schedule, ScheduleOnDates, FlowTrigger, Webhook, HttpTrigger]
