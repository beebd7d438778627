"""Restart, replay and change-state (§2.6): pure functions in engine/restart.py, then driven on
with decide()."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.engine.drive import (
    FOR_EACH,
    PAUSE,
    SEQUENTIAL,
    SUBFLOW,
    T0,
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
from tiercel.engine.restart import change_task_run_state, replay, restart
from tiercel.errors import TiercelError
from tiercel.model.state import StateType as S

LATER = T0 + timedelta(hours=1)


def flaky(run: Any) -> tuple[S, dict[str, Any]]:
    """Fails on its first attempt only."""
    return (S.FAILED if run.attempt_count == 1 else S.SUCCESS), {}


RESTART_FLOW = {
    "tasks": [ret("a"), {"id": "s", "type": SEQUENTIAL, "tasks": [ret("b"), ret("c"), ret("d")]}],
    "errors": [ret("e")],
}


def failed_once() -> tuple[Driver, Any]:
    d = Driver(flow_of(RESTART_FLOW), outcomes={"c": flaky})
    ex = d.start()
    assert ex.current == S.FAILED
    assert state_of(ex, "e") == S.SUCCESS
    return d, ex


def test_restart_resets_failed_runs_and_keeps_the_id() -> None:
    d, ex = failed_once()
    restarted = restart(ex, LATER, d.flow)
    assert restarted.id == ex.id
    assert history(restarted.state)[-2:] == [S.FAILED, S.RESTARTED]
    assert restarted.metadata.attempt_number == ex.metadata.attempt_number + 1
    assert runs(restarted, "e") == []
    assert state_of(restarted, "c") == S.RESTARTED
    assert runs(restarted, "c")[0].attempt_count == 1
    assert history(runs(restarted, "s")[0].state)[-2:] == [S.FAILED, S.RUNNING]
    assert state_of(restarted, "a") == state_of(restarted, "b") == S.SUCCESS
    assert runs(restarted, "a")[0] == runs(ex, "a")[0]


def test_restart_then_continue_finishes_the_execution() -> None:
    d, ex = failed_once()
    d.now = LATER
    done = d.feed(restart(ex, LATER, d.flow), [ev.Continue()])
    assert done.current == S.SUCCESS
    assert history(done.state)[-4:] == [S.FAILED, S.RESTARTED, S.RUNNING, S.SUCCESS]
    assert [r.task_id for r in done.task_run_list] == ["a", "s", "b", "c", "d"]
    assert runs(done, "c")[0].attempt_count == 2
    assert state_of(done, "s") == S.SUCCESS
    assert d.dispatched() == ["a", "b", "c", "e", "c", "d"]


@pytest.mark.parametrize("state", ["SUCCESS", "RUNNING"])
def test_restart_rejects_success_and_running_executions(state: str) -> None:
    d = Driver(flow_of({"tasks": [ret("a")]}), hold={"a"} if state == "RUNNING" else set())
    ex = d.start()
    assert ex.current == S(state)
    with pytest.raises(TiercelError):
        restart(ex, LATER, d.flow)


def test_restart_of_a_paused_execution_resumes_it() -> None:
    d = Driver(flow_of({"tasks": [{"id": "p", "type": PAUSE}, ret("after")]}))
    ex = d.start()
    assert ex.current == S.PAUSED
    done = d.feed(restart(ex, LATER, d.flow), [ev.Continue()])
    assert done.current == S.SUCCESS
    assert d.dispatched() == ["after"]


def test_restart_inside_for_each_resumes_the_remaining_groups() -> None:
    flow = {"tasks": [{"id": "each", "type": FOR_EACH, "values": ["a", "b", "c"], "tasks": [ret("t")]}]}
    d = Driver(
        flow_of(flow),
        outcomes={
            "t": lambda run: (S.FAILED if run.value == "b" and run.attempt_count == 1 else S.SUCCESS, {})
        },
    )
    ex = d.start()
    assert [r.value for r in runs(ex, "t")] == ["a", "b"]
    done = d.feed(restart(ex, LATER, d.flow), [ev.Continue()])
    assert done.current == S.SUCCESS
    assert [(r.value, r.attempt_count) for r in runs(done, "t")] == [("a", 1), ("b", 2), ("c", 1)]


def test_restart_of_a_run_that_failed_before_dispatch() -> None:
    d = Driver(
        flow_of(
            {
                "inputs": [{"id": "go", "type": "BOOLEAN", "required": False}],
                "tasks": [ret("a", runIf="{{ inputs.go }}")],
            }
        )
    )
    ex = d.start()
    assert state_of(ex, "a") == S.FAILED
    restarted = restart(ex, LATER, d.flow)
    assert state_of(restarted, "a") == S.RESTARTED
    d.now = LATER
    done = d.feed(restarted.model_copy(update={"inputs": {"go": True}}), [ev.Continue()])
    assert done.current.is_terminated


def test_restart_of_a_killed_execution_redispatches_unstarted_runs() -> None:
    d = Driver(flow_of({"tasks": [ret("a")]}), hold={"a"})
    ex = d.feed(d.start(), [ev.Kill()])
    assert ex.current == S.KILLED
    d.hold.clear()
    done = d.feed(restart(ex, LATER, d.flow), [ev.Continue()])
    assert done.current == S.SUCCESS
    assert d.dispatched() == ["a", "a"]


def test_restart_of_a_failed_subflow_starts_a_new_child() -> None:
    flow = {"tasks": [{"id": "sub", "type": SUBFLOW, "namespace": "io.other", "flowId": "child"}]}
    d = Driver(flow_of(flow))
    ex = d.start()
    run_id = runs(ex, "sub")[0].id
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.FAILED, "child-1")])
    assert ex.current == S.FAILED
    restarted = restart(ex, LATER, d.flow)
    assert state_of(restarted, "sub") == S.RESTARTED
    ex = d.feed(restarted, [ev.Continue()])
    assert len(d.of_type(cmd.StartSubflow)) == 2
    ex = d.feed(ex, [ev.SubflowResult(run_id, S.SUCCESS, "child-2")])
    assert ex.current == S.SUCCESS
    assert runs(ex, "sub")[0].outputs["executionId"] == "child-2"


# -- replay --------------------------------------------------------------------------------------------


def test_replay_from_scratch_is_a_fresh_execution() -> None:
    d = Driver(flow_of({"tasks": [ret("a"), fail("b")]}))
    ex = d.start(inputs={"x": 1})
    replayed = replay(d.flow, ex, LATER)
    assert replayed.id != ex.id
    assert replayed.original_id == ex.id
    assert replayed.current == S.CREATED
    assert history(replayed.state) == [S.CREATED]
    assert replayed.task_run_list == ()
    assert replayed.inputs == {"x": 1}
    assert replayed.outputs is None
    again = replay(d.flow, replayed, LATER)
    assert again.original_id == ex.id
    done = d.feed(replayed, [ev.Start()])
    assert done.current == S.FAILED
    assert {r.execution_id for r in done.task_run_list} == {replayed.id}


def test_replay_from_a_task_run_keeps_earlier_runs_with_new_ids() -> None:
    d = Driver(flow_of({"tasks": [ret("a"), ret("b"), fail("c"), ret("d")]}))
    ex = d.start()
    b = runs(ex, "b")[0]
    replayed = replay(d.flow, ex, LATER, b.id)
    assert replayed.id != ex.id
    assert replayed.original_id == ex.id
    assert replayed.current == S.RESTARTED
    assert [r.task_id for r in replayed.task_run_list] == ["a", "b"]
    old_ids = {r.id for r in ex.task_run_list}
    assert not {r.id for r in replayed.task_run_list} & old_ids
    assert {r.execution_id for r in replayed.task_run_list} == {replayed.id}
    assert state_of(replayed, "a") == S.SUCCESS
    assert state_of(replayed, "b") == S.RESTARTED
    done = d.feed(replayed, [ev.Continue()])
    assert done.current == S.FAILED
    assert [r.task_id for r in done.task_run_list] == ["a", "b", "c"]
    assert d.dispatched()[-2:] == ["b", "c"]
    assert [r.task_id for r in ex.task_run_list] == ["a", "b", "c"]  # the original is untouched
    assert {r.id for r in ex.task_run_list} == old_ids


def test_replay_from_a_nested_task_run_reopens_its_ancestors() -> None:
    flow = {"tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [ret("a"), fail("b")]}, ret("after")]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.current == S.FAILED
    replayed = replay(d.flow, ex, LATER, runs(ex, "b")[0].id)
    assert state_of(replayed, "s") == S.RUNNING
    assert runs(replayed, "b")[0].parent_task_run_id == runs(replayed, "s")[0].id
    d.outcomes["b"] = lambda run: (S.SUCCESS, {})
    done = d.feed(replayed, [ev.Continue()])
    assert done.current == S.SUCCESS
    assert state_of(done, "after") == S.SUCCESS


def test_replay_of_an_unknown_task_run_raises() -> None:
    d = Driver(flow_of({"tasks": [fail("a")]}))
    ex = d.start()
    with pytest.raises(TiercelError):
        replay(d.flow, ex, LATER, "nope")


# -- change task run state ------------------------------------------------------------------------------


def test_change_state_of_a_failed_run_lets_the_execution_continue() -> None:
    d = Driver(flow_of({"tasks": [fail("a"), ret("b")]}))
    ex = d.start()
    changed = change_task_run_state(d.flow, ex, runs(ex, "a")[0].id, S.SUCCESS, LATER)
    assert changed.id == ex.id
    assert changed.current == S.RESTARTED
    assert state_of(changed, "a") == S.SUCCESS
    assert runs(changed, "a")[0].attempts[-1].state.current == S.SUCCESS
    done = d.feed(changed, [ev.Continue()])
    assert done.current == S.SUCCESS
    assert d.dispatched() == ["a", "b"]


def test_change_state_reopens_ancestors() -> None:
    flow = {"tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [ret("a"), ret("b")]}]}
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.current == S.SUCCESS
    changed = change_task_run_state(d.flow, ex, runs(ex, "b")[0].id, S.FAILED, LATER)
    assert history(runs(changed, "s")[0].state)[-1] == S.RUNNING
    done = d.feed(changed, [ev.Continue()])
    assert state_of(done, "s") == S.FAILED
    assert done.current == S.FAILED


def test_replay_from_a_flowable_reruns_its_children() -> None:
    flow = {"tasks": [ret("first"), {"id": "s", "type": SEQUENTIAL, "tasks": [ret("a"), fail("b")]}]}
    d = Driver(flow_of(flow))
    ex = d.start()
    replayed = replay(d.flow, ex, LATER, runs(ex, "s")[0].id)
    assert [r.task_id for r in replayed.task_run_list] == ["first", "s"]
    assert state_of(replayed, "s") == S.RUNNING
    d.outcomes["b"] = lambda run: (S.SUCCESS, {})
    done = d.feed(replayed, [ev.Continue()])
    assert done.current == S.SUCCESS
    assert d.dispatched() == ["first", "a", "b", "a", "b"]
