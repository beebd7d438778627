"""Flow input and output declarations (``inputs:`` / ``outputs:`` of a flow, ``onResume:`` of a Pause).

One frozen class per Kestra input type, discriminated by ``type`` so that ``list[Input]`` parses a flow's
``inputs:`` block exactly like Kestra does: unknown properties are rejected, the deprecated spellings
(``name`` for ``id``, ``options`` for MULTISELECT ``values``) are accepted and normalised.

Temporal bounds (``after``/``before``, DURATION ``min``/``max``) are kept as Python objects so they can be
compared, and serialise back to Kestra's JSON text (``2023-01-01T00:00:00Z``, ``PT10S``). The ISO-8601
parsers live here, not in :mod:`tiercel.flows.inputs`, because the models need them to validate bounds and
the resolution code imports the models (never the other way round). The printers (``format_*``,
``java_time_str``) come from :mod:`tiercel.java_format`, shared with the template engine, and are
re-exported here for the callers that know them by this module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, PlainSerializer, field_validator, model_validator

from tiercel.java_format import format_duration, format_instant, format_local_time, java_time_str
from tiercel.model.base import Model

__all__ = [
    "INPUT_TYPES",
    "ArrayInput",
    "BaseInput",
    "BooleanInput",
    "DateInput",
    "DateTimeInput",
    "DependsOn",
    "DurationInput",
    "EmailInput",
    "EnumInput",
    "FileInput",
    "FloatInput",
    "Input",
    "InputType",
    "IntInput",
    "JsonInput",
    "MultiselectInput",
    "Output",
    "SecretInput",
    "SelectInput",
    "StringInput",
    "TimeInput",
    "UriInput",
    "YamlInput",
    "format_duration",
    "format_instant",
    "format_local_time",
    "java_regex",
    "java_time_str",
    "parse_duration",
    "parse_instant",
    "parse_local_date",
    "parse_local_time",
]

InputType = Literal[
    "STRING",
    "ENUM",
    "SELECT",
    "MULTISELECT",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "FILE",
    "JSON",
    "YAML",
    "URI",
    "SECRET",
    "ARRAY",
    "EMAIL",
]
INPUT_TYPES: tuple[str, ...] = InputType.__args__  # type: ignore[attr-defined]

# Java's @Pattern is a full match, pydantic's `pattern` a search: anchor both ends.
ID_PATTERN = r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$"


# --------------------------------------------------------------------------------------------------------
# ISO-8601 parsers with java.time semantics (Instant, LocalDate, LocalTime, Duration)
# --------------------------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; like ``Instant.parse`` a zone (``Z`` or an offset) is mandatory.

    Returns an aware ``datetime`` in UTC. Digits beyond microseconds are truncated (Python's precision).
    """
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError(f"`{text}` is not an ISO-8601 instant")
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip(), count=1))
    except ValueError:
        raise ValueError(f"`{text}` is not an ISO-8601 instant") from None
    if parsed.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone")
    return parsed.astimezone(UTC)


_DATE = re.compile(r"[+-]?\d{4,}-\d{2}-\d{2}")
_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?")


def parse_local_date(text: str) -> date:
    """Parse ``yyyy-MM-dd`` strictly (``LocalDate.parse``): no time part, no compact form."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise ValueError(f"`{text}` is not an ISO-8601 date")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`{text}` is not an ISO-8601 date") from None


def parse_local_time(text: str) -> time:
    """Parse ``HH:mm[:ss[.fraction]]`` (``LocalTime.parse``); no zone allowed."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"`{text}` is not an ISO-8601 time")
    hour, minute, second, fraction = match.groups()
    micros = int((fraction or "").ljust(6, "0")[:6])
    try:
        return time(int(hour), int(minute), int(second or 0), micros)
    except ValueError:
        raise ValueError(f"`{text}` is not an ISO-8601 time") from None


_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?\d+)D)?"
    r"(T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?)(\d+)(?:[.,](\d{0,9}))?S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration the way ``java.time.Duration.parse`` does.

    Accepted: ``PnDTnHnMn.nS`` with optional signs on the whole and on each part (``PT1H30M``, ``P1D``,
    ``PT0.5S``, ``-PT5M``). Years, months and weeks are refused, as in Java, because they have no fixed
    length. Precision is the microsecond.
    """
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"`{text}` is not an ISO-8601 duration")
    sign, days, t_part, hours, minutes, sec_sign, seconds, fraction = match.groups()
    if (t_part is not None and t_part.upper() == "T") or (t_part is None and days is None):
        # "PT" alone or "P" alone: a T must introduce at least one component, and P needs one
        raise ValueError(f"`{text}` is not an ISO-8601 duration")
    total = Decimal(0)
    total += Decimal(int(days or 0)) * 86400
    total += Decimal(int(hours or 0)) * 3600
    total += Decimal(int(minutes or 0)) * 60
    if seconds is not None:
        secs = Decimal(f"{seconds}.{fraction or '0'}")
        total += -secs if sec_sign == "-" else secs
    if sign == "-":
        total = -total
    micros = int((total * 1_000_000).to_integral_value(rounding="ROUND_DOWN"))
    return timedelta(microseconds=micros)


# --------------------------------------------------------------------------------------------------------
# Java regular expressions
# --------------------------------------------------------------------------------------------------------

# POSIX classes are ASCII-only in java.util.regex (without UNICODE_CHARACTER_CLASS): contents of a [...] set
_POSIX_CLASSES: dict[str, str] = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": r"\x00-\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": r"!-/:-@\[-`{-~",
    "Graph": r"!-~",
    "Print": r" -~",
    "Blank": r" \t",
    "Cntrl": r"\x00-\x1f\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": r" \t\n\x0b\f\r",
    "javaLowerCase": "a-z",
    "javaUpperCase": "A-Z",
}
# Unicode categories Python's `re` can express only as a whole pattern element (not inside [...])
_UNICODE_CLASSES: dict[str, tuple[str, str]] = {
    # name: (positive, negative)
    "L": (r"[^\W\d_]", r"[\W\d_]"),
    "IsL": (r"[^\W\d_]", r"[\W\d_]"),
    "IsLetter": (r"[^\W\d_]", r"[\W\d_]"),
    "IsAlphabetic": (r"[^\W\d_]", r"[\W\d_]"),
    "N": (r"\d", r"\D"),
    "Nd": (r"\d", r"\D"),
    "IsDigit": (r"\d", r"\D"),
}
_HSPACE = r" \t\xa0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000"
_JAVA_ONLY_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")


@functools.lru_cache(maxsize=512)
def java_regex(pattern: str) -> re.Pattern[str]:
    """Compile a ``java.util.regex`` pattern with Python's ``re``; use it with ``fullmatch``.

    Kestra validators are Java regexes matched against the whole value. Most syntax is shared (Python
    3.11 even has possessive quantifiers and atomic groups); the Java-only constructs translated here are
    ``\\p{Alpha}``-style POSIX classes, a few Unicode categories (``\\p{L}``, ``\\p{N}``), ``\\Q…\\E``
    quoting, ``\\z``/``\\Z``, ``\\h``, ``\\R``, ``\\e``, ``\\x{…}``, ``(?<name>…)``/``\\k<name>``, nested
    character-class unions and the ``d``/``u``/``U`` inline flags. Character-class intersection
    (``&&``) is refused. Raises ``ValueError`` on anything that cannot be compiled.

    Known difference: ``\\d``/``\\w``/``\\s`` are Unicode-aware in Python but ASCII-only in Java.
    Compiled patterns are cached: validators are checked on every execution.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    depth = 0  # nesting of [...]; Java allows [a-z[0-9]] as a union, Python does not
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt in "pP":
                name, i = _read_braced(pattern, i + 2)
                name = name.removeprefix("Is") if name.removeprefix("Is") in _POSIX_CLASSES else name
                if name in _POSIX_CLASSES:
                    body = _POSIX_CLASSES[name]
                    if depth:
                        if nxt == "P":
                            raise ValueError(f"unsupported Java regex construct \\P{{{name}}} in a class")
                        out.append(body)
                    else:
                        out.append(f"[{'^' if nxt == 'P' else ''}{body}]")
                    continue
                if name in _UNICODE_CLASSES:
                    positive, negative = _UNICODE_CLASSES[name]
                    text = positive if nxt == "p" else negative
                    if depth and text.startswith("["):
                        raise ValueError(f"unsupported Java regex construct \\{nxt}{{{name}}} in a class")
                    out.append(text)
                    continue
                raise ValueError(f"unsupported Java regex construct \\{nxt}{{{name}}}")
            if nxt == "x" and i + 2 < n and pattern[i + 2] == "{":
                hexa, i = _read_braced(pattern, i + 2)
                out.append(f"\\U{int(hexa, 16):08x}")
                continue
            if nxt == "k" and i + 2 < n and pattern[i + 2] == "<":
                end = pattern.index(">", i + 3)
                out.append(f"(?P={pattern[i + 3 : end]})")
                i = end + 1
                continue
            simple = {
                "z": r"\Z",
                "Z": r"(?=\n?\Z)",
                "e": r"\x1b",
                "h": _HSPACE if depth else f"[{_HSPACE}]",
                "H": f"[^{_HSPACE}]",
                "R": r"(?:\r\n|[\n\x0b\f\r\x85\u2028\u2029])",
            }
            if nxt in simple and not (depth and nxt in "zZHR"):
                out.append(simple[nxt])
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if depth:
            if ch == "&" and pattern.startswith("&&", i):
                raise ValueError("unsupported Java regex construct: character class intersection (&&)")
            if ch == "[":
                if pattern.startswith("[^", i):
                    raise ValueError("unsupported Java regex construct: negated nested character class")
                depth += 1
                i += 1
                continue
            if ch == "]":
                depth -= 1
                if depth == 0:
                    out.append("]")
                i += 1
                continue
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            depth = 1
            out.append("[")
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ] is literal in both dialects
                out.append(r"\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("(?<", i) and i + 3 < n and pattern[i + 3] not in "=!":
            out.append("(?P<")
            i += 3
            continue
        if ch == "(" and pattern.startswith("(?", i):
            flags = _JAVA_ONLY_FLAGS.match(pattern, i)
            if flags is not None:
                on = flags.group(1).replace("d", "").replace("u", "").replace("U", "")
                off = (flags.group(2) or "").replace("d", "").replace("u", "").replace("U", "")
                closer = flags.group(3)
                if on or off:
                    out.append(f"(?{on}{'-' + off if off else ''}{closer}")
                elif closer == ":":
                    out.append("(?:")
                i = flags.end()
                continue
        out.append(ch)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise ValueError(f"invalid regular expression `{pattern}`: {exc}") from None


def _read_braced(pattern: str, start: int) -> tuple[str, int]:
    """Read ``{name}`` (or the single letter of ``\\pL``) at ``start``; return it and the next index."""
    if start < len(pattern) and pattern[start] == "{":
        end = pattern.find("}", start)
        if end < 0:
            raise ValueError(f"unclosed `{{` in regular expression `{pattern}`")
        return pattern[start + 1 : end], end + 1
    if start < len(pattern):
        return pattern[start], start + 1
    raise ValueError(f"dangling escape in regular expression `{pattern}`")


# --------------------------------------------------------------------------------------------------------
# Annotated field types
# --------------------------------------------------------------------------------------------------------


def _lenient(
    parse: Callable[[str], Any],
    what: str,
    accepted: type | tuple[type, ...],
    refused: type | tuple[type, ...] = (),
    normalise: Callable[[Any], Any] | None = None,
) -> Callable[[Any], Any]:
    """A ``BeforeValidator`` for a temporal bound: text is parsed the Java way, a YAML-native value of the
    ``accepted`` type is kept (``normalise``-d), anything else is refused with Kestra's wording.

    One factory for the four bound types, so they cannot drift apart in what they accept.
    """

    def before(value: Any) -> Any:
        if isinstance(value, str):
            return parse(value)
        if isinstance(value, accepted) and not isinstance(value, refused):
            return value if normalise is None else normalise(value)
        raise ValueError(f"`{value}` is not an ISO-8601 {what}")

    return before


def _as_utc(value: datetime) -> datetime:
    """A YAML timestamp without a zone is UTC; an aware one is moved to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_instant_before = _lenient(parse_instant, "instant", datetime, normalise=_as_utc)
_date_before = _lenient(parse_local_date, "date", date, refused=datetime)  # a datetime is no date bound
_time_before = _lenient(parse_local_time, "time", time)
_duration_before = _lenient(parse_duration, "duration", timedelta)


def _scalar_to_str(value: Any) -> Any:
    """YAML ``values: [1, 2]`` are strings for Kestra (Jackson coerces scalars); keep that leniency."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


InstantValue = Annotated[
    datetime,
    BeforeValidator(_instant_before),
    PlainSerializer(format_instant, return_type=str, when_used="json"),
]
LocalDateValue = Annotated[date, BeforeValidator(_date_before)]
LocalTimeValue = Annotated[
    time,
    BeforeValidator(_time_before),
    PlainSerializer(format_local_time, return_type=str, when_used="json"),
]
DurationValue = Annotated[
    timedelta,
    BeforeValidator(_duration_before),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
ChoiceValue = Annotated[str, BeforeValidator(_scalar_to_str)]
ItemType = Literal[
    "STRING",
    "ENUM",
    "SELECT",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "FILE",
    "JSON",
    "YAML",
    "URI",
    "SECRET",
    "EMAIL",
]
"""Element types of ARRAY/MULTISELECT: any type but the list types themselves."""


# --------------------------------------------------------------------------------------------------------
# Input declarations
# --------------------------------------------------------------------------------------------------------


class DependsOn(Model):
    """``dependsOn``: the input is resolved after ``inputs`` and shown only when ``condition`` is true."""

    inputs: list[str] = Field(min_length=1)
    condition: str | None = None


class BaseInput(Model):
    """Fields every input type has. ``name`` (Kestra's pre-0.15 spelling of ``id``) is accepted."""

    id: str = Field(pattern=ID_PATTERN)
    type: str
    description: str | None = None
    display_name: str | None = Field(default=None, max_length=64)
    required: bool = True
    defaults: Any = None
    depends_on: DependsOn | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_name(cls, data: Any) -> Any:
        # Kestra still reads `name:` from old flows; both spellings at once is ambiguous.
        if isinstance(data, dict) and "name" in data:
            data = dict(data)
            name = data.pop("name")
            if "id" in data and data["id"] != name:
                raise ValueError("an input cannot define both `id` and `name` (deprecated alias of `id`)")
            data["id"] = name
        return data


class _Validated(BaseInput):
    """Shared by STRING and SECRET: an optional Java regex the whole value must match."""

    validator: str | None = None

    @field_validator("validator")
    @classmethod
    def _compilable(cls, value: str | None) -> str | None:
        # Fail when the flow is saved, not when somebody runs it.
        if value is not None:
            java_regex(value)
        return value


class StringInput(_Validated):
    type: Literal["STRING"] = "STRING"


class SecretInput(_Validated):
    """Stored encrypted by Kestra, decrypted when rendered; see ``resolve_inputs(encrypt=...)``."""

    type: Literal["SECRET"] = "SECRET"


class EnumInput(BaseInput):
    """Deprecated by Kestra in favour of SELECT; still valid in flows."""

    type: Literal["ENUM"] = "ENUM"
    values: list[ChoiceValue] = Field(min_length=1)


class _Choices(BaseInput):
    """Shared by SELECT and MULTISELECT: the allowed values, listed or computed by an expression."""

    values: list[ChoiceValue] | None = None
    expression: str | None = None
    allow_custom_value: bool = False

    @model_validator(mode="after")
    def _has_choices(self) -> Self:
        if self.values is None and self.expression is None:
            raise ValueError(f"a {self.type} input needs `values` or `expression`")
        return self


class SelectInput(_Choices):
    type: Literal["SELECT"] = "SELECT"
    is_radio: bool = False


class MultiselectInput(_Choices):
    """``options`` is the deprecated name of ``values``; defining both is an error, as in Kestra."""

    type: Literal["MULTISELECT"] = "MULTISELECT"
    item_type: ItemType = "STRING"

    @model_validator(mode="before")
    @classmethod
    def _legacy_options(cls, data: Any) -> Any:
        if isinstance(data, dict) and "options" in data:
            data = dict(data)
            options = data.pop("options")
            if data.get("values") is not None:
                raise ValueError("you can't define both `values` and `options`")
            data["values"] = options
        return data


class IntInput(BaseInput):
    type: Literal["INT"] = "INT"
    min: int | None = None
    max: int | None = None


class FloatInput(BaseInput):
    type: Literal["FLOAT"] = "FLOAT"
    min: float | None = None
    max: float | None = None


class BooleanInput(BaseInput):
    type: Literal["BOOLEAN"] = "BOOLEAN"


class DateTimeInput(BaseInput):
    type: Literal["DATETIME"] = "DATETIME"
    after: InstantValue | None = None
    before: InstantValue | None = None


class DateInput(BaseInput):
    type: Literal["DATE"] = "DATE"
    after: LocalDateValue | None = None
    before: LocalDateValue | None = None


class TimeInput(BaseInput):
    type: Literal["TIME"] = "TIME"
    after: LocalTimeValue | None = None
    before: LocalTimeValue | None = None


class DurationInput(BaseInput):
    type: Literal["DURATION"] = "DURATION"
    min: DurationValue | None = None
    max: DurationValue | None = None


class FileInput(BaseInput):
    """``extension`` names content uploaded without a file name (Kestra's default ``.upl``)."""

    type: Literal["FILE"] = "FILE"
    extension: str = ".upl"

    @field_validator("extension")
    @classmethod
    def _dotted(cls, value: str) -> str:
        return value if value.startswith(".") else f".{value}"


class JsonInput(BaseInput):
    type: Literal["JSON"] = "JSON"


class YamlInput(BaseInput):
    type: Literal["YAML"] = "YAML"


class UriInput(BaseInput):
    type: Literal["URI"] = "URI"


class ArrayInput(BaseInput):
    type: Literal["ARRAY"] = "ARRAY"
    item_type: ItemType


class EmailInput(BaseInput):
    type: Literal["EMAIL"] = "EMAIL"


Input = Annotated[
    StringInput
    | EnumInput
    | SelectInput
    | MultiselectInput
    | IntInput
    | FloatInput
    | BooleanInput
    | DateTimeInput
    | DateInput
    | TimeInput
    | DurationInput
    | FileInput
    | JsonInput
    | YamlInput
    | UriInput
    | SecretInput
    | ArrayInput
    | EmailInput,
    Field(discriminator="type"),
]
"""Any input declaration; use ``list[Input]`` (or ``TypeAdapter(list[Input])``) to parse ``inputs:``."""


class Output(Model):
    """A flow output: ``value`` (usually an expression) is rendered at the end, then typed like an input.

    ``required`` (post-snapshot Kestra) defaults to true: a required output that renders to null fails.
    """

    id: str = Field(pattern=ID_PATTERN)
    type: InputType
    value: Any
    description: str | None = None
    display_name: str | None = Field(default=None, max_length=64)
    required: bool = True
