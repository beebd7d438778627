"""Filters: Pebble built-ins and Kestra's additions, one table row each."""

from __future__ import annotations

from typing import Any

import pytest

from tiercel.errors import TemplateError
from tiercel.templating import render, render_typed

CONTEXT: dict[str, Any] = {
    "s": "Hello World",
    "l": [3, 1, 2],
    "m": {"a": 1, "b": [1, 2]},
    "json": '{"key": "my-complex", "value": {"sub": 1, "bool": true}}',
    "none": None,
    "multiline": "line1\nline2",
}


def case(template: str, expected: str) -> Any:
    return pytest.param(template, expected, id=template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # strings
        case("{{ s | upper }} {{ s | lower }}", "HELLO WORLD hello world"),
        case("{{ 'hello wORLD' | title }} {{ 'hello' | capitalize }}", "Hello WORLD Hello"),
        case("{{ '  x  ' | trim }}", "x"),
        case("{{ 'abcdefghij' | abbreviate(6) }} {{ 'abc' | abbreviate(6) }}", "abc... abc"),
        case("{{ 'abc' | startsWith('a') }} {{ 'abc' | endsWith('x') }}", "true false"),
        case("{{ 'a.b.c' | substringBefore('.') }} {{ 'a.b.c' | substringBeforeLast('.') }}", "a a.b"),
        case("{{ 'a.b.c' | substringAfter('.') }} {{ 'a.b.c' | substringAfterLast('.') }}", "b.c c"),
        case("{{ 'abc' | substringBefore('z') }}|{{ 'abc' | substringAfter('z') }}|", "abc||"),
        case("{{ 'hello' | replace({'l': 'L', 'o': '0'}) }}", "heLL0"),
        case("{{ 'hello' | replace('l', 'L') }}", "heLLo"),
        case("{{ 'a1b22' | replace({'(\\d+)': '<$1>'}, regexp=true) }}", "a<1>b<22>"),
        case("{{ m | replace({'1': 'one'}) }}", '{"a":"one","b":["one","2"]}'),
        case("{{ 'a,b,,c,,' | split(',') }}", '["a","b","","c"]'),
        case("{{ 'a.b.c' | split('\\\\.') }} {{ 'a.b.c' | split('.') }}", '["a","b","c"] []'),
        case("{{ 'a1b22c' | split('\\d+') }} {{ 'a,b,c' | split(',', 2) }}", '["a","b","c"] ["a","b,c"]'),
        case("{{ 'My Title é!' | slugify }}", "my-title-e"),
        case("{{ \"it's\" | escapeChar('single') }}", "it\\'s"),
        case("{{ 'say \"hi\"' | escapeChar('double') }}", 'say \\"hi\\"'),
        case("{{ \"it's\" | escapeChar('shell') }}", "it'\\''s"),
        case("{{ multiline | indent(2) }}", "line1\n  line2"),
        case("{{ multiline | nindent(2) }}", "\n  line1\n  line2"),
        case("{{ multiline | indent(1, '#') }}", "line1\n#line2"),
        case("{{ 'a b&c/é~' | urlencode }}", "a+b%26c%2F%C3%A9%7E"),
        case("{{ 'a+b%26c' | urldecode }}", "a b&c"),
        case("{{ '<b>' | escape }} {{ '<b>' | raw }}", "&lt;b&gt; <b>"),
        case("{{ m | string }} {{ 1.5 | string }}", '{"a":1,"b":[1,2]} 1.5'),
        # encodings and digests
        case("{{ 'abc' | base64encode }} {{ 'YWJj' | base64decode }}", "YWJj abc"),
        case("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        case("{{ 'abc' | sha1 }}", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        case("{{ 'abc' | sha256 }}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        case("{{ 'abc' | sha512 | length }}", "128"),
        # serialization
        case(
            "{{ m | toJson }} {{ m | json }} {{ 'x' | toJson }} {{ none | toJson }}",
            '{"a":1,"b":[1,2]} {"a":1,"b":[1,2]} "x" null',
        ),
        case("{{ m | toIon }}", "{a:1,b:[1,2]}"),
        case(
            "{{ {'my-key': 'v', 'n': null, 'f': 1.5, 't': true} | toIon }}",
            "{'my-key':\"v\",n:null,f:1.5e0,t:true}",
        ),
        case("{{ m | yaml }}", "a: 1\nb:\n  - 1\n  - 2\n"),
        case("{{ json | jq('.key') }}", '["my-complex"]'),
        case("{{ json | jq('.value') }}", '[{"sub":1,"bool":true}]'),
        case("{{ m | jq('.b[]') }} {{ m | jq('.a') | first }}", "[1,2] 1"),
        # numbers
        case("{{ -5 | abs }} {{ -1.5 | abs }}", "5 1.5"),
        case("{{ '42' | number }} {{ '4.5' | number }} {{ '0x1F' | number }}", "42 4.5 31"),
        case(
            "{{ '42' | number('FLOAT') }} {{ '42' | number('INT') }} {{ '1.10' | number('BIGDECIMAL') }}",
            "42.0 42 1.10",
        ),
        case(
            "{{ 1234567.891 | numberformat('#,##0.00') }} {{ 3.14159 | numberformat('#.##') }}",
            "1,234,567.89 3.14",
        ),
        # collections
        case(
            "{{ l | sort }} {{ l | rsort }} {{ l | reverse }} {{ 'abc' | reverse }}",
            "[1,2,3] [3,2,1] [2,1,3] cba",
        ),
        case("{{ l | first }} {{ l | last }} {{ 'abc' | first }} {{ 'abc' | last }}", "3 2 a c"),
        case("{{ l | length }} {{ m | length }} {{ 'abc' | length }} {{ none | length }}", "3 2 3 0"),
        case("{{ l | join(', ') }} {{ l | join }} {{ [1, null] | join('-') }}", "3, 1, 2 312 1-null"),
        case("{{ m | keys }} {{ m | values }}", '["a","b"] [1,[1,2]]'),
        case("{{ [1, 2, 3, 4, 5] | chunk(2) }}", "[[1,2],[3,4],[5]]"),
        case("{{ [[1, 2], [3], 4] | flatten }}", "[1,2,3,4]"),
        case("{{ [1, 1, 2, 1.0, '1'] | distinct }}", '[1,2,"1"]'),
        case("{{ 'abcdef' | slice(1, 3) }} {{ [1, 2, 3, 4] | slice(1) }}", "bc [2,3,4]"),
        case("{{ [1, 2] | merge([3]) }} {{ {'a': 1} | merge({'b': 2}) }}", '[1,2,3] {"a":1,"b":2}'),
        case("{{ none | default('d') }} {{ '' | default('e') }} {{ [] | default('f') }}", "d e f"),
        case(
            "{{ missing | default('u') }} {{ missing.deep | default('v') }} {{ 'ok' | default('x') }}",
            "u v ok",
        ),
        case("{{ 0 | default('x') }} {{ false | default('x') }}", "0 false"),
        # Java class names
        case(
            "{{ 'x' | className }} {{ 1 | className }} {{ 1.5 | className }} {{ true | className }}",
            "java.lang.String java.lang.Integer java.lang.Double java.lang.Boolean",
        ),
        case("{{ m | className }} {{ l | className }}", "java.util.LinkedHashMap java.util.ArrayList"),
        # null in, null out
        case("{{ none | upper }}|{{ none | first }}|{{ none | jq('.a') }}|{{ none | date }}", "|||"),
    ],
)
def test_filters(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '42' | number }}", 42),
        ("{{ 'a,b' | split(',') }}", ["a", "b"]),
        ("{{ json | jq('.value.sub') | first }}", 1),
        ("{{ 'abc' | startsWith('a') }}", True),
        ("{{ m | keys }}", ["a", "b"]),
    ],
)
def test_filters_keep_native_types(template: str, expected: Any) -> None:
    assert render_typed(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' | nope }}", "Filter [nope] does not exist."),
        ("{{ l | escapeChar('weird') }}", "either 'single', 'double', or 'shell'"),
        ("{{ 'x' | number }}", "x is not a valid number."),
        ("{{ 'x' | abs }}", "'abs' filter expects a number"),
        ("{{ 'not json' | jq('.a') }}", "Unable to apply the jq expression '.a'"),
        ("{{ m | jq('.[') }}", "Unable to apply the jq expression"),
        ("{{ [1, 'a'] | sort }}", "one comparable type"),
        ("{{ 'abc' | slice(2, 9) }}", "Invalid slice"),
        ("{{ 'x' | chunk(0) }}", "'size' must be a positive number"),
        ("{{ 'x' | replace(1) }}", "map of replacements"),
        ("{{ 'x' | upper(1, 2) }}", "Invalid input or arguments for the filter 'upper'"),
        ("{{ 'a' | replace({'(': 'x'}, regexp=true) }}", "Invalid regular expression"),
        ("{{ '%%%' | base64decode }}", "valid base64"),
        ("{{ missing | upper }}", "Unable to find `missing`"),
        ("{{ 'x' | join(missing) }}", "Unable to find `missing`"),
    ],
)
def test_filter_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=None) as caught:
        render(template, CONTEXT)
    assert message in str(caught.value)
