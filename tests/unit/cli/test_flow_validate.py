"""``tiercel flow validate FILE|DIR...``: exit 0 when every flow is valid, 1 otherwise, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.cli.helpers import EXAMPLES, invoke, run_process

LOG = "io.kestra.plugin.core.log.Log"

# name -> (flow text, the exact "file:line:col: field" prefix of one problem, fragments of its message)
INVALID: dict[str, tuple[str, str, list[str]]] = {
    "malformed-yaml": (
        f"""
        id: broken
        namespace: company.team
        tasks:
          - id: a
            type: {LOG}
            message: [unclosed
        """,
        "malformed-yaml.yaml:7:1",
        ["did not find expected ',' or ']'", "line 6"],
    ),
    "unknown-type": (
        """
        id: unknown-type
        namespace: company.team
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Nope
            message: hi
        """,
        "unknown-type.yaml:5:11: tasks[0].type",
        ["Invalid type: io.kestra.plugin.core.log.Nope"],
    ),
    "misspelled-property": (
        f"""
        id: misspelled
        namespace: company.team
        tasks:
          - id: a
            type: {LOG}
            mesage: hi
        """,
        "misspelled-property.yaml:6:5: tasks[0].mesage",
        ["Unrecognized field `mesage`"],
    ),
    "duplicate-task-id": (
        f"""
        id: dup
        namespace: company.team
        tasks:
          - id: a
            type: {LOG}
            message: one
          - id: a
            type: {LOG}
            message: two
        """,
        "duplicate-task-id.yaml:7:9: tasks[1].id",
        ["Duplicate task id `a`"],
    ),
    "duplicate-task-id-in-errors-branch": (
        f"""
        id: dup-errors
        namespace: company.team
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: a
                type: {LOG}
                message: one
        errors:
          - id: a
            type: {LOG}
            message: two
        """,
        "duplicate-task-id-in-errors-branch.yaml:11:9: errors[0].id",
        ["Duplicate task id `a`"],
    ),
    "bad-flow-id": (
        f"""
        id: bad id!
        namespace: company.team
        tasks:
          - id: a
            type: {LOG}
            message: hi
        """,
        "bad-flow-id.yaml:1:5: id",
        ["must match", "'bad id!'"],
    ),
    "bad-task-id": (
        f"""
        id: bad-task-id
        namespace: company.team
        tasks:
          - id: "-a"
            type: {LOG}
            message: hi
        """,
        "bad-task-id.yaml:4:9: tasks[0].id",
        ["must match", "'-a'"],
    ),
    "dag-cycle": (
        f"""
        id: cycle
        namespace: company.team
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: a
                  type: {LOG}
                  message: a
                dependsOn: [b]
              - task:
                  id: b
                  type: {LOG}
                  message: b
                dependsOn: [a]
        """,
        "dag-cycle.yaml:4:5: tasks[0]",
        ["cyclic dependency", "a -> b -> a"],
    ),
    "dag-self-cycle": (
        f"""
        id: self-cycle
        namespace: company.team
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task: {{id: a, type: {LOG}, message: a}}
                dependsOn: [a]
        """,
        "dag-self-cycle.yaml:4:5: tasks[0]",
        ["cyclic dependency", "a -> a"],
    ),
    "dag-dangling-dependency": (
        f"""
        id: dangling
        namespace: company.team
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: a
                  type: {LOG}
                  message: a
                dependsOn: [ghost]
        """,
        "dag-dangling-dependency.yaml:4:5: tasks[0]",
        ["unknown task", "ghost"],
    ),
    "missing-tasks": (
        "id: no-tasks\nnamespace: company.team\n",
        "missing-tasks.yaml:1:1: tasks",
        ["missing required property `tasks`"],
    ),
    "missing-type": (
        """
        id: no-type
        namespace: company.team
        tasks:
          - id: a
            message: hi
        """,
        "missing-type.yaml:4:5: tasks[0]",
        ["missing required property `type`"],
    ),
    "duplicate-yaml-key": (
        "id: a\nid: b\nnamespace: company.team\ntasks: []\n",
        "duplicate-yaml-key.yaml:2:1",
        ["duplicate key 'id'"],
    ),
    "top-level-list": (
        "- id: a\n- id: b\n",
        "top-level-list.yaml:1:1",
        ["expected a mapping"],
    ),
}


@pytest.fixture
def bad_flows(write_flow: Callable[[str, str], Path]) -> dict[str, Path]:
    return {name: write_flow(f"bad/{name}.yaml", text) for name, (text, _, _) in INVALID.items()}


def test_examples_are_valid() -> None:
    result = invoke("flow", "validate", str(EXAMPLES))
    assert result.exit_code == 0, result.output
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for path in files:
        assert f"✓ {path}" in result.output
    assert f"{len(files)} valid, 0 invalid" in result.output


def test_several_files_are_validated(write_flow: Callable[[str, str], Path]) -> None:
    yml = write_flow(
        "short.yml", f"id: short\nnamespace: a.b\ntasks:\n  - id: t\n    type: {LOG}\n    message: m\n"
    )
    result = invoke("flow", "validate", str(EXAMPLES / "hello-world.yaml"), str(yml))
    assert result.exit_code == 0, result.output
    assert "(a.b.short)" in result.output
    assert "2 valid, 0 invalid" in result.output


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_flow_is_reported_with_its_location(
    name: str, bad_flows: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, where, fragments = INVALID[name]
    monkeypatch.chdir(tmp_path / "bad")
    result = invoke("flow", "validate", f"{name}.yaml")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    problem = next((line for line in result.output.splitlines() if where in line), None)
    assert problem is not None, f"no problem located at {where!r} in:\n{result.output}"
    for fragment in fragments:
        assert fragment in problem, f"{fragment!r} not in {problem!r}"
    assert "0 valid, 1 invalid" in result.output


def test_one_invalid_file_fails_the_whole_run(
    bad_flows: dict[str, Path], write_flow: Callable[[str, str], Path]
) -> None:
    result = invoke("flow", "validate", str(EXAMPLES), str(bad_flows["unknown-type"]))
    assert result.exit_code == 1
    assert f"{len(list(EXAMPLES.glob('*.yaml')))} valid, 1 invalid" in result.output


def test_every_problem_of_a_flow_is_listed(write_flow: Callable[[str, str], Path]) -> None:
    path = write_flow(
        "two.yaml",
        f"""
        id: two-problems
        namespace: company.team
        tasks:
          - id: a
            type: {LOG}
            message: hi
            colour: red
          - id: b
            type: io.kestra.plugin.core.debug.Nope
        """,
    )
    result = invoke("flow", "validate", str(path))
    assert result.exit_code == 1
    assert "2 problems" in result.output
    assert f"{path}:7:5: tasks[0].colour: Unrecognized field `colour`" in result.output
    assert f"{path}:9:11: tasks[1].type: Invalid type: io.kestra.plugin.core.debug.Nope" in result.output


def test_unreadable_and_empty_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"id: x\nnamespace: a\ndescription: caf\xe9\ntasks: []\n")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    result = invoke("flow", "validate", str(tmp_path))
    assert result.exit_code == 1
    assert "latin1.yaml" in result.output
    assert "empty.yaml" in result.output
    assert "0 valid, 2 invalid" in result.output


def test_directory_without_flows_is_an_error(tmp_path: Path) -> None:
    result = invoke("flow", "validate", str(tmp_path))
    assert result.exit_code == 1
    assert "no flow files found" in result.output


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("flow", "validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_no_traceback_for_any_invalid_flow_in_a_real_process(
    bad_flows: dict[str, Path], tmp_path: Path
) -> None:
    proc = run_process(["flow", "validate", str(tmp_path / "bad")])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    assert f"0 valid, {len(INVALID)} invalid" in proc.stdout
    for path in bad_flows.values():
        assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", proc.stderr), f"{path} not located"
