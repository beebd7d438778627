"""Turn Python values into the text Kestra prints for them.

Kestra renders with Pebble on the JVM, so what users see is Java's ``toString`` of each value, except
that maps and lists go through Jackson (Kestra's ``JsonWriter``). Flows and their tests depend on
those exact strings (``true`` not ``True``, ``1.0`` not ``1``, ``{"a":1}`` with no spaces,
``2024-12-20T17:12:37.123Z`` for an instant), so the printing rules live here in one place and are
shared by the ``{{ }}`` output, string concatenation and the JSON filters. The scalar printers
(``Double``, java.time) are :mod:`tiercel.java_format`'s, which the flow model uses too; they are
re-exported here under their templating names.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Set
from decimal import Decimal
from typing import Any

from jinja2 import Undefined

from tiercel.java_format import format_duration as java_duration
from tiercel.java_format import java_double, java_temporal

__all__ = [
    "Entry",
    "fail_if_undefined",
    "java_double",
    "java_duration",
    "java_temporal",
    "java_text",
    "plain",
    "to_json",
    "to_text",
]


class Entry:
    """One key/value pair of a map being iterated: Pebble loops over ``Map.Entry`` objects.

    ``{% for e in map %}{{ e.key }}={{ e.value }}{% endfor %}`` is the Pebble idiom; Jinja would yield
    bare keys, so the loop helper wraps each item in one of these.
    """

    __slots__ = ("key", "value")

    def __init__(self, key: Any, value: Any) -> None:
        self.key = key
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.key == self.key and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:  # Java's AbstractMap.SimpleEntry.toString
        return f"{to_text(self.key)}={to_text(self.value)}"

    def __repr__(self) -> str:
        return f"Entry({self.key!r}, {self.value!r})"


def fail_if_undefined(value: Any) -> None:
    """Raise the strict "unable to find" error if ``value`` is an undefined placeholder."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()


def to_text(value: Any) -> str:
    """The text Pebble (with Kestra's JSON writer) prints for ``value``; also Jinja's ``finalize``.

    ``None`` prints as the empty string, like Pebble's null.
    """
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return java_double(value)
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (Mapping, list, tuple, Set)):
        return to_json(value)
    return java_text(value)


def java_text(value: Any) -> str:
    """``String.valueOf`` for scalars (``null`` spelled out, as Java concatenation does)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return java_temporal(value)
    if isinstance(value, dt.timedelta):
        return java_duration(value)
    if isinstance(value, (Mapping, list, tuple, Set)):
        return to_json(value)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (Set, tuple)):
        return list(value)
    if isinstance(value, Entry):
        return {to_text(value.key): value.value}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return java_temporal(value)
    if isinstance(value, dt.timedelta):
        return java_duration(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON like Jackson: no spaces, non-ASCII kept, dates as ISO strings."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    except ValueError as exc:  # circular structures
        raise ValueError(f"Unable to serialize value to JSON: {exc}") from None


def plain(value: Any) -> Any:
    """A JSON-shaped deep copy (dicts, lists, str, numbers, bool, None) for jq, YAML and Ion."""
    return json.loads(to_json(value))
