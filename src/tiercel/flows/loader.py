"""Parse flow YAML the way Kestra reads it, and point errors at lines and columns.

Kestra parses flows with Jackson, which keeps every scalar as text and coerces it to the Java
property's type. PyYAML's default (YAML 1.1) resolvers instead turn ``on`` into ``True``, ``0755``
into ``493`` and ``2024-01-01`` into a ``date`` before any model sees them. So this module keeps
the fast libyaml parser but swaps the implicit resolvers for the YAML 1.2 core schema, and leaves
everything ambiguous as a string for pydantic to coerce per field.

Other Jackson behaviours reproduced here:

* duplicate keys are an error (Kestra enables ``STRICT_DUPLICATE_DETECTION``);
* mapping keys are always strings holding the key's source text (``1: x`` gives ``{"1": "x"}``,
  like a JSON object key), so ``dict[str, ...]`` fields validate and outputs serialise to JSON.

Line numbers cost nothing on the happy path: ``locate`` re-composes the text only when a caller
needs to report an error, and caches the node tree because one invalid flow usually yields
several errors.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError
from yaml.error import Mark, MarkedYAMLError
from yaml.events import CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from tiercel.errors import ValidationError

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml is about 6x slower, still correct
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = [
    "HAS_LIBYAML",
    "MAX_DEPTH",
    "FlowLoader",
    "format_location",
    "format_path",
    "load_mapping",
    "load_yaml",
    "locate",
    "split_documents",
]

HAS_LIBYAML: bool = _BaseLoader is not yaml.SafeLoader

NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
MERGE_TAG = "tag:yaml.org,2002:merge"

_DIGITS = list("0123456789")

# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), minus nothing and
# plus the ``<<`` merge key. Order matters inside one first character: int is tried before float.
# ``\Z`` rather than ``$`` because ``$`` also matches before a trailing newline.
IMPLICIT_RESOLVERS: tuple[tuple[str, str, list[str]], ...] = (
    (NULL_TAG, r"(?:~|null|Null|NULL|)\Z", ["~", "n", "N", ""]),
    (BOOL_TAG, r"(?:true|True|TRUE|false|False|FALSE)\Z", list("tTfF")),
    (INT_TAG, r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z", ["-", "+", *_DIGITS]),
    (
        FLOAT_TAG,
        r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z",
        ["-", "+", ".", *_DIGITS],
    ),
    (MERGE_TAG, r"<<\Z", ["<"]),
)

_BOOLS = {"true": True, "false": False}
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def _kind(node: Node) -> str:
    """Name a node's kind in words a flow author knows (not PyYAML's ``MappingNode``)."""
    if isinstance(node, MappingNode):
        return "mapping"
    if isinstance(node, SequenceNode):
        return "list"
    return "scalar"


def _key_text(key_node: Node, mapping_node: Node) -> str:
    """Return a mapping key as Jackson sees it: the scalar's source text, never a typed value."""
    if isinstance(key_node, ScalarNode):
        return str(key_node.value)
    raise ConstructorError(
        "while constructing a mapping",
        mapping_node.start_mark,
        f"found a {_kind(key_node)} used as a key; keys must be plain strings",
        key_node.start_mark,
    )


def _excerpt(text: str) -> str:
    """Quote a scalar for a message without pasting a 5,000-digit number into it."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


class DuplicateKeyError(ConstructorError):
    """A mapping repeats a key; Kestra rejects the flow rather than keeping the last value."""


class FlowLoader(_BaseLoader):
    """libyaml parser + safe constructor with YAML 1.2 core scalars, string keys, no duplicates.

    The class owns copies of the resolver and constructor tables, so PyYAML's global
    ``SafeLoader``/``CSafeLoader`` (used by other libraries in the same process) are untouched.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}
    yaml_constructors: ClassVar[dict[Any, Any]] = dict(_BaseLoader.yaml_constructors)

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # ids of mapping nodes whose keys were checked and merges flattened; nodes live for the
        # whole load, so ids are stable. Anchored mappings are reached more than once.
        self._flattened: set[int] = set()

    def flatten_mapping(self, node: MappingNode) -> None:
        """Check a mapping's own keys for duplicates, then expand its ``<<`` merge keys.

        The check must run before PyYAML splices merged pairs into ``node.value``: a merged key
        that the mapping overrides is legitimate, two explicit copies of one key are not.
        """
        if id(node) in self._flattened:
            return
        self._flattened.add(id(node))
        seen: dict[str, Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = _key_text(key_node, node)
            if key in seen:
                problem = f"duplicate key '{key}'"
                raise DuplicateKeyError("first defined", seen[key], problem, key_node.start_mark)
            seen[key] = key_node.start_mark
        super().flatten_mapping(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        """Build a dict with ``str`` keys; the fast path skips the duplicate scan when none exist."""
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found a {_kind(node)}", node.start_mark)
        pairs = node.value
        for key_node, _ in pairs:
            if key_node.tag == MERGE_TAG:
                self.flatten_mapping(node)
                pairs = node.value
                break
        construct = self.construct_object
        mapping = {_key_text(k, node): construct(v, deep=deep) for k, v in pairs}
        if len(mapping) != len(pairs) and id(node) not in self._flattened:
            self.flatten_mapping(node)  # raises DuplicateKeyError naming the repeated key
        return mapping

    def construct_merge_scalar(self, node: ScalarNode) -> str:
        """A plain ``<<`` used as a value (not a key) is just text, as Jackson reads it."""
        return str(self.construct_scalar(node))

    def construct_yaml_bool(self, node: ScalarNode) -> bool:
        """YAML 1.2: only true/false; an explicit ``!!bool yes`` is an error, not ``True``."""
        text = self.construct_scalar(node)
        try:
            return _BOOLS[text.lower()]
        except KeyError:
            raise ConstructorError(None, None, f"invalid boolean {_excerpt(text)}", node.start_mark) from None

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """YAML 1.2: ``0o17`` octal, ``0x1F`` hex, and ``0755`` is decimal 755 (not 493)."""
        text = self.construct_scalar(node)
        body = text.lstrip("+-")
        sign = -1 if text.startswith("-") else 1
        try:
            if body[:2] in ("0o", "0O"):
                return sign * int(body[2:], 8)
            if body[:2] in ("0x", "0X"):
                return sign * int(body[2:], 16)
            return int(text, 10)
        except ValueError:
            problem = f"invalid integer {_excerpt(text)}"
            if body.isdigit():  # Python refuses to convert more than 4300 digits (CVE-2020-10735)
                problem = f"integer {_excerpt(text)} has too many digits"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def construct_yaml_float(self, node: ScalarNode) -> float:
        """YAML 1.2 floats: no sexagesimal; ``.inf``/``.nan`` in any of the allowed casings."""
        text = self.construct_scalar(node)
        special = _SPECIAL_FLOATS.get(text.lower())
        if special is not None:
            return special
        try:
            return float(text)
        except ValueError:
            raise ConstructorError(None, None, f"invalid float {_excerpt(text)}", node.start_mark) from None


FlowLoader.add_constructor(MERGE_TAG, FlowLoader.construct_merge_scalar)
FlowLoader.add_constructor(BOOL_TAG, FlowLoader.construct_yaml_bool)
FlowLoader.add_constructor(INT_TAG, FlowLoader.construct_yaml_int)
FlowLoader.add_constructor(FLOAT_TAG, FlowLoader.construct_yaml_float)
for _tag, _pattern, _first in IMPLICIT_RESOLVERS:
    FlowLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


# --------------------------------------------------------------------------------------------
# Errors


def _position(source: str, line: int, column: int, first_line: int) -> str:
    """``source:line:col`` with 1-based numbers, shifted when the text was cut from a bigger file."""
    return f"{source}:{line + first_line}:{column + 1}"


def _line_col(text: str, index: int) -> tuple[int, int]:
    """0-based line and column of a character index, for errors that carry only an index."""
    before = text[:index]
    line = before.count("\n")
    return line, index - (before.rfind("\n") + 1)


_SINGLE_DOCUMENT = "expected a single document in the stream"  # PyYAML's ComposerError context


def _yaml_error(exc: yaml.YAMLError, source: str, text: str, first_line: int) -> ValidationError:
    """Turn any PyYAML error into ``source:line:col: problem`` without PyYAML's multi-line layout."""
    if isinstance(exc, MarkedYAMLError) and exc.context == _SINGLE_DOCUMENT:
        mark = exc.problem_mark
        problem = "expected a single YAML document, but found another one after '---'"
        location = _position(source, mark.line, mark.column, first_line) if mark is not None else source
    elif isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            ctx = exc.context_mark
            problem += f" ({exc.context} at line {ctx.line + first_line}, column {ctx.column + 1})"
        elif exc.context and exc.problem:
            problem += f" ({exc.context})"
        location = _position(source, mark.line, mark.column, first_line) if mark is not None else source
    elif isinstance(exc, ReaderError):
        # libyaml reports '?' as the character; the index is reliable, so read it from the text.
        line, column = _line_col(text, exc.position)
        location = _position(source, line, column, first_line)
        code = exc.character if isinstance(exc.character, int) else None
        if code is None and 0 <= exc.position < len(text):
            code = ord(text[exc.position])
        problem = exc.reason if code is None else f"{exc.reason} (#x{code:04x})"
    else:  # pragma: no cover - every error PyYAML raises while loading is one of the above
        location, problem = source, str(exc).replace("\n", " ")
    return ValidationError(f"{location}: {problem}", [(location, problem)])


# --------------------------------------------------------------------------------------------
# Loading

# Jackson's default ``StreamReadConstraints.maxNestingDepth``. It also protects the process:
# libyaml's composer recurses in C, and about 30,000 nested ``[`` crash the interpreter with a
# segmentation fault instead of raising.
MAX_DEPTH = 1000


def _too_deep(text: str) -> tuple[int, int] | None:
    """0-based line and column where the text first nests deeper than ``MAX_DEPTH``, if it does.

    A cheap upper bound clears almost every flow: each nesting level costs a ``[``/``{`` (flow
    style) or at least one more column on some line (block style). Only when that bound is too
    high do we walk libyaml's events, which its state machine produces iteratively.
    """
    longest_line = max(map(len, text.split("\n")))  # libyaml lines are never longer than these
    if text.count("[") + text.count("{") + longest_line + 2 <= MAX_DEPTH:
        return None
    parser = FlowLoader(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    return (mark.line, mark.column) if mark is not None else (0, 0)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None  # the syntax error comes first; composing stops there and reports it
    finally:
        parser.dispose()
    return None


def load_yaml(text: str, source: str = "<string>", *, first_line: int = 1) -> Any:
    """Parse one YAML document into plain Python values (dict/list/str/int/float/bool/None).

    ``source`` names the text in error messages; ``first_line`` is the line of ``text`` within
    the original file (see ``split_documents``) so positions match what the user's editor shows.
    Raises ``ValidationError`` for syntax errors, duplicate keys and several documents.
    """
    too_deep = _too_deep(text)
    if too_deep is not None:
        location = _position(source, *too_deep, first_line)
        problem = f"collections are nested more than {MAX_DEPTH} levels deep"
        raise ValidationError(f"{location}: {problem}", [(location, problem)])
    try:
        data = yaml.load(text, Loader=FlowLoader)  # FlowLoader derives from the safe loader
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, text, first_line) from None
    except RecursionError:
        problem = "the document is nested too deeply"
        raise ValidationError(f"{source}: {problem}", [(source, problem)]) from None
    if "&" in text and "*" in text and _ANCHOR.search(text):  # a cycle needs an anchor and an alias
        cycle = _cycle_path(data)
        if cycle is not None:
            location = format_location(source, text, cycle, first_line=first_line)
            problem = f"{format_path(cycle) or 'the document'} refers to itself through a YAML alias"
            raise ValidationError(f"{location}: {problem}", [(location, problem)])
    return data


# ``&name`` where YAML allows an anchor; cheap enough to skip the cycle walk for most flows
# (``a&b`` in URLs and ``a & b`` in messages do not match).
_ANCHOR = re.compile(r"(?:^|[ \t\[{,])&[^\s\[\]{},]", re.M)


def _cycle_path(data: Any) -> list[str | int] | None:
    """Path of the first alias that points at one of its own ancestors, else None.

    PyYAML builds such documents as self-containing lists/dicts; Jackson cannot, and nothing
    downstream (pydantic ``Any`` fields, JSON encoding, rendering) terminates on them.
    """
    on_path: set[int] = set()
    path: list[str | int] = []
    # Explicit stack of (container, iterator over its items) so depth is not bounded by recursion.
    stack: list[tuple[Any, Any]] = []

    def enter(value: Any) -> bool:
        if isinstance(value, dict | list):
            if id(value) in on_path:
                return True
            on_path.add(id(value))
            items = iter(value.items()) if isinstance(value, dict) else enumerate(value)
            stack.append((value, items))
        return False

    enter(data)
    while stack:
        container, items = stack[-1]
        step = next(items, None)
        if step is None:
            on_path.discard(id(container))
            stack.pop()
            if path:
                path.pop()
            continue
        path.append(step[0])
        if enter(step[1]):
            return path
        if not isinstance(step[1], dict | list):
            path.pop()
    return None


_VALUE_KINDS: dict[type, str] = {
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def load_mapping(text: str, source: str = "<string>", *, first_line: int = 1) -> dict[str, Any]:
    """Parse a document that must be a mapping (a flow, a template, a namespace file's settings).

    An empty document and a top-level list or scalar are reported here, with a position, so the
    model layer never sees ``None`` or a string where it expects properties.
    """
    data = load_yaml(text, source, first_line=first_line)
    if isinstance(data, dict):
        return data
    root = _compose(text)
    if data is None and (root is None or _is_empty(root)):
        problem = "the document is empty; expected a mapping of properties"
        raise ValidationError(f"{source}: {problem}", [(source, problem)])
    kind = _VALUE_KINDS.get(type(data), "a scalar")
    problem = f"expected a mapping of properties at the top level, found {kind}"
    location = format_location(source, text, (), first_line=first_line)
    raise ValidationError(f"{location}: {problem}", [(location, problem)])


# --------------------------------------------------------------------------------------------
# Multi-document streams

# libyaml's line breaks (YAML 1.1 adds NEL, LS and PS to CR/LF); using the same set keeps our
# line numbers equal to the ones in libyaml's marks.
_LINE = re.compile(r"[^\r\n\x85\u2028\u2029]*(?:\r\n|[\r\n\x85\u2028\u2029]|\Z)")
# A document marker is ``---``/``...`` at column 0 followed by a blank or the end of the line.
_MARKER = re.compile(r"(---|\.\.\.)(?=[ \t\r\n\x85\u2028\u2029]|\Z)")
_BARE_MARKER_REST = re.compile(r"[ \t]*(?:#.*)?\s*\Z", re.S)


def _lines(text: str) -> list[str]:
    """Split into lines keeping their line breaks, so joining them gives the text back."""
    lines = _LINE.findall(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def split_documents(text: str) -> list[tuple[int, str]]:
    """Split a multi-document stream into ``(first_line, document_text)`` pairs, text verbatim.

    Kestra's validate endpoint accepts several flows separated by ``---``. The split is done on
    lines, not with the parser, so that one broken document does not hide the others. This is
    safe because YAML forbids ``---`` or ``...`` at column 0 followed by a blank anywhere inside
    a node (spec 1.2.2 ``c-forbidden``; libyaml ends or rejects any scalar or flow collection
    there). Indented ``---`` lines inside block scalars are content and never split.

    * A bare separator line (``---`` or ``...``, optionally with a comment) is dropped; a ``---``
      line carrying content (``--- {id: a}``) starts the next document and is kept.
    * Directive lines (``%YAML``) stay attached to the document they introduce.
    * Chunks holding only blank lines and comments (a header comment, an empty document) are
      skipped. ``first_line`` is 1-based, in libyaml's line numbering.
    """
    lines = _lines(text)
    if lines and lines[0].startswith("\ufeff"):
        body = lines[0][1:]
        if _MARKER.match(body) and _BARE_MARKER_REST.match(body, 3):
            lines[0] = body  # a BOM before the first marker only; nothing else is verbatim-relevant
    documents: list[tuple[int, str]] = []
    start = 0  # index of the current chunk's first line
    chunk: list[str] = []

    def flush() -> None:
        if any(_is_content(line) and not line.startswith("%") for line in chunk):
            documents.append((start + 1, "".join(chunk)))

    for index, line in enumerate(lines):
        marker = _MARKER.match(line)
        if marker is None:
            chunk.append(line)
            continue
        bare = _BARE_MARKER_REST.match(line, 3) is not None
        if marker.group(1) == "---" and bare and chunk and _only_directives(chunk):
            chunk.append(line)  # ``%YAML 1.1`` + ``---`` open one document together
            continue
        flush()
        if bare:
            start, chunk = index + 1, []
        else:
            start, chunk = index, [line]
    flush()
    return documents


def _only_directives(chunk: list[str]) -> bool:
    """True when a chunk is directives plus comments: the ``---`` after it is their end marker."""
    has_directive = False
    for line in chunk:
        if line.startswith("%"):
            has_directive = True
        elif _is_content(line):
            return False
    return has_directive


# --------------------------------------------------------------------------------------------
# Locations


@functools.lru_cache(maxsize=16)
def _compose(text: str) -> Node | None:
    """Compose (no construction) once per text: one invalid flow usually yields many errors."""
    if _too_deep(text) is not None:
        return None
    try:
        return yaml.compose(text, Loader=FlowLoader)
    except (yaml.YAMLError, RecursionError):
        return None


def _mapping_entry(node: MappingNode, key: str, depth: int = 0) -> tuple[Node, Node] | None:
    """Find ``key`` in a mapping's own pairs, then in its ``<<`` merge sources, in YAML's order."""
    merges: list[Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            merges.append(value_node)
        elif isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    if depth > 50:  # a merge cycle through aliases; PyYAML would reject it on load anyway
        return None
    for source in merges:
        candidates = source.value if isinstance(source, SequenceNode) else [source]
        for candidate in candidates:
            if isinstance(candidate, MappingNode):
                found = _mapping_entry(candidate, key, depth + 1)
                if found is not None:
                    return found
    return None


def _step(node: Node, step: str | int) -> tuple[Node | None, Node] | None:
    """Follow one path element: ``(key_node or None, value_node)``, or None if it does not apply."""
    if isinstance(node, MappingNode):
        return _mapping_entry(node, str(step))
    if isinstance(node, SequenceNode):
        if isinstance(step, str):
            if not step.isdigit():
                return None
            step = int(step)
        if 0 <= step < len(node.value):
            return None, node.value[step]
    return None


def _is_empty(node: Node) -> bool:
    """An omitted value (``message:``) whose mark points past the colon, maybe on the next line."""
    # plain style is None in PyYAML's composer and "" in libyaml's
    return isinstance(node, ScalarNode) and node.value == "" and not node.style


def locate(text: str, path: Sequence[str | int], *, at_key: bool = False) -> tuple[int, int] | None:
    """1-based ``(line, column)`` of the node at ``path`` (str = mapping key, int = list index).

    Built for pydantic error locations, walked as far as the document allows:

    * the last key is missing (``Field required``) → the position of the mapping that lacks it;
    * ``at_key=True`` (``Extra inputs are not permitted``) → the position of the key itself;
    * an empty value (``message:``) → the key's position, since the value has no text;
    * a step that matches nothing (pydantic adds union tags like ``function-after[...]`` to
      locations) is skipped and the walk continues with the next step from the same node.

    Returns None when the text does not parse or is empty. Values reached through ``<<`` merges
    or aliases point at the anchored definition, where the user must edit them.
    """
    root = _compose(text)
    if root is None:
        return None
    node: Node = root
    key_node: Node | None = None
    last_matched = False
    for step in path:
        found = _step(node, step)
        last_matched = found is not None
        if found is not None:
            key_node, node = found
    if key_node is not None and ((at_key and last_matched) or _is_empty(node)):
        mark = key_node.start_mark
    else:
        mark = node.start_mark
    return mark.line + 1, mark.column + 1


def format_path(path: Sequence[str | int]) -> str:
    """``("tasks", 0, "message")`` → ``tasks[0].message``, the form used in validation messages."""
    out: list[str] = []
    for step in path:
        if isinstance(step, int):
            out.append(f"[{step}]")
        else:
            out.append(f".{step}" if out else str(step))
    return "".join(out)


def format_location(
    source: str,
    text: str,
    path: Sequence[str | int],
    *,
    at_key: bool = False,
    first_line: int = 1,
) -> str:
    """``source:line:col`` for ``path`` in ``text`` (``source`` alone when it cannot be found)."""
    position = locate(text, path, at_key=at_key)
    if position is None:
        return source
    line, column = position
    return f"{source}:{line + first_line - 1}:{column}"
