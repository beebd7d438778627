"""The text the JVM prints for numbers and java.time values (``Double.toString``, ``Instant.toString``…).

Kestra's messages, stored inputs and rendered templates are Java's ``toString`` of its values, so the
flow model (input bounds, typed inputs, error messages) and the template engine must print the very
same text. The rules live here once. This module imports nothing from Tiercel: ``tiercel.model`` must
not depend on ``tiercel.templating``, and both need these printers.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

__all__ = [
    "format_duration",
    "format_instant",
    "format_local_time",
    "java_double",
    "java_temporal",
    "java_time_str",
]


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


def _grouped_fraction(micros: int) -> str:
    """``toString`` prints nanos in groups of three digits (``.500``) and drops a zero fraction."""
    if not micros:
        return ""
    if micros % 1000 == 0:
        return f".{micros // 1000:03d}"
    return f".{micros:06d}"


def _trimmed_fraction(micros: int) -> str:
    """ISO formatters (and ``Duration``) print the fraction without trailing zeros (``.5``)."""
    return f".{micros:06d}".rstrip("0") if micros else ""


def _clock(value: time | datetime, always_seconds: bool) -> str:
    """``HH:mm[:ss[.SSS]]`` as ``LocalTime.toString`` prints it; an ``Instant`` always has seconds."""
    text = f"{value.hour:02d}:{value.minute:02d}"
    if always_seconds or value.second or value.microsecond:
        text += f":{value.second:02d}{_grouped_fraction(value.microsecond)}"
    return text


def _offset(delta: timedelta) -> str:
    """``ZoneOffset.toString``: ``Z``, ``+02:00``, ``-05:30:15``."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def format_instant(value: datetime) -> str:
    """Print like ``Instant.toString()``: UTC, ``Z`` suffix, seconds always, fraction in groups of three.

    A naive ``datetime`` is taken as UTC (that is what YAML timestamps without a zone mean).
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return f"{value.date().isoformat()}T{_clock(value, True)}Z"


def format_local_time(value: time) -> str:
    """Print like Jackson's ``ISO_LOCAL_TIME``: seconds always, fraction without trailing zeros.

    This is how Kestra stores a TIME input in an execution (``18:27:49``).
    """
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_trimmed_fraction(value.microsecond)}"


def java_time_str(value: time) -> str:
    """Print like ``LocalTime.toString()``: seconds omitted when zero (``01:00``).

    Kestra prints a TIME bound this way in error messages, and templates print a time this way.
    """
    return _clock(value, False)


def format_duration(value: timedelta) -> str:
    """Print like ``java.time.Duration.toString()``: hours/minutes/seconds only (``P1D`` → ``PT24H``).

    Negative durations repeat the sign on every part (``PT-1H-30M``), as Java does.
    """
    total = value // timedelta(microseconds=1)
    if total == 0:
        return "PT0S"
    sign = "-" if total < 0 else ""
    hours, rest = divmod(abs(total), 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    text = "PT"
    if hours:
        text += f"{sign}{hours}H"
    if minutes:
        text += f"{sign}{minutes}M"
    if seconds or micros:
        text += f"{sign}{seconds}{_trimmed_fraction(micros)}S"
    return text


def java_temporal(value: datetime | date | time) -> str:
    """``toString`` of the java.time type each Python value stands for.

    An aware datetime at offset zero is an ``Instant`` (always with seconds, ``Z``); another offset
    is an ``OffsetDateTime``/``ZonedDateTime``; a naive one a ``LocalDateTime``.
    """
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and not offset:
            return format_instant(value)
        text = f"{value.date().isoformat()}T{_clock(value, False)}"
        if offset is None:
            return text
        zone = f"[{value.tzinfo.key}]" if isinstance(value.tzinfo, ZoneInfo) else ""
        return f"{text}{_offset(offset)}{zone}"
    if isinstance(value, date):
        return value.isoformat()
    text = java_time_str(value)
    offset = value.utcoffset()
    return text if offset is None else text + _offset(offset)
