"""``tiercel flow test FILE``: run a flow to its end in-process and show (or print as JSON) the result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli.helpers import EXAMPLES, invoke, run_process

WriteFlow = Callable[[str, str], Path]

HELLO = str(EXAMPLES / "hello-world.yaml")

FAILING = """
id: failing
namespace: company.team
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: the service said no
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: not reached
"""

INPUTS = """
id: with-inputs
namespace: company.team
inputs:
  - id: x
    type: STRING
  - id: n
    type: INT
    defaults: 1
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.x }} {{ inputs.n + 1 }}"
"""

FILE_INPUT = """
id: file-input
namespace: company.team
inputs:
  - id: data
    type: FILE
tasks:
  - id: content
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.data) }}"
"""

CHILD = """
id: child
namespace: company.team
inputs:
  - id: name
    type: STRING
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hi {{ inputs.name }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.greet.value }}"
"""

PARENT = """
id: parent
namespace: company.team
labels:
  team: data
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    inputs:
      name: Ada
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.greeting }}"
"""


def run_json(*args: str) -> dict[str, Any]:
    result = invoke("flow", "test", *args, "--json")
    assert result.exit_code == 0, result.output
    execution: dict[str, Any] = json.loads(result.stdout)
    return execution


def task_runs(execution: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [run for run in execution["taskRunList"] if run["taskId"] == task_id]


def only(execution: dict[str, Any], task_id: str) -> dict[str, Any]:
    runs = task_runs(execution, task_id)
    assert len(runs) == 1, runs
    return runs[0]


# -- --json --------------------------------------------------------------------------------------


def test_json_is_the_execution_in_kestra_shape() -> None:
    execution = run_json(HELLO, "--input", "user=Ada")
    assert execution["namespace"] == "company.team"
    assert execution["flowId"] == "hello-world"
    assert isinstance(execution["id"], str) and execution["id"]
    assert execution["state"]["current"] == "SUCCESS"
    assert [h["state"] for h in execution["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    assert execution["inputs"] == {"user": "Ada"}
    assert execution["outputs"] == {"answer": "42"}
    assert isinstance(execution["labels"], list)
    assert all(set(label) == {"key", "value"} for label in execution["labels"])
    assert [run["taskId"] for run in execution["taskRunList"]] == ["hello", "answer"]
    for run in execution["taskRunList"]:
        assert {"id", "taskId", "parentTaskRunId", "value", "state", "attempts", "outputs"} <= set(run)
        assert run["parentTaskRunId"] is None
        assert run["value"] is None
        assert run["state"]["current"] == "SUCCESS"
        assert [a["state"]["current"] for a in run["attempts"]] == ["SUCCESS"]
    assert only(execution, "answer")["outputs"] == {"value": "42"}


def test_json_input_default_is_used() -> None:
    assert run_json(HELLO)["inputs"] == {"user": "Kestra user"}


def test_json_stdout_holds_only_the_execution_in_a_real_process() -> None:
    proc = run_process(["flow", "test", HELLO, "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"]["current"] == "SUCCESS"
    assert "Traceback" not in proc.stderr


def test_json_foreach_children_point_at_their_parent_and_value() -> None:
    execution = run_json(str(EXAMPLES / "loops-and-branches.yaml"))
    assert execution["state"]["current"] == "SUCCESS"
    each = only(execution, "each")
    colours = task_runs(execution, "colour")
    assert sorted(run["value"] for run in colours) == ["blue", "green", "red"]
    for run in colours:
        assert run["parentTaskRunId"] == each["id"]
        assert run["outputs"] == {"value": f"colour {run['value']}"}


def test_labels_are_a_list_of_key_value_pairs(write_flow: WriteFlow) -> None:
    execution = run_json(
        str(write_flow("labels.yaml", CHILD.replace("inputs:\n", "labels:\n  team: data\ninputs:\n"))),
        "-i",
        "name=x",
    )
    assert {"key": "team", "value": "data"} in execution["labels"]


def test_failed_flow_still_exits_zero(write_flow: WriteFlow) -> None:
    execution = run_json(str(write_flow("failing.yaml", FAILING)))
    assert execution["state"]["current"] == "FAILED"
    assert only(execution, "boom")["state"]["current"] == "FAILED"
    assert task_runs(execution, "never") == []


def test_retried_flow_reports_every_attempt() -> None:
    execution = run_json(str(EXAMPLES / "retry-and-allow-failure.yaml"))
    assert execution["state"]["current"] == "WARNING"
    flaky = only(execution, "flaky")
    assert [a["state"]["current"] for a in flaky["attempts"]] == ["FAILED", "FAILED", "FAILED"]
    assert flaky["state"]["current"] == "WARNING"


# -- inputs ------------------------------------------------------------------------------------


def test_inputs_are_typed(write_flow: WriteFlow) -> None:
    execution = run_json(str(write_flow("inputs.yaml", INPUTS)), "-i", "x=a=b", "-i", "n=41")
    assert execution["inputs"]["x"] == "a=b"
    assert execution["inputs"]["n"] == 41
    assert only(execution, "show")["outputs"] == {"value": "a=b 42"}


def test_file_input_is_stored_in_internal_storage(write_flow: WriteFlow, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("file content", encoding="utf-8")
    execution = run_json(str(write_flow("file.yaml", FILE_INPUT)), "--input", f"data=@{data}")
    uri = execution["inputs"]["data"]
    assert uri.startswith("kestra:///")
    assert uri.startswith(f"kestra:///company/team/file-input/executions/{execution['id']}/inputs/data/")
    assert uri.endswith("data.txt")
    assert only(execution, "content")["outputs"] == {"value": "file content"}


def test_missing_required_input_cannot_run(write_flow: WriteFlow) -> None:
    result = invoke("flow", "test", str(write_flow("inputs.yaml", INPUTS)), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Invalid input for `x`, missing required input, but received `null`" in result.stderr
    assert "Traceback" not in result.output


def test_invalid_input_value_cannot_run(write_flow: WriteFlow) -> None:
    result = invoke("flow", "test", str(write_flow("inputs.yaml", INPUTS)), "-i", "x=1", "-i", "n=many")
    assert result.exit_code == 1
    assert "Invalid input for `n`" in result.stderr
    assert "many" in result.stderr


def test_input_without_equals_is_a_usage_error(write_flow: WriteFlow) -> None:
    result = invoke("flow", "test", HELLO, "--input", "user")
    assert result.exit_code == 2
    assert "expected KEY=VALUE" in result.output


def test_input_file_that_does_not_exist_is_refused(write_flow: WriteFlow, tmp_path: Path) -> None:
    result = invoke(
        "flow",
        "test",
        str(write_flow("inputs.yaml", INPUTS)),
        "-i",
        "x=1",
        "-i",
        f"data=@{tmp_path / 'no.txt'}",
    )
    assert result.exit_code != 0
    assert "file not found" in result.output
    assert "Traceback" not in result.output


# -- flows that cannot run -----------------------------------------------------------------------


def test_invalid_flow_cannot_run(write_flow: WriteFlow) -> None:
    path = write_flow("bad.yaml", "id: bad\nnamespace: a\ntasks:\n  - id: t\n    type: io.kestra.Nope\n")
    result = invoke("flow", "test", str(path), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Cannot run the flow" in result.stderr
    assert f"{path}:5:11: tasks[0].type: Invalid type: io.kestra.Nope" in result.stderr


def test_unknown_file_cannot_run(tmp_path: Path) -> None:
    result = invoke("flow", "test", str(tmp_path / "nope.yaml"), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "nope.yaml" in result.stderr
    assert "does not exist" in result.stderr


SLOW = """
id: slow
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"""


def test_timeout_stops_waiting(write_flow: WriteFlow) -> None:
    result = invoke("flow", "test", str(write_flow("slow.yaml", SLOW)), "--json", "--timeout", "0.5")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "did not finish within 0.5s (state RUNNING)" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", [["--json"], []], ids=["json", "summary"])
def test_timeout_prints_no_traceback_in_a_real_process(write_flow: WriteFlow, mode: list[str]) -> None:
    proc = run_process(["flow", "test", str(write_flow("slow.yaml", SLOW)), "--timeout", "0.5", *mode])
    assert proc.returncode == 1
    assert "did not finish within 0.5s" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# -- subflows ----------------------------------------------------------------------------------


def test_flows_dir_lets_a_subflow_find_its_child(write_flow: WriteFlow, tmp_path: Path) -> None:
    write_flow("flows/child.yaml", CHILD)
    parent = write_flow("flows/parent.yaml", PARENT)
    execution = run_json(str(parent), "--flows", str(tmp_path / "flows"))
    assert execution["state"]["current"] == "SUCCESS"
    call = only(execution, "call")
    assert call["outputs"]["state"] == "SUCCESS"
    assert call["outputs"]["outputs"] == {"greeting": "hi Ada"}
    assert only(execution, "echo")["outputs"] == {"value": "hi Ada"}


def test_subflow_without_its_child_fails_the_task(write_flow: WriteFlow) -> None:
    execution = run_json(str(write_flow("parent.yaml", PARENT)))
    assert execution["state"]["current"] == "FAILED"
    assert only(execution, "call")["state"]["current"] == "FAILED"


def test_flows_dir_with_an_invalid_flow_cannot_run(write_flow: WriteFlow, tmp_path: Path) -> None:
    write_flow("flows/child.yaml", CHILD)
    write_flow("flows/broken.yaml", "id: broken\nnamespace: a\ntasks: nope\n")
    parent = write_flow("parent.yaml", PARENT)
    result = invoke("flow", "test", str(parent), "--flows", str(tmp_path / "flows"))
    assert result.exit_code == 1
    assert "broken.yaml" in result.stderr
    assert "Traceback" not in result.output


# -- summary -------------------------------------------------------------------------------------


def test_summary_shows_tasks_and_final_state() -> None:
    result = invoke("flow", "test", HELLO, "-i", "user=Ada")
    assert result.exit_code == 0, result.output
    for task_id in ("hello", "answer"):
        assert task_id in result.stdout
    assert "Hello Ada" in result.stdout
    assert "ended SUCCESS with 2 task runs" in result.stdout


def test_summary_of_a_failed_flow(write_flow: WriteFlow) -> None:
    result = invoke("flow", "test", str(write_flow("failing.yaml", FAILING)))
    assert result.exit_code == 0, result.output
    assert "boom" in result.stdout
    assert "FAILED" in result.stdout
    assert "the service said no" in result.stdout
    assert "ended FAILED with 1 task runs" in result.stdout


def test_summary_shows_values_and_outputs_verbatim(write_flow: WriteFlow) -> None:
    path = write_flow(
        "brackets.yaml",
        """
        id: brackets
        namespace: company.team
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["[bold]b"]
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "[/x] done"
        outputs:
          - id: path
            type: STRING
            value: "[/api/v1]"
        """,
    )
    result = invoke("flow", "test", str(path))
    assert result.exit_code == 0, result.output
    for text in ("[bold]b", "[/x] done", "[/api/v1]", "ended SUCCESS"):
        assert text in result.stdout


@pytest.mark.slow
def test_make_run_examples_pass_in_a_real_process() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        proc = run_process(["flow", "test", str(path), "--flows", str(EXAMPLES)])
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert " ended " in proc.stdout
