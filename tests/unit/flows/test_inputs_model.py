"""Input/output declarations and the java.time / java.util.regex compatible codecs they rely on.

The corpus test parses every ``inputs:``/``outputs:`` block of Kestra's own flows, so a declaration Kestra
accepts can never be refused by Tiercel's models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from tiercel.model.inputs import (
    ArrayInput,
    DurationInput,
    FileInput,
    Input,
    MultiselectInput,
    Output,
    StringInput,
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

VALIDS = Path("/work/shared/conformance/kestra-flows/valids")
INPUTS = TypeAdapter(list[Input])
OUTPUTS = TypeAdapter(list[Output])


def one(data: dict[str, Any]) -> Any:
    return INPUTS.validate_python([data])[0]


def corpus_files() -> list[Path]:
    return sorted(VALIDS.glob("*.y*ml")) if VALIDS.is_dir() else []


@pytest.mark.skipif(not VALIDS.is_dir(), reason="conformance corpus not available")
def test_every_corpus_declaration_parses() -> None:
    count = 0
    for path in corpus_files():
        flow = yaml.safe_load(path.read_text())
        if not isinstance(flow, dict):
            continue
        if flow.get("inputs"):
            INPUTS.validate_python(flow["inputs"])
            count += len(flow["inputs"])
        if flow.get("outputs"):
            OUTPUTS.validate_python(flow["outputs"])
        for task in flow.get("tasks") or []:  # Pause onResume inputs use the same declarations
            if isinstance(task, dict) and task.get("onResume"):
                INPUTS.validate_python(task["onResume"])
    assert count > 50


@pytest.mark.parametrize(
    ("kind", "cls_name"),
    [
        ("STRING", "StringInput"),
        ("ENUM", "EnumInput"),
        ("SELECT", "SelectInput"),
        ("MULTISELECT", "MultiselectInput"),
        ("INT", "IntInput"),
        ("FLOAT", "FloatInput"),
        ("BOOLEAN", "BooleanInput"),
        ("DATETIME", "DateTimeInput"),
        ("DATE", "DateInput"),
        ("TIME", "TimeInput"),
        ("DURATION", "DurationInput"),
        ("FILE", "FileInput"),
        ("JSON", "JsonInput"),
        ("YAML", "YamlInput"),
        ("URI", "UriInput"),
        ("SECRET", "SecretInput"),
        ("ARRAY", "ArrayInput"),
        ("EMAIL", "EmailInput"),
    ],
)
def test_type_discriminates_the_class(kind: str, cls_name: str) -> None:
    extra: dict[str, Any] = {}
    if kind in ("ENUM", "SELECT", "MULTISELECT"):
        extra["values"] = ["a"]
    if kind == "ARRAY":
        extra["itemType"] = "INT"
    parsed = one({"id": "x", "type": kind, **extra})
    assert type(parsed).__name__ == cls_name
    assert parsed.required is True
    assert parsed.to_dict()["type"] == kind


def test_common_fields_and_camel_case_round_trip() -> None:
    parsed = one(
        {
            "id": "a.b-c_d",
            "type": "STRING",
            "description": "why",
            "displayName": "A b",
            "required": False,
            "defaults": "x",
            "dependsOn": {"inputs": ["other"], "condition": "{{ inputs.other }}"},
        }
    )
    assert parsed.display_name == "A b"
    assert parsed.depends_on.inputs == ["other"]
    assert parsed.to_dict()["dependsOn"] == {"inputs": ["other"], "condition": "{{ inputs.other }}"}
    assert one(parsed.to_dict()) == parsed


def test_legacy_name_is_the_id() -> None:
    parsed = one({"name": "old", "type": "INT"})
    assert parsed.id == "old"
    assert "name" not in parsed.to_dict()
    assert one({"name": "same", "id": "same", "type": "INT"}).id == "same"
    with pytest.raises(PydanticValidationError, match="both `id` and `name`"):
        one({"name": "a", "id": "b", "type": "INT"})


def test_multiselect_legacy_options() -> None:
    parsed = one({"id": "m", "type": "MULTISELECT", "options": ["a", "b"]})
    assert isinstance(parsed, MultiselectInput)
    assert parsed.values == ["a", "b"]
    assert parsed.item_type == "STRING"
    with pytest.raises(PydanticValidationError, match="both `values` and `options`"):
        one({"id": "m", "type": "MULTISELECT", "options": ["a"], "values": ["b"]})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"id": "x", "type": "STRING", "unknown": 1}, "Extra inputs are not permitted"),
        ({"id": "x", "type": "NOPE"}, "does not match any of the expected tags"),
        ({"id": "x"}, "Unable to extract tag using discriminator"),
        ({"id": "_x", "type": "STRING"}, "String should match pattern"),
        ({"id": "a b", "type": "STRING"}, "String should match pattern"),
        ({"type": "STRING"}, "Field required"),
        ({"id": "x", "type": "STRING", "displayName": "x" * 65}, "at most 64 characters"),
        ({"id": "x", "type": "ARRAY"}, "itemType"),
        ({"id": "x", "type": "ARRAY", "itemType": "ARRAY"}, "itemType"),
        ({"id": "x", "type": "ENUM"}, "values"),
        ({"id": "x", "type": "SELECT"}, "needs `values` or `expression`"),
        ({"id": "x", "type": "MULTISELECT"}, "needs `values` or `expression`"),
        ({"id": "x", "type": "STRING", "validator": "(unclosed"}, "invalid regular expression"),
        ({"id": "x", "type": "DURATION", "min": "10 seconds"}, "not an ISO-8601 duration"),
        ({"id": "x", "type": "DATETIME", "after": "2023-01-01T00:00:00"}, "no time zone"),
        ({"id": "x", "type": "DATE", "after": "2023/01/01"}, "not an ISO-8601 date"),
        ({"id": "x", "type": "TIME", "after": "25:00"}, "not an ISO-8601 time"),
        ({"id": "x", "type": "STRING", "dependsOn": {"inputs": []}}, "at least 1 item"),
    ],
)
def test_bad_declarations_are_refused(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PydanticValidationError, match=fragment):
        one(data)


def test_bounds_are_objects_and_serialise_to_kestra_json() -> None:
    declared = INPUTS.validate_python(
        [
            {"id": "d", "type": "DATE", "after": date(2023, 1, 1), "before": "2023-12-31"},
            {"id": "i", "type": "DATETIME", "after": "2023-01-01T02:00:00+02:00"},
            {"id": "t", "type": "TIME", "after": "01:00:00"},
            {"id": "u", "type": "DURATION", "min": "PT10S", "max": "P1D"},
            {"id": "f", "type": "FLOAT", "min": 1, "max": "0.5"},
            {"id": "s", "type": "SELECT", "values": [1, True, "x"]},
        ]
    )
    d, i, t, u, f, s = declared
    assert d.after == date(2023, 1, 1)
    assert i.after == datetime(2023, 1, 1, tzinfo=UTC)
    assert t.after == time(1)
    assert u.max == timedelta(days=1)
    assert f.min == 1.0
    assert s.values == ["1", "true", "x"]
    assert [x.to_dict().get("after") for x in (d, i, t)] == [
        "2023-01-01",
        "2023-01-01T00:00:00Z",
        "01:00:00",
    ]
    assert u.to_dict()["min"] == "PT10S"
    assert u.to_dict()["max"] == "PT24H"
    assert isinstance(u, DurationInput)


def test_file_extension_and_defaults() -> None:
    assert one({"id": "f", "type": "FILE"}).extension == ".upl"
    parsed = one({"id": "f", "type": "FILE", "extension": "csv"})
    assert isinstance(parsed, FileInput)
    assert parsed.extension == ".csv"


def test_python_construction_defaults_the_type() -> None:
    assert StringInput(id="x").type == "STRING"
    assert ArrayInput(id="a", item_type="INT").to_dict()["itemType"] == "INT"


def test_output_model() -> None:
    parsed = OUTPUTS.validate_python(
        [
            {"id": "key", "type": "STRING", "value": "{{ outputs.return }}"},
            {"id": "myout", "type": "ARRAY", "value": ["{{ a }}", "{{ b }}"], "displayName": "Out"},
        ]
    )
    assert parsed[0].required is True
    assert parsed[1].value == ["{{ a }}", "{{ b }}"]
    assert parsed[1].to_dict()["displayName"] == "Out"
    with pytest.raises(PydanticValidationError):
        OUTPUTS.validate_python([{"id": "k", "value": "x"}])  # type is mandatory
    with pytest.raises(PydanticValidationError):
        OUTPUTS.validate_python([{"id": "k", "type": "STRING", "value": "x", "itemType": "INT"}])


# --- codecs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("PT5M6S", timedelta(minutes=5, seconds=6), "PT5M6S"),
        ("PT1H30M", timedelta(hours=1, minutes=30), "PT1H30M"),
        ("P1D", timedelta(days=1), "PT24H"),
        ("P2DT3H", timedelta(days=2, hours=3), "PT51H"),
        ("PT0.5S", timedelta(milliseconds=500), "PT0.5S"),
        ("PT0,25S", timedelta(milliseconds=250), "PT0.25S"),
        ("pt15s", timedelta(seconds=15), "PT15S"),
        ("PT90S", timedelta(seconds=90), "PT1M30S"),
        ("PT0S", timedelta(0), "PT0S"),
        ("-PT1H30M", -timedelta(hours=1, minutes=30), "PT-1H-30M"),
        ("PT-0.5S", -timedelta(milliseconds=500), "PT-0.5S"),
        ("PT1H-10M", timedelta(minutes=50), "PT50M"),
        ("PT0.000001S", timedelta(microseconds=1), "PT0.000001S"),
    ],
)
def test_duration_codec(text: str, expected: timedelta, canonical: str) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == canonical


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "P1Y", "P1M", "P1W", "PT1.5M", "PTS", "PT1H2D"])
def test_duration_refuses_what_java_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601 duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2019-10-06T18:27:49Z", "2019-10-06T18:27:49Z"),
        ("2019-10-06T20:27:49+02:00", "2019-10-06T18:27:49Z"),
        ("2019-10-06T18:27:49.5Z", "2019-10-06T18:27:49.500Z"),
        ("2019-10-06T18:27:49.123456789Z", "2019-10-06T18:27:49.123456Z"),
        ("2019-10-06T18:27Z", "2019-10-06T18:27:00Z"),
    ],
)
def test_instant_codec(text: str, canonical: str) -> None:
    assert format_instant(parse_instant(text)) == canonical


@pytest.mark.parametrize("text", ["2019-10-06", "2019-10-06T18:27:49", "yesterday", "2019-13-06T00:00:00Z"])
def test_instant_refusals(text: str) -> None:
    with pytest.raises(ValueError, match=r"instant|time zone"):
        parse_instant(text)


def test_local_date_and_time_codecs() -> None:
    assert parse_local_date("2019-10-06") == date(2019, 10, 6)
    for bad in ("20191006", "2019-10-06T00:00:00", "2019-02-30"):
        with pytest.raises(ValueError, match="ISO-8601 date"):
            parse_local_date(bad)
    assert parse_local_time("18:27") == time(18, 27)
    assert parse_local_time("18:27:49.123456789") == time(18, 27, 49, 123456)
    for bad in ("18", "18:27:49Z", "24:00", "6:00"):
        with pytest.raises(ValueError, match="ISO-8601 time"):
            parse_local_time(bad)
    # stored form (Jackson ISO_LOCAL_TIME) vs message form (LocalTime.toString)
    assert format_local_time(time(1)) == "01:00:00"
    assert java_time_str(time(1)) == "01:00"
    assert format_local_time(time(1, 2, 3, 500000)) == "01:02:03.5"
    assert java_time_str(time(1, 2, 3, 500000)) == "01:02:03.500"


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (r"A\d+", ["A1", "A123"], ["foo", "A", "xA1", "A1x", "A1\n"]),
        (r"\p{Upper}\p{Lower}+", ["Ab"], ["ab", "AB"]),
        (r"[\p{Alpha}_]+", ["a_B"], ["a1"]),
        (r"\P{Digit}+", ["ab"], ["a1"]),
        (r"\p{L}+", ["été"], ["e1"]),
        (r"\Qa.b\E", ["a.b"], ["axb"]),
        (r"a\hb", ["a b", "a\tb"], ["a\nb"]),
        (r"(?<year>\d{4})-\k<year>", ["2020-2020"], ["2020-2021"]),
        (r"[a-c[x-z]]+", ["abxz"], ["d"]),
        (r"(?U)\w+", ["abc"], ["a-b"]),
        (r"(?i)abc", ["ABC"], ["abd"]),
        (r"a++b", ["aab"], ["b"]),
        (r"\x{41}", ["A"], ["B"]),
        (r"a\R", ["a\r\n", "a\n"], ["a"]),
        (r"abc\z", ["abc"], ["abc\n"]),
    ],
)
def test_java_regex_translation(pattern: str, good: list[str], bad: list[str]) -> None:
    compiled = java_regex(pattern)
    assert all(compiled.fullmatch(value) for value in good)
    assert not any(compiled.fullmatch(value) for value in bad)


@pytest.mark.parametrize("pattern", [r"[a-z&&[^aeiou]]", r"\p{Lu}", r"(", r"[a-z[^x]]"])
def test_java_regex_unsupported_or_invalid(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported|invalid"):
        java_regex(pattern)
