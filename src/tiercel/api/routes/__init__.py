"""Route modules, one per Kestra controller, and the dependencies they share.

The runner is read from ``app.state`` (set by :func:`tiercel.api.app.create_app`), never from a
module global, so two apps over two runners can live in one process (the tests do).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from tiercel.api.errors import ApiError
from tiercel.engine.runner import LocalRunner


def refuse_nul(request: Request) -> None:
    """No backend stores a NUL character in a key (PostgreSQL refuses it outright), so a path or
    query parameter holding one is refused before it reaches a repository."""
    if "\x00" in request.url.path or any("\x00" in v for v in request.query_params.values()):
        raise ApiError(422, "Path and query parameters may not contain NUL characters")


def get_runner(request: Request) -> LocalRunner:
    return request.app.state.runner


Runner = Annotated[LocalRunner, Depends(get_runner)]


def api_router() -> APIRouter:
    """The ``/api/v1`` routes; ``create_app`` mounts this router twice (plain and ``/main`` tenant)."""
    from tiercel.api.routes import executions, flows, logs

    router = APIRouter(dependencies=[Depends(refuse_nul)])
    router.include_router(flows.router)
    router.include_router(executions.router)
    router.include_router(logs.router)
    return router
