"""The rendering entry points the engine calls for task properties, conditions and loop values.

Rendering is deliberately *not* recursive (Kestra's default since 0.14): a value that itself holds
``{{ }}`` (an input, an output, a variable) prints literally unless the flow asks for ``render()``.
That stops second-order template injection through data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiercel.templating.environment import render_source, render_typed_source
from tiercel.templating.values import to_text

__all__ = ["is_truthy", "render", "render_typed", "render_value"]

_FALSE_TEXTS = frozenset({"false", "0", "-0", ""})


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Render a Pebble template to text. A string without ``{`` is returned unchanged."""
    if "{" not in template:
        return template
    return render_source(template, variables)


def render_typed(template: str, variables: Mapping[str, Any]) -> Any:
    """Like :func:`render`, but a template that is one ``{{ expression }}`` yields its native value.

    ``"{{ [1, 2] }}"`` gives the list ``[1, 2]`` and ``"{{ x > 1 }}"`` a ``bool``; anything with text
    around the expression, or several expressions, gives the rendered string.
    """
    if "{" not in template:
        return template
    return render_typed_source(template, variables)


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dict keys included); other scalars are kept as they are."""
    if isinstance(value, str):
        return render(value, variables) if "{" in value else value
    if isinstance(value, Mapping):
        return {
            (render(key, variables) if isinstance(key, str) else key): render_value(item, variables)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [render_value(item, variables) for item in value]
    if isinstance(value, tuple):
        return tuple(render_value(item, variables) for item in value)
    return value


def is_truthy(value: Any) -> bool:
    """Kestra's truthiness for rendered conditions (``If``, ``runIf``, ``Fail.condition``...).

    The value's text is false when it is exactly ``false``, ``0``, ``-0`` or empty (``None`` and
    ``False`` included); anything else is true. Like Kestra the comparison is case-sensitive, so
    ``"False"`` is *true*. Surrounding whitespace is ignored, so a YAML block scalar's trailing
    newline does not flip the result.
    """
    if value is None or value is False:
        return False
    if value is True:
        return True
    return to_text(value).strip() not in _FALSE_TEXTS
