"""Turn the raw inputs given to an execution into Kestra's typed input map, and type flow outputs.

Kestra's rules (``FlowInputOutput``) reproduced here:

* each declared input takes the provided value, else its ``defaults``; undeclared inputs are ignored;
* ``dependsOn`` inputs are resolved first; ``dependsOn.condition`` is rendered with only those values in
  ``inputs`` and an input whose condition is not ``true`` (or whose dependency is hidden) is dropped;
* SELECT/MULTISELECT ``expression`` is rendered to the list of allowed values;
* null + required ⇒ ``missing required input``; null + optional ⇒ the key is present with ``None``;
* otherwise the value is parsed by type (strings are converted) and checked against the constraints;
* every failure is reported, in declaration order, in one :class:`~tiercel.errors.InputError` whose text
  reproduces Kestra's ``<id>: Invalid input for `<id>`, <reason>, but received `<value>``` wording;
* dotted ids become nested maps (``nested.more.int`` ⇒ ``{"nested": {"more": {"int": …}}}``).

Value representation (what ``resolve_inputs`` returns and the execution stores) is **JSON-native**: the
values are exactly what Kestra's JSON holds, so an execution serialises, travels through a queue and
reloads without changing type — and templates see the same thing before and after a reload, as in
Kestra where inputs are read back from JSON:

==========  =====================================================================================
DATETIME    ``str``, ``Instant.toString()`` form in UTC: ``2019-10-06T18:27:49Z``
DATE        ``str``, ``2019-10-06``
TIME        ``str``, ``18:27:49`` (seconds always, fraction when non-zero)
DURATION    ``str``, ``Duration.toString()`` form: ``PT5M6S`` (``P1D`` is stored ``PT24H``)
FILE        ``str``, the ``kestra:///…`` URI
SECRET      whatever the ``encrypt`` hook returns; without one, the plain ``str`` (see below)
JSON/YAML   the parsed value (dict/list/scalars; YAML timestamps stay strings)
==========  =====================================================================================

Use :func:`to_python` to get ``datetime``/``date``/``time``/``timedelta`` objects back.

Nothing here depends on the templating package: callers pass ``render(template, context) -> value``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NoReturn, Protocol, runtime_checkable

import yaml

from tiercel.errors import InputError, TiercelError, ValidationError
from tiercel.flows.defaults import deep_merge
from tiercel.java_format import java_double
from tiercel.model.inputs import (
    BaseInput,
    DateInput,
    DateTimeInput,
    DurationInput,
    EmailInput,
    EnumInput,
    FileInput,
    FloatInput,
    IntInput,
    MultiselectInput,
    Output,
    SecretInput,
    SelectInput,
    StringInput,
    TimeInput,
    format_duration,
    format_instant,
    format_local_time,
    java_regex,
    java_time_str,
    parse_duration,
    parse_instant,
    parse_local_date,
    parse_local_time,
)

__all__ = [
    "SECRET_ENCRYPTION_NOT_CONFIGURED",
    "FileSource",
    "FileStore",
    "Renderer",
    "check_declarations",
    "defaults_for_render",
    "java_str",
    "nest_dotted",
    "parse_typed",
    "refuse_secrets",
    "resolve_inputs",
    "to_python",
    "typed_outputs",
]

FileSource = bytes | str | os.PathLike | BinaryIO
Renderer = Callable[[str, Mapping[str, Any]], Any]
Encrypter = Callable[[str], Any]

SECRET_ENCRYPTION_NOT_CONFIGURED = "Unable to use a `SECRET` input/output as encryption is not configured"
ENCRYPTED_TYPE = "io.kestra.datatype:aes_encrypted"


@runtime_checkable
class FileStore(Protocol):
    """Where FILE inputs go: the caller implements it on top of internal storage.

    ``store`` receives the input id, a bare file name (never a directory part) and the content: ``bytes``,
    a binary stream, or a ``pathlib.Path`` for a *local path given as the input value*. It returns the
    ``kestra:///…/executions/<id>/inputs/<inputId>/<filename>`` URI.

    Security: Kestra uploads any local path it is given, i.e. the server's own files. A store serving
    untrusted callers (the HTTP API) should refuse ``Path`` sources by raising ``ValueError``; the API
    passes uploads as ``(filename, bytes | stream)``.
    """

    def store(self, input_id: str, filename: str, source: FileSource) -> str: ...


def refuse_secrets(value: str) -> NoReturn:
    """An ``encrypt`` hook reproducing Kestra without ``kestra.encryption.secret-key``: SECRET is refused."""
    raise ValueError(SECRET_ENCRYPTION_NOT_CONFIGURED)


# --------------------------------------------------------------------------------------------------------
# Java-style printing (Kestra's messages embed Java toString() results)
# --------------------------------------------------------------------------------------------------------


def java_str(value: Any) -> str:
    """Print a value as Kestra's messages do (Java ``toString()``): ``null``, ``[a, b]``, ``{k=v}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return java_time_str(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{java_str(k)}={java_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(java_str(item) for item in value) + "]"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    return str(value)


def _problem(kind: str, data_id: str, reason: str, received: Any) -> str:
    return f"Invalid {kind} for `{data_id}`, {reason}, but received `{java_str(received)}`"


def _raise_all(error: type[ValidationError], problems: list[tuple[str, str]]) -> None:
    # javax ConstraintViolationException text: "<path>: <message>" joined by ", "
    if problems:
        raise error(", ".join(f"{where}: {message}" for where, message in problems), problems)


# --------------------------------------------------------------------------------------------------------
# JSON-native helpers
# --------------------------------------------------------------------------------------------------------


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: a YAML input's dates stay strings, as with Jackson."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _jsonable(value: Any) -> Any:
    """Make a parsed JSON/YAML/default value JSON-native (dates and durations become Kestra's text)."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else java_str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return format_local_time(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def _as_text(value: Any) -> str:
    """The string a STRING-like input holds; structures become compact JSON (how Kestra renders maps)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool | int | float | datetime | date | time | timedelta):
        return java_str(value)
    raise TypeError(type(value).__name__)


def to_python(kind: str, value: Any) -> Any:
    """Rebuild the Python object of a stored typed value: DATETIME → aware ``datetime`` (UTC), DATE →
    ``date``, TIME → ``time``, DURATION → ``timedelta``; anything else (and ``None``) is returned as is."""
    if not isinstance(value, str):
        return value
    if kind == "DATETIME":
        return parse_instant(value)
    if kind == "DATE":
        return parse_local_date(value)
    if kind == "TIME":
        return parse_local_time(value)
    if kind == "DURATION":
        return parse_duration(value)
    return value


def nest_dotted(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"nested.more.int": 1}`` → ``{"nested": {"more": {"int": 1}}}``; keys without dots are kept.

    A value that is already a mapping receives the dotted children (Kestra merges into it too); a scalar
    that would have to hold children is a conflict and raises ``ValueError``.
    """
    result: dict[str, Any] = {}
    for key, value in values.items():
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, Mapping):
                child = node[part] = dict(child)
            else:
                raise ValueError(f"`{'.'.join(parts[: depth + 1])}` is a value and cannot contain `{key}`")
            node = child
        last = parts[-1]
        if isinstance(node.get(last), dict) and isinstance(value, Mapping):
            node[last] = {**value, **node[last]}
        elif isinstance(node.get(last), dict):
            raise ValueError(f"`{key}` would replace the inputs nested under it")
        else:
            node[last] = value
    return result


def defaults_for_render(
    declared: Sequence[BaseInput], supplied: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``inputs`` a template sees when the execution was created without (or with raw) inputs.

    Kestra injects each declared ``defaults`` that was not supplied (``RunVariables``); the defaults are
    not typed, only made JSON-native. With ``supplied`` (an already nested input map) the result is the
    merge of both, supplied values winning.
    """
    defaults = {item.id: _jsonable(item.defaults) for item in declared if item.defaults is not None}
    nested = nest_dotted(defaults)
    return deep_merge(nested, supplied) if supplied else nested


def check_declarations(declared: Sequence[BaseInput]) -> list[str]:
    """Static problems of an ``inputs:`` list, for the Flow validator: duplicate ids, ids that would
    nest under another input's value (``a`` and ``a.b``), circular ``dependsOn``."""
    problems: list[str] = []
    seen: set[str] = set()
    for item in declared:
        if item.id in seen:
            problems.append(f"duplicate input id `{item.id}`")
        seen.add(item.id)
    for item in declared:
        prefix = item.id + "."
        for other in sorted(seen):
            if other.startswith(prefix):
                problems.append(f"input ids `{item.id}` and `{other}` conflict (`{item.id}` would hold both)")
    for cycle in _cycles(declared):
        problems.append("circular `dependsOn` between inputs " + ", ".join(f"`{i}`" for i in cycle))
    return problems


def _cycles(declared: Sequence[BaseInput]) -> list[list[str]]:
    """Strongly connected groups of ``dependsOn`` (Tarjan), i.e. inputs that can never be resolved."""
    edges = {
        item.id: [d for d in (item.depends_on.inputs if item.depends_on else []) if d != item.id]
        for item in declared
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, []):
            if nxt not in edges:
                continue  # unknown dependencies are ignored, as in Kestra
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


# --------------------------------------------------------------------------------------------------------
# Parsing by type
# --------------------------------------------------------------------------------------------------------

_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fFdD]?\s*")
_URI = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/?#]+[^\s]*")
_EMAIL = re.compile(r"[A-Za-z0-9_!#$%&'*+/=?`{|}~^.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


class _Invalid(ValueError):
    """A value cannot be parsed or breaks a constraint; ``str()`` is Kestra's reason text."""


def _expected(kind: str, value: Any) -> _Invalid:
    return _Invalid(f"Expected `{kind}` but received `{java_str(value)}`")


def _safe_filename(name: str, fallback: str) -> str:
    """Keep only the last path segment: a multipart or path name must not steer where the file lands."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return base if base not in ("", ".", "..") else fallback


def _store_file(value: Any, input_id: str, files: FileStore | None, extension: str) -> str:
    """Keep ``kestra://`` URIs; upload anything else through ``files``."""
    if isinstance(value, str) and value.startswith("kestra://"):
        return value
    fallback = f"{input_id or 'file'}{extension}"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        filename, source = _safe_filename(value[0], fallback), value[1]
    elif isinstance(value, str | os.PathLike):
        path = Path(os.fspath(value))
        filename, source = _safe_filename(path.name, fallback), path
    elif isinstance(value, bytes | bytearray):
        filename, source = fallback, bytes(value)
    elif hasattr(value, "read"):
        name = getattr(value, "name", None)
        filename, source = (_safe_filename(name, fallback) if isinstance(name, str) else fallback), value
    else:
        raise _expected("FILE", value)
    if files is None:
        raise _Invalid(
            f"Expected a `kestra:///` URI but received `{java_str(value)}` (no file storage to upload it to)"
        )
    try:
        return files.store(input_id, filename, source)
    except (OSError, ValueError, TiercelError) as exc:
        raise _Invalid(f"Unable to upload the file: {exc}") from exc


def _parse(
    kind: str,
    value: Any,
    *,
    item_type: str | None,
    input_id: str,
    files: FileStore | None,
    extension: str,
) -> Any:
    """Parse into the *native* Python value (temporal types as objects); raises ``_Invalid``."""
    if kind in ("STRING", "ENUM", "SELECT", "EMAIL", "URI", "SECRET"):
        if kind == "SECRET" and isinstance(value, Mapping) and value.get("type") == ENCRYPTED_TYPE:
            return dict(value)  # already encrypted (restart, subflow): keep it
        try:
            text = _as_text(value)
        except TypeError:
            raise _expected(kind, value) from None
        if kind == "URI" and not _URI.fullmatch(text):
            raise _expected("URI", value)
        return text
    if kind == "INT":
        if isinstance(value, bool):
            raise _expected(kind, value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value):
            return int(value)
        raise _expected(kind, value)
    if kind == "FLOAT":
        if isinstance(value, bool):
            raise _expected(kind, value)
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and _FLOAT.fullmatch(value):
            number = float(value.strip().rstrip("fFdD"))
        else:
            raise _expected(kind, value)
        if not math.isfinite(number):
            raise _expected(kind, value)
        return number
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _expected(kind, value)
    if kind == "DATETIME":
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return _parse_text(kind, value, parse_instant)
    if kind == "DATE":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        return _parse_text(kind, value, parse_local_date)
    if kind == "TIME":
        if isinstance(value, time):
            return value
        return _parse_text(kind, value, parse_local_time)
    if kind == "DURATION":
        if isinstance(value, timedelta):
            return value
        return _parse_text(kind, value, parse_duration)
    if kind == "FILE":
        return _store_file(value, input_id, files, extension)
    if kind == "JSON":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _expected(kind, value) from None
        return _jsonable(value)
    if kind == "YAML":
        if isinstance(value, str):
            try:
                return _jsonable(yaml.load(value, Loader=_YamlLoader))
            except yaml.YAMLError:
                raise _expected(kind, value) from None
        return _jsonable(value)
    if kind in ("ARRAY", "MULTISELECT"):
        items = value
        if isinstance(value, str):
            try:
                items = json.loads(value)
            except ValueError:
                raise _expected(kind, value) from None
        if not isinstance(items, list | tuple):
            raise _expected(kind, value)
        if item_type is None:
            return _jsonable(list(items))
        parsed = []
        for element in items:
            try:
                parsed.append(
                    parse_typed(item_type, element, input_id=input_id, files=files, extension=extension)
                )
            except ValueError:
                raise _Invalid(
                    f"Unable to parse array element as `{item_type}` on `{java_str(element)}`"
                ) from None
        return parsed
    raise _Invalid(f"Unknown type `{kind}`")


def _parse_text(kind: str, value: Any, parser: Callable[[str], Any]) -> Any:
    if not isinstance(value, str):
        raise _expected(kind, value)
    try:
        return parser(value)
    except ValueError:
        raise _expected(kind, value) from None


def _to_stored(kind: str, native: Any) -> Any:
    """Native value → the JSON-native value kept in the execution (see the module docstring)."""
    if kind == "DATETIME":
        return format_instant(native)
    if kind == "DATE":
        return native.isoformat()
    if kind == "TIME":
        return format_local_time(native)
    if kind == "DURATION":
        return format_duration(native)
    return native


def parse_typed(
    kind: str,
    value: Any,
    *,
    item_type: str | None = None,
    input_id: str = "",
    files: FileStore | None = None,
    encrypt: Encrypter | None = None,
    extension: str = ".upl",
) -> Any:
    """Convert one non-null value to the stored form of ``kind`` (shared by inputs and flow outputs).

    Strings are converted (``"42"`` → 42, ``"PT5M6S"`` stays the canonical ``"PT5M6S"``, a JSON string
    → the parsed value, a local path or bytes for FILE → the URI ``files.store`` returns); values that
    already have the right type are kept. Only parsing happens here, constraints (``min``, ``values``,
    ``validator``…) are checked by :func:`resolve_inputs`. SECRET goes through ``encrypt`` when given.

    Raises ``ValueError`` whose text is Kestra's reason, e.g. ``Expected `INT` but received `abc```.
    """
    native = _parse(kind, value, item_type=item_type, input_id=input_id, files=files, extension=extension)
    if kind == "SECRET" and encrypt is not None and isinstance(native, str):
        return encrypt(native)
    return _to_stored(kind, native)


# --------------------------------------------------------------------------------------------------------
# Constraints
# --------------------------------------------------------------------------------------------------------


def _check(declared: BaseInput, native: Any) -> None:
    """Raise ``_Invalid`` with Kestra's wording when a parsed value breaks the input's constraints."""
    if isinstance(declared, StringInput | SecretInput) and declared.validator is not None:
        if isinstance(native, str) and not java_regex(declared.validator).fullmatch(native):
            raise _Invalid(f"it must match the pattern `{declared.validator}`")
    elif isinstance(declared, IntInput | FloatInput | DurationInput):
        lower, upper = declared.min, declared.max
        capital = "I" if isinstance(declared, DurationInput) else "i"  # Kestra's DURATION wording
        if lower is not None and native < lower:
            raise _Invalid(f"{capital}t must be more than `{java_str(lower)}`")
        if upper is not None and native > upper:
            raise _Invalid(f"{capital}t must be less than `{java_str(upper)}`")
    elif isinstance(declared, DateTimeInput | DateInput | TimeInput):
        if declared.after is not None and native < declared.after:
            raise _Invalid(f"it must be after `{java_str(declared.after)}`")
        if declared.before is not None and native > declared.before:
            raise _Invalid(f"it must be before `{java_str(declared.before)}`")
    elif isinstance(declared, EnumInput | SelectInput):
        allowed = declared.values or []
        custom = isinstance(declared, SelectInput) and declared.allow_custom_value
        if not custom and native not in allowed:
            raise _Invalid(f"it must match the values `{java_str(allowed)}`")
    elif isinstance(declared, MultiselectInput):
        allowed = declared.values or []
        if not declared.allow_custom_value:
            for element in native:
                if java_str(element) not in allowed:
                    raise _Invalid(f"it must match the values `{java_str(allowed)}`")
    elif isinstance(declared, EmailInput) and native and not _EMAIL.fullmatch(native):
        raise _Invalid("The input must be a valid email")


def _java_class_name(value: Any) -> str:
    if value is None:
        return "<null>"
    names = {str: "String", bool: "Boolean", int: "Integer", float: "Double", dict: "Map", list: "List"}
    return names.get(type(value), type(value).__name__)


def _render_choices(declared: SelectInput | MultiselectInput, render: Renderer | None, context: Any) -> list:
    """Render ``expression`` into the allowed values (non-null items, as strings)."""
    if render is None:
        raise _Invalid("Cannot render 'expression'. Cause: no template renderer available")
    try:
        result = render(declared.expression or "", context)
    except Exception as exc:  # any failure of a user expression is an input problem
        raise _Invalid(f"Cannot render 'expression'. Cause: {exc}") from exc
    if isinstance(result, str):
        with contextlib.suppress(ValueError):  # a renderer returning text gives the list as JSON
            result = json.loads(result)
    if isinstance(result, list | tuple):
        return [java_str(item) for item in result if item is not None]
    raise _Invalid(
        f"Invalid expression result. Expected a list of strings, but received {_java_class_name(result)}"
    )


# --------------------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Resolved:
    enabled: bool = True
    value: Any = None
    problem: str | None = None


def _lookup(provided: Mapping[str, Any], input_id: str) -> Any:
    """The provided value for ``input_id``; a dotted id may also be given as nested maps."""
    value = provided.get(input_id)
    if value is None and "." in input_id:
        node: Any = provided
        for part in input_id.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node
    return value


class _Resolver:
    """One resolution run: memoises each input so ``dependsOn`` chains are resolved once, in order."""

    def __init__(
        self,
        declared: Sequence[BaseInput],
        provided: Mapping[str, Any],
        files: FileStore | None,
        render: Renderer | None,
        encrypt: Encrypter | None,
        context: Mapping[str, Any] | None,
    ) -> None:
        self.by_id: dict[str, BaseInput] = {}
        for item in declared:
            self.by_id.setdefault(item.id, item)  # Kestra keeps the first of duplicated ids
        self.provided = provided
        self.files = files
        self.render = render
        self.encrypt = encrypt
        self.context = dict(context or {})
        self.done: dict[str, _Resolved] = {}
        self.cyclic = {member for group in _cycles(list(self.by_id.values())) for member in group}

    def raw(self, item: BaseInput) -> Any:
        value = _lookup(self.provided, item.id)
        return item.defaults if value is None else value

    def resolve(self, item: BaseInput) -> _Resolved:
        if item.id in self.done:
            return self.done[item.id]
        result = self._resolve(item)
        self.done[item.id] = result
        return result

    def _resolve(self, item: BaseInput) -> _Resolved:
        raw = self.raw(item)

        def fail(reason: str, received: Any = raw) -> _Resolved:
            if item.type == "SECRET" and received is not None:
                received = "******"  # a secret never appears in an error message
            return _Resolved(value=raw, problem=_problem("input", item.id, reason, received))

        if item.id in self.cyclic:
            return fail("circular `dependsOn` between inputs")

        depends = item.depends_on
        dependencies = {
            dep: self.resolve(self.by_id[dep])
            for dep in (depends.inputs if depends else [])
            if dep != item.id and dep in self.by_id  # unknown dependencies are ignored, as in Kestra
        }
        if not all(dep.enabled for dep in dependencies.values()):
            return _Resolved(enabled=False)
        try:
            scope = {**self.context, "inputs": nest_dotted({k: v.value for k, v in dependencies.items()})}
        except ValueError as exc:
            return fail(str(exc))

        if depends is not None and depends.condition is not None:
            if self.render is None:
                return fail("Invalid condition: no template renderer available", depends.condition)
            try:
                shown = self.render(depends.condition, scope)
            except Exception as exc:  # a failing user expression is an input problem
                return fail(f"Invalid condition: {exc}", depends.condition)
            if not (shown is True or (isinstance(shown, str) and shown.strip().lower() == "true")):
                return _Resolved(enabled=False)

        declared = item
        if isinstance(item, SelectInput | MultiselectInput) and item.expression is not None:
            try:
                declared = item.model_copy(update={"values": _render_choices(item, self.render, scope)})
            except _Invalid as exc:
                return fail(str(exc))

        if raw is None:
            if declared.required:
                return fail("missing required input", None)
            return _Resolved(value=None)

        try:
            value = self._parse_and_check(declared, raw)
        except _Invalid as exc:
            return fail(str(exc))
        return _Resolved(value=value)

    def _parse_and_check(self, declared: BaseInput, raw: Any) -> Any:
        kind = declared.type
        item_type = getattr(declared, "item_type", None)
        extension = declared.extension if isinstance(declared, FileInput) else ".upl"
        native = _parse(
            kind, raw, item_type=item_type, input_id=declared.id, files=self.files, extension=extension
        )
        _check(declared, native)
        if kind == "SECRET" and self.encrypt is not None and isinstance(native, str):
            try:
                return self.encrypt(native)
            except (ValueError, TiercelError) as exc:
                raise _Invalid(str(exc)) from exc
        return _to_stored(kind, native)


def resolve_inputs(
    declared: Sequence[BaseInput],
    provided: Mapping[str, Any],
    *,
    files: FileStore | None = None,
    render: Renderer | None = None,
    encrypt: Encrypter | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate and type the inputs of a new execution (or of a Pause's ``onResume``).

    ``provided`` maps input ids (dotted ids flat, or as nested maps) to raw values — strings from the API
    or CLI, or already typed values from a trigger. ``files`` uploads FILE content; ``render`` evaluates
    ``dependsOn.condition`` and SELECT/MULTISELECT ``expression`` with ``{"inputs": <dependency values>}``
    on top of ``context`` (e.g. ``flow``/``execution`` variables). ``encrypt`` turns a SECRET's text into
    its stored form; without it the plain text is kept (pass :func:`refuse_secrets` for Kestra's
    behaviour when no encryption key is configured).

    Returns the nested typed map: hidden inputs (false condition) are absent, optional inputs without a
    value are ``None``. Raises :class:`~tiercel.errors.InputError` listing every invalid input.
    """
    resolver = _Resolver(declared, provided, files, render, encrypt, context)
    resolved = {item_id: resolver.resolve(item) for item_id, item in resolver.by_id.items()}
    problems = [(item_id, r.problem) for item_id, r in resolved.items() if r.enabled and r.problem]
    _raise_all(InputError, problems)
    values = {item_id: r.value for item_id, r in resolved.items() if r.enabled}
    try:
        return nest_dotted(values)
    except ValueError as exc:
        raise InputError(str(exc), [("inputs", str(exc))]) from exc


def typed_outputs(
    declared: Sequence[Output],
    rendered: Mapping[str, Any],
    *,
    files: FileStore | None = None,
    encrypt: Encrypter | None = None,
) -> dict[str, Any]:
    """Type a flow's rendered ``outputs:`` values (``rendered`` maps output id → rendered value).

    Same parsing as inputs (no constraints). A required output rendering to null fails; an optional one
    is ``None``. Raises :class:`~tiercel.errors.ValidationError` (``Invalid output for `id`, …``) listing
    every failure; the engine then fails the execution, as Kestra does.
    """
    problems: list[tuple[str, str]] = []
    result: dict[str, Any] = {}
    for output in declared:
        current = rendered.get(output.id)
        if current is None:
            if output.required:
                problems.append((output.id, _problem("output", output.id, "missing required output", None)))
            else:
                result[output.id] = None
            continue
        try:
            result[output.id] = parse_typed(
                output.type, current, input_id=output.id, files=files, encrypt=encrypt
            )
        except (ValueError, TiercelError) as exc:
            problems.append((output.id, _problem("output", output.id, str(exc), current)))
    _raise_all(ValidationError, problems)
    return result
