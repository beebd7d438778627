"""trigger.Toggle: enable or disable a flow's trigger from a task.

Trigger state belongs to the scheduler, which is not built yet: until then the task validates
its properties and logs what it would do, so flows that contain it run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tiercel.plugins.base import RunContext, RunnableTask
from tiercel.plugins.core.convert import to_bool


class Toggle(RunnableTask):
    type: Literal["io.kestra.plugin.core.trigger.Toggle", "io.kestra.core.tasks.trigger.Toggle"]
    namespace: str | None = None
    flow_id: str | None = None
    trigger: str
    enabled: bool | str = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        namespace = str(ctx.render(self.namespace)) if self.namespace else ctx.namespace
        flow_id = str(ctx.render(self.flow_id)) if self.flow_id else ctx.flow_id
        trigger = str(ctx.render(self.trigger))
        action = "enable" if to_bool(ctx.render(self.enabled)) else "disable"
        ctx.logger.info(
            f"Would {action} the trigger '{trigger}' of the flow {namespace}.{flow_id}: "
            "trigger toggling needs the scheduler, nothing was changed"
        )
        return None


PLUGINS: list[type[RunnableTask]] = [Toggle]
