"""debug.Return and the deprecated debug.Echo."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from tiercel.model.task import LogLevel
from tiercel.plugins.base import RunContext, RunnableTask


class Return(RunnableTask):
    type: Literal["io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return"]
    format: Any = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        started = time.perf_counter()
        value = ctx.render(self.format) if self.format is not None else None
        tags = {"format": str(value)[:200]}
        ctx.metric("length", len(str(value)) if value is not None else 0, "counter", tags)
        ctx.metric("duration", time.perf_counter() - started, "timer", tags)
        return {"value": value}


class Echo(RunnableTask):
    type: Literal["io.kestra.plugin.core.debug.Echo", "io.kestra.core.tasks.debugs.Echo"]
    format: Any = None
    level: LogLevel = LogLevel.INFO

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        ctx.logger.log(self.level.value, str(ctx.render(self.format)))
        return None
