"""templating.TemplatedTask: a task whose whole definition is a template.

The ``spec`` is rendered, parsed as YAML, validated against the registered task classes, and
run with the same context, so its outputs become this task run's outputs. Only runnable tasks
are allowed (a flowable needs the executor), and not another TemplatedTask (no recursion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic
import yaml

from tiercel.errors import TaskError
from tiercel.plugins.base import RunContext, RunnableTask

_SELF_TYPES = (
    "io.kestra.plugin.core.templating.TemplatedTask",
    "io.kestra.core.tasks.templating.TemplatedTask",
)


class TemplatedTask(RunnableTask):
    type: Literal[
        "io.kestra.plugin.core.templating.TemplatedTask",
        "io.kestra.core.tasks.templating.TemplatedTask",
    ]
    spec: str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        from tiercel.plugins.registry import default_registry

        rendered = ctx.render(self.spec)
        try:
            data = yaml.safe_load(rendered) if isinstance(rendered, str) else rendered
        except yaml.YAMLError as exc:
            raise TaskError(f"The rendered spec is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
            raise TaskError("The rendered spec must be a map with a `type`")
        type_name = data["type"]
        if type_name in _SELF_TYPES:
            raise TaskError("A TemplatedTask cannot run another TemplatedTask")
        cls = default_registry().tasks.get(type_name)
        if cls is None:
            raise TaskError(f"Invalid type: {type_name}")
        if not issubclass(cls, RunnableTask):
            raise TaskError(f"The templated task must be a runnable task, {type_name} is not")
        spec = {"id": self.id, **data}
        try:
            task = cls.model_validate(spec)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<spec>'}: {err['msg']}" for err in exc.errors()
            )
            raise TaskError(f"Invalid templated task {type_name}: {problems}") from None
        return await task.run(ctx)


PLUGINS: list[type[RunnableTask]] = [TemplatedTask]
