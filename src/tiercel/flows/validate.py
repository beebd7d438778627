"""YAML text to a validated Flow, with every problem reported as ``file:line:col: field: message``.

Validation goes: YAML (1.2 scalars, duplicate keys refused) → plugin defaults → the pydantic models
built by the plugin registry → whole-flow checks pydantic cannot express (unique task ids, inputs).
Pydantic locations are mapped back to YAML positions only on the error path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic

from tiercel.errors import ValidationError
from tiercel.flows.defaults import apply_plugin_defaults
from tiercel.flows.loader import format_location, format_path, load_mapping
from tiercel.model.flow import Flow, FlowWithSource
from tiercel.plugins.registry import PluginRegistry, default_registry


def parse_flow(
    text: str,
    source: str = "<string>",
    *,
    registry: PluginRegistry | None = None,
    global_defaults: Sequence[Mapping[str, Any]] = (),
    first_line: int = 1,
) -> FlowWithSource:
    """Parse and validate one flow document; raise ``ValidationError`` listing every problem."""
    registry = registry or default_registry()
    registry.build()
    data = load_mapping(text, source, first_line=first_line)
    data = apply_plugin_defaults(data, global_defaults, registry.is_type_name)
    try:
        flow = Flow.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_problem(err, registry, source, text, first_line) for err in exc.errors()]
        raise _error(source, problems) from None
    problems = [
        (format_location(source, text, path, first_line=first_line), f"{format_path(path)}: {msg}")
        for path, msg in _flow_checks(flow, data)
    ]
    if problems:
        raise _error(source, problems)
    return FlowWithSource(flow=flow, source=text)


def load_flow_file(path: str | Path, **kwargs: Any) -> FlowWithSource:
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ValidationError(f"'{path}' {what}", [(str(path), what)])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(
            f"{path}: cannot read file: {exc.__class__.__name__}", [(str(path), str(exc))]
        ) from None
    return parse_flow(text, str(path), **kwargs)


def flow_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand directories into their ``*.yml``/``*.yaml`` files (sorted, recursive)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()))
        else:
            out.append(path)
    return out


def _error(source: str, problems: list[tuple[str, str]]) -> ValidationError:
    lines = "\n".join(f"{where}: {what}" for where, what in problems)
    noun = "problem" if len(problems) == 1 else "problems"
    return ValidationError(f"Invalid flow {source} ({len(problems)} {noun}):\n{lines}", problems)


def _problem(
    err: Mapping[str, Any], registry: PluginRegistry, source: str, text: str, first_line: int
) -> tuple[str, str]:
    path = [p for p in err["loc"] if not (isinstance(p, str) and (registry.is_type_name(p) or "[" in p))]
    kind = err["type"]
    message = str(err["msg"])
    at_key = False
    if kind == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag")
        message = f"Invalid type: {tag}"
        path = [*path, "type"]
    elif kind == "union_tag_not_found":
        message = "missing required property `type`"
    elif kind == "extra_forbidden":
        message = f"Unrecognized field `{path[-1] if path else ''}`"
        at_key = True
    elif kind == "missing":
        message = f"missing required property `{path[-1] if path else ''}`"
    elif kind == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern")
        message = f'must match "{pattern}", got {err.get("input")!r}'
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    where = format_location(source, text, path, at_key=at_key, first_line=first_line)
    return where, f"{format_path(path) or '(flow)'}: {message}"


def _task_id_paths(node: Any, path: list[str | int] | None = None) -> list[tuple[list[str | int], str]]:
    """Every mapping that looks like a task (``id`` + ``type``) with its path, in document order."""
    path = path or []
    out: list[tuple[list[str | int], str]] = []
    if isinstance(node, Mapping):
        if (
            isinstance(node.get("id"), str)
            and isinstance(node.get("type"), str)
            and path
            and path[0] != "triggers"
        ):
            out.append((path, node["id"]))
        for key, value in node.items():
            if key not in ("inputs", "outputs", "variables", "triggers", "pluginDefaults", "taskDefaults"):
                out.extend(_task_id_paths(value, [*path, key]))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_task_id_paths(value, [*path, index]))
    return out


def _flow_checks(flow: Flow, data: Mapping[str, Any]) -> list[tuple[list[str | int], str]]:
    problems: list[tuple[list[str | int], str]] = []
    counts = Counter(flow.all_task_ids())
    seen: dict[str, list[str | int]] = {}
    for path, task_id in _task_id_paths(data):
        if counts.get(task_id, 0) > 1 and task_id in seen:
            first = format_path(seen[task_id])
            message = f"Duplicate task id `{task_id}` (first used at {first}); task ids must be unique"
            problems.append(([*path, "id"], message))
        seen.setdefault(task_id, path)
    if flow.inputs:
        from tiercel.flows.inputs import check_declarations

        for message in check_declarations(flow.inputs):
            problems.append((["inputs"], message))
        seen: set[str] = set()
        for declared in flow.inputs:
            if declared.id in seen:
                problems.append((["inputs"], f"Duplicate input id `{declared.id}`"))
            seen.add(declared.id)
    trigger_ids = Counter(t.id for t in flow.triggers or [])
    for trigger_id, n in trigger_ids.items():
        if n > 1:
            problems.append((["triggers"], f"Duplicate trigger id `{trigger_id}`"))
    return problems
