"""Template functions, including those that need the caller's RenderServices."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from tiercel.errors import NotFoundError, TemplateError
from tiercel.templating import SERVICES_KEY, RenderServices, render, render_typed, secret_from_env


class FakeServices:
    """In-memory RenderServices; records calls so scoping arguments can be checked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.kv_store = {("io.kestra.tests", "my-key"): {"field": "value"}}

    def read(self, path: str) -> str:
        self.calls.append(("read", path))
        if path.startswith("kestra:///other/"):
            raise NotFoundError("The file does not belong to the current execution")
        return f"content of {path}"

    def file_size(self, path: str) -> int:
        return 42

    def file_uri(self, path: str) -> str:
        return f"kestra:///io/kestra/tests/_files/{path}"

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any:
        self.calls.append(("kv", (key, namespace, error_on_missing)))
        return self.kv_store.get((namespace or "io.kestra.tests", key))

    def secret(self, key: str) -> str:
        return secret_from_env(
            key, {"SECRET_MY_SECRET": base64.b64encode(b'{"secretKey":"secretValue"}').decode()}
        )

    def error_logs(self) -> list[Mapping[str, Any]]:
        return [{"taskId": "failed", "message": "Task failure"}, {"taskId": "t2", "message": "boom"}]


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def context(services: FakeServices) -> dict[str, Any]:
    return {
        SERVICES_KEY: services,
        "flow": {"id": "kv", "namespace": "io.kestra.tests"},
        "inputs": {"namespace": "io.kestra.tests", "errorOnMissing": True, "items": "kestra:///io/x.txt"},
        "vars": {"first": "1", "second": "{{vars.first}} > 2", "third": "{{vars.second}} > 3"},
        "envs": {"test1": "true", "test2": "Pass by env"},
        "globals": {"string": "string", "int": 1, "bool": True, "nested": {"int": 2}},
    }


def test_fake_services_satisfy_the_protocol(services: FakeServices) -> None:
    assert isinstance(services, RenderServices)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ kv('my-key').field }}", "value"),
        ("{{ kv('my-key', inputs.namespace, inputs.errorOnMissing).field }}", "value"),
        ("{{ kv('absent').field ?? null }}", ""),
        ("{{ kv(key='absent', errorOnMissing=false) ?? 'none' }}", "none"),
        ("{{ json(secret('my_secret')).secretKey }}", "secretValue"),
        ("{{ read(inputs.items) }}", "content of kestra:///io/x.txt"),
        (
            "{{ fileSize('data.csv') }} {{ fileURI('data.csv') }}",
            "42 kestra:///io/kestra/tests/_files/data.csv",
        ),
        (
            "{% for log in errorLogs() %}{{ log.taskId }}:{{ log.message }};{% endfor %}",
            "failed:Task failure;t2:boom;",
        ),
        ("{{ render(vars.third) }}", "1 > 2 > 3"),
        ("{{ render(vars.third, recursive=false) }}", "{{vars.first}} > 2 > 3"),
        ("{{ renderOnce(vars.third) }}", "{{vars.first}} > 2 > 3"),
        ("{{ vars.third }}", "{{vars.second}} > 3"),
        ("{{ render('no template') }}", "no template"),
        ("{{ envs.test1 }} {{ envs.test2 }}", "true Pass by env"),
        (
            "{{ globals.string }} {{ globals.int }} {{ globals.bool }} {{ globals.nested.int }}",
            "string 1 true 2",
        ),
        ("{{ json('{\"a\": [1, 2]}').a[1] }} {{ fromJson('[1]') }} {{ json(null) }}", "2 [1] "),
        ("{{ yaml('a: 1').a }} {{ fromYaml('[x, y]') }}", '1 ["x","y"]'),
        (
            "{{ fromIon('{a: 1, \\'b-c\\': \"x\", d: [true, null], e: 1.5e0, f: sym}') }}",
            '{"a":1,"b-c":"x","d":[true,null],"e":1.5,"f":"sym"}',
        ),
        ("{{ fromIon('ann::{x: 2012-01-01T00:00Z}').x }}", "2012-01-01T00:00Z"),
        ("{{ range(1, 5) }} {{ range(0, 10, 3) }} {{ range(5, 1, -2) }}", "[1,2,3,4,5] [0,3,6,9] [5,3,1]"),
        ("{{ max(1, 5, 3) }} {{ min([4, 2]) }} {{ max('a', 'b') }}", "5 2 b"),
        ("{{ uuid() | length }} {{ id() | length }}", "36 22"),
        ("{{ randomInt(7, 8) }} {{ randomInt(3, 3) }}", "7 3"),
    ],
)
def test_functions(template: str, expected: str, context: dict[str, Any]) -> None:
    assert render(template, context) == expected


def test_kv_passes_namespace_and_flag_to_the_service(services: FakeServices, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ kv('my-key', 'team.a', true) }}", context)
    assert "The key 'my-key' does not exist in the namespace 'team.a'." in str(caught.value)
    assert ("kv", ("my-key", "team.a", True)) in services.calls


def test_kv_missing_with_error_on_missing_names_the_flow_namespace(context: dict[str, Any]) -> None:
    template = "{{ kv('absent', errorOnMissing=true) }}"
    with pytest.raises(TemplateError) as caught:
        render(template, context)
    assert str(caught.value) == (
        "The key 'absent' does not exist in the namespace 'io.kestra.tests'. "
        "({{ kv('absent', errorOnMissing=true) }}:1)"
    )


def test_service_errors_become_template_errors(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="does not belong to the current execution"):
        render("{{ read('kestra:///other/exec/file') }}", context)


@pytest.mark.parametrize(
    "function", ["secret('x')", "kv('x')", "read('x')", "fileURI('x')", "fileSize('x')", "errorLogs()"]
)
def test_functions_needing_services_fail_cleanly_without_them(function: str) -> None:
    name = function.split("(")[0]
    with pytest.raises(TemplateError, match=f"The '{name}' function is not available here"):
        render("{{ " + function + " }}", {})


def test_current_each_output_walks_the_loop_path() -> None:
    outputs = {"v11": {"v21": {"v31": {"value": "v11-v21-v31"}, "v32": {"value": "other"}}}}
    context = {
        "outputs": {"1-1-1_output": outputs, "2-1_output": {"v41": {"value": "v41"}}},
        "taskrun": {"value": "v31"},
        "parents": [{"taskrun": {"value": "v21"}}, {"taskrun": {"value": "v11"}}],
    }
    template = "return-{{ currentEachOutput(outputs['1-1-1_output']).value }}"
    assert render(template, context) == "return-v11-v21-v31"
    flat = {"outputs": context["outputs"], "taskrun": {"value": "v41"}, "parents": []}
    assert render("{{ currentEachOutput(outputs['2-1_output']).value }}", flat) == "v41"
    assert (
        render("{{ (currentEachOutput(outputs['2-1_output']).data.value ?? 'null') ~ '-b' }}", flat)
        == "null-b"
    )


def test_current_each_output_errors() -> None:
    context = {
        "outputs": {"x": {"a": {}}},
        "taskrun": {"value": "v"},
        "parents": [{"taskrun": {"value": "zz"}}],
    }
    with pytest.raises(TemplateError, match="No execution outputs for the current task runs path"):
        render("{{ currentEachOutput(outputs.x) }}", context)
    with pytest.raises(TemplateError, match="with type map"):
        render("{{ currentEachOutput('x') }}", context)


def test_render_keeps_the_same_variables_and_typed_values(context: dict[str, Any]) -> None:
    assert render_typed("{{ render('{{ globals.int + 1 }}') }}", context) == "2"


def test_render_recursion_is_capped(context: dict[str, Any]) -> None:
    looping = {**context, "vars": {"a": "{{ render(vars.a) }}"}}
    with pytest.raises(TemplateError, match="nested more than"):
        render("{{ render(vars.a) }}", looping)
    growing = {**context, "vars": {"a": "x{{ '{{' }} vars.a {{ '}}' }}"}}
    with pytest.raises(TemplateError, match="Too many rendering attempts"):
        render("{{ render(vars.a) }}", growing)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ nope() }}", "Function or Macro [nope] does not exist."),
        ("{{ render(1) }}", "expects an argument 'template' with type string"),
        ("{{ render('x', recursive='yes') }}", "'recursive' with type boolean"),
        ("{{ randomInt(5, 1) }}", "upper is less than lower"),
        ("{{ randomInt('a', 2) }}", "integer arguments"),
        ("{{ randomInt() }}", "Invalid arguments for the function 'randomInt()'"),
        ("{{ json('{bad') }}", "Invalid JSON"),
        ("{{ yaml('a: [') }}", "Invalid YAML"),
        ("{{ fromIon('{a: ') }}", "Ion"),
        ("{{ range(1, 100000) }}", "more than the limit of 10000"),
        ("{{ range(1, 5, 0) }}", "step must not be zero"),
        ("{{ max() }}", "at least one argument"),
        ("{{ json(missing) }}", "Unable to find `missing`"),
    ],
)
def test_function_errors(template: str, message: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, context)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("key", "environ", "expected"),
    [
        ("my_secret", {"SECRET_MY_SECRET": base64.b64encode(b"secretValue").decode()}, "secretValue"),
        ("MY_SECRET", {"SECRET_MY_SECRET": base64.b64encode(b"x").decode()}, "x"),
        ("new_line", {"SECRET_NEW_LINE": "cGFzc3dvcmR2\nZXJ5bG9uZw=="}, "passwordverylong"),
        ("unpadded", {"SECRET_UNPADDED": "YWJj"[:3]}, "ab"),
    ],
)
def test_secret_from_env(key: str, environ: dict[str, str], expected: str) -> None:
    assert secret_from_env(key, environ) == expected


def test_secret_from_env_errors() -> None:
    with pytest.raises(TemplateError, match=r"No secret found for the key 'missing'\."):
        secret_from_env("missing", {})
    with pytest.raises(TemplateError, match="not valid base64"):
        secret_from_env("bad", {"SECRET_BAD": "%%%"})


def test_print_context_shows_variables_but_not_services(context: dict[str, Any]) -> None:
    printed = render_typed("{{ printContext() }}", context)
    assert printed["flow"] == {"id": "kv", "namespace": "io.kestra.tests"}
    assert SERVICES_KEY not in printed
    assert render_typed("{{ fetchContext().globals.int }}", context) == 1


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ {'a': 1} | jsonEncode }}", '{"a":1}'),
        ("{{ {'a': [1]} | toYaml }}", "a:\n  - 1\n"),
        ("{{ jsonDecode('{\"a\": 1}').a }}", "1"),
        ("{{ ionDecode('[1, 2]') }}", "[1,2]"),
        ("{{ none | toIon }} {{ none | yaml }}", "null null"),
    ],
)
def test_aliases(template: str, expected: str, context: dict[str, Any]) -> None:
    assert render(template, {**context, "none": None}) == expected
