"""output.OutputValues: expose rendered values as task outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tiercel.plugins.base import RunContext, RunnableTask


class OutputValues(RunnableTask):
    type: Literal["io.kestra.plugin.core.output.OutputValues", "io.kestra.core.tasks.outputs.OutputValues"]
    values: dict[str, Any] | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        return {"values": ctx.render(self.values or {})}
