"""Loop outputs and parent variables (§2.5), seen through the variables decide() puts in jobs: the
driver renders each Return ``format`` against its job's variables, as a worker would."""

from __future__ import annotations

from typing import Any

from tests.unit.engine.drive import FOR_EACH, SEQUENTIAL, Driver, flow_of, ret, runs
from tiercel.model.execution import Execution
from tiercel.model.state import StateType as S


def each(task_id: str, values: Any, *tasks: dict) -> dict[str, Any]:
    return {"id": task_id, "type": FOR_EACH, "values": values, "tasks": list(tasks)}


def values(ex: Execution, task_id: str) -> dict[str | None, Any]:
    return {r.value: r.outputs.get("value") for r in runs(ex, task_id)}


def run(flow: dict[str, Any]) -> tuple[Driver, Execution]:
    d = Driver(flow_of(flow), render=True)
    ex = d.start()
    assert ex.current == S.SUCCESS
    return d, ex


def test_loop_outputs_are_nested_by_value() -> None:
    _, ex = run(
        {
            "tasks": [
                each("loop", ["a", "b"], ret("ret", "item {{ taskrun.value }}")),
                ret("after", "{{ outputs.ret['a'].value }} / {{ outputs.ret.b.value }}"),
            ]
        }
    )
    assert values(ex, "ret") == {"a": "item a", "b": "item b"}
    assert runs(ex, "after")[0].outputs["value"] == "item a / item b"


def test_sibling_of_the_same_iteration() -> None:
    _, ex = run(
        {
            "tasks": [
                each(
                    "loop",
                    ["a", "b"],
                    ret("first", "f-{{ taskrun.value }}"),
                    ret("second", "{{ outputs.first[taskrun.value].value }}"),
                )
            ]
        }
    )
    assert values(ex, "second") == {"a": "f-a", "b": "f-b"}


def test_deeper_descendants_read_the_value_through_parent() -> None:
    seq = {
        "id": "seq",
        "type": SEQUENTIAL,
        "tasks": [
            ret("inner", "{{ taskrun.value ?? 'none' }}:{{ parent.taskrun.value }}"),
            ret("next", "{{ outputs.inner[parent.taskrun.value].value }}"),
        ],
    }
    _, ex = run({"tasks": [each("loop", ["a", "b"], seq), ret("after", "{{ outputs.inner.b.value }}")]})
    assert [r.value for r in runs(ex, "inner")] == [None, None]
    assert sorted(r.outputs["value"] for r in runs(ex, "inner")) == ["none:a", "none:b"]
    assert sorted(r.outputs["value"] for r in runs(ex, "next")) == ["none:a", "none:b"]
    assert runs(ex, "after")[0].outputs["value"] == "none:b"


def test_nested_loops_nest_outer_then_inner() -> None:
    inner = each("inner", ["c", "d"], ret("ret", "{{ parent.taskrun.value }}-{{ taskrun.value }}"))
    _, ex = run(
        {
            "tasks": [
                each("outer", ["a", "b"], inner),
                ret(
                    "after",
                    "{{ outputs.ret.a.c.value }},{{ outputs.ret.a.d.value }},{{ outputs.ret.b.d.value }}",
                ),
            ]
        }
    )
    assert sorted(r.outputs["value"] for r in runs(ex, "ret")) == ["a-c", "a-d", "b-c", "b-d"]
    assert runs(ex, "after")[0].outputs["value"] == "a-c,a-d,b-d"


def test_parents_lists_ancestors_nearest_first() -> None:
    fmt = (
        "{{ parents | length }}:{{ parents[0].taskrun.value }}/{{ parents[1].taskrun.value }}"
        "/{{ taskrun.value }}"
    )
    innermost = each("l3", ["z"], ret("ret", fmt))
    _, ex = run(
        {
            "tasks": [
                each("l1", ["x"], each("l2", ["y"], innermost)),
                ret("after", "{{ outputs.ret.x.y.z.value }}"),
            ]
        }
    )
    assert runs(ex, "ret")[0].outputs["value"] == "2:y/x/z"
    assert runs(ex, "after")[0].outputs["value"] == "2:y/x/z"


def test_top_level_task_has_no_parent() -> None:
    d, ex = run({"tasks": [ret("a")]})
    variables = d.jobs[runs(ex, "a")[0].id].variables
    assert "parent" not in variables
    assert "parents" not in variables
    assert variables["taskrun"]["value"] is None


def test_loop_values_are_strings_in_taskrun_value() -> None:
    _, ex = run({"tasks": [each("loop", [1, {"k": "v"}], ret("ret", "{{ taskrun.value }}"))]})
    assert values(ex, "ret") == {"1": "1", '{"k":"v"}': '{"k":"v"}'}
