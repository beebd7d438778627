"""Time windows, MultipleCondition and Flow trigger preconditions, with ``now`` driven explicitly."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from tests.unit.plugins.test_conditions import ctx, execution, flow
from tiercel.model.state import StateType
from tiercel.plugins.base import ConditionContext, WindowState
from tiercel.plugins.core.condition_windows import MemoryMultipleConditionStore, TimeWindow, record
from tiercel.plugins.core.conditions import MultipleCondition, parse_condition
from tiercel.plugins.core.preconditions import Filter, Preconditions

DAY = datetime(2026, 3, 7, tzinfo=UTC)
C = "io.kestra.plugin.core.condition."


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


# -- windows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        (TimeWindow(), at(10), (at(0), at(24))),
        (TimeWindow(window=timedelta(hours=6)), at(13), (at(12), at(18))),
        (TimeWindow(window=timedelta(hours=6), window_advance=timedelta(hours=3)), at(13), (at(9), at(15))),
        (TimeWindow(window=timedelta(hours=6), window_advance=timedelta(hours=3)), at(1), (at(-3), at(3))),
        (TimeWindow(type="SLIDING_WINDOW", window=timedelta(hours=2)), at(13), (at(11), at(13))),
        (TimeWindow(type="DAILY_TIME_DEADLINE", deadline=time(9)), at(8), (at(0), at(9))),
        (TimeWindow(type="DAILY_TIME_DEADLINE", deadline=time(9)), at(10), None),
        (TimeWindow(type="DAILY_TIME_WINDOW", start_time=time(8), end_time=time(12)), at(9), (at(8), at(12))),
        (TimeWindow(type="DAILY_TIME_WINDOW", start_time=time(8), end_time=time(12)), at(13), None),
        (TimeWindow(type="DAILY_TIME_WINDOW", start_time=time(22), end_time=time(2)), at(1), (at(-2), at(2))),
    ],
)
def test_window_bounds(window: TimeWindow, now: datetime, expected: tuple[datetime, datetime] | None) -> None:
    assert window.bounds(now) == expected


def test_daily_windows_need_their_times() -> None:
    with pytest.raises(ValueError, match="startTime"):
        TimeWindow(type="DAILY_TIME_WINDOW")
    with pytest.raises(ValueError, match="deadline"):
        TimeWindow(type="DAILY_TIME_DEADLINE")


def test_memory_store_forgets_expired_entries() -> None:
    store = MemoryMultipleConditionStore()
    store.save("k", WindowState(at(0), at(1), {"a": at(0)}))
    assert store.get("k", at(0.5)) is not None
    assert store.get("k", at(1)) is None
    store.save("k", WindowState(at(0), at(1), {}))
    store.expire(at(2))
    assert store.get("k", at(0)) is None


def test_record_waits_for_every_name_then_resets() -> None:
    store = MemoryMultipleConditionStore()
    window = TimeWindow()
    assert not record(store, "k", window, ["a", "b"], ["a"], at(1))
    assert not record(store, "k", window, ["a", "b"], [], at(2))  # nothing matched: never satisfied
    assert record(store, "k", window, ["a", "b"], ["b"], at(3))
    assert store.get("k", at(3)) is None
    assert not record(store, "k", window, ["a", "b"], ["b"], at(4))


def test_record_starts_over_in_a_new_window() -> None:
    store = MemoryMultipleConditionStore()
    window = TimeWindow(window=timedelta(hours=1))
    assert not record(store, "k", window, ["a", "b"], ["a"], at(1.5))
    assert not record(store, "k", window, ["a", "b"], ["b"], at(2.5))
    assert record(store, "k", window, ["a", "b"], ["a"], at(2.75))


def test_sliding_window_forgets_each_result_after_the_window() -> None:
    store = MemoryMultipleConditionStore()
    window = TimeWindow(type="SLIDING_WINDOW", window=timedelta(hours=1))
    assert not record(store, "k", window, ["a", "b"], ["a"], at(1))
    assert not record(store, "k", window, ["a", "b"], ["b"], at(2.5))  # `a` is 1.5 h old
    assert record(store, "k", window, ["a", "b"], ["a"], at(3))


def test_without_reset_every_later_match_succeeds() -> None:
    store = MemoryMultipleConditionStore()
    window = TimeWindow()
    assert not record(store, "k", window, ["a", "b"], ["a"], at(1), reset_on_success=False)
    assert record(store, "k", window, ["a", "b"], ["b"], at(2), reset_on_success=False)
    assert record(store, "k", window, ["a", "b"], ["a"], at(3), reset_on_success=False)


# -- MultipleCondition ---------------------------------------------------------------------------------


def multiple(**extra: Any) -> MultipleCondition:
    condition = parse_condition(
        {
            "type": C + "MultipleCondition",
            "id": "multiple",
            "window": "P1D",
            "windowAdvance": "P0D",
            "conditions": {
                "success": {"type": C + "ExecutionStatus", "in": ["SUCCESS"]},
                "flow-a": {"type": C + "ExecutionFlow", "namespace": "company.team", "flowId": "a"},
                "flow-b": {"type": C + "ExecutionFlow", "namespace": "company.team", "flowId": "b"},
            },
            **extra,
        }
    )
    assert isinstance(condition, MultipleCondition)
    return condition


def with_store(
    flow_id: str, now: datetime, store: MemoryMultipleConditionStore, **kw: Any
) -> ConditionContext:
    base = ctx(execution(upstream=flow(flow_id=flow_id), **kw), now=now)
    return ConditionContext(execution=base.execution, now=now, store=store, scope="company.team.listener/t")


def test_multiple_condition_holds_once_all_sub_conditions_met_in_the_window() -> None:
    condition, store = multiple(), MemoryMultipleConditionStore()
    assert not condition.test(with_store("a", at(1), store))
    assert not condition.test(with_store("a", at(2), store))
    assert condition.test(with_store("b", at(3), store))
    # reset: flow-b alone does not fire again
    assert not condition.test(with_store("b", at(4), store))


def test_multiple_condition_window_expires_at_midnight() -> None:
    condition, store = multiple(), MemoryMultipleConditionStore()
    assert not condition.test(with_store("a", at(23), store))
    assert not condition.test(with_store("b", at(25), store))
    assert condition.test(with_store("a", at(26), store))


def test_multiple_condition_keeps_separate_state_per_scope() -> None:
    condition, store = multiple(), MemoryMultipleConditionStore()
    assert not condition.test(with_store("a", at(1), store))
    other = with_store("b", at(2), store)
    other = ConditionContext(execution=other.execution, now=other.now, store=store, scope="other/t")
    assert not condition.test(other)


def test_multiple_condition_without_store_judges_one_execution() -> None:
    assert not multiple().test(ctx(execution(upstream=flow(flow_id="a"))))


def test_multiple_condition_accepts_a_time_window() -> None:
    condition = multiple(timeWindow={"type": "SLIDING_WINDOW", "window": "PT1H"})
    store = MemoryMultipleConditionStore()
    assert not condition.test(with_store("a", at(1), store))
    assert not condition.test(with_store("b", at(2.5), store))
    assert condition.test(with_store("a", at(3), store))


def test_multiple_condition_checks_its_sub_conditions() -> None:
    with pytest.raises(ValueError, match="Invalid type: nope"):
        parse_condition({"type": C + "MultipleCondition", "id": "m", "conditions": {"x": {"type": "nope"}}})


# -- preconditions -------------------------------------------------------------------------------------


def filter_holds(data: dict[str, Any], **kw: Any) -> bool:
    return Filter.model_validate(data).test(ctx(execution(upstream=flow("company.team", "etl"), **kw)))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"field": "FLOW_ID", "type": "EQUAL_TO", "value": "etl"}, True),
        ({"field": "FLOW_ID", "type": "NOT_EQUAL_TO", "value": "etl"}, False),
        ({"field": "NAMESPACE", "type": "STARTS_WITH", "value": "company"}, True),
        ({"field": "NAMESPACE", "type": "ENDS_WITH", "value": ".team"}, True),
        ({"field": "NAMESPACE", "type": "CONTAINS", "value": "pany.te"}, True),
        ({"field": "NAMESPACE", "type": "REGEX", "value": r"company\.\w+"}, True),
        ({"field": "NAMESPACE", "type": "REGEX", "value": "company"}, False),
        ({"field": "STATE", "type": "IN", "values": ["FAILED", "SUCCESS"]}, True),
        ({"field": "STATE", "type": "NOT_IN", "values": ["SUCCESS"]}, False),
        ({"field": "STATE", "type": "IS_NULL"}, False),
        ({"field": "STATE", "type": "IS_NOT_NULL"}, True),
        ({"field": "EXPRESSION", "type": "IS_TRUE", "value": "{{ labels.env == 'prod' }}"}, True),
        ({"field": "EXPRESSION", "type": "IS_FALSE", "value": "{{ labels.env == 'prod' }}"}, False),
        ({"field": "EXPRESSION", "type": "IS_NULL", "value": "{{ null }}"}, True),
    ],
)
def test_filters(data: dict[str, Any], expected: bool) -> None:
    assert filter_holds(data, labels={"env": "prod"}) is expected


def preconditions(**extra: Any) -> Preconditions:
    return Preconditions.model_validate(
        {
            "id": "pre",
            "flows": [
                {"namespace": "company.team", "flowId": "a", "states": ["SUCCESS", "FAILED"]},
                {"namespace": "company.team", "flowId": "b", "labels": {"env": "prod"}},
            ],
            "where": [
                {
                    "id": "team",
                    "operand": "OR",
                    "filters": [
                        {"field": "FLOW_ID", "type": "EQUAL_TO", "value": "a"},
                        {"field": "FLOW_ID", "type": "EQUAL_TO", "value": "zzz"},
                    ],
                }
            ],
            **extra,
        }
    )


def test_preconditions_wait_for_every_flow_and_where_entry() -> None:
    pre, store = preconditions(), MemoryMultipleConditionStore()
    assert not pre.test(with_store("a", at(1), store, state=StateType.FAILED))
    assert not pre.test(with_store("b", at(2), store))  # label missing
    assert pre.test(with_store("b", at(3), store, labels={"env": "prod"}))
    assert not pre.test(with_store("b", at(4), store, labels={"env": "prod"}))  # reset on success


def test_preconditions_upstream_states_filter() -> None:
    pre, store = preconditions(), MemoryMultipleConditionStore()
    assert not pre.test(with_store("a", at(1), store, state=StateType.WARNING))
    assert not pre.test(with_store("b", at(2), store, labels={"env": "prod"}))  # `a` only met `where`


def test_preconditions_without_reset_fire_on_each_later_match() -> None:
    pre, store = preconditions(resetOnSuccess=False), MemoryMultipleConditionStore()
    assert not pre.test(with_store("a", at(1), store))
    assert pre.test(with_store("b", at(2), store, labels={"env": "prod"}))
    assert pre.test(with_store("a", at(3), store))


def test_empty_preconditions_always_hold() -> None:
    assert Preconditions().test(ctx())
