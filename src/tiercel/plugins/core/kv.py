"""io.kestra.plugin.core.kv.*: read and write the namespace key-value store from a flow.

``namespace`` defaults to the flow's namespace and is rendered, so a flow may address another
namespace explicitly (Kestra's open-source edition allows every namespace).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from tiercel.errors import TaskError
from tiercel.plugins.base import RunContext, RunnableTask
from tiercel.plugins.core.convert import to_bool, to_duration
from tiercel.storage.kv import KVKeyNotFound, KVStore, KVType


def _store(ctx: RunContext) -> KVStore:
    store = getattr(ctx.services, "kv", None)
    if not isinstance(store, KVStore):
        raise TaskError("No KV store is configured for this worker")
    return store


class _KVTask(RunnableTask):
    namespace: str = "{{ flow.namespace }}"

    def _namespace(self, ctx: RunContext) -> str:
        namespace = str(ctx.render(self.namespace) or ctx.namespace)
        return namespace

    def _key(self, ctx: RunContext, key: str) -> str:
        return str(ctx.render(key))


class Set(_KVTask):
    """Store a value under a key; ``kvType`` converts the rendered value first."""

    type: Literal["io.kestra.plugin.core.kv.Set"]
    key: str
    value: Any
    overwrite: bool | str = True
    ttl: timedelta | str | None = None
    kv_type: KVType | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        namespace, key = self._namespace(ctx), self._key(ctx, self.key)
        ttl = to_duration(ctx.render(self.ttl), "ttl") if self.ttl is not None else None
        await _store(ctx).set(
            namespace,
            key,
            ctx.render(self.value),
            ttl=ttl,
            overwrite=to_bool(ctx.render(self.overwrite)),
            kv_type=self.kv_type,
        )
        ctx.logger.debug(f"Set KV key '{key}' in the namespace '{namespace}'")
        return {}


class Get(_KVTask):
    """Read a key; a missing key gives no ``value`` output unless ``errorOnMissing`` fails the task."""

    type: Literal["io.kestra.plugin.core.kv.Get"]
    key: str
    error_on_missing: bool | str = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        namespace, key = self._namespace(ctx), self._key(ctx, self.key)
        entry = await _store(ctx).get(namespace, key)
        if entry is None:
            if to_bool(ctx.render(self.error_on_missing)):
                raise KVKeyNotFound(namespace, key)
            return {}
        return {"value": entry.value}


class GetKeys(_KVTask):
    type: Literal["io.kestra.plugin.core.kv.GetKeys"]
    prefix: str | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        prefix = str(ctx.render(self.prefix)) if self.prefix else None
        entries = await _store(ctx).list(self._namespace(ctx), prefix)
        return {"keys": [e.key for e in entries]}


class Delete(_KVTask):
    type: Literal["io.kestra.plugin.core.kv.Delete"]
    key: str
    error_on_missing: bool | str = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        namespace, key = self._namespace(ctx), self._key(ctx, self.key)
        deleted = await _store(ctx).delete(namespace, key)
        if not deleted and to_bool(ctx.render(self.error_on_missing)):
            raise KVKeyNotFound(namespace, key)
        return {"deleted": deleted}


PLUGINS: list[type[RunnableTask]] = [Set, Get, GetKeys, Delete]
