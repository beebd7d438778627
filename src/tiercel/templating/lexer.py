"""Split Pebble template text into text, ``{{ }}``, ``{% %}`` and ``{# #}`` pieces, and tokenize expressions.

Jinja's own lexer cannot read Pebble: it rejects ``?`` (ternary, ``??``) and knows neither ``#{}``
string interpolation nor ``{% verbatim %}``. So Pebble source is lexed here, parsed by
:mod:`tiercel.templating.translate`, and only the translated Jinja source reaches Jinja.

The rules follow Pebble's lexer: operators are matched before names (so ``or`` inside ``order`` stays
a name), strings unescape only ``\\\\`` and their own quote, and ``}}`` closes a print only when every
bracket opened inside it is closed (so ``{{ {'a': {'b': 1}} }}`` works).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tiercel.errors import TemplateError

__all__ = ["PebbleSyntaxError", "Segment", "Token", "count_lines", "split_template"]

_OPENER = re.compile(r"\{[{%#]")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_SPACE = re.compile(r"\s+")
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d+(\.\d+)?([lL])?")
_RAW_START = re.compile(r"\s*(raw|verbatim)\s*(-?)%\}")
_RAW_END = {
    "raw": re.compile(r"\{%(-?)\s*endraw\s*(-?)%\}"),
    "verbatim": re.compile(r"\{%(-?)\s*endverbatim\s*(-?)%\}"),
}
# Longest first, as Pebble sorts its operator table by length.
_OPERATORS = (
    "???", "??", "..", "==", "!=", "<=", ">=",
    "?", ":", ".", "<", ">", "+", "-", "*", "/", "%", "~", "|", "=", ",",
    "(", ")", "[", "]", "{", "}",
)  # fmt: skip
_PAIRS = {"(": ")", "[": "]", "{": "}"}


class PebbleSyntaxError(TemplateError):
    """The template is not valid Pebble; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(slots=True)
class Token:
    """One expression token. ``kind`` is ``name``, ``num``, ``str``, ``istr`` or ``op``.

    ``istr`` (a double-quoted string with ``#{...}``) holds a list of ``str`` parts and token lists.
    """

    kind: str
    value: Any
    line: int


@dataclass(slots=True)
class Segment:
    """A piece of the template.

    ``kind`` is ``text``, ``print``, ``tag``, ``comment`` or ``verbatim``. ``lstrip``/``rstrip`` are
    Pebble's ``{{-`` / ``-}}`` whitespace control; ``newlines`` counts the line breaks inside the
    delimiters, so the translation can keep every line where it was.
    """

    kind: str
    line: int
    text: str = ""
    tokens: list[Token] = field(default_factory=list)
    lstrip: bool = False
    rstrip: bool = False
    newlines: int = 0


def count_lines(text: str) -> int:
    """Line breaks in ``text``, counted the way Jinja counts them."""
    if "\n" not in text and "\r" not in text:
        return 0
    return len(_NEWLINES.findall(text))


def split_template(source: str) -> list[Segment]:
    """Cut ``source`` into segments; raises :class:`PebbleSyntaxError` on unclosed delimiters."""
    segments: list[Segment] = []
    pos, line = 0, 1
    while True:
        match = _OPENER.search(source, pos)
        if match is None:
            if pos < len(source):
                segments.append(Segment("text", line, source[pos:]))
            return segments
        if match.start() > pos:
            text = source[pos : match.start()]
            segments.append(Segment("text", line, text))
            line += count_lines(text)
        kind = source[match.start() + 1]
        start = match.end()
        lstrip = source.startswith("-", start)
        if lstrip:
            start += 1
        if kind == "#":
            pos, segment = _comment(source, start, line)
        elif kind == "{":
            pos, segment = _expression(source, start, line, "print")
        else:
            raw = _RAW_START.match(source, start)
            if raw is not None:
                pos, segment = _verbatim(source, raw, line)
            else:
                pos, segment = _expression(source, start, line, "tag")
        segment.lstrip = lstrip
        segment.newlines = count_lines(source[match.start() : pos])
        segments.append(segment)
        line += segment.newlines


def _comment(source: str, start: int, line: int) -> tuple[int, Segment]:
    end = source.find("#}", start)
    if end < 0:
        raise PebbleSyntaxError("Unclosed comment", line)
    return end + 2, Segment("comment", line, rstrip=end > start and source[end - 1] == "-")


def _verbatim(source: str, raw: re.Match[str], line: int) -> tuple[int, Segment]:
    end = _RAW_END[raw.group(1)].search(source, raw.end())
    if end is None:
        raise PebbleSyntaxError(f"Unclosed {raw.group(1)} tag", line)
    return end.end(), Segment("verbatim", line, source[raw.end() : end.start()])


def _expression(source: str, start: int, line: int, kind: str) -> tuple[int, Segment]:
    closer = "}}" if kind == "print" else "%}"
    tokens, pos, rstrip, _ = _tokenize(source, start, line, closer)
    return pos, Segment(kind, line, tokens=tokens, rstrip=rstrip)


def _tokenize(source: str, pos: int, line: int, closer: str) -> tuple[list[Token], int, bool, int]:
    """Tokens up to ``closer`` at bracket depth zero; returns them, the end, the trim flag, the line."""
    tokens: list[Token] = []
    stack: list[str] = []
    size = len(source)
    while True:
        space = _SPACE.match(source, pos)
        if space is not None:
            line += count_lines(space.group())
            pos = space.end()
        if pos >= size:
            raise PebbleSyntaxError(f"Unclosed expression, expected '{closer}'", line)
        if not stack:
            if source.startswith(closer, pos):
                return tokens, pos + len(closer), False, line
            if source.startswith("-" + closer, pos):
                return tokens, pos + 1 + len(closer), True, line
        char = source[pos]
        if char in "'\"":
            token, pos, line = _string(source, pos, line)
            tokens.append(token)
            continue
        name = _NAME.match(source, pos)
        if name is not None:
            tokens.append(Token("name", name.group(), line))
            pos = name.end()
            continue
        number = _NUMBER.match(source, pos)
        if number is not None:
            text = number.group()
            value: int | float = float(text) if number.group(1) else int(text.rstrip("lL"))
            tokens.append(Token("num", value, line))
            pos = number.end()
            continue
        for operator in _OPERATORS:
            if source.startswith(operator, pos):
                break
        else:
            raise PebbleSyntaxError(f"Unexpected character [{char}]", line)
        if operator in _PAIRS:
            stack.append(_PAIRS[operator])
        elif operator in (")", "]", "}"):
            if not stack:
                if closer == "}" and operator == "}":
                    return tokens, pos + 1, False, line
                raise PebbleSyntaxError(f'Unexpected "{operator}"', line)
            expected = stack.pop()
            if expected != operator:
                raise PebbleSyntaxError(f'Unclosed "{expected}"', line)
        tokens.append(Token("op", operator, line))
        pos += len(operator)


def _string(source: str, pos: int, line: int) -> tuple[Token, int, int]:
    """A quoted string; double quotes may interpolate ``#{expression}``."""
    quote = source[pos]
    start_line = line
    parts: list[Any] = []
    chunk: list[str] = []
    pos += 1
    size = len(source)
    while True:
        if pos >= size:
            raise PebbleSyntaxError("Unclosed string literal", start_line)
        char = source[pos]
        if char == "\\" and pos + 1 < size:
            following = source[pos + 1]
            chunk.append(following if following in (quote, "\\") else char + following)
            pos += 2
            continue
        if char == quote:
            pos += 1
            break
        if quote == '"' and source.startswith("#{", pos):
            if chunk:
                parts.append("".join(chunk))
                chunk = []
            inner, pos, _, line = _tokenize(source, pos + 2, line, "}")
            if not inner:
                raise PebbleSyntaxError("Empty string interpolation", line)
            parts.append(inner)
            continue
        if char in "\r\n":
            line += 1 if char == "\n" or not source.startswith("\r\n", pos) else 0
        chunk.append(char)
        pos += 1
    if chunk or not parts:
        parts.append("".join(chunk))
    if len(parts) == 1 and isinstance(parts[0], str):
        return Token("str", parts[0], start_line), pos, line
    return Token("istr", parts, start_line), pos, line
