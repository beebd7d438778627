"""Flow SLAs in decide(): MAX_DURATION timers and EXECUTION_ASSERTION checks at the end."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.engine.drive import Driver, flow_of
from tiercel.engine import commands as cmd
from tiercel.model.state import StateType as S


def _flow(sla: list[dict], **extra: object) -> dict:
    return {
        "sla": sla,
        "tasks": [{"id": "a", "type": "io.kestra.plugin.core.debug.Return", "format": "x"}],
        **extra,
    }


def test_max_duration_arms_a_timer_when_the_execution_starts() -> None:
    d = Driver(
        flow_of(_flow([{"id": "max", "type": "MAX_DURATION", "behavior": "FAIL", "duration": "PT5S"}]))
    )
    d.hold.add("a")
    ex = d.start()
    timers = [t for t in d.timers if t.kind == "SLA:max"]
    assert [t.date - d.now for t in timers] == [timedelta(seconds=5)]
    assert ex.current == S.RUNNING


def test_max_duration_exceeded_fails_the_execution_and_kills_running_tasks() -> None:
    d = Driver(
        flow_of(_flow([{"id": "max", "type": "MAX_DURATION", "behavior": "FAIL", "duration": "PT5S"}]))
    )
    d.hold.add("a")
    ex = d.fire_timers(d.start())
    assert ex.current == S.FAILED
    assert any(isinstance(c, cmd.KillTasks) for c in d.commands)
    assert any(isinstance(c, cmd.ExecutionEnded) for c in d.commands)


def test_max_duration_not_reached_changes_nothing() -> None:
    d = Driver(
        flow_of(_flow([{"id": "max", "type": "MAX_DURATION", "behavior": "CANCEL", "duration": "PT5S"}]))
    )
    ex = d.fire_timers(d.start())
    assert ex.current == S.SUCCESS


def test_assertion_violated_with_cancel_cancels_at_the_end() -> None:
    sla = [{"id": "check", "type": "EXECUTION_ASSERTION", "behavior": "CANCEL", "assert": "{{ 1 == 2 }}"}]
    ex = Driver(flow_of(_flow(sla))).start()
    assert ex.current == S.CANCELLED


def test_assertion_violated_with_none_only_adds_labels() -> None:
    sla = [
        {
            "id": "check",
            "type": "EXECUTION_ASSERTION",
            "behavior": "NONE",
            "assert": "{{ false }}",
            "labels": {"sla": "violated"},
        }
    ]
    ex = Driver(flow_of(_flow(sla))).start()
    assert ex.current == S.SUCCESS
    assert ex.labels_map()["sla"] == "violated"


def test_assertion_that_holds_keeps_the_state() -> None:
    sla = [{"id": "check", "type": "EXECUTION_ASSERTION", "behavior": "FAIL", "assert": "{{ true }}"}]
    assert Driver(flow_of(_flow(sla))).start().current == S.SUCCESS
