"""The public API: render, render_typed, render_value, is_truthy."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import tiercel.templating as templating
from tiercel.templating import is_truthy, render, render_typed, render_value

CONTEXT: dict[str, Any] = {
    "inputs": {"l": [1, 2], "m": {"a": 1}, "n": 3, "none": None, "s": "text"},
    "taskrun": {"value": "a"},
    "execution": {"startDate": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},
}


def test_public_names() -> None:
    assert set(templating.__all__) == {
        "SERVICES_KEY",
        "RenderServices",
        "is_truthy",
        "render",
        "render_typed",
        "render_value",
        "secret_from_env",
    }
    assert templating.SERVICES_KEY == "__services__"


@pytest.mark.parametrize("text", ["", "plain text", "100%", "a } b", "%} and }}"])
def test_text_without_braces_is_returned_as_is(text: str) -> None:
    assert render(text, {}) is text
    assert render_typed(text, {}) is text


@pytest.mark.parametrize("text", ['{"a": 1}', "{ single }", "a{b}c", "#{not interpolated}", "a}}b"])
def test_text_with_lone_braces_is_kept(text: str) -> None:
    assert render(text, {}) == text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.l }}", [1, 2]),
        ("  {{ inputs.m }}\n", {"a": 1}),
        ("{{inputs.n}}", 3),
        ("{{ inputs.n > 2 }}", True),
        ("{{ inputs.none }}", None),
        ("{{ inputs.s }}", "text"),
        ("{{ execution.startDate }}", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        ("{{ [inputs.n, 'x'] }}", [3, "x"]),
        ("{{ inputs.missing ?? 'dflt' }}", "dflt"),
        ("{{ 1..3 }}", [1, 2, 3]),
        ("x {{ inputs.n }}", "x 3"),
        ("{{ inputs.n }}{{ inputs.n }}", "33"),
        ("{{ inputs.n }} {# c #}", "3 "),
        ("{% if true %}{{ inputs.l }}{% endif %}", "[1,2]"),
    ],
)
def test_render_typed(template: str, expected: Any) -> None:
    assert render_typed(template, CONTEXT) == expected


def test_render_typed_returns_the_same_object() -> None:
    big = {"k": list(range(10))}
    assert render_typed("{{ big }}", {"big": big}) is big


def test_render_value_renders_nested_structures_and_keys() -> None:
    value = {
        "{{ taskrun.value }}": ["{{ inputs.n + 1 }}", 3, None, True, ("{{ inputs.s }}",)],
        "plain": {"nested": "{{ inputs.l }}"},
        7: "{{ taskrun.value }}",
    }
    assert render_value(value, CONTEXT) == {
        "a": ["4", 3, None, True, ("text",)],
        "plain": {"nested": "[1,2]"},
        7: "a",
    }
    assert render_value(12, CONTEXT) == 12


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("0", False),
        ("-0", False),
        ("", False),
        (None, False),
        (False, False),
        (" false\n", False),
        ("true", True),
        ("False", True),
        ("FALSE", True),
        ("no", True),
        ("0.0", True),
        (True, True),
        (0, False),
        (1, True),
        (0.0, True),
        ([], True),
        ({}, True),
    ],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


def test_render_typed_then_is_truthy_for_conditions() -> None:
    assert is_truthy(render_typed("{{ inputs.n > 2 }}", CONTEXT)) is True
    assert is_truthy(render_typed("{{ inputs.s == 'nope' }}", CONTEXT)) is False
    assert is_truthy(render("{{ inputs.none }}", CONTEXT)) is False


def test_compiled_templates_are_cached() -> None:
    from tiercel.templating.environment import compile_template

    template = "{{ taskrun.value }} cached"
    assert compile_template(template) is compile_template(template)
