"""Logs of an execution, ``/health``, and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import NS, create_flow


async def _finished_execution(client: httpx.AsyncClient) -> dict:
    await create_flow(client)
    response = await client.post(
        f"/api/v1/executions/{NS}/hello", params={"wait": True}, data={"name": "Ada", "count": "2"}
    )
    assert response.json()["state"]["current"] == "SUCCESS"
    return response.json()


async def test_logs_in_kestra_shape_with_filters(client: httpx.AsyncClient) -> None:
    execution = await _finished_execution(client)
    response = await client.get(f"/api/v1/logs/{execution['id']}")
    assert response.status_code == 200
    logs = response.json()
    messages = [entry["message"] for entry in logs]
    assert "Hello Ada" in messages and "count=2" in messages
    greet = next(entry for entry in logs if entry["message"] == "Hello Ada")
    assert greet["namespace"] == NS and greet["flowId"] == "hello" and greet["taskId"] == "greet"
    assert greet["executionId"] == execution["id"] and greet["level"] == "INFO"
    assert {"taskRunId", "timestamp"} <= set(greet)
    assert None not in greet.values()  # Kestra leaves null properties out

    info = (await client.get(f"/api/v1/logs/{execution['id']}", params={"minLevel": "INFO"})).json()
    assert "count=2" not in [entry["message"] for entry in info]
    by_task = (await client.get(f"/api/v1/logs/{execution['id']}", params={"taskId": "debug"})).json()
    assert [entry["message"] for entry in by_task] == ["count=2"]
    by_run = (
        await client.get(f"/api/v1/logs/{execution['id']}", params={"taskRunId": greet["taskRunId"]})
    ).json()
    assert [entry["message"] for entry in by_run] == ["Hello Ada"]


async def test_logs_errors(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/logs/unknown")).status_code == 404
    execution = await _finished_execution(client)
    response = await client.get(f"/api/v1/logs/{execution['id']}", params={"minLevel": "LOUD"})
    assert response.status_code == 422
    assert response.json()["details"][0]["path"] == "minLevel"


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "UP"
    assert response.json()["details"]["repository"] == {"status": "UP"}


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/flows",
        "/api/v1/flows/validate",
        "/api/v1/flows/{namespace}/{id}",
        "/api/v1/executions/{namespace}/{id}",
        "/api/v1/executions/search",
        "/api/v1/executions/{execution_id}",
        "/api/v1/logs/{execution_id}",
        "/health",
    } <= set(paths)
    assert not any(path.startswith("/api/v1/main/") for path in paths)  # documented once
    assert "application/x-yaml" in paths["/api/v1/flows"]["post"]["requestBody"]["content"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
