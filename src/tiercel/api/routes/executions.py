"""Executions (Kestra's ``ExecutionController``): create with multipart inputs, get, search."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import FormData, UploadFile

from tiercel.api.errors import ApiError
from tiercel.api.routes import Runner
from tiercel.api.schemas import ErrorBody, ExecutionDocument, PagedResults
from tiercel.errors import InputError
from tiercel.flows.inputs import java_str
from tiercel.model.execution import Execution
from tiercel.model.flow import Flow
from tiercel.model.inputs import BaseInput
from tiercel.model.state import StateType
from tiercel.repository.base import ExecutionFilter
from tiercel.storage.uri import InvalidStorageURI, StorageURI, flow_prefix

router = APIRouter(tags=["Executions"])

MAX_PAGE = 1_000_000
MAX_SIZE = 10_000
MAX_FILES = 100
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

SORT_KEYS = {
    "state.startDate": "start_date",
    "startDate": "start_date",
    "state.endDate": "end_date",
    "endDate": "end_date",
    "state.current": "state",
    "state": "state",
    "id": "id",
    "namespace": "namespace",
    "flowId": "flow_id",
}
"""Kestra's sort fields (``sort=state.startDate:desc``) → the repository's sort keys."""

_MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "format": "binary"},
                    "description": "One part per input: text fields, and files for FILE inputs.",
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


def _json(execution: Execution) -> Response:
    return Response(execution.to_json(), media_type="application/json")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """``key:value`` query parameters; the value may itself contain ``:``, a repeated key keeps the last."""
    labels: dict[str, str] = {}
    bad = []
    for raw in values or []:
        key, sep, value = raw.partition(":")
        if not sep or not key.strip():
            bad.append({"path": "labels", "message": f"Invalid label `{raw}`, expected `key:value`"})
        else:
            labels[key] = value
    if bad:
        raise ApiError(422, ", ".join(d["message"] for d in bad), bad)
    return labels


@router.get(
    "/executions/search",
    response_model=PagedResults[ExecutionDocument],
    responses={422: {"model": ErrorBody}},
    summary="Search executions",
)
async def search_executions(
    runner: Runner,
    namespace: str | None = Query(default=None, description="Namespace prefix (dot boundaries)."),
    flow_id: str | None = Query(default=None, alias="flowId"),
    state: list[StateType] | None = Query(default=None),
    labels: list[str] | None = Query(default=None, description="`key:value`, repeated."),
    start_date: datetime | None = Query(default=None, alias="startDate"),
    end_date: datetime | None = Query(default=None, alias="endDate"),
    q: str | None = None,
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    size: int = Query(default=25, ge=1, le=MAX_SIZE),
    sort: list[str] | None = Query(
        default=None, description="`field:asc|desc`, e.g. `state.startDate:desc`."
    ),
) -> Response:
    wanted = parse_labels(labels)
    filter_ = ExecutionFilter(
        namespace=namespace or None,
        flow_id=flow_id or None,
        states=state or None,
        labels=wanted or None,
        start_date=_utc(start_date),
        end_date=_utc(end_date),
        q=q or None,
    )
    found = await runner.repos.executions.search(filter_, page, size, _sort_key(sort))
    results = ",".join(execution.to_json() for execution in found.items)
    return Response(f'{{"results":[{results}],"total":{found.total}}}', media_type="application/json")


def _sort_key(values: list[str] | None) -> str:
    if not values:
        return "-start_date"
    field, _, direction = values[0].partition(":")
    key = SORT_KEYS.get(field)
    if key is None or direction.lower() not in ("", "asc", "desc"):
        known = ", ".join(sorted(SORT_KEYS))
        message = f"Invalid sort `{values[0]}`: use `field:asc` or `field:desc` with field one of {known}"
        raise ApiError(422, message, [{"path": "sort", "message": message}])
    return f"-{key}" if direction.lower() == "desc" else key


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionDocument,
    responses={404: {"model": ErrorBody}},
    summary="Get an execution",
)
async def get_execution(execution_id: str, runner: Runner) -> Response:
    return _json(await runner.get_execution(execution_id))


@router.post(
    "/executions/{namespace}/{id}",
    response_model=ExecutionDocument,
    responses=_ERRORS,
    openapi_extra=_MULTIPART_BODY,
    summary="Create an execution; inputs as multipart form fields and file parts",
)
async def create_execution(
    namespace: str,
    id: str,
    request: Request,
    runner: Runner,
    labels: list[str] | None = Query(default=None, description="`key:value`, repeated."),
    wait: bool = Query(default=False, description="Answer when the execution has ended (bounded wait)."),
    schedule_date: datetime | None = Query(default=None, alias="scheduleDate"),
) -> Response:
    flow = await runner.get_flow(namespace, id)
    if flow is None or flow.deleted:
        raise ApiError(404, f"Flow {namespace}.{id} not found")
    if flow.disabled:
        raise ApiError(409, f"Flow {namespace}.{id} is disabled")
    label_map = parse_labels(labels)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media in FORM_TYPES:
        async with request.form(max_files=MAX_FILES) as form:
            execution = await runner.create_execution(
                namespace,
                id,
                form_inputs(flow, form),
                labels=label_map,
                schedule_date=_utc(schedule_date),
            )
    else:
        if await request.body():
            raise ApiError(415, "Send inputs as multipart/form-data (text fields and file parts)")
        execution = await runner.create_execution(
            namespace, id, {}, labels=label_map, schedule_date=_utc(schedule_date)
        )
    if wait:
        try:
            execution = await runner.wait(execution.id, timeout=request.app.state.max_wait)
        except TimeoutError:
            execution = await runner.get_execution(execution.id)
    return _json(execution)


# -- inputs from a form ---------------------------------------------------------------------------


def _file_arity(declared: BaseInput) -> str | None:
    """``"one"`` for a FILE input, ``"many"`` for a list of files, ``None`` when files do not fit."""
    if declared.type == "FILE":
        return "one"
    if declared.type in ("ARRAY", "MULTISELECT") and getattr(declared, "item_type", None) == "FILE":
        return "many"
    return None


def _problem(input_id: str, reason: str, received: Any) -> tuple[str, str]:
    shown = java_str(received)
    if len(shown) > 200:
        shown = shown[:200] + "…"
    return input_id, f"Invalid input for `{input_id}`, {reason}, but received `{shown}`"


def _is_own_file(value: Any, flow: Flow) -> bool:
    """A text value for a FILE input must name a file this flow's executions stored.

    Anything else would be read from the server's own disk (a path) or from another flow's
    files, so it is refused here rather than handed to input resolution.
    """
    if not isinstance(value, str) or not value.startswith("kestra://"):
        return False
    try:
        uri = StorageURI.parse(value)
        return uri.is_under(flow_prefix(flow.namespace, flow.id).join("executions"))
    except InvalidStorageURI:
        return False


def _file_texts(value: Any) -> list[Any]:
    """The elements a list-of-files text value will be parsed into (JSON text or repeated fields)."""
    if isinstance(value, list):
        return value
    try:
        items = json.loads(value)
    except ValueError:
        return []  # not a list at all: input resolution reports it
    return items if isinstance(items, list) else []


def form_inputs(flow: Flow, form: FormData) -> dict[str, Any]:
    """Raw input values from the form, for ``LocalRunner.create_execution``.

    Undeclared fields are ignored, as in Kestra. Uploads go on as ``(filename, stream)`` pairs and
    only to inputs that take files; text for a FILE input must be a ``kestra:///`` URI of this flow.
    Several text values for a list input make the list; otherwise the last one wins.
    """
    declared: Mapping[str, BaseInput] = {item.id: item for item in reversed(flow.inputs or [])}
    texts: dict[str, list[str]] = {}
    uploads: dict[str, list[UploadFile]] = {}
    for key, part in form.multi_items():
        if key not in declared:
            continue
        if not isinstance(part, UploadFile):
            texts.setdefault(key, []).append(part)
        elif part.filename or part.size:  # browsers send an empty, nameless part for an unused file field
            uploads.setdefault(key, []).append(part)
    provided: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key in [*texts, *(k for k in uploads if k not in texts)]:
        try:
            if key in uploads:
                provided[key] = _upload_value(declared[key], uploads[key], key in texts)
            else:
                value = _text_value(declared[key], texts[key], flow)
                if value is not None:
                    provided[key] = value
        except _Refused as refused:
            problems.append(_problem(key, refused.reason, refused.received))
    if problems:
        raise InputError(", ".join(f"{where}: {message}" for where, message in problems), problems)
    return provided


class _Refused(Exception):
    def __init__(self, reason: str, received: Any) -> None:
        super().__init__(reason)
        self.reason, self.received = reason, received


def _upload_value(item: BaseInput, files: list[UploadFile], has_text: bool) -> Any:
    arity = _file_arity(item)
    name = files[-1].filename or ""
    if arity is None:
        raise _Refused(f"Expected `{item.type}` but received a file upload", name)
    if has_text:
        raise _Refused("Expected either a file upload or a text value", name)
    if arity == "one":
        return (name, files[-1].file)
    return [(f.filename or "", f.file) for f in files]


def _text_value(item: BaseInput, values: list[str], flow: Flow) -> Any:
    """The raw text value; ``None`` for an empty FILE field (no value, as if it were not sent)."""
    many = item.type in ("ARRAY", "MULTISELECT") and len(values) > 1
    value: Any = values if many else values[-1]
    arity = _file_arity(item)
    if arity == "one":
        if value == "":
            return None
        if not _is_own_file(value, flow):
            raise _Refused("Expected a file upload or a `kestra:///` URI of this flow", value)
    elif arity == "many":
        strays = [v for v in _file_texts(value) if isinstance(v, str) and not _is_own_file(v, flow)]
        if strays:
            raise _Refused("Expected file uploads or `kestra:///` URIs of this flow", strays[0])
    return value
