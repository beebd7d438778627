"""Date filters and ``now()``: Java patterns, named formats, parsing, arithmetic, epochs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from tiercel.errors import TemplateError
from tiercel.templating import render, render_typed

START = dt.datetime(2024, 12, 20, 17, 12, 37, 123000, tzinfo=dt.UTC)
CONTEXT: dict[str, Any] = {
    "execution": {"startDate": START},
    "day": dt.date(2024, 1, 15),
    "local": dt.datetime(2024, 1, 15, 10, 30),
}


def case(template: str, expected: str) -> Any:
    return pytest.param(template, expected, id=template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # named formats
        case("{{ execution.startDate | date }}", "2024-12-20T17:12:37.123000Z"),
        case("{{ execution.startDate | date('iso') }}", "2024-12-20T17:12:37.123000Z"),
        case("{{ execution.startDate | date('iso_sec') }}", "2024-12-20T17:12:37Z"),
        case("{{ execution.startDate | date('sql') }}", "2024-12-20 17:12:37.123000"),
        case("{{ execution.startDate | date('sql_seq') }}", "2024-12-20 17:12:37"),
        case("{{ execution.startDate | date('iso_date_time') }}", "2024-12-20T17:12:37.123Z[UTC]"),
        case(
            "{{ execution.startDate | date('iso_zoned_date_time', timeZone='Europe/Paris') }}",
            "2024-12-20T18:12:37.123+01:00[Europe/Paris]",
        ),
        case("{{ execution.startDate | date('iso_date') }}", "2024-12-20Z"),
        case("{{ execution.startDate | date('iso_time') }}", "17:12:37.123Z"),
        case("{{ execution.startDate | date('iso_local_date') }}", "2024-12-20"),
        case("{{ execution.startDate | date('iso_local_time') }}", "17:12:37.123"),
        case("{{ execution.startDate | date('iso_local_date_time') }}", "2024-12-20T17:12:37.123"),
        case(
            "{{ execution.startDate | date('iso_instant', timeZone='Asia/Tokyo') }}",
            "2024-12-20T17:12:37.123Z",
        ),
        case("{{ execution.startDate | date('iso_offset_time', timeZone='+02:00') }}", "19:12:37.123+02:00"),
        case(
            "{{ execution.startDate | date('iso_offset_date_time', timeZone='-05:30') }}",
            "2024-12-20T11:42:37.123-05:30",
        ),
        case("{{ execution.startDate | date('iso_ordinal_date') }}", "2024-355Z"),
        case("{{ execution.startDate | date('iso_week_date') }}", "2024-W51-5Z"),
        case("{{ execution.startDate | date('rfc_1123_date_time') }}", "Fri, 20 Dec 2024 17:12:37 GMT"),
        case("{{ execution.startDate | date('medium') }}", "Dec 20, 2024, 5:12:37\u202fPM"),
        case("{{ execution.startDate | date('short') }}", "12/20/24, 5:12\u202fPM"),
        # Java patterns
        case("{{ execution.startDate | date('yyyy-MM-dd') }}", "2024-12-20"),
        case(
            "{{ execution.startDate | date(\"yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX\") }}",
            "2024-12-20T17:12:37.123000Z",
        ),
        case("{{ execution.startDate | date('yyyyMMdd_HHmm') }}", "20241220_1712"),
        case("{{ execution.startDate | date('EEE, d MMM yyyy') }}", "Fri, 20 Dec 2024"),
        case("{{ execution.startDate | date('EEEE d MMMM yy') }}", "Friday 20 December 24"),
        case(
            "{{ execution.startDate | date('hh:mm a') }} {{ execution.startDate | date('K k H h') }}",
            "05:12 PM 5 17 17 5",
        ),
        case("{{ execution.startDate | date('S SS SSS SSSSSSSSS') }}", "1 12 123 123000000"),
        case("{{ execution.startDate | date(\"'Q'Q qqq D w\") }}", "Q4 Q4 355 51"),
        case("{{ execution.startDate | date(\"''yy 'literal' [yyyy]\") }}", "'24 literal 2024"),
        case(
            "{{ execution.startDate | date('XXX xx Z VV', timeZone='America/New_York') }}",
            "-05:00 -0500 -0500 America/New_York",
        ),
        case("{{ execution.startDate | date('X x XXXXX', timeZone='UTC') }}", "Z +00 Z"),
        case(
            "{{ execution.startDate | date(format='EEEE d MMMM yyyy', locale='fr_FR') }}",
            "vendredi 20 décembre 2024",
        ),
        case("{{ execution.startDate | date('HH:mm', timeZone='Europe/Paris') }}", "18:12"),
        # inputs of every kind
        case("{{ '2024-01-15' | date('EEEE HH:mm') }}", "Monday 00:00"),
        case("{{ day | date('yyyy-MM-dd HH:mm') }}", "2024-01-15 12:00"),
        case("{{ local | date('HH:mm XXX') }}", "10:30 Z"),
        case("{{ '2024-01-15T10:00:00' | date('HH:mm') }}", "10:00"),
        case("{{ '2024-01-15T10:00:00+02:00' | date('HH:mm') }}", "08:00"),
        case(
            "{{ '2024-01-15T10:00:00Z[Europe/Paris]' | date('HH:mm VV', timeZone='Europe/Paris') }}",
            "11:00 Europe/Paris",
        ),
        case("{{ 1700000000 | date('yyyy-MM-dd HH:mm:ss') }}", "2023-11-14 22:13:20"),
        case(
            "{{ '15/01/2024 10:30' | date(\"yyyy-MM-dd'T'HH:mm\", existingFormat='dd/MM/yyyy HH:mm') }}",
            "2024-01-15T10:30",
        ),
        case("{{ '20240115' | date('yyyy-MM-dd', existingFormat='yyyyMMdd') }}", "2024-01-15"),
        case("{{ 'Jan 5, 2024 3:04 PM' | date('HH:mm', existingFormat='MMM d, yyyy h:mm a') }}", "15:04"),
        case(
            "{{ '2024-01-15 10:30:00.500000' | date('iso', existingFormat='sql') }}",
            "2024-01-15T10:30:00.500000Z",
        ),
        # dateAdd
        case("{{ execution.startDate | dateAdd(1, 'DAYS') }}", "2024-12-21T17:12:37.123000Z"),
        case("{{ execution.startDate | dateAdd(-2, 'HOURS', 'HH:mm') }}", "15:12"),
        case("{{ execution.startDate | dateAdd(90, 'MINUTES', format='HH:mm') }}", "18:42"),
        case("{{ execution.startDate | dateAdd(500, 'MILLIS', 'ss.SSS') }}", "37.623"),
        case("{{ execution.startDate | dateAdd(2, 'WEEKS', 'yyyy-MM-dd') }}", "2025-01-03"),
        case("{{ '2024-01-31' | dateAdd(1, 'MONTHS', 'yyyy-MM-dd') }}", "2024-02-29"),
        case("{{ '2024-02-29' | dateAdd(1, 'YEARS', 'yyyy-MM-dd') }}", "2025-02-28"),
        case(
            "{{ '2024-03-30T12:00:00' | dateAdd(1, 'DAYS', 'HH:mm XXX', timeZone='Europe/Paris') }}",
            "12:00 +02:00",
        ),
        # epochs
        case("{{ execution.startDate | timestamp }}", "1734714757"),
        case("{{ execution.startDate | timestampMilli }}", "1734714757123"),
        case("{{ execution.startDate | timestampMicro }}", "1734714757123000"),
        case("{{ execution.startDate | timestampNano }}", "1734714757123000000"),
        case("{{ '1969-12-31T23:59:59.5Z' | timestamp }}", "-1"),
    ],
)
def test_date_filters(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_now_returns_an_iso_string_that_date_can_read() -> None:
    now = render_typed("{{ now() }}", {})
    assert isinstance(now, str)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", now)
    year = str(dt.datetime.now(dt.UTC).year)
    assert render("{{ now() | date('yyyy') }}", {}) in (year, str(int(year) + 1))
    assert render("{{ now('yyyy') }}", {}) in (year, str(int(year) + 1))
    assert re.fullmatch(r"\+09:00", render("{{ now(format='XXX', timeZone='Asia/Tokyo') }}", {}))


def test_now_is_not_frozen_into_the_cached_template() -> None:
    first = render("{{ now('SSSSSS') }}{{ uuid() }}", {})
    second = render("{{ now('SSSSSS') }}{{ uuid() }}", {})
    assert first != second


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'not a date' | date }}", "could not be parsed"),
        ("{{ '2024-01-01' | date('yyyy', timeZone='Mars/Base') }}", "Unknown time-zone ID: Mars/Base"),
        ("{{ '2024-01-01' | date('yyyy', locale='zz_ZZ') }}", "Unknown locale"),
        ("{{ '2024-01-01' | date('bbb') }}", "Unknown pattern letter: b"),
        ("{{ '2024-01-01' | date(\"'open\") }}", "incomplete string literal"),
        ("{{ '2024-01-01' | dateAdd(1, 'FORTNIGHTS') }}", "ChronoUnit.FORTNIGHTS"),
        ("{{ '2024-01-01' | dateAdd('1', 'DAYS') }}", "integer 'amount'"),
        (
            "{{ '01/2024' | date('yyyy', existingFormat='dd/MM/yyyy') }}",
            "could not be parsed with the format",
        ),
        ("{{ true | date }}", "Unable to read a date"),
    ],
)
def test_date_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT)
    assert message in str(caught.value)
