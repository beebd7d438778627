"""Templates from Kestra's conformance flows: all must compile, and the asserted ones render as expected.

The expected strings come from shared/conformance/expectations.yaml (flows tagged ``pebble`` and
``pebble-functions``); the templates are read from the flow files themselves.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tiercel.errors import TemplateError
from tiercel.templating import SERVICES_KEY, render, render_typed, secret_from_env
from tiercel.templating.environment import compile_template

FLOWS = Path("/work/shared/conformance/kestra-flows/valids")
pytestmark = pytest.mark.skipif(not FLOWS.is_dir(), reason="conformance flows are not available")

# Templates that Kestra itself rejects: the condition embeds a {% for %} tag inside {{ }}.
INVALID = {("flowable-with-parent-fail.yaml", "{{parents[0].taskrun.value == 'CUMULATIVE' and {% for")}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _templates() -> list[Any]:
    if not FLOWS.is_dir():
        return []
    found = []
    for path in sorted(FLOWS.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            for text in _strings(document):
                if "{{" in text or "{%" in text:
                    invalid = any(path.name == name and text.startswith(prefix) for name, prefix in INVALID)
                    found.append(pytest.param(path.name, text, invalid, id=f"{path.name}:{text[:60]}"))
    return found


@pytest.mark.parametrize(("flow", "template", "invalid"), _templates())
def test_every_flow_template_compiles(flow: str, template: str, invalid: bool) -> None:
    if invalid:
        with pytest.raises(TemplateError):
            compile_template(template)
    else:
        compile_template(template)


def _task_property(flow: str, task_id: str, prop: str) -> Any:
    def find(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("id") == task_id and prop in node:
                return node[prop]
            for value in node.values():
                hit = find(value)
                if hit is not None:
                    return hit
        elif isinstance(node, list):
            for item in node:
                hit = find(item)
                if hit is not None:
                    return hit
        return None

    value = find(yaml.safe_load((FLOWS / flow).read_text()))
    assert value is not None, f"{flow}: no {prop} on task {task_id}"
    return value


def test_each_object_json_branch() -> None:
    template = _task_property("each-object.yaml", "json", "format")
    value = '{"key":"my-complex","value":{"sub":1,"bool":true}}'
    context = {"task": {"id": "json"}, "parent": {"taskrun": {"value": value}}}
    assert 'json > JSON > ["my-complex"]' in render(template, context)
    switch = _task_property("each-object.yaml", "is-json", "value")
    assert render(switch, {"taskrun": {"value": value}}) == "true"
    assert render(switch, {"taskrun": {"value": "value 1"}}) == "false"


def test_current_each_output() -> None:
    template = _task_property("current-output.yaml", "1-1-1_return", "format")
    outputs = {"1-1-1_output": {"v12": {"v22": {"v31": {"value": "v12-v22-v31"}}}}}
    context = {
        "outputs": outputs,
        "taskrun": {"value": "v31"},
        "parents": [{"taskrun": {"value": "v22"}}, {"taskrun": {"value": "v12"}}],
    }
    assert render(template, context) == "return-v12-v22-v31"


def test_execution_start_date_prints_milliseconds() -> None:
    template = _task_property("execution.yaml", "hello", "format")
    start = dt.datetime(2024, 12, 20, 17, 12, 37, 123000, tzinfo=dt.UTC)
    assert re.match(
        r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", render(template, {"execution": {"startDate": start}})
    )


def test_variables_envs_and_globals() -> None:
    context = {
        "vars": yaml.safe_load((FLOWS / "variables.yaml").read_text())["variables"],
        "envs": {"test1": "true", "test2": "Pass by env"},
        "globals": {"string": "string", "int": 1, "bool": True, "nested": {"int": 2}},
    }
    assert render(_task_property("variables.yaml", "variable", "format"), context) == "1 > 2 > 3"
    assert render(_task_property("variables.yaml", "env", "format"), context) == "true Pass by env"
    assert render(_task_property("variables.yaml", "global", "format"), context) == "string 1 true 2"


def test_undefined_inputs_message() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{inputs.invalid}}", {"flow": {"id": "variables-invalid"}})
    assert "Unable to find `inputs` used in the expression `{{inputs.invalid}}`" in str(caught.value)


def test_missing_variable_message() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ missing }}", {"taskrun": {"value": "s3"}})
    assert "Unable to find `missing` used in the expression `{{ missing }}` at line 1" in str(caught.value)


class KvServices:
    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any:
        return {"field": "value"} if key == "my-key" and self.present else None

    def __init__(self, present: bool) -> None:
        self.present = present


@pytest.mark.parametrize("present", [True, False])
def test_kv(present: bool) -> None:
    context = {
        SERVICES_KEY: KvServices(present),
        "flow": {"namespace": "io.kestra.tests"},
        "inputs": {"namespace": "io.kestra.tests", "errorOnMissing": True},
    }
    get = _task_property("kv.yaml", "get", "format")
    with_args = _task_property("kv.yaml", "getWithArgs", "format")
    assert render(get, context) == ("value" if present else "")
    if present:
        assert render(with_args, context) == "value"
    else:
        message = "The key 'my-key' does not exist in the namespace 'io.kestra.tests'."
        with pytest.raises(TemplateError, match=re.escape(message)):
            render(with_args, context)


class SecretServices:
    environ = {
        "SECRET_MY_SECRET": base64.b64encode(b'{"secretKey":"secretValue"}').decode(),
        "SECRET_NEW_LINE": base64.encodebytes(b"passwordveryveryveyrlong" * 5).decode(),
    }

    def secret(self, key: str) -> str:
        return secret_from_env(key, self.environ)


def test_secrets() -> None:
    context = {SERVICES_KEY: SecretServices()}
    assert render(_task_property("secrets.yaml", "get-secret", "format"), context) == "secretValue"
    multiline = render(_task_property("secrets.yaml", "get-multiline-secret", "format"), context)
    assert multiline == "passwordveryveryveyrlong" * 5


def test_error_logs() -> None:
    class Logs:
        def error_logs(self) -> list[dict[str, str]]:
            return [{"taskId": "failed", "message": "Task failure"}]

    template = _task_property("errors.yaml", "t2", "message")
    assert render(template, {SERVICES_KEY: Logs()}) == "- task: failed, message: Task failure"


def test_parent_renders_as_json() -> None:
    template = _task_property("working-directory-taskrun-nested.yml", "log-workerparent", "format")
    assert '{"taskrun":{"value":"1"}}' in render(template, {"parent": {"taskrun": {"value": "1"}}})


def test_optional_resume_input() -> None:
    values = _task_property("pause_on_resume_optional.yaml", "last", "values")
    assert render(values["asked"], {"outputs": {"pause": {"onResume": {}}}}) == "MISSING"
    assert render(values["asked"], {"outputs": {"pause": {"onResume": {"asked": None}}}}) == "MISSING"


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"state": {"data": {}}}, "create"),
        ({"state": {"data": {"value": 1}}}, "update"),
        ({"state": {"data": {"value": "2"}}}, "delete"),
    ],
)
def test_state_switch(outputs: dict[str, Any], expected: str) -> None:
    template = _task_property("state.yaml", "switch", "value")
    assert render(template, {"outputs": outputs}) == expected


def test_state_loop_values() -> None:
    template = _task_property("state.yaml", "setEach1", "data")["value"]
    context = {"outputs": {"getEach1": {"b": {"data": {}}}}, "taskrun": {"value": "b"}, "parents": []}
    assert render(template, context) == "null-b"
    update = _task_property("state.yaml", "update", "data")["value"]
    assert render(update, {"outputs": {"state": {"data": {"value": 1}}}}) == "2"


def test_labels_and_defined_inputs() -> None:
    assert render("second {{ labels.key1 }}", {"labels": {"key1": "value1"}}) == "second value1"
    assert render_typed("{{ inputs.crash is defined }}", {"inputs": {}}) is False


@pytest.mark.parametrize(("attempts", "expected"), [(1, "ok")])
def test_retry_condition(attempts: int, expected: str) -> None:
    assert (
        render("{{taskrun.attemptsCount == 1 ? 'ok' : ko}}", {"taskrun": {"attemptsCount": attempts}})
        == expected
    )
    with pytest.raises(TemplateError, match="Unable to find `ko`"):
        render("{{taskrun.attemptsCount == 1 ? 'ok' : ko}}", {"taskrun": {"attemptsCount": 0}})
