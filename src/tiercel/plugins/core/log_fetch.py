"""log.Fetch: export an execution's logs to a storage file (one JSON object per line).

Only logs already stored are seen: a task's own lines are not (they are sent when it ends), and
lines of tasks that ended just before may still be in flight, hence the short Sleep in Kestra's
examples. This task logs nothing at INFO or above before it fetches, so it does not count itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from tiercel.errors import TaskError
from tiercel.model.task import LogLevel
from tiercel.plugins.base import RunContext, RunnableTask
from tiercel.plugins.core.storage import output_uri


class Fetch(RunnableTask):
    type: Literal["io.kestra.plugin.core.log.Fetch", "io.kestra.core.tasks.log.Fetch"]
    namespace: str | None = None
    flow_id: str | None = None
    execution_id: str | None = None
    tasks_id: list[str] | str | None = None
    level: LogLevel = LogLevel.INFO

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        fetch = getattr(ctx.services, "fetch_logs", None)
        if fetch is None:
            raise TaskError("Fetching logs is not available: no log repository is configured for this worker")
        execution_id = str(ctx.render(self.execution_id)) if self.execution_id else ctx.execution_id
        namespace = str(ctx.render(self.namespace)) if self.namespace else ctx.namespace
        flow_id = str(ctx.render(self.flow_id)) if self.flow_id else ctx.flow_id
        task_ids = self._task_ids(ctx)
        entries = await fetch(
            namespace=namespace,
            flow_id=flow_id,
            execution_id=execution_id,
            task_ids=task_ids,
            min_level=self.level,
        )
        rank = self.level.rank
        selected = [
            e
            for e in entries
            if e.level.rank >= rank
            and (task_ids is None or e.task_id in task_ids)
            and e.execution_id == execution_id
        ]

        async def lines() -> AsyncIterator[bytes]:
            for entry in selected:
                yield (entry.to_json() + "\n").encode("utf-8")

        uri = await ctx.services.storage.put(output_uri(ctx, "logs.jsonl"), lines())
        ctx.logger.debug(f"Fetched {len(selected)} log lines of the execution {execution_id}")
        return {"size": len(selected), "uri": uri}

    def _task_ids(self, ctx: RunContext) -> list[str] | None:
        if self.tasks_id is None:
            return None
        rendered = ctx.render(self.tasks_id)
        if isinstance(rendered, str):
            rendered = [rendered]
        ids = [str(t) for t in rendered]
        return ids or None


PLUGINS: list[type[RunnableTask]] = [Fetch]
