"""Records to rows and back (``tiercel.repository.sql.codec``): no database involved."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tiercel.model.base import Model
from tiercel.model.execution import Execution, ExecutionTrigger, Label, labels_from
from tiercel.model.state import State, StateHistory, StateType
from tiercel.model.task import LogLevel
from tiercel.repository.sql import codec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Stamped(Model):
    id: str
    revision: int | None = None
    deleted: bool = False
    labels: tuple[Label, ...] = ()
    duration: str | timedelta | None = None


def test_labels_document_keeps_the_first_value_of_a_repeated_key() -> None:
    labels = (Label(key="env", value="prod"), Label(key="team", value="a"), Label(key="env", value="dev"))
    assert codec.labels_document(labels) == '{"env":"prod","team":"a"}'
    assert codec.labels_document(()) == "{}"


def test_a_pydantic_flow_round_trips_with_its_class() -> None:
    flow = Stamped(id="x", labels=labels_from({"env": "prod"}), duration="PT1S")
    flow_type, document = codec.flow_document(codec.stamp_flow(flow, 3, deleted=True))
    assert flow_type == f"{__name__}:Stamped"
    loaded = codec.load_flow(flow_type, document)
    # validated in Python mode: a string stays a string where the field also accepts a duration
    assert loaded == flow.model_copy(update={"revision": 3, "deleted": True})
    assert codec.flow_labels(loaded) == (Label(key="env", value="prod"),)


def test_plain_flows_are_kept_as_json() -> None:
    assert codec.flow_document(None) == (None, None)
    assert codec.load_flow(None, None) is None
    flow_type, document = codec.flow_document({"id": "x", "tasks": []})
    assert flow_type is None and codec.load_flow(flow_type, document) == {"id": "x", "tasks": []}
    assert codec.stamp_flow({"id": "x"}, 2, deleted=False) == {"id": "x"}
    assert codec.flow_labels({"labels": {"a": "b"}}) == ()  # as the memory backend: attributes only


def test_levels_at_or_above() -> None:
    assert codec.levels_from(None) is None
    assert codec.levels_from(LogLevel.WARN) == ["WARN", "ERROR"]
    assert codec.levels_from(LogLevel.TRACE) == ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


def test_execution_row_extracts_the_filter_columns() -> None:
    states = (StateType.CREATED, StateType.QUEUED, StateType.RUNNING, StateType.QUEUED, StateType.FAILED)
    histories = tuple(StateHistory(state=s, date=T0 + timedelta(seconds=i)) for i, s in enumerate(states))
    execution = Execution(
        id="e1",
        namespace="n",
        flow_id="f",
        state=State(current=StateType.FAILED, histories=histories),
        labels=labels_from({"env": "prod"}),
        parent_id="p1",
        trigger=ExecutionTrigger(
            id="upstream", type="io.kestra.plugin.core.trigger.Flow", variables={"executionId": "up1"}
        ),
    )
    row = codec.execution_row(execution)
    assert row["state"] == "FAILED"
    assert (row["start_date"], row["end_date"]) == (T0, T0 + timedelta(seconds=4))
    assert row["queued_date"] == T0 + timedelta(seconds=3)  # the last time it entered QUEUED
    assert (row["parent_id"], row["trigger_id"], row["trigger_execution_id"]) == ("p1", "upstream", "up1")
    assert row["labels"] == '{"env":"prod"}'
    assert codec.load_execution(row["value"]) == execution


def test_importing_the_repository_protocols_loads_no_database_library() -> None:
    code = (
        "import sys, tiercel.repository, tiercel.repository.memory; "
        "print([m for m in ('sqlalchemy', 'alembic', 'psycopg', 'sqlite3') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
