"""``pluginDefaults``: values merged into every task whose type matches (exactly or by prefix).

Non-forced defaults fill what a task leaves unset; forced defaults override the task. Applied to
the raw YAML mapping before validation, as Kestra does, so defaults can supply required fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A new map: ``over`` wins, but where both hold a map they are merged key by key, recursively.

    Kestra merges nested maps this way for plugin defaults and for input defaults under supplied
    inputs; ``base`` and ``over`` are left untouched.
    """
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_plugin_defaults(
    data: dict[str, Any],
    global_defaults: Sequence[Mapping[str, Any]] = (),
    is_task_type: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Return a copy of the flow mapping with defaults merged into each matching task."""
    flow_defaults = list(data.get("pluginDefaults") or []) + list(data.get("taskDefaults") or [])
    defaults = [d for d in [*global_defaults, *flow_defaults] if isinstance(d, Mapping) and d.get("type")]
    if not defaults:
        return data

    def apply(node: Any, inside_task_list: bool) -> Any:
        if isinstance(node, list):
            return [apply(item, inside_task_list) for item in node]
        if not isinstance(node, dict):
            return node
        result = {k: apply(v, True) for k, v in node.items()}
        task_type = result.get("type")
        if (
            inside_task_list
            and isinstance(task_type, str)
            and "id" in result
            and (is_task_type is None or is_task_type(task_type))
        ):
            for default in defaults:
                prefix = str(default["type"])
                if task_type == prefix or task_type.startswith(prefix):
                    values = default.get("values") or {}
                    forced = default.get("forced")
                    result = deep_merge(result, values) if forced else deep_merge(values, result)
        return result

    out = dict(data)
    for key in ("tasks", "errors", "finally", "afterExecution"):
        if key in out:
            out[key] = apply(out[key], True)
    return out
