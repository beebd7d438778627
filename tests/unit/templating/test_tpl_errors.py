"""Error messages, strict undefined handling, sandbox escapes and resource limits."""

from __future__ import annotations

import re
from typing import Any

import jinja2
import pytest

from tiercel.errors import TemplateError
from tiercel.templating import render, render_typed
from tiercel.templating.limits import MAX_OUTPUT_CHARS

CONTEXT: dict[str, Any] = {
    "inputs": {"a": 1, "none": None, "l": [1, 2]},
    "taskrun": {"value": "x"},
    "outputs": {"t1": {"value": "v"}},
}


def rendered_error(template: str, context: dict[str, Any] | None = None) -> str:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT if context is None else context)
    return str(caught.value)


@pytest.mark.parametrize(
    ("template", "context", "message"),
    [
        (
            "{{ missing }}",
            CONTEXT,
            "Unable to find `missing` used in the expression `{{ missing }}` at line 1",
        ),
        (
            "{{inputs.invalid}}",
            {},
            "Unable to find `inputs` used in the expression `{{inputs.invalid}}` at line 1",
        ),
        (
            "{{ inputs.invalid }}",
            CONTEXT,
            "Unable to find `invalid` used in the expression `{{ inputs.invalid }}` at line 1",
        ),
        (
            "{{ inputs.none.x }}",
            CONTEXT,
            "Unable to find `x` used in the expression `{{ inputs.none.x }}` at line 1",
        ),
        (
            "{{ inputs.l[5] }}",
            CONTEXT,
            "Unable to find `5` used in the expression `{{ inputs.l[5] }}` at line 1",
        ),
        (
            "line1\nline2 {{ ko }}",
            CONTEXT,
            "Unable to find `ko` used in the expression `line1\nline2 {{ ko }}` at line 2",
        ),
        ("{% if true %}\n\n{{ nope }}{% endif %}", CONTEXT, "Unable to find `nope` used in the expression"),
        (
            "a\n{{ 'x'\n}}\n{{ miss }}",
            CONTEXT,
            "`miss` used in the expression `a\n{{ 'x'\n}}\n{{ miss }}` at line 4",
        ),
        (
            "{{missingVar}}",
            CONTEXT,
            "Unable to find `missingVar` used in the expression `{{missingVar}}` at line 1",
        ),
        (
            "{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}",
            {"taskrun": {"attemptsCount": 0}},
            "Unable to find `ko`",
        ),
    ],
)
def test_undefined_messages(template: str, context: dict[str, Any], message: str) -> None:
    assert message in rendered_error(template, context)


@pytest.mark.parametrize(
    "template",
    [
        "{{ missing + 1 }}",
        "{{ missing == 1 }}",
        "{{ missing > 1 }}",
        "{{ missing ~ 'x' }}",
        "{% if missing %}x{% endif %}",
        "{% for x in missing %}{% endfor %}",
        "{{ missing | length }}",
        "{{ missing is empty }}",
        "{{ [missing] }}",
        "{{ {'a': missing} }}",
        "{{ not missing }}",
        "{{ missing and true }}",
        "{{ missing contains 1 }}",
        "{{ 1 in missing }}",
        "{{ missing.a.b }}",
        "{{ missing ? 1 : 2 }}",
    ],
)
def test_any_use_of_an_undefined_value_fails(template: str) -> None:
    assert "Unable to find `missing`" in rendered_error(template)


def test_typed_rendering_reports_undefined_values_too() -> None:
    with pytest.raises(TemplateError, match="Unable to find `missing`"):
        render_typed("{{ [1, {'a': missing}] }}", CONTEXT)
    expected = "Unable to find `missing` used in the expression `{{ missing }}` at line 1"
    with pytest.raises(TemplateError, match=re.escape(expected)):
        render_typed("{{ missing }}", CONTEXT)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ foo( }}", "({{ foo( }}:1)"),
        ("{{ }}", "Empty expression"),
        ("{{ 1 +", "Unclosed expression"),
        ("{{ 'abc }}", "Unclosed string literal"),
        ("{# never closed", "Unclosed comment"),
        ("{% raw %}never closed", "Unclosed raw tag"),
        ("{{ a ? b }}", "Expected ':' in the ternary expression"),
        ("{{ 1 2 }}", "Unexpected token [2]"),
        ("{{ ) }}", 'Unexpected ")"'),
        ("{{ [1, 2 }}", 'Unclosed "]"'),
        ("{{ @ }}", "Unexpected character [@]"),
        ("{% if true %}x", "Unclosed 'if' tag"),
        ("{% endif %}", "Unexpected 'endif' tag"),
        ("{% for x in [1] %}{% endif %}", "Unexpected 'endif' tag"),
        ("{% else %}", "Unexpected 'else' tag"),
        ("{% for x of y %}{% endfor %}", "{% for item in items %}"),
        ("{% set = 1 %}", "{% set name = value %}"),
        ("{% frobnicate %}", 'Unexpected tag name "frobnicate"'),
        ("{% macro m() %}{% endmacro %}", 'The tag "macro" is not supported'),
        ("{{ x is nonsense }}", "Test [nonsense] does not exist."),
        ("{{ 'a' | __pb_eq('a') }}", "Filter [__pb_eq] does not exist."),
        ("{{ __pbf_now }}", "reserved variable name"),
        ("{{ f(a=1, 2) }}".replace("f(", "range("), "Positional arguments must come before named arguments"),
        (
            "{{ parents[0].taskrun.value == 'C' and {% for e in x %}{{ e.key }}{% endfor %} == 'N' }}",
            "Unexpected token [%]",
        ),
    ],
)
def test_syntax_errors(template: str, message: str) -> None:
    assert message in rendered_error(template)


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.__class__ }}",
        "{{ inputs.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ taskrun.value.__class__ }}",
        "{{ 'abc'.upper }}",
        "{{ 'a'.format }}",
        "{{ inputs.items }}",
        "{{ inputs.keys }}",
        "{{ inputs.l.append }}",
        "{{ inputs.l.__len__ }}",
        "{{ self }}",
        "{{ self.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ joiner }}",
        "{{ namespace }}",
        "{{ lipsum }}",
        "{{ range.__self__ }}",
        "{{ dict(a=1) }}",
        "{{ 'a'.upper() }}",
        "{{ inputs.l.pop(0) }}",
        "{{ config }}",
        "{{ request }}",
        "{{ __services__ }}",
        "{{ inputs | attr('__class__') }}",
        "{{ inputs | map('upper') }}",
        "{% include 'x' %}",
        "{% extends 'x' %}",
        "{% import 'x' as y %}",
        "{% from 'x' import y %}",
        "{% block b %}{% endblock %}",
        "{% autoescape true %}{% endautoescape %}",
        "{% do inputs.l.append(1) %}",
        "{% macro x() %}{% endmacro %}",
        "{{ loop.__class__ }}",
        "{% for x in [1] %}{{ loop.__class__ }}{% endfor %}",
        "{% for x in [1] %}{{ loop._iterator }}{% endfor %}",
        "{% for e in {'a': 1} %}{{ e.__class__ }}{% endfor %}",
    ],
)
def test_sandbox_escapes_fail_as_template_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, CONTEXT)


def test_sandbox_never_leaks_jinja_exceptions() -> None:
    for template in (
        "{{ inputs.__class__ }}",
        "{% endfor %}",
        "{{ 1 / 0 }}",
        "{{ 'x' | date('yyyy', timeZone=1) }}",
    ):
        try:
            render(template, CONTEXT)
        except TemplateError as exc:
            assert not isinstance(exc, jinja2.TemplateError)
        else:  # pragma: no cover - each template must fail
            pytest.fail(template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 / 0 }}", "/ by zero"),
        ("{{ 1 % 0 }}", "/ by zero"),
        ("{{ 'a' * 2 }}", "invalid operands for mathematical operation [MULTIPLICATION]"),
        ("{{ 'a' - 1 }}", "invalid operands for mathematical operation [SUBTRACT]"),
        ("{{ true + 1 }}", "invalid operands for mathematical operation [ADD]"),
        ("{{ 'a' > 1 }}", "invalid operands for mathematical comparison [GREATER_THAN]"),
        ("{{ 1 contains 1 }}", "'contains' operator can only be used on lists, maps and strings"),
        ("{% for c in 'abc' %}{% endfor %}", "Not an iterable object. Value = [abc]"),
        ("{{ 'x' | date('yyyy', timeZone='Nowhere/City') }}", "Unknown time-zone ID"),
    ],
)
def test_runtime_errors_are_located(template: str, message: str) -> None:
    error = rendered_error(template)
    assert message in error
    assert error.endswith(f"({template}:1)")


def test_floating_point_division_by_zero_follows_java() -> None:
    assert render("{{ 1.0 / 0 }} {{ -1 / 0.0 }} {{ 0.0 / 0.0 }}", {}) == "Infinity -Infinity NaN"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ range(0, 10000) }}", "more than the limit of 10000"),
        ("{{ 1..20000 }}", "more than the limit of 10000"),
        (
            "{% for i in 1..10000 %}{% for j in 1..10000 %}{% endfor %}{% endfor %}",
            "Too many loop iterations",
        ),
        (
            "{% set s = 'xxxxxxxxxxxxxxxx' %}{% for i in 1..40 %}{% set s = s ~ s %}{% endfor %}",
            "exceeds the limit",
        ),
        (
            "{% for i in 1..10000 %}{% for j in 1..99 %}"
            "{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}{% endfor %}",
            f"The output exceeds the limit of {MAX_OUTPUT_CHARS} characters",
        ),
        (
            "{{ 'ab'" + (" | replace({'a': '" + "a" * 40 + "'})") * 5 + " }}",
            "exceeds the limit",
        ),
        ("{{ " + "(" * 400 + "1" + ")" * 400 + " }}", "nested too deeply"),
    ],
)
def test_resource_limits(template: str, message: str) -> None:
    assert message in rendered_error(template)


def test_long_templates_are_refused() -> None:
    with pytest.raises(TemplateError, match="longer than the limit"):
        render("{" + "x" * (6 * 1024 * 1024), {})


def test_jinja_is_recent_enough_for_the_sandbox_fixes() -> None:
    major, minor, patch = (int(part) for part in jinja2.__version__.split(".")[:3])
    assert (major, minor, patch) >= (3, 1, 6)
