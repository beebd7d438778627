"""Pebble's operators as private filters (``__pb_*``) called by the translated templates.

Pebble follows Java rules that Python does not: ``true == 1`` is false, ``7 / 2`` is ``3``,
``-7 % 2`` is ``-1``, ``'a' + 1`` is ``"a1"``, ``1..3`` includes 3, and ``and``/``or`` yield
booleans. Keeping them as filters means Jinja binds them once per compiled template, and the
sandbox never has to expose an operator on user data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Set
from decimal import Decimal
from typing import Any

from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from tiercel.errors import TemplateError
from tiercel.templating.limits import MAX_OUTPUT_CHARS, MAX_RANGE
from tiercel.templating.values import Entry, fail_if_undefined, java_text, to_text

__all__ = [
    "ASSIGNED_KEY",
    "BUDGET_KEY",
    "OPERATOR_FILTERS",
    "is_empty",
    "iteration_items",
    "pebble_equals",
    "truthy",
]

BUDGET_KEY = "__pb_budget"
ASSIGNED_KEY = "__pb_assigned"
_FALSE_TEXTS = frozenset({"", "false", "0", "-0"})


class _Box:
    """Wraps a present left operand of ``??`` so ``box or right`` keeps falsy values like ``0``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def truthy(value: Any) -> bool:
    """Boolean value in ``if``/``and``/``or``/``not``/ternaries.

    Pebble insists on booleans; being strict would only turn working Kestra flows into errors, so
    strings follow Kestra's condition rule (``""``, ``"false"``, ``"0"``, ``"-0"`` are false).
    """
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() not in _FALSE_TEXTS
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (int, float, Decimal)):
        return value != 0
    if isinstance(value, (Mapping, list, tuple, Set)):
        return len(value) > 0
    return True


def is_empty(value: Any) -> bool:
    """Pebble's ``empty`` test: null, blank string, empty collection or map."""
    if value is None or isinstance(value, Undefined):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (Mapping, list, tuple, Set)):
        return len(value) == 0
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def pebble_equals(left: Any, right: Any) -> bool:
    """``==``: numbers compare by value, everything else by Java ``equals`` (so ``true != 1``)."""
    if left is right:
        return True
    fail_if_undefined(left)
    fail_if_undefined(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, Entry) or isinstance(right, Entry):
        return left == right
    return bool(left == right)


def _eq(left: Any, right: Any) -> bool:
    return pebble_equals(left, right)


def _comparison(name: str, check: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        fail_if_undefined(left)
        fail_if_undefined(right)
        if left is None or right is None:
            return False
        if _is_number(left) and _is_number(right):
            return check((left > right) - (left < right))
        comparable = (str, dt.datetime, dt.date, dt.time, dt.timedelta)
        if isinstance(left, comparable) and type(left) is type(right):
            ordered: Any = left
            return check((ordered > right) - (ordered < right))
        raise TemplateError(f"invalid operands for mathematical comparison [{name}]")

    return compare


def _numbers(left: Any, right: Any, operation: str) -> None:
    fail_if_undefined(left)
    fail_if_undefined(right)
    if not (_is_number(left) and _is_number(right)):
        raise TemplateError(f"invalid operands for mathematical operation [{operation}]")


def _widen(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, Decimal) or isinstance(right, Decimal):
        return Decimal(str(left)), Decimal(str(right))
    return left, right


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str) or isinstance(right, str):
        fail_if_undefined(left)
        fail_if_undefined(right)
        return _capped(java_text(left) + java_text(right))
    if isinstance(left, list):
        fail_if_undefined(right)
        return [*left, *right] if isinstance(right, (list, tuple)) else [*left, right]
    _numbers(left, right, "ADD")
    left, right = _widen(left, right)
    return left + right


def _sub(left: Any, right: Any) -> Any:
    if isinstance(left, list):
        fail_if_undefined(right)
        removed = list(right) if isinstance(right, (list, tuple)) else [right]
        return [item for item in left if item not in removed]
    _numbers(left, right, "SUBTRACT")
    left, right = _widen(left, right)
    return left - right


def _mul(left: Any, right: Any) -> Any:
    _numbers(left, right, "MULTIPLICATION")
    left, right = _widen(left, right)
    return left * right


def _div(left: Any, right: Any) -> Any:
    _numbers(left, right, "DIVISION")
    left, right = _widen(left, right)
    if isinstance(left, int) and isinstance(right, int):
        if right == 0:
            raise TemplateError("/ by zero")
        quotient = abs(left) // abs(right)
        return quotient if (left < 0) == (right < 0) else -quotient
    if right == 0 and not isinstance(left, Decimal):  # a double division, as in Java
        return math.nan if left == 0 else math.copysign(math.inf, left) * math.copysign(1.0, right)
    return left / right


def _mod(left: Any, right: Any) -> Any:
    _numbers(left, right, "MODULUS")
    left, right = _widen(left, right)
    if isinstance(left, int) and isinstance(right, int):
        if right == 0:
            raise TemplateError("/ by zero")
        remainder = abs(left) % abs(right)
        return remainder if left >= 0 else -remainder
    if isinstance(left, Decimal):
        return left % right  # Decimal keeps the dividend's sign, like Java
    return math.fmod(left, right) if right else math.nan


def _neg(value: Any) -> Any:
    return _mul(-1, value)


def _pos(value: Any) -> Any:
    return _mul(1, value)


def _capped(text: str) -> str:
    if len(text) > MAX_OUTPUT_CHARS:
        raise TemplateError(f"The rendered value exceeds the limit of {MAX_OUTPUT_CHARS} characters")
    return text


def _concat(left: Any, right: Any) -> str:
    return _capped(to_text(left) + to_text(right))


def _contains(container: Any, item: Any) -> bool:
    fail_if_undefined(container)
    fail_if_undefined(item)
    if container is None:
        return False
    if isinstance(container, str):
        return to_text(item) in container
    if isinstance(container, Mapping):
        return item in container
    if isinstance(container, (list, tuple, Set)):
        if isinstance(item, (list, tuple, Set)):
            return all(_contains(container, element) for element in item)
        return any(pebble_equals(element, item) for element in container)
    raise TemplateError("The 'contains' operator can only be used on lists, maps and strings")


def _range(start: Any, end: Any, step: Any = 1) -> list[Any]:
    """Inclusive range like Pebble's ``..`` and ``range()``; numbers or single characters."""
    fail_if_undefined(start)
    fail_if_undefined(end)
    if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == 1:
        return [chr(code) for code in _range(ord(start), ord(end), step)]
    if not all(_is_number(v) for v in (start, end, step)):
        raise TemplateError("Arguments of range function must be of type Number or String with a length of 1")
    start, end, step = int(start), int(end), int(step)
    if step == 0:
        raise TemplateError("range() step must not be zero")
    numbers = range(start, end + (1 if step > 0 else -1), step)
    if len(numbers) > MAX_RANGE:
        raise TemplateError(f"range() would produce {len(numbers)} items, more than the limit of {MAX_RANGE}")
    return list(numbers)


def _present(value: Any) -> _Box | None:
    if value is None or isinstance(value, Undefined):
        return None
    return _Box(value)


def _defined(value: Any) -> _Box | None:
    return None if isinstance(value, Undefined) else _Box(value)


def _unbox(value: Any) -> Any:
    return value.value if type(value) is _Box else value


def iteration_items(value: Any) -> list[Any]:
    """What ``{% for %}`` walks: lists as they are, maps as key/value entries, null as nothing."""
    if isinstance(value, list):
        return value
    if value is None:
        return []
    fail_if_undefined(value)
    if isinstance(value, Mapping):
        return [Entry(key, item) for key, item in value.items()]
    if isinstance(value, (tuple, Set)):
        return list(value)
    raise TemplateError(f"Not an iterable object. Value = [{to_text(value)}]")


@pass_context
def _iterate(context: Context, value: Any) -> list[Any]:
    items = iteration_items(value)
    budget = context.vars.get(BUDGET_KEY)
    if budget is not None:
        budget[0] -= len(items)
        if budget[0] < 0:
            raise TemplateError("Too many loop iterations in one render")
    return items


@pass_context
def _assign(context: Context, value: Any, name: str) -> str:
    """``{% set %}``: one flat scope per render, so loops can update outer variables as in Pebble."""
    assigned = context.vars.get(ASSIGNED_KEY)
    if assigned is None:
        assigned = context.vars[ASSIGNED_KEY] = {}
    assigned[name] = value
    return ""


@pass_context
def _assigned(context: Context, value: Any, name: str) -> Any:
    """Read a variable that some ``{% set %}`` may have assigned, else its context value."""
    assigned = context.vars.get(ASSIGNED_KEY)
    if assigned is not None and name in assigned:
        return assigned[name]
    return value


OPERATOR_FILTERS: dict[str, Callable[..., Any]] = {
    "__pb_bool": truthy,
    "__pb_eq": _eq,
    "__pb_lt": _comparison("LESS_THAN", lambda c: c < 0),
    "__pb_le": _comparison("LESS_THAN_EQUALS", lambda c: c <= 0),
    "__pb_gt": _comparison("GREATER_THAN", lambda c: c > 0),
    "__pb_ge": _comparison("GREATER_THAN_EQUALS", lambda c: c >= 0),
    "__pb_add": _add,
    "__pb_sub": _sub,
    "__pb_mul": _mul,
    "__pb_div": _div,
    "__pb_mod": _mod,
    "__pb_neg": _neg,
    "__pb_pos": _pos,
    "__pb_concat": _concat,
    "__pb_contains": _contains,
    "__pb_range": _range,
    "__pb_present": _present,
    "__pb_defined": _defined,
    "__pb_unbox": _unbox,
    "__pb_iter": _iterate,
    "__pb_assign": _assign,
    "__pb_assigned": _assigned,
}
