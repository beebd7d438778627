"""Pebble syntax on the Jinja engine: operators, precedence, tags, literals, lookups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tiercel.templating import render

CONTEXT: dict[str, Any] = {
    "taskrun": {"value": "a", "id": "tr1", "attemptsCount": 0},
    "flow": {"id": "hello", "namespace": "io.kestra.tests"},
    "inputs": {
        "n": 3,
        "f": 1.5,
        "s": "Hello World",
        "l": [3, 1, 2],
        "m": {"a": 1, "b": [1, 2]},
        "none": None,
        "dash-key": "dk",
        "yes": True,
        "empty": [],
    },
    "outputs": {"return": {"values": {"one": 1, "two": "x"}, "value": "v", "items": [1]}},
}


def case(template: str, expected: str) -> Any:
    return pytest.param(template, expected, id=template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # literals and printing
        case("{{ null }}|{{ none }}", "|"),
        case("{{ true }} {{ false }}", "true false"),
        case("{{ 42 }} {{ 3.0 }} {{ 0.5 }} {{ 10000000.0 }}", "42 3.0 0.5 1.0E7"),
        case("{{ 'single' }} {{ \"double\" }}", "single double"),
        case("{{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }} {{ 'a\\\\b' }}", 'it\'s say "hi" a\\b'),
        case("{{ '\\d+' }}", "\\d+"),
        case('{{ "hello #{taskrun.value}!" }}', "hello a!"),
        case('{{ "#{1 + 1}#{2}" }}', "22"),
        case("{{ [1, 'two', null, true] }}", '[1,"two",null,true]'),
        case("{{ {'a': 1, 'b': {'c': [1]}} }}", '{"a":1,"b":{"c":[1]}}'),
        case("{{ {'a': {'b': 1}} }}", '{"a":{"b":1}}'),
        case("{{ [] }} {{ {} }}", "[] {}"),
        # lookups
        case("{{ inputs.m.a }} {{ inputs['m']['b'][1] }}", "1 2"),
        case("{{ inputs['dash-key'] }}", "dk"),
        case("{{ inputs.l[0] }} {{ inputs.l.2 }}", "3 2"),
        case("{{ outputs.return.values.one }}", "1"),
        case("{{ outputs.return.items }}", "[1]"),
        case("{{ outputs.return['values'].two }}", "x"),
        case("{{ outputs['return'][taskrun.value ~ ''] ?? 'none' }}", "none"),
        case("{{ inputs.m }}", '{"a":1,"b":[1,2]}'),
        # arithmetic (Java rules)
        case("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}", "7 9"),
        case("{{ 7 / 2 }} {{ -7 / 2 }} {{ 7.0 / 2 }} {{ 10 / 4.0 }}", "3 -3 3.5 2.5"),
        case("{{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 % 2 }}", "-1 1 1.5"),
        case("{{ 2 - 5 }} {{ -inputs.n }} {{ +inputs.n }}", "-3 -3 3"),
        case("{{ 'a' + 1 }} {{ 1 + 'a' }} {{ 'x' + null }}", "a1 1a xnull"),
        case("{{ [1] + 2 }} {{ [1] + [2, 3] }} {{ [1, 2, 3] - 2 }}", "[1,2] [1,2,3] [1,3]"),
        case("{{ inputs.f * 2 }}", "3.0"),
        # concatenation binds tighter than filters in Pebble
        case("{{ 'a' ~ 'b' | upper }}", "AB"),
        case("{{ flow.namespace ~ '.' ~ flow.id }}", "io.kestra.tests.hello"),
        case("{{ 'n=' ~ inputs.n ~ ' ' ~ inputs.yes ~ ' ' ~ inputs.none }}", "n=3 true "),
        case("{{ 1 + 2 | abs }}", "3"),
        # comparisons and equality
        case("{{ 1 == 1.0 }} {{ true == 1 }} {{ '1' == 1 }} {{ null == null }}", "true false false true"),
        case("{{ inputs.none == null }} {{ inputs.n != 3 }} {{ inputs.n equals 3 }}", "true false true"),
        case("{{ 2 > 1 }} {{ 2 >= 2 }} {{ 1 < 1 }} {{ 1 <= 1.5 }}", "true true false true"),
        case("{{ 'b' > 'a' }} {{ null > 1 }} {{ 1 < null }}", "true false false"),
        case("{{ inputs.m == {'a': 1, 'b': [1, 2]} }}", "true"),
        # boolean logic
        case("{{ true and false }} {{ true or false }} {{ not false }}", "false true true"),
        case("{{ false and missing }} {{ true or missing }}", "false true"),
        case("{{ not inputs.n == 3 }}", "false"),
        case("{{ not (inputs.n == 3) }}", "false"),
        case("{{ not true == false }}", "true"),
        case("{{ 'x' and '' }} {{ 'false' or 0 }}", "false false"),
        # ternary
        case("{{ inputs.n > 2 ? 'big' : 'small' }}", "big"),
        case("{{ inputs.n > 5 ? 'big' : inputs.n > 2 ? 'mid' : 'small' }}", "mid"),
        case("{{ taskrun.attemptsCount == 0 ? 'ok' : ko }}", "ok"),
        case("{{ inputs.yes ? ko: taskrun.id }}".replace("ko:", "'k':"), "k"),
        case("{{ (inputs.none ?? 'NONE') == 'NONE' ? 'default' : 'set' }}", "default"),
        # coalescing
        case("{{ missing ?? 'd' }} {{ inputs.none ?? 'n' }} {{ 0 ?? 5 }} {{ false ?? true }}", "d n 0 false"),
        case("{{ missing.deep.path ?? 'deep' }} {{ inputs.m.zz ?? 'zz' }}", "deep zz"),
        case("{{ inputs.none.attr ?? 'null-attr' }}", "null-attr"),
        case("{{ missing ??? 'u' }}|{{ inputs.none ??? 'u' }}|", "u||"),
        case("{{ missing ?? 'a' | upper }}", "A"),
        case("{{ missing ?? other ?? 'third' }}", "third"),
        case("{{ (outputs.x.data ?? 0) == 0 ? 'create' : 'update' }}", "create"),
        # contains, in, ranges
        case("{{ 'abc' contains 'b' }} {{ 'abc' contains 'z' }}", "true false"),
        case(
            "{{ inputs.m contains 'a' }} {{ inputs.l contains 2 }} {{ inputs.l contains [1, 3] }}",
            "true true true",
        ),
        case("{{ null contains 1 }}", "false"),
        case("{{ 2 in [1, 2] }} {{ 5 not in [1, 2] }} {{ 'a' in inputs.m }}", "true true true"),
        case("{{ 1..4 }} {{ 3..1 }}", "[1,2,3,4] []"),
        case("{{ 'a'..'c' }}", '["a","b","c"]'),
        # tests
        case("{{ inputs.none is null }} {{ missing is null }} {{ inputs.n is not null }}", "true true true"),
        case(
            "{{ inputs.n is defined }} {{ missing is defined }} {{ inputs.zz is not defined }}",
            "true false true",
        ),
        case("{{ missing.a.b is defined }}", "false"),
        case(
            "{{ inputs.empty is empty }} {{ ' ' is empty }} {{ inputs.l is empty }} {{ null is empty }}",
            "true true false true",
        ),
        case("{{ 4 is even }} {{ 3 is odd }} {{ 3 is even }}", "true true false"),
        case(
            "{{ inputs.l is iterable }} {{ inputs.m is iterable }} {{ 'x' is iterable }}", "true false false"
        ),
        case("{{ inputs.m is map }} {{ inputs.l is map }}", "true false"),
        case(
            "{{ '{\"a\": 1}' is json }} {{ '[1]' is json }} {{ 'nope' is json }} {{ inputs.m is json }}",
            "true true false true",
        ),
        case("{{ inputs.n is equals(3) }}", "true"),
        case("{{ inputs.n is defined and inputs.n > 1 }}", "true"),
    ],
)
def test_expressions(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        case("{% if inputs.n > 2 %}big{% endif %}", "big"),
        case("{% if inputs.n > 5 %}big{% elseif inputs.n > 2 %}mid{% else %}small{% endif %}", "mid"),
        case("{% if inputs.n > 5 %}big{% elif inputs.n > 9 %}huge{% else %}small{% endif %}", "small"),
        case("{% if 'false' %}t{% else %}f{% endif %}", "f"),
        case("{% if inputs.none %}t{% else %}f{% endif %}", "f"),
        case("{% if missing is defined %}t{% else %}f{% endif %}", "f"),
        case("{% for x in inputs.l %}{{ x }}{% endfor %}", "312"),
        case("{% for x in [10, 20, 30] %}{{ loop.index }}{% endfor %}", "012"),
        case("{% for x in [10, 20, 30] %}{{ loop.revindex }}{% endfor %}", "210"),
        case(
            "{% for x in [10, 20] %}{{ loop.length }}{{ loop.first }}{{ loop.last }};{% endfor %}",
            "2truefalse;2falsetrue;",
        ),
        case("{% for i in 1..3 %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}", "1,2,3"),
        case("{% for e in inputs.m %}{{ e.key }}={{ e.value }};{% endfor %}", "a=1;b=[1,2];"),
        case("{% for e in {'k': 'v'} %}{{ e }}{% endfor %}", "k=v"),
        case("{% for x in inputs.empty %}x{% else %}empty{% endfor %}", "empty"),
        case("{% for x in inputs.none %}x{% else %}none{% endfor %}", "none"),
        case("{% for a in [1, 2] %}{% for b in [1, 2] %}{{ loop.index }}{% endfor %}{% endfor %}", "0101"),
        case("{% set total = 1 + 2 %}{{ total }}", "3"),
        case(
            "{% set total = 0 %}{% for x in [1, 2, 3] %}{% set total = total + x %}{% endfor %}{{ total }}",
            "6",
        ),
        case("{{ taskrun.value }}{% set taskrun = 'shadow' %}{{ taskrun }}", "ashadow"),
        case("{% filter upper %}shout {{ inputs.s }}{% endfilter %}", "SHOUT HELLO WORLD"),
        case("{% filter lower | title %}ab CD{% endfilter %}", "Ab Cd"),
        case("{# a comment #}after", "after"),
        case("{% raw %}{{ keep }}{% endraw %}", "{{ keep }}"),
        case("{% raw %}\n{% if %}\n{% endraw %}", "\n{% if %}\n"),
        case("{%- raw -%} {{ x }} {%- endraw -%}", " {{ x }} "),
        case("{% verbatim %}{{ keep }}{% endverbatim %}", "{{ keep }}"),
        case("a{{ '{{ not rendered }}' }}b", "a{{ not rendered }}b"),
    ],
)
def test_tags(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        case("a  {{- 'b' -}}  c", "abc"),
        case("a\n  {%- if true -%}\n  b\n  {%- endif -%}\n  c", "abc"),
        case("{{ 'x' }}\n", "x\n"),
        case("line1\r\nline2 {{ 'x' }}\r\n", "line1\r\nline2 x\r\n"),
        case("a \r\n {{- 'b' -}} \r\n c", "abc"),
        case("{% for x in [1, 2] %}\n{{ x }}{% endfor %}", "\n1\n2"),
        case("tail newline kept\n\n", "tail newline kept\n\n"),
    ],
)
def test_whitespace(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_errors_logs_loop_renders_one_line() -> None:
    template = (
        "{%- for log in errorLogs() -%}\n"
        "- task: {{ log.taskId }}, message: {{ log.message }}\n"
        "{%- endfor -%}\n"
    )

    class Services:
        def error_logs(self) -> list[dict[str, str]]:
            return [{"taskId": "failed", "message": "Task failure"}]

    assert render(template, {"__services__": Services()}) == "- task: failed, message: Task failure"


class LazyOutputs(Mapping[str, Any]):
    """A read-only mapping like the engine's lazily computed outputs."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.reads: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.reads.append(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        case("{{ outputs.t1.value }}", "one"),
        case("{{ outputs['t-2'].values }}", "[1,2]"),
        case("{{ outputs }}", '{"t1":{"value":"one"},"t-2":{"values":[1,2]}}'),
        case("{{ outputs | keys }}", '["t1","t-2"]'),
        case("{{ outputs | length }}", "2"),
        case("{% for e in outputs %}{{ e.key }};{% endfor %}", "t1;t-2;"),
        case("{{ outputs contains 't1' }} {{ outputs.t3 ?? 'no' }}", "true no"),
        case("{{ outputs is map }}", "true"),
    ],
)
def test_generic_mapping_variables(template: str, expected: str) -> None:
    outputs = LazyOutputs({"t1": {"value": "one"}, "t-2": {"values": [1, 2]}})
    assert render(template, {"outputs": outputs}) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (1, "1"),
        (1.0, "1.0"),
        (1e-4, "1.0E-4"),
        (123456789.5, "1.234567895E8"),
        (float("nan"), "NaN"),
        (dt.datetime(2024, 12, 20, 17, 12, 37, 123000, tzinfo=dt.UTC), "2024-12-20T17:12:37.123Z"),
        (dt.datetime(2024, 12, 20, 17, 12, 37, tzinfo=dt.UTC), "2024-12-20T17:12:37Z"),
        (dt.datetime(2024, 12, 20, 17, 12, 37, 123456, tzinfo=dt.UTC), "2024-12-20T17:12:37.123456Z"),
        (dt.datetime(2024, 1, 1, 10, 0), "2024-01-01T10:00"),
        (dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-01-01T10:00+02:00"),
        (dt.date(2019, 10, 6), "2019-10-06"),
        (dt.time(18, 27, 49), "18:27:49"),
        (dt.timedelta(minutes=5, seconds=6), "PT5M6S"),
        (dt.timedelta(0), "PT0S"),
        (dt.timedelta(hours=36, milliseconds=500), "PT36H0.5S"),
        ({"d": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "é": "ü"}, '{"d":"2024-01-01T00:00:00Z","é":"ü"}'),
        ([1.5, None, "x"], '[1.5,null,"x"]'),
        ((1, 2), "[1,2]"),
    ],
    ids=repr,
)
def test_printing_like_java(value: Any, expected: str) -> None:
    assert render("{{ v }}", {"v": value}) == expected


def test_values_containing_templates_are_not_rendered_again() -> None:
    context = {"vars": {"a": "{{ secret('X') }}"}, "inputs": {"x": "{% raw %}"}}
    assert render("{{ vars.a }}", context) == "{{ secret('X') }}"
    assert render("{{ inputs.x }}", context) == "{% raw %}"
