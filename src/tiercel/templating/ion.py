"""A small Amazon Ion *text* writer and reader for ``toIon`` and ``fromIon``.

Kestra stores task outputs and internal files as Ion, so templates sometimes convert to and from
it. Only the JSON-like part of Ion is handled: structs, lists, strings, symbols, numbers, booleans,
nulls, and timestamps read back as strings. Annotations (``a::``) and comments are skipped on
input; blobs, clobs and S-expressions are refused with a clear error.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Set
from decimal import Decimal, InvalidOperation
from typing import Any

from tiercel.errors import TemplateError
from tiercel.templating.values import Entry, fail_if_undefined, java_duration, java_temporal

__all__ = ["from_ion", "to_ion"]

_SYMBOL = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_KEYWORDS = frozenset({"true", "false", "null", "nan"})


def to_ion(value: Any) -> str:
    """Compact Ion text, like Jackson's Ion mapper (``{a:1,'b-c':"x"}``)."""
    fail_if_undefined(value)
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "+inf" if value > 0 else "-inf"
        return f"{value!r}e0" if "e" not in repr(value) else repr(value)
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text if "." in text else text + "."
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _string(java_temporal(value))
    if isinstance(value, dt.timedelta):
        return _string(java_duration(value))
    if isinstance(value, Entry):
        return to_ion({value.key: value.value})
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_field(str(k))}:{to_ion(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, Set)):
        return "[" + ",".join(to_ion(item) for item in value) + "]"
    return _string(str(value))


def _field(name: str) -> str:
    if _SYMBOL.match(name) and name not in _KEYWORDS:
        return name
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        .replace("\t", "\\t")
    )  # fmt: skip
    return f'"{escaped}"'


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
    |(?P<long>'''(?:[^'\\]|\\.|'(?!''))*''')
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<quoted>'(?:[^'\\]|\\.)*')
    |(?P<timestamp>\d{4}-\d{2}(?:-\d{2})?(?:T[0-9:.]*(?:Z|[+-]\d{2}:\d{2})?)?(?![\w.]))
    |(?P<number>[+-]?(?:inf|\d[\d_]*(?:\.[\d_]*)?(?:[eEdD][+-]?\d+)?))
    |(?P<symbol>[A-Za-z_$][A-Za-z0-9_$.]*)
    |(?P<punct>::|[{}\[\](),:])
    """,
    re.VERBOSE | re.DOTALL,
)


def from_ion(text: str) -> Any:
    """Read one Ion text value into Python (structs become dicts)."""
    fail_if_undefined(text)
    if text is None:
        return None
    if not isinstance(text, str):
        raise TemplateError("The 'fromIon' function expects a string")
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text) if m.lastgroup != "space"]
    consumed = sum(len(m.group()) for m in _TOKEN.finditer(text))
    if consumed != len(text):
        raise TemplateError("Invalid Ion text")
    reader = _Reader(tokens)
    value = reader.value()
    if reader.pos != len(tokens):
        raise TemplateError("Unexpected content after the Ion value")
    return value


class _Reader:
    def __init__(self, tokens: list[tuple[str | None, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _next(self) -> tuple[str | None, str]:
        if self.pos >= len(self.tokens):
            raise TemplateError("Unexpected end of Ion text")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def value(self) -> Any:
        kind, text = self._next()
        while self._peek() == "::":  # annotation: skip it and read the annotated value
            self.pos += 1
            kind, text = self._next()
        if kind == "punct":
            if text == "{":
                return self._struct()
            if text == "[":
                return self._list()
            raise TemplateError(f"Unsupported Ion syntax near '{text}'")
        if kind in ("string", "long"):
            return _unescape(text[3:-3] if kind == "long" else text[1:-1])
        if kind == "quoted":
            return _unescape(text[1:-1])
        if kind == "timestamp":
            return text
        if kind == "number":
            return _number(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "nan":
            return math.nan
        if text == "null" or text.startswith("null."):
            return None
        return text

    def _struct(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self._peek() != "}":
            kind, name = self._next()
            key = _unescape(name[1:-1]) if kind in ("string", "quoted") else name
            if self._next()[1] != ":":
                raise TemplateError("Expected ':' in an Ion struct")
            result[key] = self.value()
            if self._peek() == ",":
                self.pos += 1
        self.pos += 1
        return result

    def _list(self) -> list[Any]:
        result: list[Any] = []
        while self._peek() != "]":
            result.append(self.value())
            if self._peek() == ",":
                self.pos += 1
        self.pos += 1
        return result


def _number(text: str) -> Any:
    clean = text.replace("_", "")
    if clean.endswith("inf"):
        return -math.inf if clean.startswith("-") else math.inf
    try:
        if any(c in clean for c in "eE"):
            return float(clean)
        if any(c in clean for c in "dD."):
            return Decimal(clean.replace("d", "e").replace("D", "e"))
        return int(clean)
    except (ValueError, InvalidOperation):
        raise TemplateError(f"Invalid Ion number: {text}") from None


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return text.encode("latin-1", "backslashreplace").decode("unicode-escape")
