"""``GET /health``: ``{"status": "UP"}`` while the repository answers, 503 ``DOWN`` otherwise."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tiercel.api.routes import Runner
from tiercel.api.schemas import ComponentHealth, Health
from tiercel.engine.runner import LocalRunner

router = APIRouter(tags=["Health"])

CHECK_TIMEOUT = 2.0


@router.get("/health", response_model=Health, responses={503: {"model": Health}}, summary="Liveness")
async def health(runner: Runner) -> JSONResponse:
    repository = await _check_repository(runner)
    status = "UP" if repository.status == "UP" else "DOWN"
    body = Health(status=status, details={"repository": repository})
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if status == "UP" else 503)


async def _check_repository(runner: LocalRunner) -> ComponentHealth:
    """One primary-key read: cheap on every backend, and it proves the connection works."""
    try:
        await asyncio.wait_for(runner.repos.executions.get("health-check"), CHECK_TIMEOUT)
    except TimeoutError:
        return ComponentHealth(status="DOWN", message=f"no answer within {CHECK_TIMEOUT}s")
    except Exception as exc:
        return ComponentHealth(status="DOWN", message=type(exc).__name__)
    return ComponentHealth(status="UP")
