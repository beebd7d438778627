"""Translate Pebble templates into Jinja source that behaves like Pebble.

Pebble and Jinja look alike but differ in ways flows depend on, so expressions are re-parsed with
Pebble's grammar and precedence table and re-emitted as fully parenthesised Jinja:

* ``a ? b : c``, ``??``, ``???``, ``contains``, ``equals``, ``in``, ``..`` and ``#{}`` interpolation
  do not exist in Jinja; they become calls of private helper filters (``__pb_*``);
* precedence differs: in Pebble ``~`` binds tighter than ``|`` and unary ``not`` binds tighter than
  every binary operator, so ``not a == b`` means ``(not a) == b``;
* ``==``, ``+``, ``/`` ... follow Java/Pebble rules (``1 == 1.0``, ``7 / 2 == 3``, ``'a' + 1 == 'a1'``);
* functions are emitted as ``none|__pbf_name(...)`` filters: filters are bound when the template is
  compiled, so a render needs no globals dictionary and functions never reach user data;
* every attribute access becomes a subscript so that ``outputs.x.values`` reads the key
  ``values`` and never the ``dict.values`` method.

Each emitted tag keeps as many line breaks as its source, so Jinja's line numbers are Pebble's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from tiercel.templating.lexer import PebbleSyntaxError, Segment, Token, count_lines, split_template

__all__ = ["RESULT_VAR", "Translation", "translate"]

RESULT_VAR = "__pb_result"

# Pebble's binary operators and precedences (higher binds tighter); Kestra adds ``??`` and ``???``.
_BINARY = {
    "or": 10, "and": 15, "is": 20, "is not": 20, "contains": 20, "in": 20, "not in": 20,
    "==": 30, "equals": 30, "!=": 30, "<": 30, ">": 30, "<=": 30, ">=": 30,
    "+": 40, "-": 40, "*": 60, "/": 60, "%": 60, "|": 100, "~": 110, "..": 120, "??": 120, "???": 120,
}  # fmt: skip
_UNARY_PRECEDENCE = 500
_HELPER = {
    "==": "__pb_eq", "equals": "__pb_eq", "<": "__pb_lt", ">": "__pb_gt", "<=": "__pb_le",
    ">=": "__pb_ge", "+": "__pb_add", "-": "__pb_sub", "*": "__pb_mul", "/": "__pb_div",
    "%": "__pb_mod", "~": "__pb_concat", "..": "__pb_range", "contains": "__pb_contains",
}  # fmt: skip
_WORD_OPERATORS = frozenset({"or", "and", "is", "contains", "equals", "in", "not"})
_UNSUPPORTED_TAGS = frozenset(
    {"include", "extends", "embed", "import", "from", "cache", "parallel", "flush", "autoescape",
     "macro", "block"}
)  # fmt: skip
_JINJA_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED_NAMES = frozenset({"self", "True", "False", "None"})


@dataclass(frozen=True, slots=True)
class Translation:
    """Jinja source for a Pebble template.

    ``expression`` is set when the template is a single ``{{ }}`` (whitespace around allowed); then
    ``typed_source`` evaluates it into :data:`RESULT_VAR` so callers get the native value.
    """

    source: str
    expression: str | None = None
    typed_source: str | None = None
    has_loops: bool = False


def translate(
    source: str, filters: Collection[str], tests: Collection[str], functions: Collection[str]
) -> Translation:
    """Translate ``source``; raises :class:`PebbleSyntaxError` with a Pebble-like message."""
    segments = split_template(source)
    writer = _Writer(filters, tests, functions, _assigned_names(segments))
    out: list[str] = []
    previous: Segment | None = None
    for index, segment in enumerate(segments):
        following = segments[index + 1] if index + 1 < len(segments) else None
        out.append(writer.segment(segment, previous, following))
        previous = segment
    writer.check_closed()
    jinja = "".join(out)
    meaningful = [s for s in segments if not (s.kind == "text" and not s.text.strip())]
    if len(meaningful) == 1 and meaningful[0].kind == "print":
        single = meaningful[0]
        expression = writer.expression(single.tokens, single.line)
        before = sum(count_lines(s.text) for s in segments[: segments.index(single)])
        typed = "\n" * before + f"{{% set {RESULT_VAR} = {expression} %}}"
        return Translation(jinja, expression, typed, writer.has_loops)
    return Translation(jinja, has_loops=writer.has_loops)


def _assigned_names(segments: list[Segment]) -> frozenset[str]:
    """Names targeted by ``{% set %}`` anywhere in the template."""
    names = set()
    for segment in segments:
        tokens = segment.tokens
        if (
            segment.kind == "tag"
            and len(tokens) > 1
            and tokens[0].kind == "name"
            and tokens[0].value == "set"
            and tokens[1].kind == "name"
        ):
            names.add(tokens[1].value)
    return frozenset(names)


def _string(value: str) -> str:
    """A Jinja string literal for ``value`` (real line breaks kept so line numbers stay right)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\r", "\\r")
    return f"'{escaped}'"


class _Writer:
    """Emits Jinja for each segment and tracks open blocks."""

    def __init__(
        self,
        filters: Collection[str],
        tests: Collection[str],
        functions: Collection[str],
        assigned: frozenset[str] = frozenset(),
    ) -> None:
        self.filters = filters
        self.tests = tests
        self.functions = functions
        self.assigned = assigned
        self.blocks: list[tuple[str, int]] = []
        self.has_loops = False

    def check_closed(self) -> None:
        if self.blocks:
            name, line = self.blocks[-1]
            raise PebbleSyntaxError(f"Unclosed '{name}' tag, expected 'end{name}'", line)

    def expression(self, tokens: list[Token], line: int) -> str:
        if not tokens:
            raise PebbleSyntaxError("Empty expression", line)
        parser = _Parser(tokens, line, self)
        result = parser.expression()
        parser.expect_end()
        return result

    def segment(self, segment: Segment, previous: Segment | None, following: Segment | None) -> str:
        kind = segment.kind
        if kind == "text":
            return self._text(segment, previous, following)
        pad = "\n" * segment.newlines
        left = "-" if segment.lstrip else ""
        right = "-" if segment.rstrip else ""
        if kind == "comment":
            return f"{{#{left}{pad}{right}#}}"
        if kind == "verbatim":
            extra = "\n" * max(0, segment.newlines - count_lines(segment.text))
            return f"{{{{ {_string(segment.text)} {extra}}}}}"
        if kind == "print":
            return f"{{{{{left} {self.expression(segment.tokens, segment.line)} {pad}{right}}}}}"
        if segment.tokens and segment.tokens[0].kind == "name" and segment.tokens[0].value == "set":
            # An assignment is a print of "" that stores the value, so that, as in Pebble, a set inside
            # a loop updates the variable seen after the loop (Jinja would scope it to the loop body).
            return f"{{{{{left} {self._set(segment.tokens[1:], segment.line)} {pad}{right}}}}}"
        return f"{{%{left} {self._tag(segment)} {pad}{right}%}}"

    def _text(self, segment: Segment, previous: Segment | None, following: Segment | None) -> str:
        text = segment.text
        if "\r" not in text:
            return text
        # Jinja rewrites every \r\n to \n in template data, so such text goes out as a string literal;
        # whitespace control is applied here because Jinja only trims data.
        if previous is not None and previous.rstrip and previous.kind != "verbatim":
            text = text.lstrip()
        if following is not None and following.lstrip and following.kind != "verbatim":
            text = text.rstrip()
        pad = "\n" * (count_lines(segment.text) - count_lines(text))
        return f"{{{{ {_string(text)} {pad}}}}}"

    def _tag(self, segment: Segment) -> str:
        tokens = segment.tokens
        line = segment.line
        if not tokens or tokens[0].kind != "name":
            raise PebbleSyntaxError("A tag must start with a tag name", line)
        name = tokens[0].value
        rest = tokens[1:]
        if name == "if":
            self.blocks.append(("if", line))
            return f"if {self._condition(rest, line)}"
        if name in ("elseif", "elif"):
            self._expect_open("if", name, line)
            return f"elif {self._condition(rest, line)}"
        if name == "else":
            self._no_arguments(rest, name, line)
            if not self.blocks or self.blocks[-1][0] not in ("if", "for"):
                raise PebbleSyntaxError("Unexpected 'else' tag", line)
            return "else"
        if name in ("endif", "endfor", "endfilter"):
            self._no_arguments(rest, name, line)
            self._expect_open(name[3:], name, line)
            self.blocks.pop()
            return name
        if name == "for":
            self.blocks.append(("for", line))
            self.has_loops = True
            return self._for(rest, line)
        if name == "filter":
            self.blocks.append(("filter", line))
            return "filter " + self._filter_chain(rest, line)
        if name in _UNSUPPORTED_TAGS:
            raise PebbleSyntaxError(f'The tag "{name}" is not supported', line)
        raise PebbleSyntaxError(f'Unexpected tag name "{name}"', line)

    def _expect_open(self, block: str, name: str, line: int) -> None:
        if not self.blocks or self.blocks[-1][0] != block:
            raise PebbleSyntaxError(f"Unexpected '{name}' tag", line)

    @staticmethod
    def _no_arguments(rest: list[Token], name: str, line: int) -> None:
        if rest:
            raise PebbleSyntaxError(f"The '{name}' tag takes no arguments", line)

    def _condition(self, tokens: list[Token], line: int) -> str:
        return f"(({self.expression(tokens, line)})|__pb_bool)"

    def _for(self, tokens: list[Token], line: int) -> str:
        if len(tokens) < 3 or tokens[0].kind != "name" or tokens[1].kind != "name" or tokens[1].value != "in":
            raise PebbleSyntaxError("Expected '{% for item in items %}'", line)
        variable = _variable(tokens[0])
        return f"for {variable} in ({self.expression(tokens[2:], line)})|__pb_iter"

    def _set(self, tokens: list[Token], line: int) -> str:
        if len(tokens) < 3 or tokens[0].kind != "name" or tokens[1].kind != "op" or tokens[1].value != "=":
            raise PebbleSyntaxError("Expected '{% set name = value %}'", line)
        name = _variable(tokens[0])
        return f"(({self.expression(tokens[2:], line)})|__pb_assign({_string(name)}))"

    def _filter_chain(self, tokens: list[Token], line: int) -> str:
        parser = _Parser(tokens, line, self)
        calls = [parser.filter_invocation()]
        while parser.accept_op("|"):
            calls.append(parser.filter_invocation())
        parser.expect_end()
        return "|".join(calls)


def _variable(token: Token) -> str:
    name = token.value
    if not _JINJA_IDENTIFIER.match(name) or name.startswith("__") or name in _RESERVED_NAMES:
        raise PebbleSyntaxError(f"Invalid or reserved variable name [{name}]", token.line)
    return name


class _Parser:
    """Precedence-climbing parser over one expression's tokens, emitting Jinja text."""

    def __init__(self, tokens: list[Token], line: int, writer: _Writer) -> None:
        self.tokens = tokens
        self.pos = 0
        self.line = line
        self.writer = writer

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise PebbleSyntaxError("Unexpected end of expression", self._line())
        self.pos += 1
        return token

    def _line(self) -> int:
        token = self.peek() or (self.tokens[-1] if self.tokens else None)
        return token.line if token is not None else self.line

    def is_op(self, value: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "op" and token.value == value

    def is_word(self, value: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "name" and token.value == value

    def accept_op(self, value: str) -> bool:
        if self.is_op(value):
            self.pos += 1
            return True
        return False

    def expect_op(self, value: str, message: str) -> None:
        if not self.accept_op(value):
            raise PebbleSyntaxError(message, self._line())

    def expect_end(self) -> None:
        token = self.peek()
        if token is not None:
            raise PebbleSyntaxError(f"Unexpected token [{_describe(token)}]", token.line)

    def _error(self, message: str) -> PebbleSyntaxError:
        return PebbleSyntaxError(message, self._line())

    # -- expressions ---------------------------------------------------------------------------

    def expression(self, min_precedence: int = 0) -> str:
        if self.is_word("not") or self.is_op("-") or self.is_op("+"):
            operator = self.next().value
            operand = self.expression(_UNARY_PRECEDENCE)
            if operator == "not":
                left = f"(not (({operand})|__pb_bool))"
            elif operator == "-":
                left = f"(({operand})|__pb_neg)"
            else:
                left = f"(({operand})|__pb_pos)"
        else:
            left = self.primary()
        while True:
            operator, width = self._binary_operator()
            if operator is None or _BINARY[operator] < min_precedence:
                break
            self.pos += width
            if operator == "|":
                left = f"(({left})|{self.filter_invocation()})"
            elif operator in ("is", "is not"):
                left = self._test(left, operator)
            else:
                right = self.expression(_BINARY[operator] + 1)
                left = _binary(operator, left, right)
        if min_precedence == 0 and self.accept_op("?"):
            when_true = self.expression()
            self.expect_op(":", "Expected ':' in the ternary expression")
            when_false = self.expression()
            left = f"(({when_true}) if (({left})|__pb_bool) else ({when_false}))"
        return left

    def _binary_operator(self) -> tuple[str | None, int]:
        token = self.peek()
        if token is None:
            return None, 0
        if token.kind == "op":
            return (token.value, 1) if token.value in _BINARY else (None, 0)
        if token.kind == "name" and token.value in _WORD_OPERATORS:
            if token.value == "is":
                return ("is not", 2) if self.is_word("not", 1) else ("is", 1)
            if token.value == "not":
                return ("not in", 2) if self.is_word("in", 1) else (None, 0)
            return token.value, 1
        return None, 0

    def _test(self, left: str, operator: str) -> str:
        token = self.next()
        if token.kind != "name":
            raise PebbleSyntaxError(f"Expected a test name, got [{_describe(token)}]", token.line)
        name = token.value
        if name not in self.writer.tests:
            raise PebbleSyntaxError(f"Test [{name}] does not exist.", token.line)
        arguments = self._arguments() if self.is_op("(") else None
        call = name if arguments is None else f"{name}({arguments})"
        return f"(({left}) {operator} {call})"

    def filter_invocation(self) -> str:
        token = self.next()
        if token.kind != "name":
            raise PebbleSyntaxError(f"Expected a filter name, got [{_describe(token)}]", token.line)
        name = token.value
        if name not in self.writer.filters or name.startswith("__"):
            raise PebbleSyntaxError(f"Filter [{name}] does not exist.", token.line)
        return f"{name}({self._arguments()})" if self.is_op("(") else name

    def _arguments(self) -> str:
        self.expect_op("(", "Expected '('")
        parts: list[str] = []
        named = False
        while not self.accept_op(")"):
            if parts:
                self.expect_op(",", "Expected ',' or ')' in the argument list")
                if self.accept_op(")"):
                    break
            token = self.peek()
            if token is not None and token.kind == "name" and self.is_op("=", 1):
                self.pos += 2
                parts.append(f"{_keyword(token)}=({self.expression()})")
                named = True
            elif named:
                raise self._error("Positional arguments must come before named arguments")
            else:
                parts.append(f"({self.expression()})")
        return ", ".join(parts)

    def primary(self) -> str:
        token = self.next()
        kind, value = token.kind, token.value
        if kind == "num":
            result = repr(value)
        elif kind == "str":
            result = _string(value)
        elif kind == "istr":
            result = self._interpolated(value)
        elif kind == "name":
            result = self._name(token)
        elif value == "(":
            result = f"({self.expression()})"
            self.expect_op(")", "An opened parenthesis is not properly closed")
        elif value == "[":
            result = self._sequence("]", lambda: f"({self.expression()})", "[{}]")
        elif value == "{":
            result = self._sequence("}", self._map_entry, "{{{}}}")
        else:
            raise PebbleSyntaxError(f"Unexpected token [{_describe(token)}]", token.line)
        return self._postfix(result)

    def _sequence(self, closer: str, item: Callable[[], str], shape: str) -> str:
        items: list[str] = []
        while not self.accept_op(closer):
            if items:
                self.expect_op(",", f"Expected ',' or '{closer}'")
                if self.accept_op(closer):
                    break
            items.append(item())
        return shape.format(", ".join(items))

    def _map_entry(self) -> str:
        key = self.expression()
        self.expect_op(":", "Expected ':' after a map key")
        return f"({key}): ({self.expression()})"

    def _interpolated(self, parts: list[object]) -> str:
        result = ""
        for part in parts:
            if isinstance(part, str):
                piece = _string(part)
            else:
                assert isinstance(part, list)
                inner = _Parser(part, self.line, self.writer)
                piece = inner.expression()
                inner.expect_end()
            result = piece if not result else f"(({result})|__pb_concat({piece}))"
        return f"(({result})|__pb_concat(''))"

    def _name(self, token: Token) -> str:
        name = token.value
        if name in ("true", "false"):
            return name
        if name in ("null", "none"):
            return "none"
        if self.is_op("("):
            if name not in self.writer.functions:
                raise PebbleSyntaxError(f"Function or Macro [{name}] does not exist.", token.line)
            return f"((none)|__pbf_{name}({self._arguments()}))"
        if name in _WORD_OPERATORS:
            raise PebbleSyntaxError(f"Unexpected token [{name}]", token.line)
        variable = _variable(token)
        if variable in self.writer.assigned:
            return f"(({variable})|__pb_assigned({_string(variable)}))"
        return variable

    def _postfix(self, result: str) -> str:
        while True:
            if self.accept_op("."):
                token = self.next()
                if token.kind == "name":
                    key = _string(token.value)
                elif token.kind == "num" and isinstance(token.value, int):
                    key = repr(token.value)
                else:
                    raise PebbleSyntaxError(f"Unexpected token [{_describe(token)}] after '.'", token.line)
                if self.is_op("("):
                    raise PebbleSyntaxError(
                        f"Calling the method [{token.value}] is not supported; use a filter", token.line
                    )
                result = f"({result})[{key}]"
            elif self.accept_op("["):
                index = self.expression()
                self.expect_op("]", "Expected ']'")
                result = f"({result})[{index}]"
            else:
                return result


def _binary(operator: str, left: str, right: str) -> str:
    if operator == "or":
        return f"((({left})|__pb_bool) or (({right})|__pb_bool))"
    if operator == "and":
        return f"((({left})|__pb_bool) and (({right})|__pb_bool))"
    if operator == "!=":
        return f"(not (({left})|__pb_eq({right})))"
    if operator == "??":
        return f"(((({left})|__pb_present) or ({right}))|__pb_unbox)"
    if operator == "???":
        return f"(((({left})|__pb_defined) or ({right}))|__pb_unbox)"
    if operator == "in":
        return f"(({right})|__pb_contains({left}))"
    if operator == "not in":
        return f"(not (({right})|__pb_contains({left})))"
    return f"(({left})|{_HELPER[operator]}({right}))"


def _keyword(token: Token) -> str:
    if not _JINJA_IDENTIFIER.match(token.value) or token.value.startswith("__"):
        raise PebbleSyntaxError(f"Invalid argument name [{token.value}]", token.line)
    return token.value


def _describe(token: Token) -> str:
    return token.value if token.kind in ("name", "op") else repr(token.value)
