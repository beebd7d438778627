"""log.Log: write messages to the task's log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tiercel.model.task import LogLevel
from tiercel.plugins.base import RunContext, RunnableTask


class Log(RunnableTask):
    type: Literal["io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log"]
    message: Any
    level: LogLevel = LogLevel.INFO

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        messages = self.message if isinstance(self.message, list) else [self.message]
        for message in messages:
            ctx.logger.log(self.level.value, str(ctx.render(message)))
        return None
