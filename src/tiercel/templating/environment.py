"""The sandboxed Jinja environment that runs translated Pebble templates.

Jinja's ``ImmutableSandboxedEnvironment`` does the heavy lifting, with these changes:

* attribute and item access follow Pebble and touch nothing but data: map keys (never methods, so
  ``outputs.x.values`` is the ``values`` output), list indexes, loop variables and map entries.
  No Python attribute of any user value is reachable, so ``x.__class__`` is merely undefined;
* undefined values are strict but chainable: ``a.b.c`` with ``a`` missing is one undefined value
  that fails, naming ``a``, when it is printed, compared, iterated or passed to a filter; ``??``,
  ``is defined``, ``is null`` and ``default`` may inspect it without failing;
* ``finalize`` prints values as Kestra does (maps and lists as compact JSON, ``true``, ``1.0``);
* no loader and no globals: ``include``/``import`` cannot load anything and functions are filters;
* compiled templates are cached by source text, and every failure becomes a ``TemplateError``
  worded like Kestra's (``Unable to find `x` used in the expression `...` at line 1``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, pass_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tiercel.errors import TemplateError
from tiercel.templating.filters import FILTERS
from tiercel.templating.functions import FUNCTIONS
from tiercel.templating.lexer import PebbleSyntaxError
from tiercel.templating.limits import MAX_LOOP_ITERATIONS, MAX_OUTPUT_CHARS, MAX_TEMPLATE_CHARS
from tiercel.templating.operators import BUDGET_KEY, OPERATOR_FILTERS
from tiercel.templating.predicates import TESTS
from tiercel.templating.translate import RESULT_VAR, Translation, translate
from tiercel.templating.values import Entry, to_text

__all__ = ["PebbleEnvironment", "PebbleUndefined", "compile_template", "render_source", "render_typed_source"]

_CACHE_SIZE = 1000  # Kestra's default template cache size
_MESSAGE_SOURCE_CHARS = 2000
_LOOP_ATTRIBUTES = {
    "index": "index0",
    "revindex": "revindex0",
    "first": "first",
    "last": "last",
    "length": "length",
}


class MissingVariableError(UndefinedError):
    """A strict undefined value was used; ``name`` is the variable, key or attribute not found."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unable to find `{name}`")
        self.name = name


class PebbleUndefined(StrictUndefined):
    """Strict, but reading an attribute of it yields itself so the first missing name is reported."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if self._undefined_exception is SecurityError:  # pragma: no cover - our resolver never marks these
            raise SecurityError(self._undefined_hint or "unsafe access")
        name = self._undefined_name
        raise MissingVariableError(str(name) if name is not None else "null")

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self


class _RenderError(TemplateError):
    """A fully worded error from an inner render (``render()``): passed through untouched."""


def _resolve(obj: Any, key: Any) -> Any:
    """Pebble attribute/item lookup restricted to data."""
    if type(obj) is dict or isinstance(obj, Mapping):  # the exact-type test spares dicts the ABC check
        try:
            return obj[key]
        except KeyError:
            if type(key) is int and str(key) in obj:
                return obj[str(key)]
        except TypeError:
            pass
        return PebbleUndefined(obj=obj, name=key)
    if isinstance(obj, (list, tuple)):
        index = key if type(key) is int else int(key) if isinstance(key, str) and key.isdigit() else None
        if index is not None and 0 <= index < len(obj):
            return obj[index]
        return PebbleUndefined(obj=obj, name=key)
    if isinstance(obj, Undefined):
        return obj
    if isinstance(obj, Entry) and key in ("key", "value"):
        return obj.key if key == "key" else obj.value
    if isinstance(obj, LoopContext) and key in _LOOP_ATTRIBUTES:
        return getattr(obj, _LOOP_ATTRIBUTES[key])
    return PebbleUndefined(obj=obj, name=key)


class PebbleEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed environment with Pebble's lookup rules, printing and registries."""

    def getitem(self, obj: Any, argument: Any) -> Any:
        return _resolve(obj, argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return _resolve(obj, attribute)


def _function_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Expose a function as the filter ``none|__pbf_name(...)``; the piped ``none`` is ignored."""

    @pass_context
    def call(context: Context, _unused: None, *args: Any, **kwargs: Any) -> Any:
        for argument in (*args, *kwargs.values()):
            if isinstance(argument, Undefined):
                argument._fail_with_undefined_error()
        try:
            return function(context, *args, **kwargs)
        except TypeError as exc:
            raise TemplateError(f"Invalid arguments for the function '{name}()': {exc}") from None

    return call


def _build() -> PebbleEnvironment:
    env = PebbleEnvironment(
        autoescape=False,
        keep_trailing_newline=True,
        undefined=PebbleUndefined,
        finalize=to_text,
        cache_size=0,
        auto_reload=False,
    )
    env.globals.clear()
    env.filters = {
        **FILTERS,
        **OPERATOR_FILTERS,
        **{f"__pbf_{name}": _function_filter(name, function) for name, function in FUNCTIONS.items()},
    }
    env.tests = dict(TESTS)
    return env


ENVIRONMENT = _build()
_FILTER_NAMES = frozenset(FILTERS)
_TEST_NAMES = frozenset(TESTS)
_FUNCTION_NAMES = frozenset(FUNCTIONS)


def _shorten(source: str) -> str:
    if len(source) <= _MESSAGE_SOURCE_CHARS:
        return source
    return source[:_MESSAGE_SOURCE_CHARS] + "…"


def _template_line(traceback: TracebackType | None, default: int) -> int:
    """Template line of the innermost frame that ran compiled template code."""
    line = default
    while traceback is not None:
        template = traceback.tb_frame.f_globals.get("__jinja_template__")
        if template is not None and traceback.tb_frame.f_code.co_filename == "<template>":
            line = template.get_corresponding_lineno(traceback.tb_lineno)
        traceback = traceback.tb_next
    return line


def _error(exc: BaseException, source: str, line: int) -> TemplateError:
    shown = _shorten(source)
    if isinstance(exc, MissingVariableError):
        return _RenderError(f"Unable to find `{exc.name}` used in the expression `{shown}` at line {line}")
    if isinstance(exc, SecurityError):
        return _RenderError(f"Access denied by the template sandbox: {exc} ({shown}:{line})")
    if isinstance(exc, RecursionError):
        return _RenderError(f"The template is nested too deeply ({shown}:{line})")
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return _RenderError(f"{message} ({shown}:{line})")


class CompiledTemplate:
    """A translated, compiled template ready to render many times."""

    __slots__ = ("_typed", "source", "template", "translation")

    def __init__(self, source: str, translation: Translation, template: Any) -> None:
        self.source = source
        self.translation = translation
        self.template = template
        self._typed: Any = None

    @property
    def is_expression(self) -> bool:
        return self.translation.expression is not None

    def _context(self, template: Any, variables: Mapping[str, Any]) -> Context:
        context: Context = template.new_context(variables, shared=True)
        if self.translation.has_loops:
            context.vars[BUDGET_KEY] = [MAX_LOOP_ITERATIONS]
        return context

    def render(self, variables: Mapping[str, Any]) -> str:
        template = self.template
        try:
            parts: list[str] = []
            size = 0
            for chunk in template.root_render_func(self._context(template, variables)):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateError(f"The output exceeds the limit of {MAX_OUTPUT_CHARS} characters")
                parts.append(chunk)
            return "".join(parts)
        except _RenderError:
            raise
        except Exception as exc:
            raise _error(exc, self.source, _template_line(exc.__traceback__, 1)) from None

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The native value of a single-expression template."""
        if self._typed is None:
            self._typed = _jinja_compile(self.translation.typed_source or "", self.source)
        template = self._typed
        try:
            context = self._context(template, variables)
            for _ in template.root_render_func(context):
                pass
            result = context.vars[RESULT_VAR]
            _check_defined(result)
            return result
        except _RenderError:
            raise
        except Exception as exc:
            line = _template_line(exc.__traceback__, self.translation.typed_source.count("\n") + 1)  # type: ignore[union-attr]
            raise _error(exc, self.source, line) from None


def _check_defined(value: Any, depth: int = 0) -> None:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if depth < 32 and type(value) in (list, dict):
        for item in value.values() if isinstance(value, dict) else value:
            _check_defined(item, depth + 1)


def _jinja_compile(jinja_source: str, source: str) -> Any:
    try:
        return ENVIRONMENT.from_string(jinja_source)
    except TemplateSyntaxError as exc:
        raise _RenderError(f"{exc.message} ({_shorten(source)}:{exc.lineno})") from None
    except (JinjaTemplateError, RecursionError) as exc:
        raise _error(exc, source, 1) from None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_template(source: str) -> CompiledTemplate:
    """Translate and compile ``source`` once; raises ``TemplateError`` for invalid templates."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"The template is longer than the limit of {MAX_TEMPLATE_CHARS} characters")
    try:
        translation = translate(source, _FILTER_NAMES, _TEST_NAMES, _FUNCTION_NAMES)
    except PebbleSyntaxError as exc:
        raise _RenderError(f"{exc.message} ({_shorten(source)}:{exc.line})") from None
    except RecursionError:
        raise _RenderError(f"The template is nested too deeply ({_shorten(source)}:1)") from None
    return CompiledTemplate(source, translation, _jinja_compile(translation.source, source))


def render_source(source: str, variables: Mapping[str, Any]) -> str:
    """Render ``source`` to text (no ``{`` means nothing to render)."""
    if "{" not in source:
        return source
    return compile_template(source).render(variables)


def render_typed_source(source: str, variables: Mapping[str, Any]) -> Any:
    """Native value of a single ``{{ expression }}`` template, else the rendered text."""
    if "{" not in source:
        return source
    compiled = compile_template(source)
    if compiled.is_expression:
        return compiled.evaluate(variables)
    return compiled.render(variables)
