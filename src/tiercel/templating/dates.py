"""Kestra's date filters: Java ``DateTimeFormatter`` patterns, named formats, parsing and arithmetic.

Flows are written against ``java.time`` (``yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX``, ``iso``, ``sql_seq``,
``DAYS``...). The numeric fields are formatted here so truncation and padding follow Java (Babel
rounds fractions); the locale-dependent words (month and day names, AM/PM, eras, zone names, the
``full``/``long``/``medium``/``short`` styles) come from Babel's CLDR data, as the JDK's do.

Inputs are read as Kestra reads them: datetimes, dates (at noon!), epoch seconds, or strings parsed as
an ISO zoned date-time, else a local date-time, else a local date, in the requested zone (default
UTC, where Kestra would use the server's zone).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime as babel_format

from tiercel.errors import TemplateError
from tiercel.templating.values import fail_if_undefined

__all__ = ["date_add", "epoch", "format_date", "parse_instant", "zone_of"]

UTC = ZoneInfo("UTC")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DEFAULT_LOCALE = "en_US"
_OFFSET_ZONE = re.compile(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?\Z")
_PATTERNS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
}
_STYLES = frozenset({"full", "long", "medium", "short"})
_TEXT_LETTERS = frozenset("GEaBzvOVQqLMec")
_EXACT_UNITS = {  # in nanoseconds
    "NANOS": 1,
    "MICROS": 1_000,
    "MILLIS": 1_000_000,
    "SECONDS": 1_000_000_000,
    "MINUTES": 60_000_000_000,
    "HOURS": 3_600_000_000_000,
    "HALF_DAYS": 43_200_000_000_000,
}
_DAY_UNITS = {"DAYS": 1, "WEEKS": 7}
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}


# -- zones and locales -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def zone_of(name: str | None) -> dt.tzinfo:
    """``ZoneId.of``: region ids (``Europe/Paris``), ``UTC``/``Z``, or offsets like ``+01:00``."""
    if name is None:
        return UTC
    if name == "Z":
        return dt.UTC
    match = _OFFSET_ZONE.match(name)
    if match is not None:
        sign, hours, minutes, seconds = match.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes or 0), seconds=int(seconds or 0))
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TemplateError(f"Unknown time-zone ID: {name}") from None


@functools.lru_cache(maxsize=64)
def _locale(name: str | None) -> Locale:
    try:
        return Locale.parse(name or _DEFAULT_LOCALE, sep="_" if "_" in (name or "_") else "-")
    except (UnknownLocaleError, ValueError):
        raise TemplateError(f"Unknown locale: {name}") from None


def _is_region(zone: dt.tzinfo) -> bool:
    return isinstance(zone, ZoneInfo)


# -- reading inputs --------------------------------------------------------------------------------


def parse_instant(value: Any, zone: dt.tzinfo, existing_format: str | None = None) -> dt.datetime:
    """An aware datetime for ``value``, the way Kestra's ``AbstractDate.convert`` reads it."""
    fail_if_undefined(value)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(12), tzinfo=zone)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (_EPOCH + dt.timedelta(seconds=value)).astimezone(zone)
    if not isinstance(value, str):
        raise TemplateError(f"Unable to read a date from a value of type {type(value).__name__}")
    text = value.strip()
    if existing_format is not None:
        return _parse_with(text, existing_format, zone)
    return _parse_iso(text, zone)


def _parse_iso(text: str, zone: dt.tzinfo) -> dt.datetime:
    region = None
    if text.endswith("]") and "[" in text:
        text, region = text[:-1].split("[", 1)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise TemplateError(f"Text '{text}' could not be parsed as a date") from None
    if region:
        region_zone = zone_of(region)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=region_zone)
        return parsed.astimezone(region_zone)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _parse_with(text: str, existing_format: str, zone: dt.tzinfo) -> dt.datetime:
    if existing_format in _PATTERNS:
        existing_format = _PATTERNS[existing_format]
    elif existing_format.startswith("iso") or existing_format in _STYLES:
        return _parse_iso(text, zone)
    elif existing_format == "rfc_1123_date_time":
        existing_format = "EEE, d MMM yyyy HH:mm:ss Z"
    regex, fields = _parser_for(existing_format)
    match = regex.fullmatch(text)
    if match is None:
        raise TemplateError(f"Text '{text}' could not be parsed with the format '{existing_format}'")
    return _assemble(match, fields, zone)


@functools.lru_cache(maxsize=128)
def _parser_for(pattern: str) -> tuple[re.Pattern[str], tuple[tuple[str, str, int], ...]]:
    parts: list[str] = []
    fields: list[tuple[str, str, int]] = []
    for letter, count, literal in _pattern_tokens(pattern):
        if letter is None:
            parts.append(re.escape(literal))
            continue
        group = f"g{len(fields)}"
        fields.append((group, letter, count))
        parts.append(f"(?P<{group}>{_field_regex(letter, count)})")
    return re.compile("".join(parts), re.IGNORECASE), tuple(fields)


def _field_regex(letter: str, count: int) -> str:
    if letter in "yu":
        return r"\d{2}" if count == 2 else (r"[+-]?\d{4,9}" if count >= 4 else r"[+-]?\d+")
    if letter in "ML" and count >= 3:
        return r"[^\W\d]+\.?"
    if letter in "Ec" or (letter == "e" and count >= 3):
        return r"[^\W\d]+\.?"
    if letter == "a":
        return r"[AaPp]\.?[Mm]\.?"
    if letter in "XxZ":
        return r"Z|GMT|UTC|[+-]\d{2}(?::?\d{2})?(?::?\d{2})?"
    if letter in "zV":
        return r"[A-Za-z][A-Za-z0-9_/+\-]*"
    if letter in "SnN":
        return rf"\d{{{count}}}" if letter == "S" else r"\d+"
    return rf"\d{{{count}}}" if count >= 2 else r"\d{1,2}" if letter != "D" else r"\d{1,3}"


def _assemble(match: re.Match[str], fields: tuple[tuple[str, str, int], ...], zone: dt.tzinfo) -> dt.datetime:
    values: dict[str, Any] = {"year": 1970, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
    micro = 0
    pm: bool | None = None
    tz: dt.tzinfo | None = None
    day_of_year: int | None = None
    english = _locale("en")
    for group, letter, count in fields:
        text = match.group(group)
        if letter in "yu":
            year = int(text)
            values["year"] = 2000 + year if count == 2 else year
        elif letter in "ML":
            values["month"] = int(text) if count < 3 else _month_number(text, english)
        elif letter == "d":
            values["day"] = int(text)
        elif letter == "D":
            day_of_year = int(text)
        elif letter in "Hk":
            values["hour"] = int(text) % 24
        elif letter in "hK":
            values["hour"] = int(text) % 12
        elif letter == "m":
            values["minute"] = int(text)
        elif letter == "s":
            values["second"] = int(text)
        elif letter == "S":
            micro = int(text[:6].ljust(6, "0"))
        elif letter == "n":
            micro = int(text) // 1000
        elif letter == "a":
            pm = text.lower().startswith("p")
        elif letter in "XxZ":
            tz = dt.UTC if text.upper() in ("Z", "GMT", "UTC") else zone_of(text)
        elif letter in "zV":
            tz = zone_of(text)
    if pm is not None and values["hour"] < 12 and pm:
        values["hour"] += 12
    try:
        result = dt.datetime(**values, microsecond=micro, tzinfo=tz or zone)
    except ValueError as exc:
        raise TemplateError(f"Invalid date: {exc}") from None
    if day_of_year is not None:
        result = result.replace(month=1, day=1) + dt.timedelta(days=day_of_year - 1)
    return result


def _month_number(text: str, locale: Locale) -> int:
    wanted = text.rstrip(".").lower()
    for width in ("wide", "abbreviated"):
        for number, name in locale.months["format"][width].items():
            if name.rstrip(".").lower() == wanted:
                return int(number)
    raise TemplateError(f"Unknown month name: {text}")


# -- formatting ------------------------------------------------------------------------------------


def _pattern_tokens(pattern: str) -> list[tuple[str | None, int, str]]:
    """``(letter, count, literal)`` runs of a Java pattern; optional-section brackets are dropped."""
    tokens: list[tuple[str | None, int, str]] = []
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        if char == "'":
            end = index + 1
            literal: list[str] = []
            while end < size:
                if pattern[end] == "'":
                    if end + 1 < size and pattern[end + 1] == "'":
                        literal.append("'")
                        end += 2
                        continue
                    break
                literal.append(pattern[end])
                end += 1
            else:
                raise TemplateError(f"Pattern ends with an incomplete string literal: {pattern}")
            tokens.append((None, 0, "".join(literal) if end > index + 1 else "'"))
            index = end + 1
        elif char.isascii() and char.isalpha():
            end = index
            while end < size and pattern[end] == char:
                end += 1
            tokens.append((char, end - index, ""))
            index = end
        elif char in "[]":
            index += 1
        elif char in "{}#":
            raise TemplateError(f"Pattern includes reserved character: '{char}'")
        else:
            tokens.append((None, 0, char))
            index += 1
    return tokens


def _offset(moment: dt.datetime, colon: bool, zero: str, with_minutes: bool = True) -> str:
    delta = moment.utcoffset() or dt.timedelta()
    seconds = int(delta.total_seconds())
    if seconds == 0 and zero:
        return zero
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    separator = ":" if colon else ""
    text = f"{sign}{hours:02d}"
    if with_minutes or minutes:
        text += f"{separator}{minutes:02d}"
    if secs:
        text += f"{separator}{secs:02d}"
    return text


_SIMPLE_FIELDS: dict[str, Callable[[dt.datetime], int]] = {
    "M": lambda m: m.month,
    "L": lambda m: m.month,
    "d": lambda m: m.day,
    "H": lambda m: m.hour,
    "m": lambda m: m.minute,
    "s": lambda m: m.second,
    "D": lambda m: m.timetuple().tm_yday,
    "h": lambda m: m.hour % 12 or 12,
    "K": lambda m: m.hour % 12,
    "k": lambda m: m.hour or 24,
    "w": lambda m: m.isocalendar()[1],
    "F": lambda m: (m.day - 1) // 7 + 1,
    "Q": lambda m: (m.month - 1) // 3 + 1,
    "q": lambda m: (m.month - 1) // 3 + 1,
    "W": lambda m: (m.day + m.replace(day=1).isoweekday() % 7 - 1) // 7 + 1,
    "e": lambda m: m.isoweekday() % 7 + 1,
    "c": lambda m: m.isoweekday() % 7 + 1,
}


def _numeric(letter: str, count: int, moment: dt.datetime) -> str | None:
    """Numeric fields, or ``None`` when the letter is textual at this width."""
    if letter in "yu":
        year = moment.year
        return f"{year % 100:02d}" if count == 2 else str(year).zfill(count)
    if letter == "Y":
        year = moment.isocalendar()[0]
        return f"{year % 100:02d}" if count == 2 else str(year).zfill(count)
    simple = _SIMPLE_FIELDS.get(letter)
    if simple is not None and (count <= 2 or letter not in "MLQqec"):
        return str(simple(moment)).zfill(count)
    nanos = moment.microsecond * 1000
    if letter == "S":
        return f"{nanos:09d}"[:count] if count <= 9 else f"{nanos:09d}".ljust(count, "0")
    if letter == "n":
        return str(nanos).zfill(count)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    since_midnight = moment - midnight
    if letter == "A":
        return str(since_midnight // dt.timedelta(milliseconds=1)).zfill(count)
    if letter == "N":
        return str(since_midnight // dt.timedelta(microseconds=1) * 1000).zfill(count)
    if letter == "X":
        return _offset(moment, count in (3, 5), "Z", with_minutes=count != 1)
    if letter == "x":
        return _offset(moment, count in (3, 5), "", with_minutes=count != 1)
    if letter == "Z" and count <= 3:
        return _offset(moment, False, "")
    if letter == "Z" and count == 5:
        return _offset(moment, True, "Z")
    if letter == "V" and count == 2:
        tz = moment.tzinfo
        return tz.key if isinstance(tz, ZoneInfo) else _offset(moment, True, "Z")
    if letter in _TEXT_LETTERS or letter == "Z":
        return None
    raise TemplateError(f"Unknown pattern letter: {letter}")


def _text_field(letter: str, count: int, moment: dt.datetime, locale: Locale) -> str:
    try:
        return babel_format(moment, letter * count, locale=locale)
    except (KeyError, ValueError, AttributeError, LookupError):
        if letter in "zvOZ":
            return _offset(moment, True, "Z")
        raise TemplateError(f"Unable to format the field {letter * count}") from None


@functools.lru_cache(maxsize=256)
def _compiled_pattern(pattern: str) -> tuple[tuple[str | None, int, str], ...]:
    return tuple(_pattern_tokens(pattern))


def format_pattern(moment: dt.datetime, pattern: str, locale: Locale) -> str:
    """Format an aware datetime with a Java ``DateTimeFormatter`` pattern."""
    out: list[str] = []
    for letter, count, literal in _compiled_pattern(pattern):
        if letter is None:
            out.append(literal)
            continue
        numeric = _numeric(letter, count, moment)
        out.append(numeric if numeric is not None else _text_field(letter, count, moment, locale))
    return "".join(out)


def _local_time(moment: dt.datetime) -> str:
    text = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text


def _offset_id(moment: dt.datetime) -> str:
    return _offset(moment, True, "Z")


def _zoned(moment: dt.datetime) -> str:
    tz = moment.tzinfo
    region = f"[{tz.key}]" if isinstance(tz, ZoneInfo) else ""
    return f"{moment.date().isoformat()}T{_local_time(moment)}{_offset_id(moment)}{region}"


def _instant(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    micro = utc.microsecond
    fraction = "" if not micro else f".{micro // 1000:03d}" if micro % 1000 == 0 else f".{micro:06d}"
    return f"{utc.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}Z"


def _rfc_1123(moment: dt.datetime) -> str:
    english = _locale("en")
    head = format_pattern(moment, "EEE, d MMM yyyy HH:mm:ss", english)
    return f"{head} {'GMT' if not moment.utcoffset() else _offset(moment, False, '')}"


_NAMED: dict[str, Callable[[dt.datetime], str]] = {
    "iso_date_time": _zoned,
    "iso_zoned_date_time": _zoned,
    "iso_date": lambda m: m.date().isoformat() + _offset_id(m),
    "iso_time": lambda m: _local_time(m) + _offset_id(m),
    "iso_local_date": lambda m: m.date().isoformat(),
    "iso_instant": _instant,
    "iso_local_date_time": lambda m: f"{m.date().isoformat()}T{_local_time(m)}",
    "iso_local_time": _local_time,
    "iso_offset_time": lambda m: _local_time(m) + _offset_id(m),
    "iso_offset_date_time": lambda m: f"{m.date().isoformat()}T{_local_time(m)}{_offset_id(m)}",
    "iso_ordinal_date": lambda m: f"{m.year:04d}-{m.timetuple().tm_yday:03d}{_offset_id(m)}",
    "iso_week_date": lambda m: "{:04d}-W{:02d}-{}".format(*m.isocalendar()) + _offset_id(m),
    "rfc_1123_date_time": _rfc_1123,
}


def _render(moment: dt.datetime, format_name: str, locale: Locale) -> str:
    named = _NAMED.get(format_name)
    if named is not None:
        return named(moment)
    if format_name in _STYLES:
        return babel_format(moment, format_name, locale=locale)
    return format_pattern(moment, _PATTERNS.get(format_name, format_name), locale)


def format_date(
    value: Any,
    format_name: str | None = None,
    time_zone: str | None = None,
    existing_format: str | None = None,
    locale: str | None = None,
) -> str:
    """The ``date`` filter: read ``value``, move it to ``time_zone`` and format it (default ``iso``)."""
    zone = zone_of(time_zone)
    moment = parse_instant(value, zone, existing_format).astimezone(zone)
    return _render(moment, format_name or "iso", _locale(locale))


def date_add(
    value: Any,
    amount: int,
    unit: str,
    format_name: str | None = None,
    time_zone: str | None = None,
    existing_format: str | None = None,
    locale: str | None = None,
) -> str:
    """The ``dateAdd`` filter: add ``amount`` ``unit`` (a ``ChronoUnit`` name) and format the result."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TemplateError("The 'dateAdd' filter expects an integer 'amount'")
    zone = zone_of(time_zone)
    moment = parse_instant(value, zone, existing_format).astimezone(zone)
    name = str(unit).upper()
    if name in _EXACT_UNITS:
        delta = dt.timedelta(microseconds=amount * _EXACT_UNITS[name] // 1000)
        shifted = (moment.astimezone(dt.UTC) + delta).astimezone(zone)
    elif name in _DAY_UNITS:
        local = moment.replace(tzinfo=None) + dt.timedelta(days=amount * _DAY_UNITS[name])
        shifted = local.replace(tzinfo=zone)
    elif name in _MONTH_UNITS:
        shifted = _add_months(moment, amount * _MONTH_UNITS[name])
    else:
        raise TemplateError(f"No enum constant java.time.temporal.ChronoUnit.{unit}")
    return _render(shifted, format_name or "iso", _locale(locale))


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise TemplateError("Date out of range")
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (following - dt.timedelta(days=1)).day
    local = moment.replace(tzinfo=None, year=year, month=month, day=min(moment.day, last_day))
    return local.replace(tzinfo=moment.tzinfo)


def epoch(
    value: Any, per_second: int, time_zone: str | None = None, existing_format: str | None = None
) -> int:
    """Time since 1970 in units of ``1 / per_second`` s for the ``timestamp*`` filters (floored like Java)."""
    moment = parse_instant(value, zone_of(time_zone), existing_format)
    micros = (moment - _EPOCH) // dt.timedelta(microseconds=1)
    if per_second >= 1_000_000:
        return micros * (per_second // 1_000_000)
    return micros // (1_000_000 // per_second)
