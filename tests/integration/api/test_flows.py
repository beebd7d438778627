"""Flows: create, get, update, delete and validate, in Kestra's JSON shapes."""

from __future__ import annotations

import textwrap

import httpx

from tests.integration.api.conftest import HELLO, NS, YAML, create_flow
from tiercel.engine.runner import LocalRunner


async def test_create_returns_the_flow_with_revision_and_source(client: httpx.AsyncClient) -> None:
    body = await create_flow(client)
    assert body["id"] == "hello"
    assert body["namespace"] == NS
    assert body["revision"] == 1
    assert body["source"] == HELLO
    assert body["disabled"] is False and body["deleted"] is False
    assert body["labels"] == [{"key": "team", "value": "data"}]
    assert body["tasks"][0]["type"] == "io.kestra.plugin.core.log.Log"
    assert body["inputs"][0] == {"id": "name", "type": "STRING", "required": True, "defaults": "world"}
    assert "description" not in body  # Kestra leaves null properties out


async def test_create_twice_is_refused_naming_the_id(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    response = await client.post("/api/v1/flows", content=HELLO, headers=YAML)
    assert response.status_code == 422
    assert response.json()["details"] == [{"path": "id", "message": "Flow id already exists"}]


async def test_invalid_flow_is_422_with_path_and_line(client: httpx.AsyncClient) -> None:
    source = "id: bad\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.example.Nope\n"
    response = await client.post("/api/v1/flows", content=source, headers=YAML)
    assert response.status_code == 422
    body = response.json()
    assert body["message"].startswith("Invalid entity: tasks[0].type: Invalid type: io.example.Nope")
    assert body["details"] == [
        {"path": "tasks[0].type", "message": "Invalid type: io.example.Nope", "line": 5, "column": 11}
    ]


async def test_yaml_syntax_error_and_non_utf8_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/flows", content="id: [unclosed\n", headers=YAML)
    assert response.status_code == 422
    assert response.json()["details"][0]["line"] == 2
    response = await client.post("/api/v1/flows", content=b"id: \xff\xfe", headers=YAML)
    assert response.status_code == 422
    assert response.json()["details"][0]["path"] == "body"


async def test_get_with_and_without_source(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    plain = (await client.get(f"/api/v1/flows/{NS}/hello")).json()
    assert "source" not in plain and plain["revision"] == 1
    with_source = (await client.get(f"/api/v1/flows/{NS}/hello", params={"source": "true"})).json()
    assert with_source["source"] == HELLO
    missing = await client.get(f"/api/v1/flows/{NS}/nope")
    assert missing.status_code == 404
    assert missing.json() == {"message": f"Flow {NS}.nope not found", "details": []}


async def test_update_makes_a_revision_only_when_the_source_changes(
    client: httpx.AsyncClient, runner: LocalRunner
) -> None:
    await create_flow(client)
    changed = HELLO.replace("Hello {{", "Hi {{")
    response = await client.put(f"/api/v1/flows/{NS}/hello", content=changed, headers=YAML)
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 2
    again = await client.put(f"/api/v1/flows/{NS}/hello", content=changed, headers=YAML)
    assert again.json()["revision"] == 2
    first = await client.get(f"/api/v1/flows/{NS}/hello", params={"revision": 1, "source": True})
    assert first.json()["source"] == HELLO
    assert (await client.get(f"/api/v1/flows/{NS}/hello", params={"revision": 9})).status_code == 404
    live = await runner.get_flow(NS, "hello")
    assert live is not None and live.revision == 2


async def test_update_refuses_another_id_or_namespace(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    other_id = HELLO.replace("id: hello", "id: other", 1)
    response = await client.put(f"/api/v1/flows/{NS}/hello", content=other_id, headers=YAML)
    assert response.status_code == 422
    assert [d["path"] for d in response.json()["details"]] == ["id"]
    other_ns = HELLO.replace(f"namespace: {NS}", "namespace: company.other")
    response = await client.put(f"/api/v1/flows/{NS}/hello", content=other_ns, headers=YAML)
    assert response.status_code == 422
    assert [d["path"] for d in response.json()["details"]] == ["namespace"]
    assert "Illegal namespace update" in response.json()["message"]


async def test_update_of_an_unknown_flow_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(f"/api/v1/flows/{NS}/hello", content=HELLO, headers=YAML)
    assert response.status_code == 404


async def test_delete_then_recreate(client: httpx.AsyncClient) -> None:
    await create_flow(client)
    response = await client.delete(f"/api/v1/flows/{NS}/hello")
    assert response.status_code == 204 and response.content == b""
    assert (await client.get(f"/api/v1/flows/{NS}/hello")).status_code == 404
    deleted = await client.get(f"/api/v1/flows/{NS}/hello", params={"allowDeleted": True})
    assert deleted.json()["deleted"] is True and deleted.json()["revision"] == 2
    assert (await client.delete(f"/api/v1/flows/{NS}/hello")).status_code == 404
    assert (await client.post(f"/api/v1/executions/{NS}/hello")).status_code == 404

    again = await create_flow(client)
    assert again["revision"] == 3
    run = await client.post(f"/api/v1/executions/{NS}/hello", params={"wait": True})
    assert run.status_code == 200 and run.json()["flowRevision"] == 3
    assert run.json()["state"]["current"] == "SUCCESS"


async def test_validate_reports_each_document_with_line_numbers(client: httpx.AsyncClient) -> None:
    invalid = textwrap.dedent(
        """\
        id: broken
        namespace: company.team
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
        """
    )
    body = HELLO + "---\n" + invalid + "---\n" + "id: [\n"
    response = await client.post("/api/v1/flows/validate", content=body, headers=YAML)
    assert response.status_code == 200, response.text
    first, second, third = response.json()
    assert first["index"] == 0 and first["flow"] == "hello" and first["namespace"] == NS
    assert first["constraints"] is None
    assert second["index"] == 1 and second["flow"] == "broken" and second["namespace"] == NS
    start = HELLO.count("\n") + 2  # the document's first line in the whole body
    assert second["constraints"] == (
        f"tasks[0].message: missing required property `message` (line {start + 3}, column 5)"
    )
    assert second["details"][0]["line"] == start + 3
    assert set(second) >= {"outdated", "deprecationPaths", "warnings", "infos"}
    assert third["flow"] is None and third["constraints"]


async def test_validate_empty_body_is_an_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/flows/validate", content="", headers=YAML)
    assert response.status_code == 200 and response.json() == []


async def test_routes_answer_under_the_main_tenant(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/main/flows", content=HELLO, headers=YAML)
    assert response.status_code == 200
    assert (await client.get(f"/api/v1/main/flows/{NS}/hello")).json()["revision"] == 1
    assert (await client.get(f"/api/v1/flows/{NS}/hello")).json()["revision"] == 1
