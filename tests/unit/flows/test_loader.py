"""Tests for ``tiercel.flows.loader``: YAML 1.2 scalars, strict keys, error positions, splitting."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercel.errors import ValidationError
from tiercel.flows import loader
from tiercel.flows.loader import (
    FlowLoader,
    format_location,
    format_path,
    load_mapping,
    load_yaml,
    locate,
    split_documents,
)

INF = math.inf

# (plain scalar as written in a flow, value Tiercel must produce). Types are compared too, so
# ``1`` vs ``1.0`` vs ``True`` are told apart.
RESOLVER_TABLE: list[tuple[str, Any]] = [
    # booleans: only the six YAML 1.2 spellings
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    ("tRUE", "tRUE"),
    ("yes", "yes"),
    ("Yes", "Yes"),
    ("NO", "NO"),
    ("no", "no"),
    ("on", "on"),
    ("ON", "ON"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("Y", "Y"),
    # null
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("~", None),
    ("", None),
    ("nULL", "nULL"),
    ("None", "None"),
    ("nil", "nil"),
    # integers
    ("0", 0),
    ("42", 42),
    ("-12", -12),
    ("+3", 3),
    ("0755", 755),
    ("007", 7),
    ("-0", 0),
    ("0o17", 15),
    ("0x1F", 31),
    ("0xff", 255),
    ("12345678901234567890", 12345678901234567890),
    ("0o8", "0o8"),
    ("0xG1", "0xG1"),
    ("0X1F", "0X1F"),
    ("-0o17", "-0o17"),
    ("0b101", "0b101"),
    ("1_000", "1_000"),
    ("1:20", "1:20"),
    ("190:20:30", "190:20:30"),
    ("1,000", "1,000"),
    # floats
    ("1.5", 1.5),
    ("-.5", -0.5),
    ("+.5", 0.5),
    ("1.", 1.0),
    ("1e3", 1000.0),
    ("1E3", 1000.0),
    ("-1.5e-3", -0.0015),
    ("2.5E+2", 250.0),
    (".inf", INF),
    (".Inf", INF),
    ("+.INF", INF),
    ("-.inf", -INF),
    ("1_000.5", "1_000.5"),
    ("1:20.5", "1:20.5"),
    (".", "."),
    ("e3", "e3"),
    ("1e", "1e"),
    ("inf", "inf"),
    ("nan", "nan"),
    ("-.nan", "-.nan"),
    ("1.2.3", "1.2.3"),
    # timestamps stay text; pydantic parses them per field
    ("2024-01-01", "2024-01-01"),
    ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
    ("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5"),
    # YAML 1.1 extras and look-alikes
    ("=", "="),
    ("<<", "<<"),
    ("PT5S", "PT5S"),
    ("12:30", "12:30"),
    ("v1", "v1"),
]


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize(("scalar", "expected"), RESOLVER_TABLE, ids=[repr(s) for s, _ in RESOLVER_TABLE])
def test_resolver_table(scalar: str, expected: Any) -> None:
    assert len(RESOLVER_TABLE) >= 30
    value = load_yaml(f"v: {scalar}\n")["v"]
    assert _same(value, expected), (scalar, value)
    # in a sequence and in a flow collection the same rules apply
    assert _same(load_yaml(f"- {scalar}\n")[0], expected)
    if scalar and not set(scalar) & set(",[]{}"):
        assert _same(load_yaml(f"[{scalar}]")[0], expected)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_nan(text: str) -> None:
    value = load_yaml(f"v: {text}")["v"]
    assert isinstance(value, float)
    assert math.isnan(value)


@pytest.mark.parametrize("scalar", ["true", "123", "null", "0x1F", "2024-01-01", "1.5", "~", ""])
@pytest.mark.parametrize("quote", ["'", '"'])
def test_quoted_scalars_stay_strings(scalar: str, quote: str) -> None:
    assert load_yaml(f"v: {quote}{scalar}{quote}") == {"v": scalar}


def test_block_scalars_stay_strings() -> None:
    assert load_yaml("a: |\n  true\nb: >-\n  123\n") == {"a": "true\n", "b": "123"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: !!str 123", "123"),
        ("v: !!str true", "true"),
        ("v: !!int '0755'", 755),
        ("v: !!int 0o17", 15),
        ("v: !!float 1", 1.0),
        ("v: !!bool 'True'", True),
        ("v: !!null ''", None),
    ],
)
def test_explicit_tags(text: str, expected: Any) -> None:
    assert _same(load_yaml(text)["v"], expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("v: !!bool yes", "invalid boolean 'yes'"),
        ("v: !!int abc", "invalid integer 'abc'"),
        ("v: !!float abc", "invalid float 'abc'"),
        ("v: " + "9" * 5000, "integer '" + "9" * 37 + "...' has too many digits"),
        ("v: !custom x", "could not determine a constructor for the tag '!custom'"),
        ("v: !!python/object:os.system x", "could not determine a constructor"),
    ],
)
def test_bad_explicit_tags(text: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"f.yaml:1:4: {problem}")):
        load_yaml(text, "f.yaml")


def test_resolver_table_is_yaml_1_2_core() -> None:
    tables = FlowLoader.yaml_implicit_resolvers
    tags = {tag for resolvers in tables.values() for tag, _ in resolvers}
    assert tags == {
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:merge",
    }
    # no wildcard resolvers, and int is tried before float for every digit
    assert None not in tables
    for first in "-+0123456789":
        assert [tag for tag, _ in tables[first]] == ["tag:yaml.org,2002:int", "tag:yaml.org,2002:float"]


def test_global_pyyaml_tables_untouched() -> None:
    load_yaml("a: on")
    assert FlowLoader.yaml_implicit_resolvers is not yaml.SafeLoader.yaml_implicit_resolvers
    assert FlowLoader.yaml_constructors is not yaml.SafeLoader.yaml_constructors
    legacy = "a: on\nb: 0755\nc: 2024-01-01\n"
    assert yaml.safe_load(legacy)["a"] is True
    assert yaml.safe_load(legacy)["b"] == 493
    assert yaml.load(legacy, Loader=yaml.CSafeLoader)["b"] == 493
    assert str(yaml.load(legacy, Loader=yaml.CSafeLoader)["c"]) == "2024-01-01"
    assert not isinstance(yaml.load(legacy, Loader=yaml.CSafeLoader)["c"], str)


def test_uses_libyaml() -> None:
    assert hasattr(yaml, "CSafeLoader")
    assert loader.HAS_LIBYAML
    assert issubclass(FlowLoader, yaml.CSafeLoader)


# --------------------------------------------------------------------------------------------
# Keys


def test_keys_are_source_text() -> None:
    text = "1: a\ntrue: b\nnull: c\n~: d\n0x1F: e\n1.50: f\n'quoted': g\n"
    data = load_yaml(text)
    assert data == {"1": "a", "true": "b", "null": "c", "~": "d", "0x1F": "e", "1.50": "f", "quoted": "g"}
    assert all(type(key) is str for key in data)


def test_keys_with_the_same_value_but_different_text_are_distinct() -> None:
    # Jackson compares field names as text, so these are two different keys
    assert load_yaml("1: a\n01: b\n") == {"1": "a", "01": "b"}


@pytest.mark.parametrize("text", ["? [a, b]\n: 1\n", "{[1]: 2}", "? {a: 1}\n: 2\n"])
def test_complex_keys_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match=r"keys must be plain strings"):
        load_yaml(text)


# --------------------------------------------------------------------------------------------
# Duplicate keys


@pytest.mark.parametrize(
    ("text", "location", "key", "first"),
    [
        ("id: a\nnamespace: b\nid: c\n", "flow.yaml:3:1", "id", "line 1, column 1"),
        ("id: a\n'id': c\n", "flow.yaml:2:1", "id", "line 1, column 1"),
        ('id: a\n"id": c\n', "flow.yaml:2:1", "id", "line 1, column 1"),
        (
            "id: a\ntasks:\n  - id: t1\n    type: x\n    message: hi\n    type: y\n",
            "flow.yaml:6:5",
            "type",
            "line 4, column 5",
        ),
        (
            "tasks:\n  - id: t\n    tasks:\n      - id: u\n        retry:\n          type: a\n"
            "          type: b\n",
            "flow.yaml:7:11",
            "type",
            "line 6, column 11",
        ),
        ("a: {x: 1, y: 2, x: 3}\n", "flow.yaml:1:17", "x", "line 1, column 5"),
        ("1: a\n1: b\n", "flow.yaml:2:1", "1", "line 1, column 1"),
    ],
)
def test_duplicate_keys(text: str, location: str, key: str, first: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml(text, "flow.yaml")
    message = f"duplicate key '{key}' (first defined at {first})"
    assert str(info.value) == f"{location}: {message}"
    assert info.value.problems == [(location, message)]


def test_duplicate_keys_in_a_merge_source() -> None:
    with pytest.raises(ValidationError, match=r"^f\.yaml:2:14: duplicate key 'x'"):
        load_yaml("d:\n  <<: {x: 1, x: 2}\n", "f.yaml")


def test_duplicate_key_next_to_a_merge() -> None:
    text = "base: &b {x: 1}\nd:\n  <<: *b\n  y: 1\n  y: 2\n"
    with pytest.raises(ValidationError, match=r"^f\.yaml:5:3: duplicate key 'y' \(first defined at line 4"):
        load_yaml(text, "f.yaml")


# --------------------------------------------------------------------------------------------
# Anchors, aliases, merge keys


def test_anchors_and_aliases() -> None:
    text = "defaults: &d [1, 2]\na: *d\nb: *d\n"
    data = load_yaml(text)
    assert data == {"defaults": [1, 2], "a": [1, 2], "b": [1, 2]}


def test_merge_keys() -> None:
    text = (
        "base: &base\n  type: io.kestra.plugin.core.log.Log\n  level: INFO\n"
        "extra: &extra\n  level: DEBUG\n  message: hi\n"
        "tasks:\n"
        "  - <<: *base\n    id: one\n"
        "  - <<: *base\n    id: two\n    level: WARN\n"
        "  - <<: [*extra, *base]\n    id: three\n"
    )
    tasks = load_mapping(text)["tasks"]
    assert tasks[0] == {"type": "io.kestra.plugin.core.log.Log", "level": "INFO", "id": "one"}
    assert tasks[1]["level"] == "WARN"  # an explicit key overrides a merged one
    assert tasks[2]["level"] == "DEBUG"  # the first merge source wins
    assert tasks[2]["message"] == "hi"
    assert "<<" not in tasks[2]


def test_nested_merge() -> None:
    text = "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n"
    assert load_yaml(text)["c"] == {"x": 1, "y": 2, "z": 3}


def test_quoted_merge_key_is_a_plain_key() -> None:
    assert load_yaml("'<<': {x: 1}\n") == {"<<": {"x": 1}}


def test_merge_of_a_scalar_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"^f\.yaml:1:9: expected a mapping or list of mappings"):
        load_yaml("a: {<<: 1}", "f.yaml")


@pytest.mark.parametrize(
    ("text", "location", "path"),
    [
        ("a: &x [*x]\n", "f.yaml:1:4", "a[0]"),
        ("a: &x {b: [1, {c: *x}]}\n", "f.yaml:1:4", "a.b[1].c"),
    ],
)
def test_recursive_aliases_rejected(text: str, location: str, path: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml(text, "f.yaml")
    assert str(info.value) == f"{location}: {path} refers to itself through a YAML alias"


def test_shared_aliases_are_not_cycles() -> None:
    assert load_yaml("a: &x [1]\nb: [*x, *x]\nc: {d: *x}\n") == {"a": [1], "b": [[1], [1]], "c": {"d": [1]}}


# --------------------------------------------------------------------------------------------
# Syntax errors


@pytest.mark.parametrize(
    ("text", "location", "problem"),
    [
        ("id: a\nnamespace: b\n  tasks: c\n", "flow.yaml:3:8", "mapping values are not allowed"),
        ("id: a\ntasks:\n\t- id: b\n", "flow.yaml:3:1", "found character that cannot start any token"),
        ('id: "unclosed\n', "flow.yaml:2:1", "found unexpected end of stream"),
        ("tasks: [a, b\n", "flow.yaml:2:1", "did not find expected ',' or ']'"),
        ("id: a\n- b\n", "flow.yaml:2:1", "did not find expected key"),
        ("a: *nothing\n", "flow.yaml:1:4", "found undefined alias"),
        ("a: b\0\n", "flow.yaml:1:5", "control characters are not allowed (#x0000)"),
        ("a: 1\n---\nb: 2\n", "flow.yaml:2:1", "expected a single YAML document"),
    ],
)
def test_syntax_errors(text: str, location: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml(text, "flow.yaml")
    message = str(info.value)
    assert message.startswith(f"{location}: {problem}"), message
    assert "\n" not in message
    assert "Traceback" not in message
    assert "<unicode string>" not in message
    assert info.value.problems[0][0] == location
    assert message == f"{info.value.problems[0][0]}: {info.value.problems[0][1]}"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_syntax_error_context_is_kept_in_one_line() -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml("id: a\nkey\nother: b\n", "f.yaml")
    assert str(info.value) == (
        "f.yaml:3:1: could not find expected ':' (while scanning a simple key at line 2, column 1)"
    )


def test_first_line_shifts_positions() -> None:
    expected = r"^all\.yaml:12:1: duplicate key 'id' \(first defined at line 11, column 1\)$"
    with pytest.raises(ValidationError, match=expected):
        load_yaml("id: a\nid: b\n", "all.yaml", first_line=11)


def test_default_source_name() -> None:
    with pytest.raises(ValidationError, match=r"^<string>:1:5: mapping values are not allowed"):
        load_yaml("a: b: c")


@pytest.mark.parametrize(
    ("text", "location"),
    [
        # libyaml's composer recurses in C: this used to kill the interpreter (SIGSEGV)
        ("[" * 100_000 + "]" * 100_000, "deep.yaml:1:1001"),
        ("a: " + "[" * 50_000 + "\n", "deep.yaml:1:1003"),  # deep, then a syntax error
        ("- " * 1500 + "x\n", "deep.yaml:1:2001"),  # block style
        ("".join(f"{' ' * i}k:\n" for i in range(1200)), "deep.yaml:1001:1001"),
        ("x: {{ " * 600 + "\n", "deep.yaml:1:2999"),  # looks like templates, is flow mappings
    ],
)
def test_deep_nesting_is_an_error_not_a_crash(text: str, location: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml(text, "deep.yaml")
    assert str(info.value) == f"{location}: collections are nested more than 1000 levels deep"
    assert locate(text, (0,)) is None


def test_nesting_limit_boundary() -> None:
    assert load_yaml("[" * 1000 + "]" * 1000)  # exactly MAX_DEPTH levels
    assert load_yaml("a: " + "[" * 999 + "]" * 999)
    with pytest.raises(ValidationError, match=r"^<string>:1:1001: collections are nested more than 1000"):
        load_yaml("[" * 1001 + "]" * 1001)


def test_nesting_check_lets_earlier_syntax_errors_through() -> None:
    # the error at depth 501 stops libyaml before it can nest any deeper
    with pytest.raises(ValidationError, match=r"^<string>:1:504: did not find expected node content"):
        load_yaml("a: " + "[" * 500 + "}" + "[" * 50_000)


def test_many_braces_in_strings_do_not_trigger_the_nesting_limit() -> None:
    text = "tasks:\n" + "".join(f"  - message: '{{{{ {{{{ {{{{ [[[[ {i} ]]]] }}}}'\n" for i in range(500))
    assert len(load_yaml(text)["tasks"]) == 500


# --------------------------------------------------------------------------------------------
# load_mapping


def test_load_mapping() -> None:
    assert load_mapping("id: a\nnamespace: b\n") == {"id": "a", "namespace": "b"}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "--- # c\n...\n"])
def test_load_mapping_empty(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_mapping(text, "f.yaml")
    assert str(info.value) == "f.yaml: the document is empty; expected a mapping of properties"


@pytest.mark.parametrize(
    ("text", "location", "found"),
    [
        ("- id: a\n", "f.yaml:1:1", "a list"),
        ("# header\n\nhello\n", "f.yaml:3:1", "a string"),
        ("42", "f.yaml:1:1", "an integer"),
        ("1.5", "f.yaml:1:1", "a number"),
        ("~", "f.yaml:1:1", "null"),
        ("true", "f.yaml:1:1", "a boolean"),
    ],
)
def test_load_mapping_not_a_mapping(text: str, location: str, found: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_mapping(text, "f.yaml")
    message = f"{location}: expected a mapping of properties at the top level, found {found}"
    assert str(info.value) == message
    assert info.value.problems == [tuple(message.split(": ", 1))]


# --------------------------------------------------------------------------------------------
# split_documents


def _load_all(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=FlowLoader) if doc is not None]


_BREAK = re.compile(r"(?<=\r\n)|(?<=[\n\x85\u2028\u2029])|(?<=\r)(?!\n)")


def _assert_verbatim(text: str, docs: list[tuple[int, str]]) -> None:
    """Each document is exactly the stream's lines starting at its ``first_line``, in order."""
    lines = [line for line in _BREAK.split(text) if line]  # libyaml's line breaks, kept
    previous_end = 0
    for first, doc in docs:
        count = len([line for line in _BREAK.split(doc) if line])
        assert first > previous_end
        assert "".join(lines[first - 1 : first - 1 + count]) == doc
        previous_end = first - 1 + count


def test_split_simple() -> None:
    text = "id: a\nnamespace: n\n---\nid: b\nnamespace: n\n---\nid: c\n"
    assert split_documents(text) == [
        (1, "id: a\nnamespace: n\n"),
        (4, "id: b\nnamespace: n\n"),
        (7, "id: c\n"),
    ]


def test_split_single_document() -> None:
    assert split_documents("id: a\n") == [(1, "id: a\n")]
    assert split_documents("id: a") == [(1, "id: a")]


@pytest.mark.parametrize("text", ["", "\n", "# nothing\n", "---\n", "---\n...\n", "---\n---\n# c\n"])
def test_split_nothing(text: str) -> None:
    assert split_documents(text) == []


def test_split_leading_marker_header_comment_and_trailing_end() -> None:
    text = "# my flows\n---\nid: a\n...\n---\nid: b\n...\n# trailer\n"
    assert split_documents(text) == [(3, "id: a\n"), (6, "id: b\n")]


def test_split_marker_with_comment_and_spaces() -> None:
    text = "id: a\n--- # second flow\nid: b\n---   \nid: c\n---\t\nid: d\n"
    assert [line for line, _ in split_documents(text)] == [1, 3, 5, 7]


def test_split_keeps_comments_and_blank_lines_verbatim() -> None:
    text = "# flow a\nid: a # inline\n\n  # indented comment\n---\n\n# flow b\nid: b\n\n"
    _assert_verbatim(text, split_documents(text))
    assert split_documents(text) == [
        (1, "# flow a\nid: a # inline\n\n  # indented comment\n"),
        (6, "\n# flow b\nid: b\n\n"),
    ]


def test_split_crlf_verbatim() -> None:
    text = "id: a\r\nx: 1\r\n---\r\nid: b\r\n"
    assert split_documents(text) == [(1, "id: a\r\nx: 1\r\n"), (4, "id: b\r\n")]


def test_split_marker_with_content_starts_the_next_document() -> None:
    text = "--- {id: a}\n--- {id: b}\n---\nid: c\n"
    docs = split_documents(text)
    assert docs == [(1, "--- {id: a}\n"), (2, "--- {id: b}\n"), (4, "id: c\n")]
    assert [load_yaml(doc) for _, doc in docs] == _load_all(text)


TRICKY_STREAMS = [
    # indented markers inside literal and folded block scalars
    "id: a\ntasks:\n  - id: s\n    script: |\n      ---\n      echo hi\n      ...\n      --- x\n---\nid: b\n",
    "id: a\nnote: >\n  ---\n  text\n...\n---\nid: b\n",
    "id: a\nsql: |-\n    ---\n    SELECT 1;\n\n    ---\n---\nid: b\n",
    # block scalar with an explicit indentation indicator
    "id: a\nv: |2\n   ---\n  x\n---\nid: b\n",
    # block scalar that ends the document, with trailing blank lines
    "id: a\nv: |+\n  ---\n\n\n---\nid: b\n",
    # markers inside quoted and plain multi-line scalars, indented
    'id: a\nmsg: "line one\n  --- line two"\n---\nid: b\n',
    "id: a\nmsg: 'line one\n  ---'\n---\nid: b\n",
    "id: a\nmsg: plain one\n  --- plain two\n---\nid: b\n",
    # look-alikes that are not markers
    "id: a\nv: ----\n---x: 1\n----: 2\n...x: 3\n---\nid: b\n",
    "id: a\nlist:\n  - ---\n  - '---'\n---\nid: b\n",
    # comments that look like markers
    "id: a\n# ---\n#---\n---\nid: b\n",
    # directives stay with their document
    "id: a\n...\n%YAML 1.1\n---\nid: b\n",
    "%YAML 1.1\n---\nid: a\n",
]


@pytest.mark.parametrize("text", TRICKY_STREAMS)
def test_split_agrees_with_libyaml(text: str) -> None:
    docs = split_documents(text)
    assert [load_yaml(doc, first_line=line) for line, doc in docs] == _load_all(text)
    _assert_verbatim(text, docs)


def test_split_literal_block_content() -> None:
    text = TRICKY_STREAMS[0]
    docs = split_documents(text)
    assert len(docs) == 2
    assert load_yaml(docs[0][1])["tasks"][0]["script"] == "---\necho hi\n...\n--- x\n"
    assert docs[1] == (10, "id: b\n")


def test_split_line_numbers_match_the_stream() -> None:
    text = "id: a\n---\n# b\nid: b\nx: 1\n  y: 2\n---\nid: c\n"
    docs = split_documents(text)
    assert [line for line, _ in docs] == [1, 3, 8]
    # a broken document does not hide its neighbours, and its error points into the whole stream
    assert load_yaml(docs[0][1]) == {"id": "a"}
    assert load_yaml(docs[2][1]) == {"id": "c"}
    with pytest.raises(ValidationError) as info:
        load_yaml(docs[1][1], "all.yaml", first_line=docs[1][0])
    assert str(info.value).startswith("all.yaml:6:4: mapping values are not allowed")
    assert text.splitlines()[5] == "  y: 2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\x85---\x85b: 2\x85", [(1, "a: 1\x85"), (3, "b: 2\x85")]),
        ("a: 1\u2028---\u2028b: 2\n", [(1, "a: 1\u2028"), (3, "b: 2\n")]),
        ("a: 1\rb: x\r---\rc: 2\r", [(1, "a: 1\rb: x\r"), (4, "c: 2\r")]),
    ],
)
def test_split_uses_libyaml_line_breaks(text: str, expected: list[tuple[int, str]]) -> None:
    docs = split_documents(text)
    assert docs == expected
    assert [load_yaml(doc) for _, doc in docs] == _load_all(text)
    _assert_verbatim(text, docs)


def test_split_bom() -> None:
    assert split_documents("\ufeff---\nid: a\n") == [(2, "id: a\n")]
    assert split_documents("\ufeffid: a\n---\nid: b\n") == [(1, "\ufeffid: a\n"), (3, "id: b\n")]


_TEXT = st.text(alphabet="abcxyz -.#:'\"\n\t|>", max_size=40)
_FLOW = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=6),
    st.one_of(_TEXT, st.lists(_TEXT, max_size=3), st.integers()),
    min_size=1,
    max_size=4,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(flows=st.lists(_FLOW, min_size=1, max_size=4), style=st.sampled_from([None, "|", '"', "'"]))
def test_split_round_trips_dumped_streams(flows: list[dict[str, Any]], style: str | None) -> None:
    text = yaml.safe_dump_all(flows, default_style=style, explicit_start=True)
    docs = split_documents(text)
    assert [load_yaml(doc) for _, doc in docs] == flows
    _assert_verbatim(text, docs)


# --------------------------------------------------------------------------------------------
# locate / format_location

FLOW = """\
id: hello
namespace: company.team
# a comment
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: first
        type: io.kestra.plugin.core.log.Log
        message: hi
      - id: second
        type: io.kestra.plugin.core.log.Log
        level: INFO
  - id: empty
    type: io.kestra.plugin.core.log.Log
    message:
    retry:
labels: {env: dev, "1": one}
triggers: []
"""


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ((), (1, 1)),
        (("id",), (1, 5)),
        (("tasks",), (5, 3)),
        (("tasks", 0), (5, 5)),
        (("tasks", 0, "id"), (5, 9)),
        (("tasks", 0, "tasks", 0, "message"), (10, 18)),
        (("tasks", 0, "tasks", 1, "level"), (13, 16)),
        # missing required key: the mapping that lacks it
        (("tasks", 0, "tasks", 1, "message"), (11, 9)),
        (("description",), (1, 1)),
        # index beyond the list: the list
        (("tasks", 5), (5, 3)),
        (("tasks", 0, "tasks", 9, "message"), (8, 7)),
        # empty values: the key (the value has no text of its own)
        (("tasks", 1, "message"), (16, 5)),
        (("tasks", 1, "retry", "type"), (17, 5)),
        # flow collections; int steps on mappings and str steps on lists
        (("labels", "env"), (18, 15)),
        (("labels", 1), (18, 25)),
        (("tasks", "1", "id"), (14, 9)),
        (("triggers", 0), (19, 11)),
        # pydantic union tags in a location are skipped
        (("tasks", 0, "tasks", 0, "io.kestra.plugin.core.log.Log", "message"), (10, 18)),
        (("tasks", 0, "function-after[check(), Parallel]", "tasks", 1, "id"), (11, 13)),
    ],
)
def test_locate(path: tuple[str | int, ...], position: tuple[int, int]) -> None:
    assert locate(FLOW, path) == position


@pytest.mark.parametrize(
    ("path", "position"),
    [
        (("tasks", 0, "tasks", 0, "message"), (10, 9)),
        (("namespace",), (2, 1)),
        (("labels", "env"), (18, 10)),
        # at_key on a list item or a missing key still gives the best node
        (("tasks", 1), (14, 5)),
        (("tasks", 1, "nope"), (14, 5)),
    ],
)
def test_locate_at_key(path: tuple[str | int, ...], position: tuple[int, int]) -> None:
    assert locate(FLOW, path, at_key=True) == position


def test_locate_root_after_comments() -> None:
    assert locate("# header\n\n  id: a\n", ()) == (3, 3)


@pytest.mark.parametrize("text", ["", "# only comments\n", "a: [\n", "a: 1\n---\nb: 2\n"])
def test_locate_without_a_document(text: str) -> None:
    assert locate(text, ("a",)) is None
    assert format_location("f.yaml", text, ("a",)) == "f.yaml"


def test_locate_through_merge_keys_and_aliases() -> None:
    text = (
        "base: &base\n"  # 1
        "  type: io.kestra.plugin.core.log.Log\n"  # 2
        "  level: INFO\n"  # 3
        "more: &more {message: hi}\n"  # 4
        "tasks:\n"  # 5
        "  - <<: [*more, *base]\n"  # 6
        "    id: one\n"  # 7
        "    level: WARN\n"  # 8
        "  - *base\n"  # 9
    )
    assert locate(text, ("tasks", 0, "id")) == (7, 9)
    assert locate(text, ("tasks", 0, "level")) == (8, 12)  # the override, not the merged value
    assert locate(text, ("tasks", 0, "type")) == (2, 9)  # merged: where the user must edit it
    assert locate(text, ("tasks", 0, "message")) == (4, 23)
    assert locate(text, ("tasks", 0, "type"), at_key=True) == (2, 3)
    assert locate(text, ("tasks", 1, "level")) == (3, 10)  # through an alias
    assert locate(text, ("tasks", 0, "missing")) == (6, 5)


def test_locate_keys_by_source_text() -> None:
    text = "cases:\n  1: [a]\n  true: [b]\n  'x y': [c]\n"
    assert locate(text, ("cases", 1)) == (2, 6)
    assert locate(text, ("cases", "true")) == (3, 9)
    assert locate(text, ("cases", "x y", 0)) == (4, 11)


def test_format_location() -> None:
    assert format_location("flows/x.yaml", FLOW, ("tasks", 0, "tasks", 1, "message")) == "flows/x.yaml:11:9"
    assert format_location("all.yaml", FLOW, ("id",), first_line=20) == "all.yaml:20:5"
    assert format_location("f.yaml", FLOW, ("namespace",), at_key=True) == "f.yaml:2:1"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), ""),
        (("id",), "id"),
        (("tasks", 0, "tasks", 1, "message"), "tasks[0].tasks[1].message"),
        ((0, "id"), "[0].id"),
        (("a", 0, 1, "b"), "a[0][1].b"),
    ],
)
def test_format_path(path: tuple[str | int, ...], expected: str) -> None:
    assert format_path(path) == expected


def _big_flow(tasks: int) -> str:
    lines = ["id: big", "namespace: company.team", "tasks:"]
    for i in range(tasks):
        lines += [
            f"  - id: task_{i}",
            "    type: io.kestra.plugin.core.log.Log",
            f'    message: "Hello {{{{ inputs.name }}}} {i}"',
            "    level: INFO",
            "    retry:",
            "      type: constant",
            f"      interval: PT{i % 5 + 1}S",
        ]
    return "\n".join(lines) + "\n"


def test_locate_is_fast_for_many_errors() -> None:
    text = _big_flow(143)  # ~1000 lines
    assert 990 <= text.count("\n") <= 1010
    started = time.perf_counter()
    positions = [locate(text, ("tasks", i * 2, "retry", "maxAttempt")) for i in range(50)]
    elapsed = time.perf_counter() - started
    assert positions[0] == (9, 7)  # the retry mapping that lacks maxAttempt
    assert positions[49] == (9 + 98 * 7, 7)
    assert elapsed < 0.5, elapsed  # measured ~3 ms: one compose, then cached walks


def test_load_yaml_speed() -> None:
    text = _big_flow(100)
    load_yaml(text)
    started = time.perf_counter()
    for _ in range(5):
        load_yaml(text)
    per_load = (time.perf_counter() - started) / 5
    assert per_load < 0.05, per_load  # measured ~3.5 ms with libyaml; generous for busy CI


# --------------------------------------------------------------------------------------------
# Pure-Python fallback


@pytest.fixture
def pure_loader(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A second copy of the module, imported as if PyYAML had been built without libyaml."""
    monkeypatch.delattr(yaml, "CSafeLoader")
    spec = importlib.util.spec_from_file_location("_tiercel_pure_loader", Path(loader.__file__))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "_tiercel_pure_loader", module)
    spec.loader.exec_module(module)
    return module


def test_pure_python_fallback(pure_loader: ModuleType) -> None:
    assert not pure_loader.HAS_LIBYAML
    assert pure_loader.FlowLoader.__mro__[1] is yaml.SafeLoader
    for scalar, expected in RESOLVER_TABLE:
        assert _same(pure_loader.load_yaml(f"v: {scalar}")["v"], expected), scalar
    with pytest.raises(ValidationError, match=r"^f\.yaml:3:1: duplicate key 'id' \(first defined at line 1"):
        pure_loader.load_yaml("id: a\nx: 1\nid: b\n", "f.yaml")
    with pytest.raises(ValidationError, match=r"^f\.yaml:2:3: mapping values are not allowed"):
        pure_loader.load_yaml("a: b\n c: d\n", "f.yaml")
    with pytest.raises(ValidationError, match=r"^f\.yaml:1:5: .*#x0007"):
        pure_loader.load_yaml("a: b\x07", "f.yaml")
    assert pure_loader.locate(FLOW, ("tasks", 0, "tasks", 0, "message")) == (10, 18)
