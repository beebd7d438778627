"""Input resolution, parsing and validation (Kestra's ``FlowInputOutput`` behaviour) and flow outputs.

Error texts are compared exactly: clients and the conformance suite match Kestra's wording.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from tiercel.errors import InputError, StorageError, ValidationError
from tiercel.flows.inputs import (
    SECRET_ENCRYPTION_NOT_CONFIGURED,
    FileSource,
    FileStore,
    check_declarations,
    defaults_for_render,
    java_str,
    nest_dotted,
    parse_typed,
    refuse_secrets,
    resolve_inputs,
    to_python,
    typed_outputs,
)
from tiercel.model.inputs import Input, Output

SHARED = Path("/work/shared/conformance")
VALIDS = SHARED / "kestra-flows" / "valids"
EXPECTATIONS = SHARED / "expectations.yaml"
INPUTS = TypeAdapter(list[Input])
OUTPUTS = TypeAdapter(list[Output])
needs_corpus = pytest.mark.skipif(not EXPECTATIONS.is_file(), reason="conformance corpus not available")


def declare(*items: dict[str, Any]) -> list[Any]:
    return INPUTS.validate_python(list(items))


def error_of(declared: list[Any], provided: Mapping[str, Any], **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        resolve_inputs(declared, provided, **kwargs)
    return caught.value


class FakeStore:
    """Records uploads and answers URIs shaped like Kestra's (execution id ``test``)."""

    def __init__(self, prefix: str = "kestra:///io/kestra/tests/inputs/executions/test/inputs") -> None:
        self.prefix = prefix
        self.calls: list[tuple[str, str, Any]] = []

    def store(self, input_id: str, filename: str, source: FileSource) -> str:
        content = source
        if isinstance(source, os.PathLike):
            content = Path(source).read_bytes()
        elif hasattr(source, "read"):
            content = source.read()
        self.calls.append((input_id, filename, content))
        return f"{self.prefix}/{input_id}/{filename}"


class _Namespace:
    """Attribute access over a mapping, so ``inputs.x`` works in the fake renderer."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data[name]
        return _Namespace(value) if isinstance(value, Mapping) else value


def fake_render(template: str, context: Mapping[str, Any]) -> Any:
    """A stand-in for the Pebble renderer: ``{{ python expression }}`` over attribute-style variables."""
    match = re.fullmatch(r"\s*\{\{(.*)\}\}\s*", template, re.S)
    assert match, template
    scope = {k: _Namespace(v) if isinstance(v, Mapping) else v for k, v in context.items()}
    return eval(match.group(1).strip(), {"__builtins__": {}}, scope)  # test-only, trusted text


# --- every type: good values ---------------------------------------------------------------------------

GOOD: list[tuple[dict[str, Any], Any, Any]] = [
    ({"type": "STRING"}, "text", "text"),
    ({"type": "STRING"}, 42, "42"),
    ({"type": "STRING"}, {"a": [1, True]}, '{"a":[1,true]}'),
    ({"type": "STRING", "validator": r"A\d+"}, "A123", "A123"),
    ({"type": "ENUM", "values": ["A", "B"]}, "B", "B"),
    ({"type": "SELECT", "values": ["A", "B"]}, "A", "A"),
    ({"type": "SELECT", "values": ["A"], "allowCustomValue": True}, "Z", "Z"),
    ({"type": "SELECT", "values": ["1", "2"]}, 2, "2"),
    ({"type": "MULTISELECT", "values": ["A", "B", "C"]}, ["A", "C"], ["A", "C"]),
    ({"type": "MULTISELECT", "values": ["A", "B"]}, '["B"]', ["B"]),
    ({"type": "MULTISELECT", "values": ["A"], "allowCustomValue": True}, ["A", "Z"], ["A", "Z"]),
    ({"type": "MULTISELECT", "values": ["1", "2"], "itemType": "INT"}, '["1", 2]', [1, 2]),
    ({"type": "INT"}, "42", 42),
    ({"type": "INT"}, "-7", -7),
    ({"type": "INT"}, 42, 42),
    ({"type": "INT"}, 42.0, 42),
    ({"type": "INT", "min": 10, "max": 20}, "10", 10),
    ({"type": "INT", "min": 10, "max": 20}, "20", 20),
    ({"type": "FLOAT"}, "42.42", 42.42),
    ({"type": "FLOAT"}, "1e3", 1000.0),
    ({"type": "FLOAT"}, 3, 3.0),
    ({"type": "FLOAT", "min": 0.1, "max": 0.5}, "0.5", 0.5),
    ({"type": "BOOLEAN"}, "false", False),
    ({"type": "BOOLEAN"}, "TRUE", True),
    ({"type": "BOOLEAN"}, True, True),
    ({"type": "DATETIME"}, "2019-10-06T18:27:49Z", "2019-10-06T18:27:49Z"),
    ({"type": "DATETIME"}, "2019-10-06T20:27:49+02:00", "2019-10-06T18:27:49Z"),
    ({"type": "DATETIME"}, datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC), "2019-10-06T18:27:49Z"),
    ({"type": "DATETIME", "after": "2023-01-01T00:00:00Z"}, "2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z"),
    ({"type": "DATE"}, "2019-10-06", "2019-10-06"),
    ({"type": "DATE"}, date(2019, 10, 6), "2019-10-06"),
    ({"type": "DATE", "after": "2023-01-01", "before": "2023-12-31"}, "2023-12-31", "2023-12-31"),
    ({"type": "TIME"}, "18:27:49", "18:27:49"),
    ({"type": "TIME"}, "18:27", "18:27:00"),
    ({"type": "TIME", "after": "01:00:00"}, "01:00", "01:00:00"),
    ({"type": "DURATION"}, "PT5M6S", "PT5M6S"),
    ({"type": "DURATION"}, "P1D", "PT24H"),
    ({"type": "DURATION"}, timedelta(seconds=1.5), "PT1.5S"),
    ({"type": "DURATION", "min": "PT10S", "max": "PT20S"}, "PT10S", "PT10S"),
    ({"type": "JSON"}, '{"a": "b"}', {"a": "b"}),
    ({"type": "JSON"}, "{}", {}),
    ({"type": "JSON"}, "[1, 2]", [1, 2]),
    ({"type": "JSON"}, {"already": ["parsed"]}, {"already": ["parsed"]}),
    (
        {"type": "YAML"},
        "some: property\nalist:\n- of\n- values",
        {"some": "property", "alist": ["of", "values"]},
    ),
    ({"type": "YAML"}, "when: 2024-01-02", {"when": "2024-01-02"}),
    ({"type": "YAML"}, {"k": date(2024, 1, 2)}, {"k": "2024-01-02"}),
    ({"type": "URI"}, "https://www.google.com", "https://www.google.com"),
    ({"type": "URI"}, "http://localhost:8080/a?b=c#d", "http://localhost:8080/a?b=c#d"),
    ({"type": "EMAIL"}, "john.doe+x@example.com", "john.doe+x@example.com"),
    ({"type": "EMAIL"}, "", ""),
    ({"type": "SECRET"}, "secret", "secret"),
    ({"type": "SECRET", "validator": "[a-z]+"}, "abc", "abc"),
    ({"type": "ARRAY", "itemType": "INT"}, "[1, 2, 3]", [1, 2, 3]),
    ({"type": "ARRAY", "itemType": "INT"}, ["1", 2], [1, 2]),
    ({"type": "ARRAY", "itemType": "STRING"}, '["a", "b"]', ["a", "b"]),
    ({"type": "ARRAY", "itemType": "DATE"}, '["2024-01-02"]', ["2024-01-02"]),
    ({"type": "ARRAY", "itemType": "DURATION"}, ["P1D"], ["PT24H"]),
    ({"type": "ARRAY", "itemType": "JSON"}, '[{"a": 1}, "[2]"]', [{"a": 1}, [2]]),
    (
        {"type": "FILE"},
        "kestra:///ns/flow/executions/e/inputs/f/a.txt",
        "kestra:///ns/flow/executions/e/inputs/f/a.txt",
    ),
]


@pytest.mark.parametrize(("decl", "raw", "expected"), GOOD)
def test_good_values(decl: dict[str, Any], raw: Any, expected: Any) -> None:
    declared = declare({"id": "x", **decl})
    result = resolve_inputs(declared, {"x": raw})
    assert result == {"x": expected}
    assert type(result["x"]) is type(expected)


# --- every type: bad values, exact messages -----------------------------------------------------------

BAD: list[tuple[dict[str, Any], Any, str]] = [
    (
        {"type": "STRING", "validator": r"A\d+"},
        "B-failed",
        r"it must match the pattern `A\d+`, but received `B-failed`",
    ),
    ({"type": "STRING"}, {1}, "Expected `STRING` but received `{1}`, but received `{1}`"),
    ({"type": "ENUM", "values": ["A", "B"]}, "C", "it must match the values `[A, B]`, but received `C`"),
    ({"type": "SELECT", "values": ["A", "B"]}, "C", "it must match the values `[A, B]`, but received `C`"),
    ({"type": "SELECT", "values": ["A"]}, ["A"], "it must match the values `[A]`, but received `[A]`"),
    (
        {"type": "MULTISELECT", "values": ["A", "B"]},
        ["A", "C"],
        "it must match the values `[A, B]`, but received `[A, C]`",
    ),
    (
        {"type": "MULTISELECT", "values": ["A"]},
        "A",
        "Expected `MULTISELECT` but received `A`, but received `A`",
    ),
    (
        {"type": "MULTISELECT", "values": ["A"]},
        '{"a": 1}',
        'Expected `MULTISELECT` but received `{"a": 1}`, but received `{"a": 1}`',
    ),
    ({"type": "INT"}, "abc", "Expected `INT` but received `abc`, but received `abc`"),
    ({"type": "INT"}, "4.2", "Expected `INT` but received `4.2`, but received `4.2`"),
    ({"type": "INT"}, True, "Expected `INT` but received `true`, but received `true`"),
    ({"type": "INT", "min": 10}, "9", "it must be more than `10`, but received `9`"),
    ({"type": "INT", "max": 20}, 21, "it must be less than `20`, but received `21`"),
    ({"type": "FLOAT"}, "x1", "Expected `FLOAT` but received `x1`, but received `x1`"),
    ({"type": "FLOAT"}, "NaN", "Expected `FLOAT` but received `NaN`, but received `NaN`"),
    ({"type": "FLOAT", "min": 0.1}, "0.01", "it must be more than `0.1`, but received `0.01`"),
    ({"type": "FLOAT", "max": 1}, 1.5, "it must be less than `1.0`, but received `1.5`"),
    ({"type": "BOOLEAN"}, "yes", "Expected `BOOLEAN` but received `yes`, but received `yes`"),
    (
        {"type": "DATETIME"},
        "2019-10-06T18:27:49",
        "Expected `DATETIME` but received `2019-10-06T18:27:49`, but received `2019-10-06T18:27:49`",
    ),
    (
        {"type": "DATETIME"},
        "2019-10-06",
        "Expected `DATETIME` but received `2019-10-06`, but received `2019-10-06`",
    ),
    (
        {"type": "DATETIME", "after": "2023-01-01T00:00:00Z"},
        "2022-01-01T00:00:00Z",
        "it must be after `2023-01-01T00:00:00Z`, but received `2022-01-01T00:00:00Z`",
    ),
    (
        {"type": "DATETIME", "before": "2023-12-31T23:59:59Z"},
        "2024-01-01T00:00:00Z",
        "it must be before `2023-12-31T23:59:59Z`, but received `2024-01-01T00:00:00Z`",
    ),
    ({"type": "DATE"}, "06/10/2019", "Expected `DATE` but received `06/10/2019`, but received `06/10/2019`"),
    (
        {"type": "DATE", "after": "2023-01-01"},
        "2022-01-01",
        "it must be after `2023-01-01`, but received `2022-01-01`",
    ),
    (
        {"type": "DATE", "before": "2023-12-31"},
        "2024-01-01",
        "it must be before `2023-12-31`, but received `2024-01-01`",
    ),
    ({"type": "TIME"}, "noon", "Expected `TIME` but received `noon`, but received `noon`"),
    ({"type": "TIME", "after": "01:00:00"}, "00:00:01", "it must be after `01:00`, but received `00:00:01`"),
    (
        {"type": "TIME", "before": "11:59:59"},
        "14:00:00",
        "it must be before `11:59:59`, but received `14:00:00`",
    ),
    (
        {"type": "DURATION"},
        "5 minutes",
        "Expected `DURATION` but received `5 minutes`, but received `5 minutes`",
    ),
    ({"type": "DURATION", "min": "PT10S"}, "PT1S", "It must be more than `PT10S`, but received `PT1S`"),
    ({"type": "DURATION", "max": "PT20S"}, "PT30S", "It must be less than `PT20S`, but received `PT30S`"),
    ({"type": "JSON"}, "{not json", "Expected `JSON` but received `{not json`, but received `{not json`"),
    ({"type": "YAML"}, "a: [", "Expected `YAML` but received `a: [`, but received `a: [`"),
    ({"type": "URI"}, "http:/bla", "Expected `URI` but received `http:/bla`, but received `http:/bla`"),
    (
        {"type": "URI"},
        "www.google.com",
        "Expected `URI` but received `www.google.com`, but received `www.google.com`",
    ),
    ({"type": "EMAIL"}, "not-an-email", "The input must be a valid email, but received `not-an-email`"),
    (
        {"type": "SECRET", "validator": "[a-z]+"},
        "ABC",
        # unlike Kestra, a secret value is never echoed back in an error message
        "it must match the pattern `[a-z]+`, but received `******`",
    ),
    (
        {"type": "ARRAY", "itemType": "INT"},
        '["s1", "s2"]',
        'Unable to parse array element as `INT` on `s1`, but received `["s1", "s2"]`',
    ),
    (
        {"type": "ARRAY", "itemType": "INT"},
        ["1", "x"],
        "Unable to parse array element as `INT` on `x`, but received `[1, x]`",
    ),
    ({"type": "ARRAY", "itemType": "INT"}, "1,2", "Expected `ARRAY` but received `1,2`, but received `1,2`"),
    (
        {"type": "ARRAY", "itemType": "INT"},
        '{"a": 1}',
        'Expected `ARRAY` but received `{"a": 1}`, but received `{"a": 1}`',
    ),
    ({"type": "FILE"}, 42, "Expected `FILE` but received `42`, but received `42`"),
]


@pytest.mark.parametrize(("decl", "raw", "reason"), BAD)
def test_bad_values_exact_message(decl: dict[str, Any], raw: Any, reason: str) -> None:
    declared = declare({"id": "x", **decl})
    error = error_of(declared, {"x": raw})
    message = f"Invalid input for `x`, {reason}"
    assert error.problems == [("x", message)]
    assert str(error) == f"x: {message}"


def test_missing_required_and_optional_absent() -> None:
    declared = declare({"id": "needed", "type": "INT"}, {"id": "maybe", "type": "INT", "required": False})
    error = error_of(declared, {})
    assert str(error) == "needed: Invalid input for `needed`, missing required input, but received `null`"
    assert resolve_inputs(declared, {"needed": "1"}) == {"needed": 1, "maybe": None}
    # an explicit null is the same as absent
    assert resolve_inputs(declared, {"needed": "1", "maybe": None}) == {"needed": 1, "maybe": None}


def test_defaults_apply_and_are_typed() -> None:
    declared = declare(
        {"id": "when", "type": "DATETIME", "defaults": "2013-08-09T14:19:00Z"},
        {"id": "delay", "type": "DURATION", "defaults": "PT1S"},
        {"id": "n", "type": "INT", "defaults": 3},
        {"id": "empty", "type": "STRING", "defaults": "", "required": True},
        {"id": "yaml", "type": "YAML", "defaults": {"list": [{"key": "k"}]}},
    )
    assert resolve_inputs(declared, {}) == {
        "when": "2013-08-09T14:19:00Z",
        "delay": "PT1S",
        "n": 3,
        "empty": "",
        "yaml": {"list": [{"key": "k"}]},
    }
    assert resolve_inputs(declared, {"n": "4"})["n"] == 4


def test_every_problem_is_collected_in_declaration_order() -> None:
    declared = declare(
        {"id": "a", "type": "INT"},
        {"id": "ok", "type": "STRING"},
        {"id": "b", "type": "BOOLEAN"},
    )
    error = error_of(declared, {"ok": "fine", "b": "maybe"})
    assert [where for where, _ in error.problems] == ["a", "b"]
    assert str(error) == (
        "a: Invalid input for `a`, missing required input, but received `null`, "
        "b: Invalid input for `b`, Expected `BOOLEAN` but received `maybe`, but received `maybe`"
    )


def test_undeclared_inputs_are_ignored() -> None:
    declared = declare({"id": "string", "type": "STRING"})
    assert resolve_inputs(declared, {"string": "a" * 11264, "other": "x", "int": "42"}) == {
        "string": "a" * 11264
    }


def test_dotted_ids_nest() -> None:
    declared = declare(
        {"id": "nested.string", "type": "STRING"},
        {"id": "nested.more.int", "type": "INT"},
        {"id": "nested.bool", "type": "BOOLEAN"},
    )
    expected = {"nested": {"string": "a string", "more": {"int": 123}, "bool": True}}
    flat = {"nested.string": "a string", "nested.more.int": "123", "nested.bool": "true"}
    assert resolve_inputs(declared, flat) == expected
    # the same values given as nested maps (e.g. a subflow's `inputs:` written as YAML maps)
    as_maps = {"nested": {"string": "a string", "more": {"int": "123"}, "bool": "true"}}
    assert resolve_inputs(declared, as_maps) == expected


def test_nest_dotted() -> None:
    assert nest_dotted({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}
    assert nest_dotted({"j": {"x": 1}, "j.y": 2}) == {"j": {"x": 1, "y": 2}}
    source = {"x": 1}
    nest_dotted({"j": source, "j.y": 2})
    assert source == {"x": 1}, "input mappings are not mutated"
    with pytest.raises(ValueError, match="`a` is a value"):
        nest_dotted({"a": 1, "a.b": 2})
    with pytest.raises(ValueError, match="would replace"):
        nest_dotted({"a.b": 2, "a": 1})


# --- dependsOn ------------------------------------------------------------------------------------------


def chain() -> list[Any]:
    return declare(
        {"id": "cloud", "type": "SELECT", "values": ["aws", "gcp"]},
        {
            "id": "region",
            "type": "SELECT",
            "expression": "{{ {'aws': ['us-east-1', 'eu-west-1'], 'gcp': ['europe-west1']}[inputs.cloud] }}",
            "dependsOn": {"inputs": ["cloud"]},
        },
        {
            "id": "zone",
            "type": "STRING",
            "dependsOn": {"inputs": ["region"], "condition": "{{ inputs.region == 'eu-west-1' }}"},
        },
        {
            "id": "zoneNote",
            "type": "STRING",
            "required": False,
            "dependsOn": {"inputs": ["zone"]},
        },
    )


def test_depends_on_chain_and_expression() -> None:
    result = resolve_inputs(chain(), {"cloud": "aws", "region": "eu-west-1", "zone": "b"}, render=fake_render)
    assert result == {"cloud": "aws", "region": "eu-west-1", "zone": "b", "zoneNote": None}
    # an invalid dependency still feeds its raw value to the conditions that depend on it (as in Kestra)
    error = error_of(chain(), {"cloud": "gcp", "region": "eu-west-1"}, render=fake_render)
    assert error.problems == [
        (
            "region",
            "Invalid input for `region`, it must match the values `[europe-west1]`, but received `eu-west-1`",
        ),
        ("zone", "Invalid input for `zone`, missing required input, but received `null`"),
    ]


def test_false_condition_drops_the_input_and_its_dependents() -> None:
    # `zone` is required but hidden: no error, and `zoneNote` (depends on zone) is hidden as well
    result = resolve_inputs(chain(), {"cloud": "aws", "region": "us-east-1"}, render=fake_render)
    assert result == {"cloud": "aws", "region": "us-east-1"}


def test_condition_sees_only_dependency_values_plus_context() -> None:
    seen: list[Mapping[str, Any]] = []

    def spy(template: str, context: Mapping[str, Any]) -> Any:
        seen.append(context)
        return "true"  # a text renderer's answer counts too

    declared = declare(
        {"id": "a", "type": "INT"},
        {"id": "b.c", "type": "STRING"},
        {
            "id": "d",
            "type": "STRING",
            "dependsOn": {"inputs": ["b.c", "unknown", "d"], "condition": "{{ x }}"},
        },
    )
    result = resolve_inputs(
        declared, {"a": "1", "b.c": "v", "d": "w"}, render=spy, context={"flow": {"id": "f"}}
    )
    assert result == {"a": 1, "b": {"c": "v"}, "d": "w"}
    assert seen == [{"flow": {"id": "f"}, "inputs": {"b": {"c": "v"}}}]


@pytest.mark.parametrize("answer", [False, "false", None, 1, "yes"])
def test_only_true_shows_the_input(answer: Any) -> None:
    declared = declare({"id": "a", "type": "STRING", "dependsOn": {"inputs": ["a"], "condition": "{{ x }}"}})
    assert resolve_inputs(declared, {"a": "v"}, render=lambda t, c: answer) == {}


def test_condition_failure_and_missing_renderer_are_reported() -> None:
    declared = declare(
        {"id": "a", "type": "STRING", "dependsOn": {"inputs": ["a"], "condition": "{{ boom }}"}}
    )

    def broken(template: str, context: Mapping[str, Any]) -> Any:
        raise RuntimeError("undefined variable `boom`")

    error = error_of(declared, {"a": "v"}, render=broken)
    assert error.problems == [
        (
            "a",
            "Invalid input for `a`, Invalid condition: undefined variable `boom`, but received `{{ boom }}`",
        )
    ]
    error = error_of(declared, {"a": "v"})
    assert "Invalid condition: no template renderer available" in str(error)


def test_circular_depends_on() -> None:
    declared = declare(
        {"id": "a", "type": "STRING", "dependsOn": {"inputs": ["b"]}},
        {"id": "b", "type": "STRING", "dependsOn": {"inputs": ["a"]}},
        {"id": "c", "type": "STRING"},
    )
    error = error_of(declared, {"a": "1", "b": "2", "c": "3"})
    assert [where for where, _ in error.problems] == ["a", "b"]
    assert "circular `dependsOn` between inputs" in error.problems[0][1]
    assert check_declarations(declared) == ["circular `dependsOn` between inputs `a`, `b`"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"a": 1}, "Invalid expression result. Expected a list of strings, but received Map"),
        ("not a list", "Invalid expression result. Expected a list of strings, but received String"),
        (None, "Invalid expression result. Expected a list of strings, but received <null>"),
    ],
)
def test_select_expression_must_give_a_list(answer: Any, reason: str) -> None:
    declared = declare({"id": "s", "type": "SELECT", "expression": "{{ x }}"})
    error = error_of(declared, {"s": "a"}, render=lambda t, c: answer)
    assert error.problems == [("s", f"Invalid input for `s`, {reason}, but received `a`")]


def test_multiselect_expression_as_json_text_and_render_error() -> None:
    declared = declare({"id": "m", "type": "MULTISELECT", "expression": "{{ x }}"})
    assert resolve_inputs(declared, {"m": ["b"]}, render=lambda t, c: '["a", "b", null]') == {"m": ["b"]}

    def broken(template: str, context: Mapping[str, Any]) -> Any:
        raise ValueError("kv key missing")

    assert "Cannot render 'expression'. Cause: kv key missing" in str(
        error_of(declared, {"m": ["b"]}, render=broken)
    )


# --- FILE ----------------------------------------------------------------------------------------------


def test_file_from_local_path_bytes_tuple_and_stream(tmp_path: Path) -> None:
    source = tmp_path / "application-test.yml"
    source.write_bytes(b"a: 1\n")
    declared = declare(
        {"id": "file", "type": "FILE"},
        {"id": "raw", "type": "FILE", "extension": "csv"},
        {"id": "upload", "type": "FILE"},
        {"id": "stream", "type": "FILE"},
        {"id": "kept", "type": "FILE"},
        {"id": "none", "type": "FILE", "required": False},
    )
    store = FakeStore()
    stream = io.BytesIO(b"streamed")
    result = resolve_inputs(
        declared,
        {
            "file": str(source),
            "raw": b"x,y\n",
            "upload": ("../../etc/evil.txt", b"multipart"),
            "stream": stream,
            "kept": "kestra:///other/file.txt",
        },
        files=store,
    )
    prefix = "kestra:///io/kestra/tests/inputs/executions/test/inputs"
    assert result == {
        "file": f"{prefix}/file/application-test.yml",
        "raw": f"{prefix}/raw/raw.csv",
        "upload": f"{prefix}/upload/evil.txt",
        "stream": f"{prefix}/stream/stream.upl",
        "kept": "kestra:///other/file.txt",
        "none": None,
    }
    assert store.calls == [
        ("file", "application-test.yml", b"a: 1\n"),
        ("raw", "raw.csv", b"x,y\n"),
        ("upload", "evil.txt", b"multipart"),
        ("stream", "stream.upl", b"streamed"),
    ]


def test_open_file_keeps_its_name(tmp_path: Path) -> None:
    source = tmp_path / "data.json"
    source.write_text("{}")
    store = FakeStore()
    with source.open("rb") as handle:
        result = resolve_inputs(declare({"id": "f", "type": "FILE"}), {"f": handle}, files=store)
    assert result["f"].endswith("/f/data.json")


def test_file_without_store_or_failing_store() -> None:
    declared = declare({"id": "f", "type": "FILE"})
    error = error_of(declared, {"f": "/tmp/local.txt"})
    assert error.problems == [
        (
            "f",
            "Invalid input for `f`, Expected a `kestra:///` URI but received `/tmp/local.txt` "
            "(no file storage to upload it to), but received `/tmp/local.txt`",
        )
    ]

    class Refusing:
        def store(self, input_id: str, filename: str, source: FileSource) -> str:
            raise StorageError("local paths are not accepted here")

    assert isinstance(Refusing(), FileStore)
    error = error_of(declared, {"f": "/etc/passwd"}, files=Refusing())
    assert "Unable to upload the file: local paths are not accepted here" in str(error)
    error = error_of(declared, {"f": "/does/not/exist.txt"}, files=FakeStore())
    assert "Unable to upload the file:" in str(error)


# --- SECRET --------------------------------------------------------------------------------------------


def test_secret_encryption_hook() -> None:
    declared = declare({"id": "secret", "type": "SECRET", "validator": "[a-z]+"})
    encrypted = resolve_inputs(
        declared,
        {"secret": "secret"},
        encrypt=lambda v: {"type": "io.kestra.datatype:aes_encrypted", "value": v[::-1]},
    )
    assert encrypted == {"secret": {"type": "io.kestra.datatype:aes_encrypted", "value": "terces"}}
    # already encrypted values (restart, subflow) are kept as they are
    assert resolve_inputs(declared, encrypted, encrypt=refuse_secrets) == encrypted
    # the validator is checked on the clear text, before encryption
    assert "it must match the pattern `[a-z]+`" in str(
        error_of(declared, {"secret": "ABC"}, encrypt=lambda v: v)
    )
    error = error_of(declared, {"secret": "secret"}, encrypt=refuse_secrets)
    assert error.problems == [
        ("secret", f"Invalid input for `secret`, {SECRET_ENCRYPTION_NOT_CONFIGURED}, but received `******`")
    ]


# --- helpers ---------------------------------------------------------------------------------------------


def test_parse_typed_is_shared_and_raises_value_error() -> None:
    assert parse_typed("INT", "42") == 42
    assert parse_typed("ARRAY", "[1, 2]") == [1, 2]
    assert parse_typed("ARRAY", ["1"], item_type="INT") == [1]
    assert parse_typed("DATETIME", "2019-10-06T20:27:49+02:00") == "2019-10-06T18:27:49Z"
    assert parse_typed("SECRET", "s", encrypt=lambda v: f"enc({v})") == "enc(s)"
    with pytest.raises(ValueError, match=r"^Expected `INT` but received `x`$"):
        parse_typed("INT", "x")
    with pytest.raises(ValueError, match="Unknown type `NOPE`"):
        parse_typed("NOPE", "x")


def test_to_python_round_trip() -> None:
    assert to_python("DATETIME", "2019-10-06T18:27:49Z") == datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC)
    assert to_python("DATE", "2019-10-06") == date(2019, 10, 6)
    assert to_python("TIME", "18:27:49") == time(18, 27, 49)
    assert to_python("DURATION", "PT5M6S") == timedelta(minutes=5, seconds=6)
    assert to_python("INT", 4) == 4
    assert to_python("DATETIME", None) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (3, "3"),
        (0.1, "0.1"),
        (10.0, "10.0"),
        (1e10, "1.0E10"),
        (1.5e-5, "1.5E-5"),
        (123456.789, "123456.789"),
        (["a", 1, None], "[a, 1, null]"),
        ({"a": "b", "c": [1]}, "{a=b, c=[1]}"),
        (time(1), "01:00"),
        (timedelta(seconds=10), "PT10S"),
        (date(2023, 1, 1), "2023-01-01"),
        (datetime(2023, 1, 1, tzinfo=UTC), "2023-01-01T00:00:00Z"),
    ],
)
def test_java_str(value: Any, text: str) -> None:
    assert java_str(value) == text


def test_defaults_for_render() -> None:
    declared = declare(
        {"id": "namespace", "type": "STRING", "defaults": "io.kestra.tests"},
        {"id": "nested.value", "type": "STRING", "defaults": "d"},
        {"id": "when", "type": "DATETIME", "defaults": datetime(2013, 8, 9, 14, 19, tzinfo=UTC)},
        {"id": "noDefault", "type": "STRING"},
        {"id": "flag", "type": "BOOLEAN", "defaults": False},
    )
    assert defaults_for_render(declared) == {
        "namespace": "io.kestra.tests",
        "nested": {"value": "d"},
        "when": "2013-08-09T14:19:00Z",
        "flag": False,
    }
    assert defaults_for_render(declared, {"errorOnMissing": True, "nested": {"other": 1}, "flag": True}) == {
        "namespace": "io.kestra.tests",
        "nested": {"value": "d", "other": 1},
        "when": "2013-08-09T14:19:00Z",
        "flag": True,
        "errorOnMissing": True,
    }


def test_check_declarations() -> None:
    declared = declare(
        {"id": "a", "type": "STRING"},
        {"id": "a", "type": "INT"},
        {"id": "a.b", "type": "STRING"},
        {"id": "x", "type": "STRING", "dependsOn": {"inputs": ["ghost"]}},
    )
    assert check_declarations(declared) == [
        "duplicate input id `a`",
        "input ids `a` and `a.b` conflict (`a` would hold both)",
        "input ids `a` and `a.b` conflict (`a` would hold both)",
    ]
    # at run time the first declaration of a duplicated id wins, as in Kestra
    assert resolve_inputs(
        declare({"id": "a", "type": "INT"}, {"id": "a", "type": "BOOLEAN"}), {"a": "1"}
    ) == {"a": 1}


# --- flow outputs ----------------------------------------------------------------------------------------


def load_outputs(name: str) -> list[Any]:
    return OUTPUTS.validate_python(yaml.safe_load((VALIDS / name).read_text())["outputs"])


@needs_corpus
def test_outputs_of_corpus_flows() -> None:
    # flow-with-outputs: {{ outputs.return }} is a map; a STRING output holds its compact JSON
    assert typed_outputs(load_outputs("flow-with-outputs.yml"), {"key": {"value": "flow-with-outputs"}}) == {
        "key": '{"value":"flow-with-outputs"}'
    }
    assert typed_outputs(load_outputs("flow-with-outputs.yml"), {"key": '{"value":"flow-with-outputs"}'}) == {
        "key": '{"value":"flow-with-outputs"}'
    }
    assert typed_outputs(
        load_outputs("flow-with-array-outputs.yml"), {"myout": ["1rstValue", "2ndValue"]}
    ) == {"myout": ["1rstValue", "2ndValue"]}
    uri = "kestra:///io/kestra/tests/inputs-small-files/executions/e/inputs/f/a.txt"
    assert typed_outputs(load_outputs("inputs-small-files.yaml"), {"o": uri}) == {"o": uri}


def test_output_errors_and_optional_outputs() -> None:
    declared = OUTPUTS.validate_python(
        [
            {"id": "n", "type": "INT", "value": "{{ x }}"},
            {"id": "gone", "type": "STRING", "value": "{{ y }}"},
            {"id": "maybe", "type": "STRING", "value": "{{ z }}", "required": False},
            {"id": "f", "type": "FILE", "value": "{{ f }}"},
        ]
    )
    with pytest.raises(ValidationError) as caught:
        typed_outputs(declared, {"n": "abc", "f": "/tmp/x"})
    assert not isinstance(caught.value, InputError)
    assert caught.value.problems == [
        ("n", "Invalid output for `n`, Expected `INT` but received `abc`, but received `abc`"),
        ("gone", "Invalid output for `gone`, missing required output, but received `null`"),
        (
            "f",
            "Invalid output for `f`, Expected a `kestra:///` URI but received `/tmp/x` "
            "(no file storage to upload it to), but received `/tmp/x`",
        ),
    ]
    assert typed_outputs(declared, {"n": "1", "gone": "x", "f": "kestra:///a"}) == {
        "n": 1,
        "gone": "x",
        "maybe": None,
        "f": "kestra:///a",
    }
    secret = OUTPUTS.validate_python([{"id": "s", "type": "SECRET", "value": "x"}])
    assert typed_outputs(secret, {"s": "pw"}, encrypt=lambda v: {"enc": v}) == {"s": {"enc": "pw"}}


# --- conformance: Kestra's InputsTest on inputs.yaml -------------------------------------------------------


def inputs_case() -> dict[str, Any]:
    expectations = yaml.safe_load(EXPECTATIONS.read_text())
    return next(flow for flow in expectations["flows"] if flow["file"] == "inputs.yaml")


def inputs_flow() -> list[Any]:
    return INPUTS.validate_python(yaml.safe_load((VALIDS / "inputs.yaml").read_text())["inputs"])


def base_inputs(tmp_path: Path) -> dict[str, Any]:
    """InputsTest's map; the `file` entry describes a file, so a real one is written and uploaded."""
    provided = dict(inputs_case()["base_inputs"])
    upload = tmp_path / "application-test.yml"
    upload.write_text("kestra:\n  anything: true\n")
    provided["file"] = str(upload)
    return provided


def fake_encrypt(value: str) -> dict[str, str]:
    return {"type": "io.kestra.datatype:aes_encrypted", "value": value.encode().hex()}


@needs_corpus
def test_inputs_flow_typed_values(tmp_path: Path) -> None:
    case = next(c for c in inputs_case()["cases"] if c["name"] == "typed-values")
    store = FakeStore()
    typed = resolve_inputs(inputs_flow(), base_inputs(tmp_path), files=store, encrypt=fake_encrypt)
    expected = dict(case["typed_inputs"])
    expected.pop("secret")  # "<anything but 'secret' - stored encrypted>"
    assert {key: typed[key] for key in expected} == expected
    assert typed["secret"] != "secret"
    assert typed["optional"] is None
    assert typed["optionalFile"] is None
    assert typed["empty"] == ""
    assert store.calls == [("file", "application-test.yml", b"kestra:\n  anything: true\n")]


@needs_corpus
def test_inputs_flow_optional_absent_and_empty_json(tmp_path: Path) -> None:
    provided = base_inputs(tmp_path)
    del provided["bool"]
    typed = resolve_inputs(inputs_flow(), provided, files=FakeStore())
    assert "bool" in typed
    assert typed["bool"] is None
    provided["json"] = "{}"
    assert resolve_inputs(inputs_flow(), provided, files=FakeStore())["json"] == {}


@needs_corpus
def test_inputs_flow_refused_without_encryption(tmp_path: Path) -> None:
    error = error_of(inputs_flow(), base_inputs(tmp_path), files=FakeStore(), encrypt=refuse_secrets)
    assert [where for where, _ in error.problems] == ["secret"]


def rejection_rows() -> list[Any]:
    if not EXPECTATIONS.is_file():
        return []
    case = next(c for c in inputs_case()["cases"] if c["name"] == "validation-errors")
    return [pytest.param(row, id=next(iter(row["override"]))) for row in case["rejections"]]


@needs_corpus
@pytest.mark.parametrize("row", rejection_rows())
def test_inputs_flow_rejections(row: dict[str, Any], tmp_path: Path) -> None:
    provided = {**base_inputs(tmp_path), **row["override"]}
    error = error_of(inputs_flow(), provided, files=FakeStore())
    assert len(error.problems) == 1
    if "error_equals" in row:
        assert str(error) == row["error_equals"]
    else:
        assert row["error_contains"] in str(error)


@needs_corpus
def test_pause_on_resume_inputs() -> None:
    def on_resume(name: str) -> list[Any]:
        return INPUTS.validate_python(yaml.safe_load((VALIDS / name).read_text())["tasks"][0]["onResume"])

    error = error_of(on_resume("pause_on_resume.yaml"), {})
    assert "Invalid input for `asked`, missing required input, but received `null`" in str(error)
    store = FakeStore("kestra:///io/kestra/tests/pause_on_resume/executions/e/inputs")
    resumed = resolve_inputs(
        on_resume("pause_on_resume.yaml"), {"asked": "restarted", "data": b"e"}, files=store
    )
    assert resumed == {
        "asked": "restarted",
        "data": "kestra:///io/kestra/tests/pause_on_resume/executions/e/inputs/data/data.upl",
    }
    assert resolve_inputs(on_resume("pause_on_resume_optional.yaml"), {}) == {"asked": None}
