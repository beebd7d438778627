"""Garbage sent to every route is answered below 500, as a JSON ``{message, details}``.

The route table is read from the app, so a new route without a case here fails the coverage test.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.api.conftest import NS, create_flow

GARBAGE_BODIES: list[tuple[str | None, bytes]] = [
    (None, b""),
    ("application/x-yaml", b"\x00\xff\xfe\x80garbage"),
    ("application/x-yaml", b"{{{{ [[[ :::"),
    ("application/x-yaml", b"a:\n" + b"  - [" * 2000),
    (
        "application/x-yaml",
        b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
    ),
    ("application/x-yaml", b"id: x\nnamespace: y\ntasks: {}\n---\n- 1\n---\n!!python/object:os.system x\n"),
    ("application/json", b'{"id": 1, "tasks": null}'),
    ("multipart/form-data", b"--x\r\nnope"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n"),
    (
        "multipart/form-data; boundary=zz",
        b'--zz\r\nContent-Disposition: form-data; name="name"; filename="../x"'
        b'\r\n\r\n\x00\xff\r\n--zz\r\nContent-Disposition: form-data; name="count"\r\n\r\n\xff\r\n--zz--\r\n',
    ),
    ("application/x-www-form-urlencoded", b"count=%FF%FE&name=%00&=&&=="),
]

GARBAGE_QUERY = (
    "page=-1&size=abc&revision=x&wait=maybe&labels=:&labels=nocolon&state=??&minLevel=&scheduleDate=soon"
    "&startDate=2024-13-45&endDate=0000&sort=:::&source=perhaps&allowDeleted=2&attempt=-5&flowId=%00&q=%00"
)

PATH_VALUES = {
    "namespace": [NS, "%00", "..", "a" * 3000, "ünï cødé"],
    "id": ["hello", "%2e%2e", "x" * 3000],
    "execution_id": ["%00", "..", "y" * 3000, "nope"],
}

COVERED = {
    ("POST", "/flows"),
    ("POST", "/flows/validate"),
    ("GET", "/flows/{namespace}/{id}"),
    ("PUT", "/flows/{namespace}/{id}"),
    ("DELETE", "/flows/{namespace}/{id}"),
    ("POST", "/executions/{namespace}/{id}"),
    ("GET", "/executions/search"),
    ("GET", "/executions/{execution_id}"),
    ("GET", "/logs/{execution_id}"),
    ("GET", "/health"),
}


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every documented operation, plus its ``/api/v1/main`` twin (mounted but not documented)."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            found.append((method.upper(), path))
            if path.startswith("/api/v1/"):
                found.append((method.upper(), "/api/v1/main" + path[len("/api/v1") :]))
    return sorted(found, key=lambda route: (route[0] == "DELETE", route))  # delete the flow last


def _short(path: str) -> str:
    for prefix in ("/api/v1/main", "/api/v1"):
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return path


def _urls(template: str) -> list[str]:
    urls = [template]
    for name, values in PATH_VALUES.items():
        marker = "{" + name + "}"
        if marker in template:
            urls = [url.replace(marker, value) for url in urls for value in values]
    return urls


def test_every_route_is_covered(app: FastAPI) -> None:
    assert {(method, _short(path)) for method, path in _routes(app)} == COVERED
    assert len(_routes(app)) == 2 * len(COVERED) - 1  # all but /health twice


@pytest.mark.timeout(120)
async def test_garbage_never_gets_a_500(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_flow(client)  # so that some garbage reaches past the flow lookup
    checked = 0
    for method, template in _routes(app):
        for url in _urls(template):
            for content_type, body in GARBAGE_BODIES:
                headers = {"content-type": content_type} if content_type else {}
                for query in ("", GARBAGE_QUERY):
                    target = f"{url}?{query}" if query else url
                    response = await client.request(method, target, content=body, headers=headers)
                    where = f"{method} {target[:120]} {content_type} {body[:40]!r}"
                    assert response.status_code < 500, (
                        f"{where}: {response.status_code} {response.text[:300]}"
                    )
                    if response.status_code >= 400:
                        error = response.json()
                        assert isinstance(error["message"], str) and isinstance(error["details"], list), where
                    checked += 1
    assert checked > 500
