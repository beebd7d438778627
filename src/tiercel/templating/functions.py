"""Template functions (``now()``, ``render()``, ``secret()``, ``currentEachOutput()``...).

Each takes the Jinja context first: functions that touch the outside world get it from the
:class:`~tiercel.templating.services.RenderServices` the caller put in the variables, and the
others read variables such as ``taskrun`` or ``parents`` from it. Argument names follow Kestra's,
so ``kv('k', errorOnMissing=true)`` works as documented there.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import yaml
from jinja2.runtime import Context

from tiercel.errors import TemplateError, TiercelError
from tiercel.templating import dates
from tiercel.templating.ion import from_ion
from tiercel.templating.limits import MAX_RECURSIVE_PASSES, MAX_RENDER_DEPTH
from tiercel.templating.operators import OPERATOR_FILTERS
from tiercel.templating.services import SERVICES_KEY, require_services

__all__ = ["FUNCTIONS", "short_id"]

FUNCTIONS: dict[str, Callable[..., Any]] = {}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_render_depth: ContextVar[int] = ContextVar("tiercel_render_depth", default=0)


def _function(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            FUNCTIONS[name] = function
        return function

    return register


def _service_call(name: str, call: Callable[[], Any]) -> Any:
    """Run a service call, turning the engine's own errors into template errors."""
    try:
        return call()
    except TemplateError:
        raise
    except TiercelError as exc:
        raise TemplateError(str(exc)) from exc


# -- dates and ids ---------------------------------------------------------------------------------


@_function("now")
def _now(
    context: Context,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    """The current time formatted like the ``date`` filter (``iso`` by default), as Kestra does."""
    return dates.format_date(dt.datetime.now(dt.UTC), format, timeZone, None, locale)


@_function("uuid")
def _uuid(context: Context) -> str:
    return str(uuid.uuid4())


def short_id() -> str:
    """A random 22-character base62 id, the shape of Kestra's ``IdUtils.create()``."""
    number = uuid.uuid4().int
    chars: list[str] = []
    while number:
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars)).rjust(22, "0")


@_function("id")
def _id(context: Context) -> str:
    return short_id()


@_function("randomInt")
def _random_int(context: Context, lower: int, upper: int) -> int:
    """A random integer in ``[lower, upper)`` like Kestra's ``randomInt``."""
    for value in (lower, upper):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TemplateError("The 'randomInt' function expects integer arguments 'lower' and 'upper'")
    if upper < lower:
        raise TemplateError("In 'randomInt()' upper is less than lower")
    return lower if upper == lower else random.randrange(lower, upper)


@_function("range")
def _range(context: Context, start: Any, end: Any, increment: int = 1) -> list[Any]:
    return OPERATOR_FILTERS["__pb_range"](start, end, increment)


def _extreme(name: str, pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(context: Context, *values: Any) -> Any:
        items = list(values[0]) if len(values) == 1 and isinstance(values[0], (list, tuple)) else values
        if not items:
            raise TemplateError(f"The '{name}' function expects at least one argument")
        try:
            return pick(items)
        except TypeError:
            raise TemplateError(f"The '{name}' function expects comparable values") from None

    return extreme


FUNCTIONS["max"] = _extreme("max", max)
FUNCTIONS["min"] = _extreme("min", min)


# -- parsing ---------------------------------------------------------------------------------------


def _parse_json(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise TemplateError(f"Invalid JSON: {exc}") from None


@_function("json", "fromJson", "jsonDecode")
def _json(context: Context, json: Any) -> Any:
    return _parse_json(json)


@_function("yaml", "fromYaml")
def _yaml(context: Context, input: Any) -> Any:
    text = input
    if text is None or not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"Invalid YAML: {exc}") from None


@_function("fromIon", "ionDecode")
def _from_ion(context: Context, ion: Any) -> Any:
    return from_ion(ion)


# -- rendering -------------------------------------------------------------------------------------


def _variables(context: Context) -> dict[str, Any]:
    return context.get_all()


@_function("render")
def _render(context: Context, template: Any, recursive: Any = True) -> str:
    """Render a string that holds ``{{ }}`` against the same variables (until stable if recursive)."""
    from tiercel.templating.environment import render_source

    if not isinstance(template, str):
        raise TemplateError("The 'render' function expects an argument 'template' with type string.")
    if not isinstance(recursive, bool):
        raise TemplateError(
            "The 'render' function expects an optional argument 'recursive' with type boolean."
        )
    depth = _render_depth.get()
    if depth >= MAX_RENDER_DEPTH:
        raise TemplateError(f"render() is nested more than {MAX_RENDER_DEPTH} levels deep")
    token = _render_depth.set(depth + 1)
    try:
        variables = _variables(context)
        result = render_source(template, variables)
        passes = 0
        while recursive and result != template:
            passes += 1
            if passes > MAX_RECURSIVE_PASSES:
                raise TemplateError("Too many rendering attempts")
            template, result = result, render_source(result, variables)
        return result
    finally:
        _render_depth.reset(token)


@_function("renderOnce")
def _render_once(context: Context, template: Any) -> str:
    return _render(context, template, recursive=False)


@_function("printContext", "fetchContext")
def _print_context(context: Context) -> dict[str, Any]:
    return {
        key: value
        for key, value in _variables(context).items()
        if key != SERVICES_KEY and not key.startswith("__pb")
    }


# -- loops -----------------------------------------------------------------------------------------


@_function("currentEachOutput")
def _current_each_output(context: Context, outputs: Any) -> Any:
    """Pick the entry of a task's loop-nested outputs for the current iteration(s).

    The outputs of a task inside ``ForEach`` are nested by the loop values, outermost first; the
    values of the current path are ``parents[*].taskrun.value`` (nearest first) then ``taskrun.value``.
    """
    if not isinstance(outputs, Mapping):
        raise TemplateError("The 'currentEachOutput' function expects an argument 'outputs' with type map.")
    parents = context.get("parents") or []
    for parent in reversed(list(parents)):
        taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
        if not isinstance(taskrun, Mapping) or taskrun.get("value") is None:
            continue
        step = outputs.get(taskrun.get("value")) if isinstance(taskrun, Mapping) else None
        if not isinstance(step, Mapping):
            raise TemplateError("No execution outputs for the current task runs path")
        outputs = step
    taskrun = context.get("taskrun")
    value = taskrun.get("value") if isinstance(taskrun, Mapping) else None
    return outputs.get(value)


# -- services --------------------------------------------------------------------------------------


def _path(value: Any, function: str) -> str:
    if not isinstance(value, str) or not value:
        raise TemplateError(f"The '{function}' function expects an argument 'path' that is a string")
    return value


@_function("secret")
def _secret(context: Context, key: Any) -> str:
    if not isinstance(key, str):
        raise TemplateError("The 'secret' function expects an argument 'key' that is a string")
    services = require_services(context, "secret")
    return _service_call("secret", lambda: services.secret(key))


@_function("kv")
def _kv(context: Context, key: Any, namespace: Any = None, errorOnMissing: Any = False) -> Any:
    """A KV-store value; missing keys give ``null`` unless ``errorOnMissing`` (Kestra 0.20 default)."""
    if not isinstance(key, str):
        raise TemplateError("The 'kv' function expects an argument 'key' that is a string")
    services = require_services(context, "kv")
    strict = bool(errorOnMissing)
    value = _service_call("kv", lambda: services.kv(key, namespace, strict))
    if value is None and strict:
        flow = context.get("flow")
        where = namespace or (flow.get("namespace") if isinstance(flow, Mapping) else None)
        raise TemplateError(f"The key '{key}' does not exist in the namespace '{where}'.")
    return value


@_function("read")
def _read(context: Context, path: Any) -> str:
    services = require_services(context, "read")
    target = _path(path, "read")
    return _service_call("read", lambda: services.read(target))


@_function("fileURI")
def _file_uri(context: Context, path: Any) -> str:
    services = require_services(context, "fileURI")
    target = _path(path, "fileURI")
    return _service_call("fileURI", lambda: services.file_uri(target))


@_function("fileSize")
def _file_size(context: Context, path: Any) -> int:
    services = require_services(context, "fileSize")
    target = _path(path, "fileSize")
    return _service_call("fileSize", lambda: services.file_size(target))


@_function("errorLogs")
def _error_logs(context: Context) -> list[Mapping[str, Any]]:
    services = require_services(context, "errorLogs")
    return list(_service_call("errorLogs", services.error_logs))
