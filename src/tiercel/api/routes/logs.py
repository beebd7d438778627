"""Logs (Kestra's ``LogController``): one execution's logs, filtered by level, task run or task."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from tiercel.api.errors import ApiError
from tiercel.api.routes import Runner
from tiercel.api.schemas import ErrorBody, LogDocument, log_json
from tiercel.model.task import LogLevel

router = APIRouter(tags=["Logs"])


@router.get(
    "/logs/{execution_id}",
    response_model=list[LogDocument],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Get the logs of an execution",
)
async def execution_logs(
    execution_id: str,
    runner: Runner,
    min_level: LogLevel | None = Query(default=None, alias="minLevel"),
    task_run_id: str | None = Query(default=None, alias="taskRunId"),
    task_id: str | None = Query(default=None, alias="taskId"),
    attempt: int | None = Query(default=None, ge=0, le=2**31 - 1),
) -> JSONResponse:
    entries = await runner.repos.logs.find(
        execution_id,
        min_level=min_level,
        task_run_id=task_run_id or None,
        task_id=task_id or None,
        attempt=attempt,
    )
    # Logs outlive a deleted execution; only an id nothing is known about is a 404.
    if not entries and await runner.repos.executions.get(execution_id) is None:
        raise ApiError(404, f"Execution {execution_id} not found")
    return JSONResponse([log_json(entry) for entry in entries])
