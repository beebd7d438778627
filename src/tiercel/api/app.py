"""The FastAPI application: Kestra's REST paths over a running engine.

``create_app`` only *uses* the runner it is given; whoever built the runner starts and stops it
(``server local`` around uvicorn, the tests around an ``httpx.ASGITransport``). The same routes
answer under ``/api/v1`` and under ``/api/v1/main`` (the tenant segment newer Kestra clients send).
"""

from __future__ import annotations

from fastapi import FastAPI

from tiercel import __version__
from tiercel.api.errors import install_error_handlers
from tiercel.api.routes import api_router, health
from tiercel.engine.runner import LocalRunner

API_PREFIX = "/api/v1"
TENANT_PREFIX = "/api/v1/main"
DEFAULT_MAX_WAIT = 60.0


def create_app(runner: LocalRunner, *, max_wait: float = DEFAULT_MAX_WAIT) -> FastAPI:
    """Build the app over ``runner``.

    Args:
        runner: a started engine (or one the caller starts before serving requests).
        max_wait: the longest ``POST /executions/…?wait=true`` holds the request, in seconds; the
            execution is returned as it is then.
    """
    app = FastAPI(
        title="Tiercel",
        version=__version__,
        summary="A Kestra-compatible workflow orchestrator",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runner = runner
    app.state.max_wait = max_wait
    install_error_handlers(app)
    router = api_router()
    app.include_router(router, prefix=API_PREFIX)
    app.include_router(router, prefix=TENANT_PREFIX, include_in_schema=False)
    app.include_router(health.router)
    return app
