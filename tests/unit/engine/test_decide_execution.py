"""decide(): the execution-level transitions of §2.2 (start, schedule, concurrency, pause/resume,
retry, kill, final state) and how late or duplicate worker results are dropped. Pure: no I/O."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.engine.drive import (
    PAUSE,
    SEQUENTIAL,
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
from tiercel.engine.decide import (
    PAUSE_TIMEOUT,
    RESTART_FAILED_TASK,
    RESUME_FLOW,
    RESUME_PAUSE,
    decide,
)
from tiercel.engine.executions import new_execution
from tiercel.engine.flowable import guess_final_state
from tiercel.model.execution import TaskRun, TaskRunAttempt
from tiercel.model.state import State
from tiercel.model.state import StateType as S
from tiercel.model.task import LogLevel

S10 = timedelta(seconds=10)


def logs(driver: Driver) -> list[Any]:
    return [log for c in driver.of_type(cmd.EmitLogs) for log in c.logs]


def ended(driver: Driver) -> list[S]:
    return [c.state for c in driver.of_type(cmd.ExecutionEnded)]


def timers(driver: Driver, kind: str) -> list[cmd.ScheduleTimer]:
    return [t for t in driver.of_type(cmd.ScheduleTimer) if t.kind == kind]


def outcome_seq(*states: S) -> Any:
    """An outcome giving ``states[attempt - 1]`` (the last one repeats)."""
    return lambda run: (states[min(run.attempt_count, len(states)) - 1], {})


def finished(run: TaskRun, state: S, start: Any, end: Any) -> ev.TaskResult:
    """A worker result whose last attempt ran from ``start`` to ``end``."""
    attempts = list(run.attempts or ())
    attempts[-1] = TaskRunAttempt(
        state=attempts[-1].state.with_state(S.RUNNING, start).with_state(state, end)
    )
    done = run.model_copy(update={"attempts": tuple(attempts)})
    return ev.TaskResult(done.with_state(S.RUNNING, start).with_state(state, end))


# -- CREATED → RUNNING / scheduled / QUEUED / CANCELLED / FAILED -------------------------------------


def test_start_moves_created_to_running_and_dispatches_first_task() -> None:
    flow = flow_of({"tasks": [ret("a"), ret("b")]})
    execution = new_execution(flow, T0)
    assert execution.current == S.CREATED
    decision = decide(flow, execution, [ev.Start()], T0)
    assert history(decision.execution.state) == [S.CREATED, S.RUNNING]
    assert [r.task_id for r in decision.execution.task_run_list] == ["a"]
    assert [c.job.task_run.task_id for c in decision.commands if isinstance(c, cmd.RunTask)] == ["a"]


def test_start_runs_to_success() -> None:
    d = Driver(flow_of({"tasks": [ret("a"), ret("b")]}))
    ex = d.start()
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.SUCCESS]
    assert d.dispatched() == ["a", "b"]
    assert ended(d) == [S.SUCCESS]


def test_future_schedule_date_keeps_created_until_resume_flow_timer() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow)
    ex = d.feed(new_execution(flow, T0, schedule_date=T0 + timedelta(hours=1)), [ev.Start()])
    assert ex.current == S.CREATED
    assert ex.task_run_list == ()
    assert [(t.kind, t.date) for t in d.timers] == [(RESUME_FLOW, T0 + timedelta(hours=1))]
    assert d.dispatched() == []
    ex = d.fire_timers(ex)
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.SUCCESS]
    assert ex.state.histories[1].date == T0 + timedelta(hours=1)


def test_past_schedule_date_starts_at_once() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow)
    ex = d.feed(new_execution(flow, T0, schedule_date=T0 - S10), [ev.Start()])
    assert ex.current == S.SUCCESS
    assert d.timers == []


def test_resume_flow_timer_is_ignored_once_running() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow, hold={"a"})
    ex = d.start()
    again = decide(flow, ex, [ev.TimerFired(RESUME_FLOW)], T0)
    assert history(again.execution.state) == [S.CREATED, S.RUNNING]
    assert again.commands == ()


@pytest.mark.parametrize(
    ("behavior", "state"),
    [("QUEUE", S.QUEUED), ("CANCEL", S.CANCELLED), ("FAIL", S.FAILED)],
)
def test_concurrency_limit_reached(behavior: str, state: S) -> None:
    d = Driver(flow_of({"concurrency": {"limit": 1, "behavior": behavior}, "tasks": [ret("a")]}))
    ex = d.start(running=1)
    assert history(ex.state) == [S.CREATED, state]
    assert ex.task_run_list == ()
    assert d.dispatched() == []
    if state == S.QUEUED:
        assert ended(d) == []
    else:
        assert ended(d) == [state]
        assert any(log.level == LogLevel.WARN for log in logs(d))


def test_concurrency_below_limit_runs() -> None:
    d = Driver(flow_of({"concurrency": {"limit": 2, "behavior": "FAIL"}, "tasks": [ret("a")]}))
    assert d.start(running=1).current == S.SUCCESS


def test_unqueue_moves_queued_to_running() -> None:
    d = Driver(flow_of({"concurrency": {"limit": 1}, "tasks": [ret("a")]}))
    ex = d.start(running=3)
    assert ex.current == S.QUEUED
    ex = d.feed(ex, [ev.Unqueue()])
    assert history(ex.state) == [S.CREATED, S.QUEUED, S.RUNNING, S.SUCCESS]
    assert d.dispatched() == ["a"]


def test_unqueue_of_a_running_execution_is_ignored() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow, hold={"a"})
    ex = d.start()
    decision = decide(flow, ex, [ev.Unqueue()], T0)
    assert decision.execution.state == ex.state
    assert decision.commands == ()


# -- RUNNING ⇄ PAUSED ---------------------------------------------------------------------------------


def pause_flow(**pause: Any) -> dict[str, Any]:
    return {"tasks": [{"id": "p", "type": PAUSE, **pause}, ret("after")]}


def test_pause_task_pauses_the_execution() -> None:
    d = Driver(flow_of(pause_flow()))
    ex = d.start()
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.PAUSED]
    assert history(runs(ex, "p")[0].state) == [S.CREATED, S.RUNNING, S.PAUSED]
    assert runs(ex, "after") == []
    assert d.timers == []


def test_api_resume_goes_through_restarted() -> None:
    d = Driver(flow_of(pause_flow()))
    ex = d.feed(d.start(), [ev.Resume({"approved": True})])
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.PAUSED, S.RESTARTED, S.RUNNING, S.SUCCESS]
    pause = runs(ex, "p")[0]
    assert pause.current == S.SUCCESS
    assert pause.outputs["onResume"] == {"approved": True}
    assert d.dispatched() == ["after"]


def test_resume_of_a_running_execution_is_ignored() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow, hold={"a"})
    ex = d.start()
    assert decide(flow, ex, [ev.Resume()], T0).execution.state == ex.state


def test_pause_delay_resumes_without_restarted() -> None:
    d = Driver(flow_of(pause_flow(delay="PT5M")))
    ex = d.start()
    assert ex.current == S.PAUSED
    assert [(t.kind, t.date) for t in d.timers] == [(RESUME_PAUSE, T0 + timedelta(minutes=5))]
    ex = d.fire_timers(ex)
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.PAUSED, S.RUNNING, S.SUCCESS]
    assert S.RESTARTED not in history(ex.state)
    assert state_of(ex, "p") == S.SUCCESS
    assert state_of(ex, "after") == S.SUCCESS


def test_pause_timeout_fails_the_task_and_the_execution() -> None:
    d = Driver(flow_of(pause_flow(timeout="PT1M")))
    ex = d.start()
    assert [(t.kind, t.date) for t in d.timers] == [(PAUSE_TIMEOUT, T0 + timedelta(minutes=1))]
    ex = d.fire_timers(ex)
    assert history(runs(ex, "p")[0].state)[-2:] == [S.PAUSED, S.FAILED]
    assert ex.current == S.FAILED
    assert runs(ex, "after") == []
    assert ended(d) == [S.FAILED]


def test_pause_timeout_after_resume_is_ignored() -> None:
    d = Driver(flow_of(pause_flow(timeout="PT1M")))
    ex = d.feed(d.start(), [ev.Resume()])
    assert ex.current == S.SUCCESS
    ex = d.fire_timers(ex)
    assert ex.current == S.SUCCESS
    assert state_of(ex, "p") == S.SUCCESS


# -- RUNNING → RETRYING → RUNNING ---------------------------------------------------------------------


def test_constant_retry_goes_through_retrying() -> None:
    d = Driver(
        flow_of({"tasks": [fail("a", retry={"type": "constant", "interval": "PT10S", "maxAttempt": 3})]})
    )
    ex = d.start()
    assert ex.current == S.RETRYING
    run = runs(ex, "a")[0]
    assert run.current == S.RETRYING
    assert [t.date for t in timers(d, RESTART_FAILED_TASK)] == [T0 + S10]
    assert timers(d, RESTART_FAILED_TASK)[0].task_run_id == run.id
    ex = d.fire_timers(ex)
    assert ex.current == S.FAILED
    run = runs(ex, "a")[0]
    assert run.attempt_count == 3
    assert history(run.state) == [S.CREATED, S.RUNNING, S.FAILED, S.RETRYING] * 2 + [
        S.CREATED,
        S.RUNNING,
        S.FAILED,
    ]
    assert history(ex.state) == [S.CREATED, S.RUNNING] + [S.RETRYING, S.RUNNING] * 2 + [S.FAILED]
    assert [t.date for t in timers(d, RESTART_FAILED_TASK)] == [T0 + S10, T0 + 2 * S10]


def test_retry_then_success_ends_success() -> None:
    d = Driver(
        flow_of(
            {"tasks": [ret("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 5}), ret("b")]}
        ),
        outcomes={"a": outcome_seq(S.FAILED, S.SUCCESS)},
    )
    ex = d.fire_timers(d.start())
    assert ex.current == S.SUCCESS
    assert runs(ex, "a")[0].attempt_count == 2
    assert d.dispatched() == ["a", "a", "b"]


def test_retry_delay_counts_from_attempt_end_not_from_processing_time() -> None:
    flow = flow_of({"tasks": [fail("a", retry={"type": "constant", "interval": "PT10S", "maxAttempt": 3})]})
    d = Driver(flow, hold={"a"})
    ex = d.start()
    job_run = d.held[0].job.task_run
    result = finished(job_run, S.FAILED, T0 + timedelta(seconds=1), T0 + timedelta(seconds=5))
    decision = decide(flow, ex, [result], T0 + timedelta(seconds=30))
    dates = [c.date for c in decision.commands if isinstance(c, cmd.ScheduleTimer)]
    assert dates == [T0 + timedelta(seconds=15)]


def test_exponential_retry_grows_and_is_capped() -> None:
    retry = {
        "type": "exponential",
        "interval": "PT10S",
        "maxInterval": "PT25S",
        "delayFactor": 2,
        "maxAttempt": 5,
    }
    d = Driver(flow_of({"tasks": [fail("a", retry=retry)]}))
    ex = d.fire_timers(d.start())
    dates = [t.date for t in timers(d, RESTART_FAILED_TASK)]
    delays = [(b - a).total_seconds() for a, b in zip([T0, *dates[:-1]], dates, strict=True)]
    assert delays == [10, 20, 25, 25]
    assert runs(ex, "a")[0].attempt_count == 5
    assert ex.current == S.FAILED


def test_random_retry_delay_is_within_bounds() -> None:
    retry = {"type": "random", "minInterval": "PT10S", "maxInterval": "PT20S", "maxAttempt": 4}
    d = Driver(flow_of({"tasks": [fail("a", retry=retry)]}))
    ex = d.fire_timers(d.start())
    dates = [t.date for t in timers(d, RESTART_FAILED_TASK)]
    assert len(dates) == 3
    for before, after in zip([T0, *dates[:-1]], dates, strict=True):
        assert S10 <= after - before <= 2 * S10
    assert ex.current == S.FAILED


@pytest.mark.parametrize(("max_attempt", "attempts"), [(1, 1), (2, 2), (4, 4)])
def test_max_attempt_counts_the_first_attempt(max_attempt: int, attempts: int) -> None:
    retry = {"type": "constant", "interval": "PT1S", "maxAttempt": max_attempt}
    d = Driver(flow_of({"tasks": [fail("a", retry=retry)]}))
    ex = d.fire_timers(d.start())
    assert runs(ex, "a")[0].attempt_count == attempts
    assert ex.current == S.FAILED
    if max_attempt == 1:
        assert S.RETRYING not in history(ex.state)


def test_max_duration_stops_retries() -> None:
    retry = {"type": "constant", "interval": "PT10S", "maxDuration": "PT25S"}
    d = Driver(flow_of({"tasks": [fail("a", retry=retry)]}))
    ex = d.fire_timers(d.start())
    # attempts at +0s, +10s, +20s; the next one (+30s) would exceed 25s after the first attempt.
    assert runs(ex, "a")[0].attempt_count == 3
    assert ex.current == S.FAILED


@pytest.mark.parametrize(("warning_on_retry", "expected"), [(True, S.WARNING), (False, S.SUCCESS)])
def test_warning_on_retry(warning_on_retry: bool, expected: S) -> None:
    retry = {"type": "constant", "interval": "PT1S", "maxAttempt": 3, "warningOnRetry": warning_on_retry}
    d = Driver(flow_of({"tasks": [ret("a", retry=retry)]}), outcomes={"a": outcome_seq(S.FAILED, S.SUCCESS)})
    ex = d.fire_timers(d.start())
    assert state_of(ex, "a") == expected
    assert ex.current == expected


def test_warning_on_retry_without_retry_happening_stays_success() -> None:
    retry = {"type": "constant", "interval": "PT1S", "maxAttempt": 3, "warningOnRetry": True}
    d = Driver(flow_of({"tasks": [ret("a", retry=retry)]}))
    assert d.start().current == S.SUCCESS


@pytest.mark.parametrize(
    ("flow", "attempts"),
    [
        pytest.param(
            {
                "tasks": [
                    {
                        "id": "s",
                        "type": SEQUENTIAL,
                        "retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 3},
                        "tasks": [fail("a")],
                    }
                ]
            },
            3,
            id="ancestor-flowable",
        ),
        pytest.param(
            {"retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 2}, "tasks": [fail("a")]},
            2,
            id="flow",
        ),
        pytest.param(
            {
                "retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 4},
                "tasks": [
                    {
                        "id": "s",
                        "type": SEQUENTIAL,
                        "retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 3},
                        "tasks": [fail("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 2})],
                    }
                ],
            },
            2,
            id="task-wins",
        ),
        pytest.param(
            {
                "retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 4},
                "tasks": [
                    {
                        "id": "s",
                        "type": SEQUENTIAL,
                        "retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 3},
                        "tasks": [fail("a")],
                    }
                ],
            },
            3,
            id="ancestor-before-flow",
        ),
    ],
)
def test_retry_lookup_order(flow: dict[str, Any], attempts: int) -> None:
    d = Driver(flow_of(flow))
    ex = d.fire_timers(d.start())
    assert runs(ex, "a")[0].attempt_count == attempts
    assert ex.current == S.FAILED
    assert S.RETRYING in history(ex.state)


def test_flowable_with_retry_is_not_retried_itself() -> None:
    flow = {
        "tasks": [
            {
                "id": "s",
                "type": SEQUENTIAL,
                "retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 3},
                "tasks": [fail("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 1})],
            }
        ]
    }
    d = Driver(flow_of(flow))
    ex = d.fire_timers(d.start())
    assert S.RETRYING not in history(runs(ex, "s")[0].state)
    assert ex.current == S.FAILED


# -- RUNNING → RETRIED (CREATE_NEW_EXECUTION) -----------------------------------------------------------

NEW_EXECUTION_RETRY = {
    "type": "constant",
    "interval": "PT30S",
    "maxAttempt": 2,
    "behavior": "CREATE_NEW_EXECUTION",
}


def test_create_new_execution_marks_retried_and_replays() -> None:
    flow = flow_of({"tasks": [ret("a"), fail("b", retry=NEW_EXECUTION_RETRY)]})
    d = Driver(flow)
    ex = d.start(inputs={"x": 1})
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.RETRIED]
    assert history(runs(ex, "b")[0].state)[-2:] == [S.FAILED, S.RETRIED]
    assert ended(d) == [S.RETRIED]
    (created,) = d.of_type(cmd.CreateExecution)
    new = created.execution
    assert new.id != ex.id
    assert new.original_id == ex.id
    assert new.metadata.attempt_number == 2
    assert new.current == S.CREATED
    assert new.task_run_list == ()
    assert new.inputs == {"x": 1}
    # the replayed execution fails for good: maxAttempt counts executions
    d2 = Driver(flow)
    final = d2.fire_timers(d2.feed(new, [ev.Start()]))
    assert final.current == S.FAILED
    assert d2.of_type(cmd.CreateExecution) == []


def test_create_new_execution_waits_for_the_retry_interval() -> None:
    d = Driver(flow_of({"tasks": [fail("b", retry=NEW_EXECUTION_RETRY)]}))
    d.start()
    (created,) = d.of_type(cmd.CreateExecution)
    due = T0 + timedelta(seconds=30)
    assert created.execution.schedule_date == due or any(t.date == due for t in d.timers)


# -- KILLING → KILLED -----------------------------------------------------------------------------------


def test_kill_before_start() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow)
    ex = d.feed(new_execution(flow, T0), [ev.Kill()])
    assert history(ex.state) == [S.CREATED, S.KILLING, S.KILLED]
    assert d.dispatched() == []


def test_kill_marks_created_runs_killed_and_emits_kill_commands() -> None:
    flow = flow_of(
        {"tasks": [{"id": "p", "type": "io.kestra.plugin.core.flow.Parallel", "tasks": [ret("a"), ret("b")]}]}
    )
    d = Driver(flow, hold={"a", "b"})
    ex = d.start()
    assert [state_of(ex, t) for t in ("a", "b")] == [S.CREATED, S.CREATED]
    ex = d.feed(ex, [ev.Kill()])
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.KILLING, S.KILLED]
    assert [state_of(ex, t) for t in ("a", "b", "p")] == [S.KILLED] * 3
    assert len(d.of_type(cmd.KillTasks)) == 1
    assert len(d.of_type(cmd.KillSubflows)) == 1
    assert ended(d) == [S.KILLED]


def test_kill_waits_for_running_children_of_a_flowable() -> None:
    d = Driver(
        flow_of({"tasks": [{"id": "s", "type": SEQUENTIAL, "tasks": [ret("a"), ret("b")]}]}), hold={"a"}
    )
    ex = d.report_running(d.start(), "a")
    assert state_of(ex, "a") == S.RUNNING
    ex = d.feed(ex, [ev.Kill()])
    assert ex.current == S.KILLING
    assert state_of(ex, "s") == S.KILLING
    assert state_of(ex, "a") == S.RUNNING
    assert ended(d) == []
    ex = d.release(ex, "a", S.KILLED)
    assert history(ex.state)[-2:] == [S.KILLING, S.KILLED]
    assert history(runs(ex, "s")[0].state)[-2:] == [S.KILLING, S.KILLED]
    assert state_of(ex, "a") == S.KILLED
    assert runs(ex, "b") == []
    assert ended(d) == [S.KILLED]


def test_kill_of_paused_execution() -> None:
    d = Driver(flow_of(pause_flow(timeout="PT1M")))
    ex = d.feed(d.start(), [ev.Kill()])
    assert history(ex.state) == [S.CREATED, S.RUNNING, S.PAUSED, S.RESTARTED, S.KILLING, S.KILLED]
    assert state_of(ex, "p") == S.KILLED
    ex = d.fire_timers(d.feed(ex, [ev.Resume()]))
    assert ex.current == S.KILLED
    assert runs(ex, "after") == []


def test_kill_of_retrying_execution() -> None:
    d = Driver(
        flow_of({"tasks": [fail("a", retry={"type": "constant", "interval": "PT1M", "maxAttempt": 3})]})
    )
    ex = d.feed(d.start(), [ev.Kill()])
    assert ex.current == S.KILLED
    assert history(runs(ex, "a")[0].state)[-2:] == [S.RETRYING, S.KILLED]
    ex = d.fire_timers(ex)
    assert runs(ex, "a")[0].attempt_count == 1
    assert ex.current == S.KILLED


def test_failure_while_killing_is_not_retried() -> None:
    flow = flow_of({"tasks": [fail("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 3})]})
    d = Driver(flow, hold={"a"})
    ex = d.report_running(d.start(), "a")
    ex = d.feed(ex, [ev.Kill()])
    ex = d.release(ex, "a", S.FAILED)
    assert state_of(ex, "a") == S.FAILED
    assert ex.current == S.KILLED
    assert timers(d, RESTART_FAILED_TASK) == []


def test_kill_of_a_terminated_execution_is_a_no_op() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    ex = Driver(flow).start()
    decision = decide(flow, ex, [ev.Kill()], T0)
    assert decision.execution.state == ex.state
    assert decision.commands == ()


def test_second_kill_does_not_repeat_commands() -> None:
    d = Driver(flow_of({"tasks": [ret("a")]}), hold={"a"})
    ex = d.report_running(d.start(), "a")
    ex = d.feed(d.feed(ex, [ev.Kill()]), [ev.Kill()])
    assert history(ex.state).count(S.KILLING) == 1
    assert len(d.of_type(cmd.KillTasks)) == 1


# -- final states ---------------------------------------------------------------------------------------

WARN = {"w": lambda run: (S.WARNING, {})}


@pytest.mark.parametrize(
    ("flow", "outcomes", "expected", "tasks"),
    [
        pytest.param({"tasks": [ret("a")]}, {}, S.SUCCESS, {"a": S.SUCCESS}, id="success"),
        pytest.param({"tasks": [fail("a"), ret("b")]}, {}, S.FAILED, {"a": S.FAILED}, id="failed"),
        pytest.param({"tasks": [ret("w")]}, WARN, S.WARNING, {"w": S.WARNING}, id="warning"),
        pytest.param(
            {"tasks": [fail("a", allowFailure=True), ret("b")]},
            {},
            S.WARNING,
            {"a": S.WARNING, "b": S.SUCCESS},
            id="allowFailure",
        ),
        pytest.param(
            {"tasks": [ret("w", allowWarning=True)]}, WARN, S.SUCCESS, {"w": S.SUCCESS}, id="allowWarning"
        ),
        pytest.param(
            {"tasks": [fail("a", allowFailure=True, allowWarning=True)]},
            {},
            S.SUCCESS,
            {"a": S.SUCCESS},
            id="allowFailure+allowWarning",
        ),
        pytest.param(
            {"tasks": [fail("a")], "errors": [ret("e")]},
            {},
            S.FAILED,
            {"e": S.SUCCESS},
            id="errors-never-rescue",
        ),
        pytest.param(
            {"tasks": [ret("a", runIf="false"), ret("b")]},
            {},
            S.SUCCESS,
            {"a": S.SKIPPED},
            id="skipped-counts-as-success",
        ),
        pytest.param(
            {"tasks": [ret("a")], "finally": [fail("f")]}, {}, S.FAILED, {"f": S.FAILED}, id="finally-fails"
        ),
        pytest.param(
            {"tasks": [{"id": "s", "type": SEQUENTIAL, "allowFailure": True, "tasks": [fail("a")]}]},
            {},
            S.WARNING,
            {"s": S.WARNING, "a": S.FAILED},
            id="allowFailure-on-flowable",
        ),
        pytest.param(
            {"tasks": [ret("w"), fail("a", allowFailure=True)]},
            WARN,
            S.WARNING,
            {"w": S.WARNING, "a": S.WARNING},
            id="worst-of-warnings",
        ),
    ],
)
def test_final_state(
    flow: dict[str, Any], outcomes: dict[str, Any], expected: S, tasks: dict[str, S]
) -> None:
    d = Driver(flow_of(flow), outcomes=dict(outcomes))
    ex = d.start()
    assert ex.current == expected
    assert {t: state_of(ex, t) for t in tasks} == tasks
    assert ended(d) == [expected]


def test_killed_child_makes_the_execution_killed() -> None:
    d = Driver(flow_of({"tasks": [ret("a"), ret("b")]}), outcomes={"a": lambda run: (S.KILLED, {})})
    ex = d.start()
    assert ex.current == S.KILLED
    assert runs(ex, "b") == []


def run_in(state: S) -> TaskRun:
    return TaskRun(
        id=state.value, execution_id="e", namespace="n", flow_id="f", task_id="t", state=State.new(T0, state)
    )


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], S.SUCCESS),
        ([S.SUCCESS, S.SKIPPED], S.SUCCESS),
        ([S.SUCCESS, S.CANCELLED], S.SUCCESS),
        ([S.SUCCESS, S.WARNING], S.WARNING),
        ([S.WARNING, S.PAUSED], S.WARNING),
        ([S.SUCCESS, S.PAUSED], S.PAUSED),
        ([S.WARNING, S.FAILED], S.FAILED),
        ([S.FAILED, S.KILLED, S.WARNING], S.KILLED),
    ],
)
def test_guess_final_state(states: list[S], expected: S) -> None:
    assert guess_final_state([run_in(s) for s in states]) == expected


# -- same state twice, late and duplicate results ------------------------------------------------------


def test_same_state_twice_does_not_append_history() -> None:
    state = State.new(T0).with_state(S.RUNNING, T0)
    assert state.with_state(S.RUNNING, T0 + S10) is state
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow, hold={"a"})
    ex = d.start()
    again = decide(flow, ex, [ev.Start(), ev.Start()], T0 + S10)
    assert history(again.execution.state) == [S.CREATED, S.RUNNING]
    assert again.commands == ()


def test_duplicate_running_result_is_ignored() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow, hold={"a"})
    ex = d.report_running(d.start(), "a")
    before = runs(ex, "a")[0]
    ex = d.report_running(ex, "a")
    assert runs(ex, "a")[0].state == before.state


def test_duplicate_terminal_result_does_not_dispatch_twice() -> None:
    flow = flow_of({"tasks": [ret("a"), ret("b")]})
    d = Driver(flow, hold={"a", "b"})
    ex = d.start()
    result = d.work(d.held[0])
    ex = d.feed(ex, [result])
    ex = d.feed(ex, [result])
    ex = d.feed(ex, [result, result])
    assert d.dispatched() == ["a", "b"]
    assert history(runs(ex, "a")[0].state) == [S.CREATED, S.RUNNING, S.SUCCESS]


def test_result_for_an_older_attempt_is_ignored() -> None:
    flow = flow_of({"tasks": [fail("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 3})]})
    d = Driver(flow)
    ex = d.start()
    (first_job,) = d.of_type(cmd.RunTask)
    d.hold.add("a")
    ex = d.fire_next(ex, RESTART_FAILED_TASK)
    run = runs(ex, "a")[0]
    assert (run.current, run.attempt_count) == (S.CREATED, 2)
    d.outcomes["a"] = lambda run: (S.SUCCESS, {})
    stale = d.work(first_job)
    decision = decide(flow, ex, [stale], d.now)
    assert decision.execution.task_run_list == ex.task_run_list
    assert decision.execution.current == S.RUNNING


def test_result_after_terminal_is_ignored() -> None:
    flow = flow_of({"tasks": [ret("a"), ret("b")]})
    d = Driver(flow)
    ex = d.start()
    (first, _) = d.of_type(cmd.RunTask)
    d.outcomes["a"] = lambda run: (S.FAILED, {})
    late = d.work(first)
    decision = decide(flow, ex, [late], T0 + S10)
    assert state_of(decision.execution, "a") == S.SUCCESS
    assert decision.execution.current == S.SUCCESS
    assert not [c for c in decision.commands if not isinstance(c, cmd.EmitLogs)]


def test_result_for_an_unknown_task_run_is_ignored() -> None:
    flow = flow_of({"tasks": [ret("a")]})
    d = Driver(flow, hold={"a"})
    ex = d.start()
    run = d.held[0].job.task_run.model_copy(update={"id": "someone-else"})
    decision = decide(flow, ex, [finished(run, S.SUCCESS, T0, T0)], T0)
    assert decision.execution.task_run_list == ex.task_run_list


# -- more interactions ------------------------------------------------------------------------------------


def test_errors_branch_waits_while_a_retry_is_pending() -> None:
    flow = {
        "tasks": [
            {
                "id": "s",
                "type": SEQUENTIAL,
                "tasks": [fail("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 2})],
                "errors": [ret("e")],
            }
        ]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert state_of(ex, "a") == S.RETRYING
    assert runs(ex, "e") == []
    assert state_of(ex, "s") == S.RUNNING
    ex = d.fire_timers(ex)
    assert d.dispatched() == ["a", "a", "e"]
    assert ex.current == S.FAILED


def test_allow_failure_applies_after_retries_are_exhausted() -> None:
    retry = {"type": "constant", "interval": "PT1S", "maxAttempt": 3}
    d = Driver(flow_of({"tasks": [fail("a", allowFailure=True, retry=retry), ret("b")]}))
    ex = d.fire_timers(d.start())
    run = runs(ex, "a")[0]
    assert run.attempt_count == 3
    assert run.current == S.WARNING
    assert ex.current == S.WARNING


def test_restart_keeps_counting_attempts() -> None:
    from tiercel.engine.restart import restart

    retry = {"type": "constant", "interval": "PT1S", "maxAttempt": 2}
    d = Driver(flow_of({"tasks": [fail("a", retry=retry)]}))
    ex = d.fire_timers(d.start())
    assert runs(ex, "a")[0].attempt_count == 2
    ex = d.fire_timers(d.feed(restart(ex, d.now, d.flow), [ev.Continue()]))
    assert runs(ex, "a")[0].attempt_count == 3
    assert ex.current == S.FAILED


def test_queued_execution_can_be_killed() -> None:
    d = Driver(flow_of({"concurrency": {"limit": 1}, "tasks": [ret("a")]}))
    ex = d.feed(d.start(running=1), [ev.Kill()])
    assert history(ex.state) == [S.CREATED, S.QUEUED, S.KILLING, S.KILLED]
    ex = d.feed(ex, [ev.Unqueue()])
    assert ex.current == S.KILLED
    assert d.dispatched() == []


def test_api_resume_before_the_delay_cancels_the_auto_resume() -> None:
    d = Driver(flow_of(pause_flow(delay="PT5M")))
    ex = d.feed(d.start(), [ev.Resume()])
    assert ex.current == S.SUCCESS
    ex = d.fire_timers(ex)
    assert history(ex.state).count(S.RUNNING) == 2
    assert d.dispatched() == ["after"]


def test_pause_with_tasks_runs_them_after_resume() -> None:
    d = Driver(flow_of({"tasks": [{"id": "p", "type": PAUSE, "tasks": [ret("inside")]}, ret("after")]}))
    ex = d.start()
    assert ex.current == S.PAUSED
    assert runs(ex, "inside") == []
    ex = d.feed(ex, [ev.Resume()])
    assert d.dispatched() == ["inside", "after"]
    assert state_of(ex, "p") == S.SUCCESS
    assert ex.current == S.SUCCESS


def test_api_resume_targets_the_pause_task_not_a_waiting_loop() -> None:
    wait_for = {
        "id": "wf",
        "type": "io.kestra.plugin.core.flow.WaitFor",
        "condition": "false",
        "checkFrequency": {"interval": "PT1H"},
        "tasks": [ret("probe")],
    }
    flow = {
        "tasks": [
            {
                "id": "par",
                "type": "io.kestra.plugin.core.flow.Parallel",
                "tasks": [wait_for, {"id": "p", "type": PAUSE}],
            }
        ]
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert (state_of(ex, "wf"), state_of(ex, "p"), ex.current) == (S.PAUSED, S.PAUSED, S.PAUSED)
    ex = d.feed(ex, [ev.Resume()])
    assert state_of(ex, "p") == S.SUCCESS
    assert ex.current == S.RUNNING


def test_flow_outputs_are_rendered_at_the_end() -> None:
    flow = {
        "tasks": [ret("a", "hello")],
        "outputs": [{"id": "greeting", "type": "STRING", "value": "{{ outputs.a.value }}"}],
    }
    d = Driver(flow_of(flow), render=True)
    ex = d.start()
    assert ex.current == S.SUCCESS
    assert ex.outputs == {"greeting": "hello"}


def test_flow_outputs_render_error_fails_the_execution() -> None:
    flow = {
        "tasks": [ret("a")],
        "outputs": [{"id": "o", "type": "STRING", "value": "{{ outputs.nope.value }}"}],
    }
    d = Driver(flow_of(flow))
    ex = d.start()
    assert ex.current == S.FAILED
    assert ex.outputs is None
    assert ended(d) == [S.FAILED]
    assert any(log.level == LogLevel.ERROR for log in logs(d))


def test_after_execution_tasks_do_not_change_the_final_state() -> None:
    d = Driver(flow_of({"tasks": [ret("a")], "afterExecution": [ret("ae"), fail("ae2")]}))
    ex = d.start()
    assert ex.current == S.SUCCESS
    assert d.dispatched() == ["a", "ae", "ae2"]
    assert state_of(ex, "ae2") == S.FAILED


def test_after_execution_end_is_reported_once_they_finish() -> None:
    d = Driver(flow_of({"tasks": [ret("a")], "afterExecution": [ret("ae")]}), hold={"ae"})
    ex = d.start()
    assert ex.current == S.SUCCESS
    assert ended(d) == []
    ex = d.release(ex, "ae")
    assert ended(d) == [S.SUCCESS]


def test_duplicate_retry_timer_does_not_dispatch_twice() -> None:
    flow = flow_of({"tasks": [fail("a", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 3})]})
    d = Driver(flow)
    ex = d.start()
    (timer,) = d.timers
    d.hold.add("a")
    fired = ev.TimerFired(timer.kind, timer.task_run_id)
    d.now = timer.date
    ex = d.feed(ex, [fired])
    ex = d.feed(ex, [fired, fired])
    assert len(d.of_type(cmd.RunTask)) == 2
    assert runs(ex, "a")[0].attempt_count == 2
