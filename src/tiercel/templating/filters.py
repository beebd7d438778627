"""Filters: Pebble's built-ins plus Kestra's additions, under Kestra's (camelCase) names.

Conventions shared by all of them, as in Pebble: a ``null`` input gives ``null`` back (unless the
filter is about null, like ``default`` or ``toJson``), an undefined input or argument raises the
strict "unable to find" error, and misuse raises :class:`TemplateError` rather than a Python
exception. Argument names match Pebble's so named arguments (``date(format="...")``) work.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import html
import re
import unicodedata
from collections.abc import Callable, Mapping, Set
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import jq
import yaml
from babel.numbers import format_decimal
from jinja2 import Undefined

from tiercel.errors import TemplateError
from tiercel.templating import dates
from tiercel.templating.ion import to_ion
from tiercel.templating.limits import MAX_OUTPUT_CHARS
from tiercel.templating.operators import is_empty, pebble_equals
from tiercel.templating.values import java_text, plain, to_json, to_text

__all__ = ["FILTERS", "java_split"]

FILTERS: dict[str, Callable[..., Any]] = {}


def _filter(*names: str, nulls: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a filter; unless ``nulls``, a ``None`` input short-circuits to ``None``."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def strict(value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            for argument in (*args, *kwargs.values()):
                if isinstance(argument, Undefined):
                    argument._fail_with_undefined_error()
            if value is None and not nulls:
                return None
            try:
                return function(value, *args, **kwargs)
            except TypeError as exc:
                raise TemplateError(
                    f"Invalid input or arguments for the filter '{names[0]}': {exc}"
                ) from None

        for name in names:
            FILTERS[name] = strict
        return function

    return register


def _require_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"The '{name}' filter can only be applied to strings")
    return value


def _capped(text: str) -> str:
    if len(text) > MAX_OUTPUT_CHARS:
        raise TemplateError(f"The rendered value exceeds the limit of {MAX_OUTPUT_CHARS} characters")
    return text


# -- strings ---------------------------------------------------------------------------------------


@_filter("upper")
def _upper(value: Any) -> str:
    return to_text(value).upper()


@_filter("lower")
def _lower(value: Any) -> str:
    return to_text(value).lower()


@_filter("capitalize")
def _capitalize(value: Any) -> str:
    text = to_text(value)
    return text[:1].upper() + text[1:]


@_filter("title")
def _title(value: Any) -> str:
    out: list[str] = []
    capitalize_next = True
    for char in to_text(value):
        if char.isspace():
            capitalize_next = True
        elif capitalize_next:
            char = char.title()
            capitalize_next = False
        out.append(char)
    return "".join(out)


@_filter("trim")
def _trim(value: Any) -> str:
    return to_text(value).strip()


@_filter("abbreviate")
def _abbreviate(value: Any, length: int) -> str:
    text = to_text(value)
    if length < 4 and len(text) > length:
        raise TemplateError("The 'abbreviate' filter needs a length of at least 4")
    return text if len(text) <= length else text[: length - 3] + "..."


@_filter("startsWith")
def _starts_with(value: Any, prefix: str) -> bool:
    return to_text(value).startswith(to_text(prefix))


@_filter("endsWith")
def _ends_with(value: Any, suffix: str) -> bool:
    return to_text(value).endswith(to_text(suffix))


@_filter("substringBefore")
def _substring_before(value: Any, separator: str) -> str:
    text = to_text(value)
    index = text.find(separator)
    return text if index < 0 else text[:index]


@_filter("substringBeforeLast")
def _substring_before_last(value: Any, separator: str) -> str:
    text = to_text(value)
    index = text.rfind(separator) if separator else -1
    return text if index < 0 else text[:index]


@_filter("substringAfter")
def _substring_after(value: Any, separator: str) -> str:
    text = to_text(value)
    index = text.find(separator)
    return "" if index < 0 else text[index + len(separator) :]


@_filter("substringAfterLast")
def _substring_after_last(value: Any, separator: str) -> str:
    text = to_text(value)
    index = text.rfind(separator) if separator else -1
    return "" if index < 0 or index + len(separator) == len(text) else text[index + len(separator) :]


def _java_replacement(replacement: str) -> str:
    """Java's ``$1``/``${name}`` group references in Python's ``re.sub`` syntax."""
    out: list[str] = []
    index = 0
    while index < len(replacement):
        char = replacement[index]
        if char == "\\" and index + 1 < len(replacement):
            out.append(replacement[index + 1].replace("\\", "\\\\"))
            index += 2
        elif char == "$":
            match = re.match(r"\$(\d+|\{(\w+)\})", replacement[index:])
            if match is None:
                raise TemplateError(f"Illegal group reference in '{replacement}'")
            out.append(f"\\g<{match.group(2) or match.group(1)}>")
            index += match.end()
        else:
            out.append("\\\\" if char == "\\" else char)
            index += 1
    return "".join(out)


def _replace_text(text: str, pairs: Mapping[Any, Any], regexp: bool) -> str:
    for search, replacement in pairs.items():
        if regexp:
            try:
                text = re.sub(to_text(search), _java_replacement(to_text(replacement)), text)
            except re.error as exc:
                raise TemplateError(f"Invalid regular expression '{search}': {exc}") from None
        else:
            text = text.replace(to_text(search), to_text(replacement))
        _capped(text)
    return text


def _replace_deep(value: Any, pairs: Mapping[Any, Any], regexp: bool) -> Any:
    if isinstance(value, Mapping):
        return {key: _replace_deep(item, pairs, regexp) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_deep(item, pairs, regexp) for item in value]
    return _replace_text(to_text(value), pairs, regexp)


@_filter("replace")
def _replace(value: Any, replace_pairs: Any, regexp: Any = False, *more: Any) -> Any:
    """``replace({'a': 'b'})`` (Pebble/Kestra, ``regexp=true`` for patterns) or ``replace('a', 'b')``."""
    if isinstance(replace_pairs, Mapping):
        if not isinstance(regexp, bool):
            raise TemplateError("The 'replace' filter expects a boolean 'regexp' argument")
        return _replace_deep(value, replace_pairs, regexp)
    if isinstance(replace_pairs, str) and isinstance(regexp, str):
        use_regexp = bool(more and more[0] is True)
        return _replace_deep(value, {replace_pairs: regexp}, use_regexp)
    raise TemplateError("The 'replace' filter expects a map of replacements, e.g. replace({'a': 'b'})")


_REGEX_SPECIALS = frozenset(".$|()[{^?*+\\")


def java_split(text: str, delimiter: str, limit: int = 0) -> list[str]:
    """``String.split`` with Java's rules: ``delimiter`` is a regex, trailing empty strings dropped."""
    literal = (len(delimiter) == 1 and delimiter not in _REGEX_SPECIALS) or (
        len(delimiter) == 2 and delimiter[0] == "\\" and not delimiter[1].isalnum()
    )
    try:
        pattern = re.compile(re.escape(delimiter[-1]) if literal else delimiter)
    except re.error as exc:
        raise TemplateError(f"Invalid split pattern '{delimiter}': {exc}") from None
    pieces: list[str] = []
    index = 0
    for match in pattern.finditer(text):
        if 0 < limit <= len(pieces) + 1:
            break
        if match.end() == 0:
            continue
        pieces.append(text[index : match.start()])
        index = match.end()
    if not pieces and index == 0:
        return [text]
    pieces.append(text[index:])
    if limit == 0:
        while pieces and pieces[-1] == "":
            pieces.pop()
    return pieces


@_filter("split")
def _split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    return java_split(to_text(value), delimiter, 0 if limit is None else int(limit))


@_filter("escapeChar")
def _escape_char(value: Any, type: str) -> Any:
    replacements = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}
    pair = replacements.get(str(type).lower())
    if pair is None:
        raise TemplateError(
            "The 'escapeChar' filter expects the value of 'type' to be either 'single', 'double', or 'shell'."
        )
    return _replace_deep(value, {pair[0]: pair[1]}, False)


def _line_separator(text: str) -> str:
    for separator in ("\r\n", "\n\r", "\n", "\r"):
        if separator in text:
            return separator
    return "\n"


def _indented(value: Any, amount: int, prefix: str, name: str, leading: bool) -> str:
    text = to_text(value)
    if not text:
        return text
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise TemplateError(f"The '{name}' filter expects a positive integer >=0 as argument 'amount'.")
    separator = _line_separator(text)
    if leading:
        text = separator + text
    return _capped(text.replace(separator, separator + prefix * amount))


@_filter("indent")
def _indent(value: Any, amount: int, prefix: str = " ") -> str:
    return _indented(value, amount, prefix, "indent", leading=False)


@_filter("nindent")
def _nindent(value: Any, amount: int, prefix: str = " ") -> str:
    return _indented(value, amount, prefix, "nindent", leading=True)


@_filter("slugify")
def _slugify(value: Any) -> str:
    text = unicodedata.normalize("NFKD", to_text(value)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@_filter("urlencode")
def _urlencode(value: Any) -> str:
    return quote_plus(to_text(value), safe="*").replace("~", "%7E")


@_filter("urldecode")
def _urldecode(value: Any) -> str:
    return unquote_plus(to_text(value))


@_filter("escape")
def _escape(value: Any, strategy: str = "html") -> str:
    return html.escape(to_text(value))


@_filter("raw")
def _raw(value: Any) -> Any:
    return value


@_filter("string")
def _string(value: Any) -> str:
    return java_text(value)


# -- encodings and digests -------------------------------------------------------------------------


@_filter("base64encode")
def _base64encode(value: Any) -> str:
    return base64.b64encode(to_text(value).encode("utf-8")).decode("ascii")


@_filter("base64decode")
def _base64decode(value: Any) -> str:
    try:
        return base64.b64decode(to_text(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TemplateError("The 'base64decode' filter expects valid base64 text") from None


def _digest(algorithm: str) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        return hashlib.new(algorithm, to_text(value).encode("utf-8")).hexdigest()

    return digest


for _name, _algorithm in (("md5", "md5"), ("sha1", "sha1"), ("sha256", "sha256"), ("sha512", "sha512")):
    _filter(_name)(_digest(_algorithm))


# -- serialization ---------------------------------------------------------------------------------


@_filter("toJson", "json", "jsonEncode", nulls=True)
def _to_json(value: Any) -> str:
    return to_json(value)


@_filter("toIon", nulls=True)
def _to_ion(value: Any) -> str:
    return to_ion(value)


class _YamlDumper(yaml.SafeDumper):
    """Indents list items under their key, as Kestra's YAML writer (``INDENT_ARRAYS``) does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


@_filter("yaml", "toYaml", nulls=True)
def _to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    return yaml.dump(plain(value), Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, width=2**31)


@functools.lru_cache(maxsize=256)
def _jq_program(expression: str) -> Any:
    return jq.compile(expression)


@_filter("jq")
def _jq(value: Any, expression: str) -> list[Any]:
    """Kestra's ``jq``: strings are read as JSON first; the result is always a list."""
    try:
        program = _jq_program(expression)
        if isinstance(value, str):
            return list(program.input_text(value).all())
        return list(program.input_value(plain(value)).all())
    except ValueError as exc:
        raise TemplateError(f"Unable to apply the jq expression '{expression}': {exc}") from None


# -- numbers ---------------------------------------------------------------------------------------


@_filter("abs")
def _abs(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TemplateError("The 'abs' filter expects a number")
    return abs(value)


_NUMBER_TYPES: dict[str, Callable[[str], Any]] = {
    "INT": int,
    "LONG": int,
    "BIGINTEGER": int,
    "FLOAT": float,
    "DOUBLE": float,
    "BIGDECIMAL": Decimal,
}


@_filter("number")
def _number(value: Any, type: str | None = None) -> Any:
    """Parse a string into a number: ``INT``/``LONG``/``FLOAT``/``DOUBLE``/``BIGDECIMAL``... or guess."""
    text = _require_str(value, "number").strip()
    try:
        if type:
            parse = _NUMBER_TYPES.get(str(type).upper())
            if parse is None:
                raise TemplateError(f"Unknown number type '{type}'")
            return parse(text.rstrip("lLfFdD") if parse is not Decimal else text)
        if re.fullmatch(r"[+-]?\d+[lL]?", text):
            return int(text.rstrip("lL"))
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        return float(text.rstrip("fFdD"))
    except (ValueError, InvalidOperation):
        raise TemplateError(f"{text} is not a valid number.") from None


@_filter("numberformat")
def _numberformat(value: Any, format: str | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TemplateError("The 'numberformat' filter expects a number")
    try:
        return str(format_decimal(value, format=format, locale="en_US"))
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"Invalid number format '{format}': {exc}") from None


# -- dates -----------------------------------------------------------------------------------------


@_filter("date")
def _date(
    value: Any,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    return dates.format_date(value, format, timeZone, existingFormat, locale)


@_filter("dateAdd")
def _date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    return dates.date_add(value, amount, unit, format, timeZone, existingFormat, locale)


def _timestamp(per_second: int) -> Callable[..., int]:
    def timestamp(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> int:
        return dates.epoch(value, per_second, timeZone, existingFormat)

    return timestamp


for _name, _per_second in (
    ("timestamp", 1),
    ("timestampMilli", 1_000),
    ("timestampMicro", 1_000_000),
    ("timestampNano", 1_000_000_000),
):
    _filter(_name)(_timestamp(_per_second))


# -- collections -----------------------------------------------------------------------------------


def _sequence(value: Any, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Set):
        return list(value)
    raise TemplateError(f"The '{name}' filter can only be applied to lists")


@_filter("default", nulls=True)
def _default(value: Any, default: Any = None) -> Any:
    return default if is_empty(value) else value


FILTERS["default"] = _default  # undefined values are exactly what 'default' is for


@_filter("first")
def _first(value: Any) -> Any:
    if isinstance(value, str):
        return value[:1] or None
    items = _sequence(value, "first")
    return items[0] if items else None


@_filter("last")
def _last(value: Any) -> Any:
    if isinstance(value, str):
        return value[-1:] or None
    items = _sequence(value, "last")
    return items[-1] if items else None


@_filter("length", nulls=True)
def _length(value: Any) -> int:
    if isinstance(value, (str, Mapping, list, tuple, Set)):
        return len(value)
    return 0


@_filter("join")
def _join(value: Any, separator: str = "") -> str:
    if isinstance(value, Mapping):
        value = list(value)
    return _capped(to_text(separator).join(java_text(item) for item in _sequence(value, "join")))


@_filter("reverse")
def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    return _sequence(value, "reverse")[::-1]


def _sorted(value: Any, name: str, descending: bool) -> list[Any]:
    try:
        return sorted(_sequence(value, name), reverse=descending)
    except TypeError:
        raise TemplateError(f"The '{name}' filter can only sort values of one comparable type") from None


@_filter("sort")
def _sort(value: Any) -> list[Any]:
    return _sorted(value, "sort", descending=False)


@_filter("rsort")
def _rsort(value: Any) -> list[Any]:
    return _sorted(value, "rsort", descending=True)


@_filter("slice")
def _slice(value: Any, fromIndex: int = 0, toIndex: int | None = None) -> Any:
    items: Any = value if isinstance(value, str) else _sequence(value, "slice")
    end = len(items) if toIndex is None else toIndex
    if not 0 <= fromIndex <= end <= len(items):
        raise TemplateError(f"Invalid slice [{fromIndex}, {end}] of a value of length {len(items)}")
    return items[fromIndex:end]


@_filter("merge")
def _merge(value: Any, items: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(items, Mapping):
        return {**value, **items}
    if isinstance(value, (list, tuple)):
        return [*value, *items] if isinstance(items, (list, tuple, Set)) else [*value, items]
    raise TemplateError("The 'merge' filter merges two lists or two maps")


@_filter("keys")
def _keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, (list, tuple)):
        return list(range(len(value)))
    raise TemplateError("The 'keys' filter can only be applied to maps")


@_filter("values")
def _values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    raise TemplateError("The 'values' filter can only be applied to maps")


@_filter("chunk")
def _chunk(value: Any, size: int) -> list[list[Any]]:
    if isinstance(size, bool) or not isinstance(size, (int, float)) or int(size) <= 0:
        raise TemplateError("'chunk' filter argument 'size' must be a positive number")
    items = _sequence(value, "chunk")
    step = int(size)
    return [items[index : index + step] for index in range(0, len(items), step)]


@_filter("flatten")
def _flatten(value: Any) -> list[Any]:
    flat: list[Any] = []
    for item in _sequence(value, "flatten"):
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    return flat


@_filter("distinct")
def _distinct(value: Any) -> list[Any]:
    unique: list[Any] = []
    for item in _sequence(value, "distinct"):
        if not any(pebble_equals(item, seen) for seen in unique):
            unique.append(item)
    return unique


_JAVA_CLASSES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "java.lang.Boolean"),
    (str, "java.lang.String"),
    (float, "java.lang.Double"),
    (Decimal, "java.math.BigDecimal"),
    (Mapping, "java.util.LinkedHashMap"),
    ((list, tuple), "java.util.ArrayList"),
    (Set, "java.util.LinkedHashSet"),
    (dt.timedelta, "java.time.Duration"),
    (dt.time, "java.time.LocalTime"),
)


@_filter("className")
def _class_name(value: Any) -> str:
    """The Java class Kestra would hold for this value (``java.lang.String``...)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "java.lang.Integer" if -(2**31) <= value < 2**31 else "java.lang.Long"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return "java.time.LocalDateTime"
        return "java.time.Instant" if not value.utcoffset() else "java.time.ZonedDateTime"
    if isinstance(value, dt.date):
        return "java.time.LocalDate"
    for kind, name in _JAVA_CLASSES:
        if isinstance(value, kind):
            return name
    return type(value).__name__
