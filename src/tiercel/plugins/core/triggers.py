"""Trigger types, declared so flows that use them validate; the scheduler gives them behaviour.

Until the scheduler exists these models keep every property (``extra="allow"``) beyond the few
they name, so no valid Kestra flow is rejected for its triggers.
"""

from __future__ import annotations

from typing import Any, Literal

from tiercel.plugins.base import Trigger


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
    type: Literal["io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow"]
    states: list[str] | None = None
    preconditions: dict[str, Any] | None = None


class Webhook(Trigger):
    type: Literal["io.kestra.plugin.core.trigger.Webhook", "io.kestra.core.models.triggers.types.Webhook"]
    key: str


class HttpTrigger(Trigger):
    type: Literal["io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"]
    uri: str
    interval: str | None = None


PLUGINS = [Schedule, ScheduleOnDates, FlowTrigger, Webhook, HttpTrigger]
