"""Every error leaves the API as JSON ``{"message": …, "details": [{"path": …, "message": …}]}``.

Status codes: 404 for an unknown flow or execution, 409 when the request conflicts with the
current state (a disabled flow, an execution that is not paused), 422 for invalid input with each
problem naming its field, 400 for a body that cannot be parsed at all. Bad input must never produce a
500: a 500 here is a bug, and its body does not say more than that.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tiercel.errors import (
    InputError,
    NotFoundError,
    StorageNotFound,
    TemplateError,
    TiercelError,
    ValidationError,
)
from tiercel.storage.uri import InvalidStorageURI

log = logging.getLogger(__name__)

_LOCATION = re.compile(r":(\d+):(\d+)$")
_FIELD_PREFIX = re.compile(r"^(\(flow\)|[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*): (.+)$", re.DOTALL)


class ApiError(Exception):
    """Raised by routes for an answer other than 200; turned into the JSON error body."""

    def __init__(self, status: int, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)


def error_body(message: str, details: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"message": message, "details": list(details)}


def problem_detail(location: str, message: str) -> dict[str, Any]:
    """One ``(location, message)`` pair of a flow ``ValidationError`` as an error detail.

    ``location`` is ``source:line:col`` (or just ``source``); ``message`` usually starts with the
    field path (``tasks[0].type: Invalid type: x``), which becomes ``path``.
    """
    detail: dict[str, Any] = {"path": "", "message": message}
    field = _FIELD_PREFIX.match(message)
    if field is not None:
        detail["path"], detail["message"] = field.group(1), field.group(2)
    position = _LOCATION.search(location)
    if position is not None:
        detail["line"], detail["column"] = int(position.group(1)), int(position.group(2))
    return detail


def flow_problem_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [problem_detail(location, message) for location, message in exc.problems]


def invalid_flow(exc: ValidationError) -> ApiError:
    details = flow_problem_details(exc)
    parts = [f"{d['path']}: {d['message']}" if d["path"] else d["message"] for d in details]
    return ApiError(422, "Invalid entity: " + (", ".join(parts) or str(exc)), details)


def input_problem_details(exc: ValidationError) -> list[dict[str, Any]]:
    """``InputError.problems`` are ``(input id, Kestra message)``; the path is ``inputs.<id>``."""
    details = []
    for where, message in exc.problems:
        path = where if where == "inputs" or where.startswith("inputs.") else f"inputs.{where}"
        details.append({"path": path, "message": message})
    return details


def _json(status: int, message: str, details: Sequence[dict[str, Any]] = ()) -> JSONResponse:
    return JSONResponse(error_body(message, details), status_code=status)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(exc.status, exc.message, exc.details)


async def _tiercel_error(request: Request, exc: Exception) -> JSONResponse:
    """Errors the engine raised on purpose; the mapping is by kind, most specific first."""
    if isinstance(exc, InputError):
        return _json(422, str(exc), input_problem_details(exc))
    if isinstance(exc, ValidationError):
        return _json(422, str(exc), flow_problem_details(exc))
    if isinstance(exc, NotFoundError | StorageNotFound):
        return _json(404, str(exc))
    if isinstance(exc, InvalidStorageURI | TemplateError):
        return _json(422, str(exc))
    return _json(409, str(exc))


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
        details.append({"path": where, "message": str(err.get("msg", "invalid value"))})
    summary = ", ".join(f"{d['path']}: {d['message']}" for d in details)
    return _json(422, f"Invalid request: {summary}", details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    response = _json(exc.status_code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(500, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(TiercelError, _tiercel_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
