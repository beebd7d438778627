"""Flows (Kestra's ``FlowController``): YAML in, Kestra's flow JSON out.

The flow repository (``runner.repos.flows``) is what reads answer from: it keeps every revision
with its source. Writes go through ``runner.deploy`` so the engine sees the new revision at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from tiercel.api.errors import ApiError, flow_problem_details, invalid_flow
from tiercel.api.routes import Runner
from tiercel.api.schemas import ErrorBody, ErrorDetail, FlowDocument, ValidateConstraintViolation, flow_json
from tiercel.engine.runner import LocalRunner
from tiercel.errors import ValidationError
from tiercel.flows.loader import load_mapping, split_documents
from tiercel.flows.validate import parse_flow
from tiercel.model.flow import FlowWithSource
from tiercel.repository.base import FlowRecord

router = APIRouter(tags=["Flows"])

MAX_SOURCE_BYTES = 4 * 1024 * 1024
SOURCE = "flow"
"""The name parse errors give the body; only the ``:line:col`` after it reaches clients."""

_YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-yaml": {"schema": {"type": "string"}}},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}


async def yaml_body(request: Request) -> str:
    """The request body as text. Any content type is read as YAML (JSON is YAML too)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SOURCE_BYTES:
        raise ApiError(413, f"The flow source is larger than {MAX_SOURCE_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_SOURCE_BYTES:
        raise ApiError(413, f"The flow source is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            422, "The flow source is not UTF-8 text", [{"path": "body", "message": str(exc)}]
        ) from None


def parse(text: str) -> FlowWithSource:
    try:
        return parse_flow(text, SOURCE)
    except ValidationError as exc:
        raise invalid_flow(exc) from None


def _document(record: FlowRecord, *, source: bool = True) -> JSONResponse:
    return JSONResponse(flow_json(record.flow, record.source if source else None))


async def _stored(runner: LocalRunner, namespace: str, flow_id: str) -> FlowRecord:
    record = await runner.repos.flows.get(namespace, flow_id)
    if record is None:
        raise ApiError(404, f"Flow {namespace}.{flow_id} not found")
    return record


async def _deploy(runner: LocalRunner, parsed: FlowWithSource) -> FlowRecord:
    flow = await runner.deploy(parsed)
    record = await runner.repos.flows.get(flow.namespace, flow.id)
    if record is None:  # the repository refused the save; the engine still has the flow
        return FlowRecord(flow.namespace, flow.id, flow.revision or 1, parsed.source, False, flow)
    return record


async def forget_flow(runner: LocalRunner, namespace: str, flow_id: str) -> int:
    """Record the deletion as a new revision: new executions, subflow calls and Flow triggers
    refuse the flow, while executions of earlier revisions still find theirs."""
    return await runner.delete_flow(namespace, flow_id)


@router.post(
    "/flows/validate",
    response_model=list[ValidateConstraintViolation],
    openapi_extra=_YAML_BODY,
    summary="Validate one or more flows (documents separated by ---)",
)
async def validate_flows(request: Request) -> list[ValidateConstraintViolation]:
    text = await yaml_body(request)
    return [
        _validate_one(index, first_line, doc) for index, (first_line, doc) in enumerate(split_documents(text))
    ]


def _validate_one(index: int, first_line: int, text: str) -> ValidateConstraintViolation:
    try:
        parsed = parse_flow(text, SOURCE, first_line=first_line)
    except ValidationError as exc:
        details = flow_problem_details(exc)
        flow_id, namespace = _identity(text, first_line)
        return ValidateConstraintViolation(
            index=index,
            flow=flow_id,
            namespace=namespace,
            constraints="\n".join(_constraint_line(d) for d in details),
            details=[ErrorDetail(**d) for d in details],
        )
    return ValidateConstraintViolation(index=index, flow=parsed.flow.id, namespace=parsed.flow.namespace)


def _constraint_line(detail: dict[str, Any]) -> str:
    text = f"{detail['path']}: {detail['message']}" if detail["path"] else detail["message"]
    if "line" in detail:
        text += f" (line {detail['line']}, column {detail['column']})"
    return text


def _identity(text: str, first_line: int) -> tuple[str | None, str | None]:
    """``id`` and ``namespace`` of an invalid document, when they can still be read."""
    try:
        data = load_mapping(text, SOURCE, first_line=first_line)
    except ValidationError:
        return None, None
    flow_id, namespace = data.get("id"), data.get("namespace")
    return (
        flow_id if isinstance(flow_id, str) else None,
        namespace if isinstance(namespace, str) else None,
    )


@router.post(
    "/flows",
    response_model=FlowDocument,
    responses=_ERRORS,
    openapi_extra=_YAML_BODY,
    summary="Create a flow from YAML",
)
async def create_flow(request: Request, runner: Runner) -> JSONResponse:
    parsed = parse(await yaml_body(request))
    flow = parsed.flow
    if await runner.repos.flows.get(flow.namespace, flow.id) is not None:
        message = f"Flow id already exists: {flow.namespace}.{flow.id}"
        raise ApiError(422, message, [{"path": "id", "message": "Flow id already exists"}])
    return _document(await _deploy(runner, parsed))


@router.get(
    "/flows/{namespace}/{id}",
    response_model=FlowDocument,
    responses=_ERRORS,
    summary="Get a flow (latest revision unless `revision` is given)",
)
async def get_flow(
    namespace: str,
    id: str,
    runner: Runner,
    source: bool = False,
    revision: int | None = Query(default=None, ge=1, le=2**31 - 1),
    allow_deleted: bool = Query(default=False, alias="allowDeleted"),
) -> JSONResponse:
    record = await runner.repos.flows.get(namespace, id, revision, allow_deleted=allow_deleted)
    if record is None:
        what = f"Flow {namespace}.{id}" + (f" revision {revision}" if revision is not None else "")
        raise ApiError(404, f"{what} not found")
    return _document(record, source=source)


@router.put(
    "/flows/{namespace}/{id}",
    response_model=FlowDocument,
    responses=_ERRORS,
    openapi_extra=_YAML_BODY,
    summary="Update a flow from YAML (a new revision when the source changed)",
)
async def update_flow(namespace: str, id: str, request: Request, runner: Runner) -> JSONResponse:
    text = await yaml_body(request)
    current = await _stored(runner, namespace, id)
    parsed = parse(text)
    details = []
    if parsed.flow.id != id:
        details.append({"path": "id", "message": f"Illegal flow id update: `{parsed.flow.id}` is not `{id}`"})
    if parsed.flow.namespace != namespace:
        details.append(
            {
                "path": "namespace",
                "message": f"Illegal namespace update: `{parsed.flow.namespace}` is not `{namespace}`",
            }
        )
    if details:
        raise ApiError(
            422, "Invalid entity: " + ", ".join(f"{d['path']}: {d['message']}" for d in details), details
        )
    live = await runner.get_flow(namespace, id)
    if current.source == text and live is not None and not live.deleted:
        return _document(current)
    return _document(await _deploy(runner, parsed))


@router.delete(
    "/flows/{namespace}/{id}",
    status_code=204,
    response_class=Response,
    responses=_ERRORS,
    summary="Delete a flow (recorded as a deleted revision)",
)
async def delete_flow(namespace: str, id: str, runner: Runner) -> Response:
    await _stored(runner, namespace, id)
    await forget_flow(runner, namespace, id)
    return Response(status_code=204)
