"""decide(): task-run transitions of §2.2 and the flowables of §2.4 (runIf, disabled, errors,
finally, Parallel, ForEach, If, Switch, Dag, AllowFailure, Subflow, WaitFor, execution tasks)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.engine.drive import (
    ALLOW_FAILURE,
    DAG,
    EXIT,
    FOR_EACH,
    IF,
    LABELS,
    PARALLEL,
    SEQUENTIAL,
    SET_VARIABLES,
    SUBFLOW,
    SWITCH,
    T0,
    WAIT_FOR,
    Driver,
    fail,
    flow_of,
    history,
    ret,
    runs,
    state_of,
)
from tiercel.engine import commands as cmd
from tiercel.engine import events as ev
from tiercel.engine.decide import CONTINUE_FLOWABLE, decide
from tiercel.model.execution import Execution
from tiercel.model.state import StateType as S
from tiercel.model.task import LogLevel


def logs(driver: Driver, level: LogLevel | None = None) -> list[str]:
    return [
        log.message
        for c in driver.of_type(cmd.EmitLogs)
        for log in c.logs
        if level is None or log.level == level
    ]


def values_of(ex: Execution, task_id: str) -> list[str | None]:
    return [r.value for r in runs(ex, task_id)]


def held_values(d: Driver) -> set[str | None]:
    return {c.job.task_run.value for c in d.held}


# -- runIf ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("condition", ["false", "{{ 1 == 2 }}", "0", "", False])
def test_run_if_false_skips_without_a_job(condition: Any) -> None:
    d = Driver(flow_of({"tasks": [ret("a", runIf=condition), ret("b")]}))
    ex = d.start()
    assert history(runs(ex, "a")[0].state) == [S.CREATED, S.SKIPPED]
    assert d.dispatched() == ["b"]
    assert ex.current == S.SUCCESS


@pytest.mark.parametrize("condition", ["true", "{{ 1 == 1 }}", "yes", True])
def test_run_if_true_runs(condition: Any) -> None:
    d = Driver(flow_of({"tasks": [ret("a", runIf=condition)]}))
    assert d.start().current == S.SUCCESS
    assert d.dispatched() == ["a"]


def test_run_if_render_error_fails_with_an_error_log() -> None:
    d = Driver(flow_of({"tasks": [ret("a", runIf="{{ nope.missing }}"), ret("b")]}))
    ex = d.start()
    assert history(runs(ex, "a")[0].state) == [S.CREATED, S.FAILED]
    assert d.dispatched() == []
    assert ex.current == S.FAILED
    assert logs(d, LogLevel.ERROR)
    (entry,) = [log for c in d.of_type(cmd.EmitLogs) for log in c.logs if log.level == LogLevel.ERROR]
    assert entry.task_id == "a"


def test_run_if_on_a_flowable_skips_its_children() -> None:
    d = Driver(flow_of({"tasks": [{"id": "s", "type": SEQUENTIAL, "runIf": "false", "tasks": [ret("a")]}]}))
    ex = d.start()
    assert state_of(ex, "s") == S.SKIPPED
    assert runs(ex, "a") == []
    assert ex.current == S.SUCCESS


# -- disabled -------------------------------------------------------------------------------------------


def test_disabled_tasks_never_get_runs() -> None:
    flow = {
        "tasks": [
            ret("a", disabled=True),
            {"id": "s", "type": SEQUENTIAL, "tasks": [ret("b", disabled=True), fail("c")]},
        ],
        "errors": [ret("e", disabled=True), ret("e2")],
        "finally": [ret("f", disabled=True)],
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert {r.task_id for r in ex.task_run_list} == {"s", "c", "e2"}
    assert ex.current == S.FAILED


def test_flowable_with_only_disabled_children_succeeds() -> None:
    d = Driver(
        flow_of({"tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [fail("a", disabled=True)]}, ret("b")]})
    )
    ex = d.start()
    assert state_of(ex, "s") == S.SUCCESS
    assert ex.current == S.SUCCESS
    assert d.dispatched() == ["b"]


# -- errors and finally ---------------------------------------------------------------------------------


def test_errors_branch_does_not_run_on_success() -> None:
    d = Driver(
        flow_of(
            {
                "tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [ret("a")], "errors": [ret("le")]}],
                "errors": [ret("fe")],
            }
        )
    )
    ex = d.start()
    assert ex.current == S.SUCCESS
    assert d.dispatched() == ["a"]


def test_local_and_flow_errors_start_only_after_a_failure() -> None:
    flow = {
        "tasks": [
            {
                "id": "s",
                "type": SEQUENTIAL,
                "tasks": [ret("a"), fail("b"), ret("c")],
                "errors": [ret("le1"), ret("le2")],
            },
            ret("after"),
        ],
        "errors": [ret("fe")],
    }
    d = Driver(flow_of(flow), hold={"a"})
    ex = d.start()
    assert {r.task_id for r in ex.task_run_list} == {"s", "a"}
    ex = d.release(ex, "a")
    assert d.dispatched() == ["a", "b", "le1", "le2", "fe"]
    assert state_of(ex, "s") == S.FAILED
    assert runs(ex, "c") == runs(ex, "after") == []
    assert ex.current == S.FAILED


def test_failing_errors_branch_stops_there() -> None:
    d = Driver(flow_of({"tasks": [fail("a")], "errors": [fail("e1"), ret("e2")]}))
    ex = d.start()
    assert d.dispatched() == ["a", "e1"]
    assert ex.current == S.FAILED


@pytest.mark.parametrize(
    ("first", "expected", "order"),
    [
        (ret("a"), S.SUCCESS, ["a", "b", "f1", "f2"]),
        (fail("a"), S.FAILED, ["a", "e", "f1", "f2"]),
    ],
)
def test_finally_runs_after_success_and_after_failure(first: dict, expected: S, order: list[str]) -> None:
    flow = {"tasks": [first, ret("b")], "errors": [ret("e")], "finally": [ret("f1"), ret("f2")]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert d.dispatched() == order
    assert ex.current == expected


def test_finally_keeps_going_after_a_failing_finally_task() -> None:
    d = Driver(flow_of({"tasks": [ret("a")], "finally": [fail("f1"), ret("f2")]}))
    ex = d.start()
    assert d.dispatched() == ["a", "f1", "f2"]
    assert ex.current == S.FAILED


def test_local_finally_on_sequential() -> None:
    flow = {
        "tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [fail("a")], "finally": [ret("f")]}, ret("after")],
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert d.dispatched() == ["a", "f"]
    assert state_of(ex, "s") == S.FAILED
    assert ex.current == S.FAILED


# -- Parallel --------------------------------------------------------------------------------------------


def parallel(concurrent: int, *tasks: dict) -> dict[str, Any]:
    return {"tasks": [{"id": "p", "type": PARALLEL, "concurrent": concurrent, "tasks": list(tasks)}]}


def test_parallel_concurrent_cap() -> None:
    ids = ["p1", "p2", "p3", "p4"]
    d = Driver(flow_of(parallel(2, *(ret(i) for i in ids))), hold=set(ids))
    ex = d.start()
    assert d.dispatched() == ["p1", "p2"]
    ex = d.release(ex, "p1")
    assert d.dispatched() == ["p1", "p2", "p3"]
    ex = d.release(ex, "p3")
    assert d.dispatched() == ["p1", "p2", "p3", "p4"]
    for task_id in ("p2", "p4"):
        ex = d.release(ex, task_id)
    assert ex.current == S.SUCCESS


def test_parallel_unlimited_starts_everything() -> None:
    ids = ["p1", "p2", "p3"]
    d = Driver(flow_of(parallel(0, *(ret(i) for i in ids))), hold=set(ids))
    d.start()
    assert sorted(d.dispatched()) == ids


def test_parallel_stops_starting_after_a_failure() -> None:
    d = Driver(flow_of(parallel(1, fail("p1"), ret("p2"))))
    ex = d.start()
    assert d.dispatched() == ["p1"]
    assert state_of(ex, "p") == S.FAILED


def test_parallel_waits_for_running_siblings_after_a_failure() -> None:
    d = Driver(flow_of(parallel(0, ret("p1"), fail("p2"))), hold={"p1"})
    ex = d.start()
    assert state_of(ex, "p2") == S.FAILED
    assert state_of(ex, "p") == S.RUNNING
    ex = d.release(ex, "p1")
    assert state_of(ex, "p") == S.FAILED
    assert ex.current == S.FAILED


# -- ForEach ----------------------------------------------------------------------------------------------


def for_each(values: Any, tasks: list[dict], **extra: Any) -> dict[str, Any]:
    return {"id": "each", "type": FOR_EACH, "values": values, "tasks": tasks, **extra}


@pytest.mark.parametrize(("limit", "groups"), [(1, {"a"}), (2, {"a", "b"}), (0, {"a", "b", "c"})])
def test_for_each_concurrency_limit_counts_active_groups(limit: int, groups: set[str]) -> None:
    flow = {"tasks": [for_each(["a", "b", "c"], [ret("t1"), ret("t2")], concurrencyLimit=limit)]}
    d = Driver(flow_of(flow), hold={"t1", "t2"})
    ex = d.start()
    assert held_values(d) == groups
    assert {c.job.task_run.task_id for c in d.held} == {"t1"}
    ex = d.release(ex, "t1")
    # each active group moved on to its second task; no other group started
    assert held_values(d) == groups
    assert {c.job.task_run.task_id for c in d.held} == {"t2"}
    while d.held:
        ex = d.release(ex, d.held[0].job.task_run.task_id)
    assert ex.current == S.SUCCESS
    assert sorted(values_of(ex, "t1")) == sorted(values_of(ex, "t2")) == ["a", "b", "c"]


def test_for_each_sequential_order_within_and_across_groups() -> None:
    d = Driver(flow_of({"tasks": [for_each(["a", "b"], [ret("t1"), ret("t2")])]}))
    ex = d.start()
    assert [(c.job.task_run.task_id, c.job.task_run.value) for c in d.of_type(cmd.RunTask)] == [
        ("t1", "a"),
        ("t2", "a"),
        ("t1", "b"),
        ("t2", "b"),
    ]
    assert ex.current == S.SUCCESS


def test_for_each_limit_two_keeps_in_group_order() -> None:
    d = Driver(flow_of({"tasks": [for_each(["a", "b", "c"], [ret("t1"), ret("t2")], concurrencyLimit=2)]}))
    ex = d.start()
    order = [(c.job.task_run.task_id, c.job.task_run.value) for c in d.of_type(cmd.RunTask)]
    for value in "abc":
        assert order.index(("t1", value)) < order.index(("t2", value))
    assert ex.current == S.SUCCESS


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param('["a", "b"]', ["a", "b"], id="json-string"),
        pytest.param(["x", 1, 2], ["x", "1", "2"], id="ints"),
        pytest.param([{"k": "v", "n": 1}, "y"], ['{"k":"v","n":1}', "y"], id="map"),
        pytest.param(["a", "a", "b"], ["a", "b"], id="distinct"),
        pytest.param("{{ vars.items }}", ["i1", "i2"], id="template"),
    ],
)
def test_for_each_values(values: Any, expected: list[str]) -> None:
    flow = {"variables": {"items": ["i1", "i2"]}, "tasks": [for_each(values, [ret("t")])]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert values_of(ex, "t") == expected
    assert ex.current == S.SUCCESS


def test_for_each_empty_values_succeeds_without_children() -> None:
    d = Driver(flow_of({"tasks": [for_each([], [ret("t")])]}))
    ex = d.start()
    assert state_of(ex, "each") == S.SUCCESS
    assert runs(ex, "t") == []


@pytest.mark.parametrize("values", [["a", None], '["a", null]'])
def test_for_each_null_value_fails(values: Any) -> None:
    d = Driver(flow_of({"tasks": [for_each(values, [ret("t")])]}))
    ex = d.start()
    assert state_of(ex, "each") == S.FAILED
    assert runs(ex, "t") == []
    assert ex.current == S.FAILED
    assert any("Found '1' null values on Each" in m for m in logs(d, LogLevel.ERROR))


def test_for_each_failure_stops_new_groups_and_runs_errors_once() -> None:
    flow = {"tasks": [for_each(["a", "b", "c"], [ret("t"), fail("boom")], errors=[ret("e")])]}
    d = Driver(
        flow_of(flow), outcomes={"boom": lambda run: (S.FAILED if run.value == "b" else S.SUCCESS, {})}
    )
    ex = d.start()
    assert values_of(ex, "t") == ["a", "b"]
    assert values_of(ex, "e") == [None]
    assert state_of(ex, "each") == S.FAILED


# -- If / Switch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "ran", "result"),
    [("{{ 1 == 1 }}", ["t"], True), ("{{ 1 == 2 }}", ["e"], False), (True, ["t"], True), ("0", ["e"], False)],
)
def test_if_then_else(condition: Any, ran: list[str], result: bool) -> None:
    flow = {
        "tasks": [{"id": "if", "type": IF, "condition": condition, "then": [ret("t")], "else": [ret("e")]}]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert d.dispatched() == ran
    assert runs(ex, "if")[0].outputs["evaluationResult"] is result
    assert ex.current == S.SUCCESS


def test_if_false_without_else_succeeds_with_no_children() -> None:
    d = Driver(flow_of({"tasks": [{"id": "if", "type": IF, "condition": "false", "then": [ret("t")]}]}))
    ex = d.start()
    assert state_of(ex, "if") == S.SUCCESS
    assert d.dispatched() == []


def test_if_condition_is_evaluated_once() -> None:
    flow = {
        "variables": {"flag": "yes"},
        "tasks": [
            {
                "id": "if",
                "type": IF,
                "condition": "{{ vars.flag == 'yes' }}",
                "then": [{"id": "flip", "type": SET_VARIABLES, "variables": {"flag": "no"}}, ret("t2")],
                "else": [ret("e")],
            }
        ],
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.variables["flag"] == "no"
    assert [r.task_id for r in ex.task_run_list] == ["if", "flip", "t2"]
    assert runs(ex, "if")[0].outputs["evaluationResult"] is True
    assert ex.current == S.SUCCESS


def switch(value: str, defaults: bool = True) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": "sw",
        "type": SWITCH,
        "value": value,
        "cases": {"A": [ret("ca")], "B": [ret("cb"), ret("cb2")]},
    }
    if defaults:
        task["defaults"] = [ret("d")]
    return {"tasks": [task]}


@pytest.mark.parametrize(
    ("value", "ran", "outputs"),
    [
        ("A", ["ca"], {"value": "A", "defaults": False}),
        ("{{ 'B' }}", ["cb", "cb2"], {"value": "B", "defaults": False}),
        ("Z", ["d"], {"value": "Z", "defaults": True}),
    ],
)
def test_switch(value: str, ran: list[str], outputs: dict[str, Any]) -> None:
    d = Driver(flow_of(switch(value)))
    ex = d.start()
    assert d.dispatched() == ran
    assert runs(ex, "sw")[0].outputs == outputs
    assert ex.current == S.SUCCESS


def test_switch_without_match_nor_defaults_fails() -> None:
    d = Driver(flow_of(switch("Z", defaults=False)))
    ex = d.start()
    assert state_of(ex, "sw") == S.FAILED
    assert d.dispatched() == []
    assert ex.current == S.FAILED
    assert logs(d, LogLevel.ERROR)


# -- Dag / AllowFailure ------------------------------------------------------------------------------------


def test_dag_runs_a_task_only_after_its_dependencies_terminate() -> None:
    flow = {
        "tasks": [
            {
                "id": "dag",
                "type": DAG,
                "tasks": [
                    {"task": ret("d"), "dependsOn": ["b", "c"]},
                    {"task": ret("b"), "dependsOn": ["a"]},
                    {"task": ret("a")},
                    {"task": ret("c"), "dependsOn": ["a"]},
                ],
            }
        ]
    }
    d = Driver(flow_of(flow), hold={"b"})
    ex = d.start()
    assert d.dispatched() == ["a", "b", "c"] or d.dispatched() == ["a", "c", "b"]
    assert runs(ex, "d") == []
    ex = d.report_running(ex, "b")
    assert runs(ex, "d") == []
    ex = d.release(ex, "b")
    assert d.dispatched()[-1] == "d"
    assert ex.current == S.SUCCESS


def test_dag_concurrent_cap() -> None:
    flow = {
        "tasks": [
            {"id": "dag", "type": DAG, "concurrent": 1, "tasks": [{"task": ret("a")}, {"task": ret("b")}]}
        ]
    }
    d = Driver(flow_of(flow), hold={"a", "b"})
    ex = d.start()
    assert d.dispatched() == ["a"]
    ex = d.release(ex, "a")
    assert d.dispatched() == ["a", "b"]


def test_allow_failure_flowable_turns_failure_into_warning() -> None:
    flow = {
        "tasks": [
            {"id": "af", "type": ALLOW_FAILURE, "tasks": [fail("x"), ret("y")], "errors": [ret("e")]},
            ret("z"),
        ]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert d.dispatched() == ["x", "e", "z"]
    assert state_of(ex, "af") == S.WARNING
    assert ex.current == S.WARNING


# -- Subflow ---------------------------------------------------------------------------------------------


def subflow(**extra: Any) -> dict[str, Any]:
    task = {"id": "sub", "type": SUBFLOW, "namespace": "io.other", "flowId": "child", **extra}
    return {"tasks": [task, ret("after")]}


def test_subflow_emits_start_subflow_and_records_execution_id() -> None:
    d = Driver(flow_of(subflow(inputs={"who": "{{ flow.id }}"})))
    ex = d.start()
    (start,) = d.of_type(cmd.StartSubflow)
    run = runs(ex, "sub")[0]
    assert start.parent_execution_id == ex.id
    assert start.parent_task_run_id == run.id
    assert (start.request.namespace, start.request.flow_id) == ("io.other", "child")
    assert dict(start.request.inputs) == {"who": "f"}
    assert start.request.wait is True
    assert run.current == S.RUNNING
    assert d.dispatched() == []
    ex = d.feed(ex, [ev.SubflowResult(run.id, S.RUNNING, "child-1")])
    assert runs(ex, "sub")[0].outputs["executionId"] == "child-1"
    assert state_of(ex, "sub") == S.RUNNING
    assert runs(ex, "after") == []


@pytest.mark.parametrize(
    ("transmit", "child", "expected"),
    [
        (True, S.FAILED, S.FAILED),
        (True, S.WARNING, S.WARNING),
        (True, S.KILLED, S.KILLED),
        (True, S.SUCCESS, S.SUCCESS),
        (False, S.FAILED, S.SUCCESS),
        (False, S.KILLED, S.SUCCESS),
    ],
)
def test_subflow_terminal_result(transmit: bool, child: S, expected: S) -> None:
    d = Driver(flow_of(subflow(transmitFailed=transmit)))
    ex = d.start()
    run_id = runs(ex, "sub")[0].id
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.RUNNING, "child-1")])
    ex = d.feed(ex, [ev.SubflowResult(run_id, child, "child-1", outputs={"o": 1})])
    run = runs(ex, "sub")[0]
    assert run.current == expected
    assert run.outputs["executionId"] == "child-1"
    assert run.outputs["state"] == child.value
    assert run.outputs["outputs"] == {"o": 1}
    assert ex.current == expected
    assert (runs(ex, "after") != []) == (expected in (S.SUCCESS, S.WARNING))


def test_subflow_without_wait_succeeds_once_created() -> None:
    d = Driver(flow_of(subflow(wait=False)))
    ex = d.start()
    (start,) = d.of_type(cmd.StartSubflow)
    assert start.request.wait is False
    ex = d.feed(ex, [ev.SubflowResult(start.parent_task_run_id, S.RUNNING, "child-1")])
    run = runs(ex, "sub")[0]
    assert run.current == S.SUCCESS
    assert run.outputs["executionId"] == "child-1"
    assert ex.current == S.SUCCESS


def test_subflow_creation_error_fails_with_a_log() -> None:
    d = Driver(flow_of(subflow()))
    ex = d.start()
    run_id = runs(ex, "sub")[0].id
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.FAILED, error="Unable to start subflow: flow not found")])
    assert state_of(ex, "sub") == S.FAILED
    assert ex.current == S.FAILED
    assert any("Unable to start subflow" in m for m in logs(d, LogLevel.ERROR))


def test_subflow_result_after_terminal_is_ignored() -> None:
    flow = flow_of(subflow())
    d = Driver(flow)
    ex = d.start()
    run_id = runs(ex, "sub")[0].id
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.SUCCESS, "child-1")])
    assert ex.current == S.SUCCESS
    decision = decide(flow, ex, [ev.SubflowResult(run_id, S.FAILED, "child-1")], T0)
    assert state_of(decision.execution, "sub") == S.SUCCESS
    assert decision.execution.current == S.SUCCESS


# -- WaitFor ------------------------------------------------------------------------------------------------


def wait_for(condition: str, **extra: Any) -> dict[str, Any]:
    return {
        "tasks": [{"id": "wf", "type": WAIT_FOR, "condition": condition, "tasks": [ret("probe")], **extra}]
    }


def probe_iteration(run: Any) -> tuple[S, dict[str, Any]]:
    return S.SUCCESS, {"value": run.iteration or 0}


def test_wait_for_loops_until_the_condition_holds() -> None:
    d = Driver(flow_of(wait_for("{{ outputs.probe.value >= 2 }}")), outcomes={"probe": probe_iteration})
    ex = d.start()
    wf = runs(ex, "wf")[0]
    assert wf.current == S.PAUSED
    assert [(t.kind, t.date, t.task_run_id) for t in d.timers] == [
        (CONTINUE_FLOWABLE, T0 + timedelta(seconds=1), wf.id)
    ]
    ex = d.fire_next(ex)
    assert runs(ex, "wf")[0].iteration == 1
    assert [r.iteration for r in runs(ex, "probe")] == [1]
    ex = d.fire_timers(ex)
    wf = runs(ex, "wf")[0]
    assert wf.current == S.SUCCESS
    assert wf.iteration == 2
    assert wf.outputs["iterationCount"] == 3
    assert history(wf.state).count(S.PAUSED) == 2
    assert [r.iteration for r in runs(ex, "probe")] == [2]
    assert [c.job.task_run.iteration for c in d.of_type(cmd.RunTask)] == [0, 1, 2]
    assert ex.current == S.SUCCESS


@pytest.mark.parametrize(("fail_on_max", "expected"), [(False, S.SUCCESS), (True, S.FAILED)])
def test_wait_for_max_iterations(fail_on_max: bool, expected: S) -> None:
    flow = wait_for(
        "false", checkFrequency={"maxIterations": 3, "interval": "PT5S"}, failOnMaxReached=fail_on_max
    )
    d = Driver(flow_of(flow))
    ex = d.fire_timers(d.start())
    wf = runs(ex, "wf")[0]
    assert wf.current == expected
    assert wf.outputs["iterationCount"] == 3
    assert len(d.of_type(cmd.RunTask)) == 3
    assert [t.date for t in d.of_type(cmd.ScheduleTimer)] == [
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=10),
    ]
    assert ex.current == expected


def test_wait_for_stops_on_a_failed_child() -> None:
    flow = {"tasks": [{"id": "wf", "type": WAIT_FOR, "condition": "false", "tasks": [fail("probe")]}]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert state_of(ex, "wf") == S.FAILED
    assert d.timers == []


# -- execution tasks: Labels, SetVariables, Exit ----------------------------------------------------------


def test_labels_are_merged_into_execution_labels() -> None:
    flow = {
        "labels": {"team": "a", "keep": "me"},
        "tasks": [
            {"id": "l", "type": LABELS, "labels": {"team": "b", "env": "{{ flow.id }}", "flag": True}},
            ret("after"),
        ],
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    labels = ex.labels_map()
    assert labels["team"] == "b"
    assert labels["keep"] == "me"
    assert labels["env"] == "f"
    assert labels["flag"] == "true"
    assert labels["system.correlationId"] == ex.id
    assert state_of(ex, "l") == S.SUCCESS
    assert d.dispatched() == ["after"]
    assert d.jobs[runs(ex, "after")[0].id].variables["labels"]["env"] == "f"


def test_set_variables_are_visible_to_later_tasks() -> None:
    flow = {
        "variables": {"kept": "k", "x": "old"},
        "tasks": [
            {"id": "sv", "type": SET_VARIABLES, "variables": {"x": "42"}},
            ret("show", "{{ vars.x }}-{{ vars.kept }}"),
        ],
    }
    d = Driver(flow_of(flow), render=True)
    ex = d.start()
    assert state_of(ex, "sv") == S.SUCCESS
    assert runs(ex, "show")[0].outputs["value"] == "42-k"
    assert ex.current == S.SUCCESS


def test_set_variables_without_overwrite_fails_on_clash() -> None:
    flow = {
        "tasks": [
            {"id": "sv1", "type": SET_VARIABLES, "variables": {"x": "1"}},
            {"id": "sv2", "type": SET_VARIABLES, "variables": {"x": "2"}, "overwrite": False},
        ],
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert state_of(ex, "sv2") == S.FAILED
    assert ex.variables["x"] == "1"
    assert ex.current == S.FAILED


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("SUCCESS", S.SUCCESS),
        ("WARNING", S.WARNING),
        ("FAILED", S.FAILED),
        ("KILLED", S.KILLED),
        ("CANCELED", S.CANCELLED),
    ],
)
def test_exit_ends_the_execution(state: str, expected: S) -> None:
    flow = {"tasks": [ret("a"), {"id": "x", "type": EXIT, "state": state}, ret("c")], "errors": [ret("e")]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.current == expected
    assert d.dispatched() == ["a"]
    assert runs(ex, "c") == []
    assert all(r.current.is_terminated for r in ex.task_run_list)


def test_exit_kills_running_siblings() -> None:
    exit_after_gate = {
        "id": "s",
        "type": SEQUENTIAL,
        "tasks": [ret("gate"), {"id": "x", "type": EXIT, "state": "FAILED"}],
    }
    flow = {"tasks": [{"id": "p", "type": PARALLEL, "tasks": [ret("slow"), exit_after_gate]}]}
    d = Driver(flow_of(flow), hold={"slow", "gate"})
    ex = d.report_running(d.start(), "slow")
    ex = d.release(ex, "gate")
    assert ex.current == S.FAILED
    assert state_of(ex, "slow") == S.KILLED
    assert all(r.current.is_terminated for r in ex.task_run_list)
    assert d.of_type(cmd.KillTasks)
    ex = d.release(ex, "slow", S.SUCCESS)
    assert state_of(ex, "slow") == S.KILLED
    assert ex.current == S.FAILED


def test_exit_stops_siblings_created_in_the_same_pass() -> None:
    flow = {
        "tasks": [
            {"id": "p", "type": PARALLEL, "tasks": [{"id": "x", "type": EXIT, "state": "WARNING"}, ret("b")]}
        ]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.current == S.WARNING
    assert "b" not in d.dispatched()
    assert state_of(ex, "b") in (S.SKIPPED, S.KILLED)


# -- more interactions -------------------------------------------------------------------------------------


def test_run_if_sees_the_loop_value() -> None:
    flow = {"tasks": [for_each(["a", "b"], [ret("t", runIf="{{ taskrun.value == 'b' }}")])]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert [(r.value, r.current) for r in runs(ex, "t")] == [("a", S.SKIPPED), ("b", S.SUCCESS)]
    assert [c.job.task_run.value for c in d.of_type(cmd.RunTask)] == ["b"]


@pytest.mark.parametrize("produced", [["x", "y"], '["x", "y"]'])
def test_for_each_values_from_a_previous_output(produced: Any) -> None:
    flow = {"tasks": [ret("gen"), for_each("{{ outputs.gen.value }}", [ret("t")])]}
    d = Driver(flow_of(flow), outcomes={"gen": lambda run: (S.SUCCESS, {"value": produced})})
    ex = d.start()
    assert values_of(ex, "t") == ["x", "y"]


def test_if_with_local_errors() -> None:
    flow = {
        "tasks": [{"id": "if", "type": IF, "condition": "true", "then": [fail("t")], "errors": [ret("e")]}]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert d.dispatched() == ["t", "e"]
    assert state_of(ex, "if") == S.FAILED


def test_dag_failure_stops_dependents_and_runs_errors() -> None:
    flow = {
        "tasks": [
            {
                "id": "dag",
                "type": DAG,
                "tasks": [{"task": fail("a")}, {"task": ret("b"), "dependsOn": ["a"]}],
                "errors": [ret("e")],
            }
        ]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert d.dispatched() == ["a", "e"]
    assert state_of(ex, "dag") == S.FAILED


def test_kill_cascades_to_a_running_subflow() -> None:
    d = Driver(flow_of(subflow()))
    ex = d.start()
    run_id = runs(ex, "sub")[0].id
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.RUNNING, "child-1"), ev.Kill()])
    assert ex.current == S.KILLING
    assert d.of_type(cmd.KillSubflows)
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.KILLED, "child-1")])
    assert state_of(ex, "sub") == S.KILLED
    assert ex.current == S.KILLED


def test_kill_of_a_waiting_loop() -> None:
    d = Driver(flow_of(wait_for("false")))
    ex = d.start()
    assert state_of(ex, "wf") == S.PAUSED
    ex = d.feed(ex, [ev.Kill()])
    assert state_of(ex, "wf") == S.KILLED
    ex = d.fire_timers(ex)
    assert ex.current == S.KILLED
    assert len(d.of_type(cmd.RunTask)) == 1


def test_labels_ignore_system_keys() -> None:
    flow = {"tasks": [{"id": "l", "type": LABELS, "labels": {"system.correlationId": "hijack", "ok": "1"}}]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.labels_map()["system.correlationId"] == ex.id
    assert ex.labels_map()["ok"] == "1"


def test_wait_for_max_duration() -> None:
    flow = wait_for(
        "false", checkFrequency={"maxIterations": 100, "maxDuration": "PT25M", "interval": "PT10M"}
    )
    d = Driver(flow_of(flow))
    ex = d.fire_timers(d.start())
    # iterations end at +0, +10, +20 and +30 minutes; the last one is past maxDuration
    assert len(d.of_type(cmd.RunTask)) == 4
    assert runs(ex, "wf")[0].outputs["iterationCount"] == 4
    assert ex.current == S.SUCCESS


def test_task_run_histories_on_the_happy_path() -> None:
    d = Driver(flow_of({"tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [ret("a")]}]}))
    ex = d.start()
    assert history(runs(ex, "s")[0].state) == [S.CREATED, S.RUNNING, S.SUCCESS]
    run = runs(ex, "a")[0]
    assert history(run.state) == [S.CREATED, S.RUNNING, S.SUCCESS]
    assert [a.state.current for a in run.attempts or ()] == [S.SUCCESS]
