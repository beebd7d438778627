"""Turn Python values into the text Kestra prints for them.

Kestra renders with Pebble on the JVM, so what users see is Java's ``toString`` of each value, except
that maps and lists go through Jackson (Kestra's ``JsonWriter``). Flows and their tests depend on
those exact strings (``true`` not ``True``, ``1.0`` not ``1``, ``{"a":1}`` with no spaces,
``2024-12-20T17:12:37.123Z`` for an instant), so the printing rules live here in one place and are
shared by the ``{{ }}`` output, string concatenation and the JSON filters.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Set
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Undefined

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


def java_double(value: float) -> str:
    """``Double.toString``: ``1.0``, ``0.001``, ``1.0E7``, ``1.234E-5``, ``NaN``, ``Infinity``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        if "e" in text or "E" in text:  # pragma: no cover - repr never uses exponents in this range
            text = format(Decimal(text), "f")
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    figures = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + int(exponent) - 1
    mantissa = figures[0] + "." + (figures[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{power}"


def _fraction(micros: int, grouped: bool) -> str:
    """Java prints nanos in groups of three digits and drops a zero fraction entirely."""
    if not micros:
        return ""
    if grouped and micros % 1000 == 0:
        return f".{micros // 1000:03d}"
    return f".{micros:06d}"


def _local_time(value: dt.time | dt.datetime, always_seconds: bool) -> str:
    text = f"{value.hour:02d}:{value.minute:02d}"
    if always_seconds or value.second or value.microsecond:
        text += f":{value.second:02d}{_fraction(value.microsecond, True)}"
    return text


def _offset(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def java_temporal(value: dt.datetime | dt.date | dt.time) -> str:
    """``toString`` of the java.time type each Python value stands for.

    An aware datetime at offset zero is an ``Instant`` (always with seconds, ``Z``); another offset
    is an ``OffsetDateTime``/``ZonedDateTime``; a naive one a ``LocalDateTime``.
    """
    if isinstance(value, dt.datetime):
        date_part = value.date().isoformat()
        offset = value.utcoffset()
        if offset is None:
            return f"{date_part}T{_local_time(value, False)}"
        if not offset:
            return f"{date_part}T{_local_time(value, True)}Z"
        zone = f"[{value.tzinfo.key}]" if isinstance(value.tzinfo, ZoneInfo) else ""
        return f"{date_part}T{_local_time(value, False)}{_offset(offset)}{zone}"
    if isinstance(value, dt.date):
        return value.isoformat()
    text = _local_time(value, False)
    offset = value.utcoffset()
    return text if offset is None else text + _offset(offset)


def java_duration(value: dt.timedelta) -> str:
    """``Duration.toString``: ``PT5M6S``, ``PT0S``, ``PT-1.5S``, ``PT36H``."""
    total = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    if total == 0:
        return "PT0S"
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    text = "PT"
    if hours:
        text += f"{sign}{hours}H"
    if minutes:
        text += f"{sign}{minutes}M"
    if seconds or micros:
        fraction = f".{micros:06d}".rstrip("0") if micros else ""
        text += f"{sign}{seconds}{fraction}S"
    return text


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
