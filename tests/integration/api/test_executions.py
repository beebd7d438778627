"""Executions: create with multipart inputs (text and files), get, search, and their errors."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.api.conftest import HELLO, NS, TIMEOUT, UPLOAD, YAML, create_flow
from tiercel.api import create_app
from tiercel.engine.runner import LocalRunner
from tiercel.model.state import StateType


async def test_run_with_text_inputs_and_labels(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    response = await client.post(
        f"/api/v1/executions/{NS}/hello",
        params={"wait": "true", "labels": ["env:prod", "url:http://x"]},
        data={"name": "Ada", "count": "3", "undeclared": "ignored"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"]["current"] == "SUCCESS"
    assert body["inputs"] == {"name": "Ada", "count": 3}
    labels = {label["key"]: label["value"] for label in body["labels"]}
    assert labels["env"] == "prod" and labels["url"] == "http://x"


async def test_file_upload_is_stored_and_readable(client: httpx.AsyncClient) -> None:
    await create_flow(client, UPLOAD)
    response = await client.post(
        f"/api/v1/executions/{NS}/upload",
        params={"wait": True},
        data={"note": "n"},
        files={"data": ("../../report.csv", b"a,b\n1,2\n", "text/csv")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"]["current"] == "SUCCESS"
    uri = body["inputs"]["data"]
    assert uri == f"kestra:///company/team/upload/executions/{body['id']}/inputs/data/report.csv"
    assert body["taskRunList"][0]["outputs"] == {"value": "a,b\n1,2\n"}

    # As in Kestra, a later execution may name a file of the same flow (``read()`` still confines
    # each execution to its own files).
    again = await client.post(f"/api/v1/executions/{NS}/upload", data={"data": uri})
    assert again.status_code == 200, again.text
    assert again.json()["inputs"]["data"] == uri


@pytest.mark.parametrize(
    "value",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "kestra:///company/team/other/executions/x/inputs/data/f.txt",
        "kestra:///company/team/upload/executions/../../other/executions/x/f",
        "kestra:///company/team/upload/executions/%252e%252e/x",
    ],
)
async def test_file_input_text_must_be_a_file_of_this_flow(client: httpx.AsyncClient, value: str) -> None:
    await create_flow(client, UPLOAD)
    response = await client.post(f"/api/v1/executions/{NS}/upload", data={"data": value})
    assert response.status_code == 422, response.text
    detail = response.json()["details"][0]
    assert detail["path"] == "inputs.data"
    assert detail["message"].startswith("Invalid input for `data`, Expected a file upload")


async def test_invalid_inputs_are_422_with_kestra_messages(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    response = await client.post(f"/api/v1/executions/{NS}/hello", data={"count": "many"})
    assert response.status_code == 422
    body = response.json()
    assert body["details"] == [
        {
            "path": "inputs.count",
            "message": "Invalid input for `count`, Expected `INT` but received `many`, but received `many`",
        }
    ]
    upload = await client.post(f"/api/v1/executions/{NS}/hello", files={"name": ("x.txt", b"x")})
    assert upload.status_code == 422
    assert upload.json()["details"][0]["path"] == "inputs.name"


async def test_missing_required_file_input(client: httpx.AsyncClient) -> None:
    await create_flow(client, UPLOAD)
    response = await client.post(f"/api/v1/executions/{NS}/upload", data={"note": "x"})
    assert response.status_code == 422
    assert response.json()["details"][0]["path"] == "inputs.data"
    assert "missing required input" in response.json()["details"][0]["message"].lower()


async def test_get_execution_is_exactly_the_engine_record(
    client: httpx.AsyncClient, runner: LocalRunner
) -> None:
    await create_flow(client)
    created = await client.post(f"/api/v1/executions/{NS}/hello")
    assert created.status_code == 200
    execution_id = created.json()["id"]
    final = await runner.wait(execution_id, timeout=TIMEOUT)
    response = await client.get(f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200
    assert response.json() == final.to_dict()
    missing = await client.get("/api/v1/executions/doesNotExist")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Execution doesNotExist not found"


async def test_unknown_and_disabled_flows(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"/api/v1/executions/{NS}/nope")).status_code == 404
    disabled = HELLO.replace("id: hello", "id: off", 1) + "disabled: true\n"
    await create_flow(client, disabled)
    response = await client.post(f"/api/v1/executions/{NS}/off")
    assert response.status_code == 409
    assert response.json()["message"] == f"Flow {NS}.off is disabled"


async def test_bad_label_and_non_form_body(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    response = await client.post(f"/api/v1/executions/{NS}/hello", params={"labels": "novalue"})
    assert response.status_code == 422
    assert response.json()["details"][0]["path"] == "labels"
    response = await client.post(
        f"/api/v1/executions/{NS}/hello",
        content=b'{"name": "x"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 415


async def test_wait_is_bounded(runner: LocalRunner) -> None:
    slow = textwrap.dedent(
        """\
        id: slow
        namespace: company.team
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT30S
        """
    )
    app = create_app(runner, max_wait=0.3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://tiercel") as client:
        await create_flow(client, slow)
        started = datetime.now(UTC)
        response = await client.post(f"/api/v1/executions/{NS}/slow", params={"wait": True})
        assert response.status_code == 200
        assert datetime.now(UTC) - started < timedelta(seconds=5)
        assert response.json()["state"]["current"] in ("CREATED", "RUNNING")
        await runner.kill(response.json()["id"])
        await runner.wait(response.json()["id"], timeout=TIMEOUT)


async def test_schedule_date_is_kept(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    when = "2099-01-01T10:00:00Z"
    response = await client.post(f"/api/v1/executions/{NS}/hello", params={"scheduleDate": when})
    assert response.status_code == 200, response.text
    assert response.json()["scheduleDate"].startswith("2099-01-01T10:00:00")


async def _run(client: httpx.AsyncClient, flow_id: str, *labels: str, **inputs: str) -> dict:
    response = await client.post(
        f"/api/v1/executions/{NS}/{flow_id}", params={"wait": True, "labels": list(labels)}, data=inputs
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_search(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    failing = textwrap.dedent(
        """\
        id: failing
        namespace: company.team.sub
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
        """
    )
    await client.post("/api/v1/flows", content=failing, headers=YAML)
    first = await _run(client, "hello", "env:prod")
    second = await _run(client, "hello", "env:dev")
    response = await client.post("/api/v1/executions/company.team.sub/failing", params={"wait": True})
    failed = response.json()
    assert failed["state"]["current"] == "FAILED"

    async def ids(**params: object) -> tuple[set[str], int]:
        response = await client.get("/api/v1/executions/search", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"results", "total"}
        return {e["id"] for e in body["results"]}, body["total"]

    assert await ids(namespace=NS) == ({first["id"], second["id"], failed["id"]}, 3)
    assert await ids(namespace="company.team.sub") == ({failed["id"]}, 1)
    assert await ids(namespace="company.te") == (set(), 0)
    assert await ids(flowId="hello") == ({first["id"], second["id"]}, 2)
    assert await ids(state="FAILED") == ({failed["id"]}, 1)
    assert await ids(state=["FAILED", "SUCCESS"]) == ({first["id"], second["id"], failed["id"]}, 3)
    assert await ids(labels="env:prod") == ({first["id"]}, 1)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await ids(startDate=future) == (set(), 0)
    assert await ids(endDate=future) == ({first["id"], second["id"], failed["id"]}, 3)
    page, total = await ids(flowId="hello", size=1, page=2)
    assert len(page) == 1 and total == 2

    ascending = await client.get("/api/v1/executions/search", params={"sort": "state.startDate:asc"})
    assert [e["id"] for e in ascending.json()["results"]] == [first["id"], second["id"], failed["id"]]
    descending = await client.get("/api/v1/executions/search", params={"flowId": "hello"})
    assert [e["id"] for e in descending.json()["results"]] == [second["id"], first["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"state": "NOPE"},
        {"page": "0"},
        {"size": "0"},
        {"startDate": "yesterday"},
        {"labels": "x"},
        {"sort": "x:y"},
    ],
)
async def test_search_rejects_bad_parameters_naming_them(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get("/api/v1/executions/search", params=params)
    assert response.status_code == 422
    name = next(iter(params))
    assert any(d["path"].split(".")[0] == name for d in response.json()["details"]), response.json()


async def test_execution_states_are_kestra_names(runner: LocalRunner) -> None:
    assert {s.value for s in StateType} >= {"CREATED", "RUNNING", "SUCCESS", "FAILED", "KILLED"}


async def test_empty_file_part_and_repeated_list_fields(client: httpx.AsyncClient) -> None:
    source = textwrap.dedent(
        """\
        id: lists
        namespace: company.team
        inputs:
          - id: attachment
            type: FILE
            required: false
          - id: tags
            type: ARRAY
            itemType: STRING
        tasks:
          - id: show
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.tags | join(',') }}"
        """
    )
    await create_flow(client, source)
    response = await client.post(
        f"/api/v1/executions/{NS}/lists",
        params={"wait": True},
        data={"tags": ["a", "b"]},
        files={"attachment": ("", b"")},  # what a browser sends for an unused file field
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["inputs"] == {"attachment": None, "tags": ["a", "b"]}
    assert body["taskRunList"][0]["outputs"] == {"value": "a,b"}
