"""Conversions of rendered property values to the types tasks need."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tiercel.errors import TaskError

_DURATION = TypeAdapter(timedelta)


def to_duration(value: Any, name: str = "duration") -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return _DURATION.validate_python(str(value).strip())
    except ValidationError as exc:
        raise TaskError(f"Invalid `{name}`: expected an ISO-8601 duration like PT5S, got {value!r}") from exc


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"
