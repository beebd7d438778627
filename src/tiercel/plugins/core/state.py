"""io.kestra.plugin.core.state.*: the legacy state store (a small JSON map kept between runs).

A state is addressed by flow (or namespace, with ``namespace: true``), ``name``, and, with
``taskrunValue: true`` (the default), the current loop value, so each ForEach iteration keeps its
own state. It lives in internal storage at ``/<ns>/<flow>/states/<name>/<hash(value)>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from tiercel.errors import StorageNotFound, TaskError
from tiercel.plugins.base import RunContext, RunnableTask
from tiercel.plugins.core.convert import to_bool
from tiercel.storage.uri import InvalidStorageURI, StorageURI, state_uri


class _StateTask(RunnableTask):
    name: str = "default"
    namespace: bool | str = False
    taskrun_value: bool | str = True

    def _uri(self, ctx: RunContext) -> StorageURI:
        name = str(ctx.render(self.name))
        flow_id = None if to_bool(ctx.render(self.namespace)) else ctx.flow_id
        value = ctx.task_run.value if to_bool(ctx.render(self.taskrun_value)) else None
        try:
            return state_uri(ctx.namespace, flow_id, name, value)
        except InvalidStorageURI as exc:
            raise TaskError(f"Invalid state name '{name}': {exc}") from None

    async def _load(self, ctx: RunContext, uri: StorageURI) -> dict[str, Any] | None:
        try:
            raw = await ctx.services.storage.get_bytes(uri)
        except StorageNotFound:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            raise TaskError(f"The state '{self.name}' is corrupt (not JSON)") from None
        return data if isinstance(data, dict) else {}


class Get(_StateTask):
    """Outputs ``data`` (the stored map, ``{}`` if none) and ``count`` (its size)."""

    type: Literal["io.kestra.plugin.core.state.Get", "io.kestra.core.tasks.states.Get"]
    error_on_missing: bool | str = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        uri = self._uri(ctx)
        data = await self._load(ctx, uri)
        if data is None:
            if to_bool(ctx.render(self.error_on_missing)):
                raise TaskError(f"Unable to find the state '{ctx.render(self.name)}'")
            data = {}
        return {"count": len(data), "data": data}


class Set(_StateTask):
    """Merge the rendered ``data`` into the state; outputs the merged ``count`` and the ``key``."""

    type: Literal["io.kestra.plugin.core.state.Set", "io.kestra.core.tasks.states.Set"]
    data: dict[str, Any] | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        uri = self._uri(ctx)
        merged = await self._load(ctx, uri) or {}
        rendered = ctx.render(self.data or {})
        if not isinstance(rendered, Mapping):
            raise TaskError("`data` must be a map")
        merged.update(rendered)
        payload = json.dumps(merged, default=str, ensure_ascii=False).encode("utf-8")
        key = await ctx.services.storage.put(uri, payload)
        return {"count": len(merged), "key": key}


class Delete(_StateTask):
    type: Literal["io.kestra.plugin.core.state.Delete", "io.kestra.core.tasks.states.Delete"]
    error_on_missing: bool | str = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        deleted = await ctx.services.storage.delete(self._uri(ctx))
        if not deleted and to_bool(ctx.render(self.error_on_missing)):
            raise TaskError(f"Unable to find the state '{ctx.render(self.name)}'")
        return {"deleted": deleted}


PLUGINS: list[type[RunnableTask]] = [Set, Get, Delete]
