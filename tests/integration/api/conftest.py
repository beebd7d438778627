"""The API over a real in-memory ``LocalRunner``, driven in-process through ``httpx.ASGITransport``.

Waits are bounded: ``?wait=true`` is capped by the app's ``max_wait`` (5 s here) and
``runner.wait`` by ``TIMEOUT``, both far below pytest's timeout.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tiercel.api import create_app
from tiercel.engine.runner import LocalRunner

NS = "company.team"
TIMEOUT = 10.0
YAML = {"content-type": "application/x-yaml"}

HELLO = textwrap.dedent(
    """\
    id: hello
    namespace: company.team
    labels:
      team: data
    inputs:
      - id: name
        type: STRING
        defaults: world
      - id: count
        type: INT
        required: false
    tasks:
      - id: greet
        type: io.kestra.plugin.core.log.Log
        message: "Hello {{ inputs.name }}"
      - id: debug
        type: io.kestra.plugin.core.log.Log
        level: DEBUG
        message: "count={{ inputs.count }}"
    """
)

UPLOAD = textwrap.dedent(
    """\
    id: upload
    namespace: company.team
    inputs:
      - id: data
        type: FILE
      - id: note
        type: STRING
        required: false
    tasks:
      - id: content
        type: io.kestra.plugin.core.debug.Return
        format: "{{ read(inputs.data) }}"
    """
)


@pytest.fixture
async def runner() -> AsyncIterator[LocalRunner]:
    async with LocalRunner() as local:
        yield local


@pytest.fixture
def app(runner: LocalRunner) -> FastAPI:
    return create_app(runner, max_wait=5.0)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://tiercel") as http:
        yield http


async def create_flow(client: httpx.AsyncClient, source: str = HELLO) -> dict:
    response = await client.post("/api/v1/flows", content=source, headers=YAML)
    assert response.status_code == 200, response.text
    return response.json()
