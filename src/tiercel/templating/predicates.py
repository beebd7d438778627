"""Pebble's tests (``x is defined``, ``is null``, ``is empty``, ``is json``...).

``defined`` and ``null`` receive undefined values on purpose: testing for a missing variable is how
strict templates stay safe. Every other test fails on an undefined value like any other use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Set
from typing import Any

from jinja2 import Undefined

from tiercel.errors import TemplateError
from tiercel.templating.operators import is_empty, pebble_equals
from tiercel.templating.values import fail_if_undefined

__all__ = ["TESTS"]


def _defined(value: Any) -> bool:
    return not isinstance(value, Undefined)


def _null(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def _empty(value: Any) -> bool:
    fail_if_undefined(value)
    return is_empty(value)


def _integer(value: Any, test: str) -> int:
    fail_if_undefined(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TemplateError(f"Can not perform the '{test}' test on a value of type {type(value).__name__}")
    return int(value)


def _even(value: Any) -> bool:
    return _integer(value, "even") % 2 == 0


def _odd(value: Any) -> bool:
    return _integer(value, "odd") % 2 == 1


def _iterable(value: Any) -> bool:
    fail_if_undefined(value)
    return isinstance(value, (list, tuple, Set))


def _map(value: Any) -> bool:
    fail_if_undefined(value)
    return isinstance(value, Mapping)


def _json(value: Any) -> bool:
    """Kestra's ``json`` test: a map, a list, or a string Jackson can read as JSON."""
    fail_if_undefined(value)
    if isinstance(value, (Mapping, list, tuple)):
        return True
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _equals(value: Any, other: Any) -> bool:
    return pebble_equals(value, other)


TESTS: dict[str, Callable[..., bool]] = {
    "defined": _defined,
    "null": _null,
    "empty": _empty,
    "even": _even,
    "odd": _odd,
    "iterable": _iterable,
    "map": _map,
    "json": _json,
    "equals": _equals,
}
