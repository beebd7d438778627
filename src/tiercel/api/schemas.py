"""The API's JSON shapes, in Kestra's form (camelCase, ``{"results", "total"}`` pages).

Kept apart from ``tiercel.model`` so the internals can change while the API stays what Kestra's
clients expect. The big documents (flows, executions, logs) are produced from the models by the
``*_json`` functions below and sent as they are; the pydantic classes describe them in the OpenAPI
document and type the small answers (errors, validation, health).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tiercel.model.flow import Flow
from tiercel.model.logs import LogEntry

T = TypeVar("T")


class ErrorDetail(BaseModel):
    path: str = Field(
        description="The field the problem is about (`tasks[0].type`, `inputs.x`, `query.page`)."
    )
    message: str
    line: int | None = Field(default=None, description="1-based line in the YAML body, for flow problems.")
    column: int | None = None


class ErrorBody(BaseModel):
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FlowDocument(_Open):
    """A flow as Kestra serialises it: the flow's properties plus ``revision``, ``disabled``,
    ``deleted`` and, when asked for, ``source`` (the YAML kept verbatim)."""

    id: str
    namespace: str
    revision: int | None = None
    disabled: bool = False
    deleted: bool = False
    source: str | None = None


class ExecutionDocument(_Open):
    """An execution exactly as the engine records it (``Execution.to_dict()``)."""

    id: str
    namespace: str
    flowId: str
    flowRevision: int
    state: dict[str, Any]
    taskRunList: list[dict[str, Any]] = Field(default_factory=list)


class LogDocument(_Open):
    namespace: str
    flowId: str
    timestamp: str
    level: str
    message: str


class PagedResults(BaseModel, Generic[T]):
    results: list[T]
    total: int


class ValidateConstraintViolation(BaseModel):
    """One document of ``POST /api/v1/flows/validate``; ``constraints`` is ``None`` when valid."""

    index: int
    flow: str | None = None
    namespace: str | None = None
    constraints: str | None = None
    outdated: bool = False
    deprecationPaths: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    infos: list[str] = Field(default_factory=list)
    details: list[ErrorDetail] = Field(
        default_factory=list, description="Tiercel extension: each constraint with its line and column."
    )


class ComponentHealth(BaseModel):
    status: str
    message: str | None = None


class Health(BaseModel):
    name: str = "tiercel"
    status: str
    details: dict[str, ComponentHealth] = Field(default_factory=dict)


def flow_json(flow: Flow, source: str | None = None) -> dict[str, Any]:
    """Kestra leaves out null properties; ``revision``, ``disabled`` and ``deleted`` are always there."""
    body = flow.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["revision"] = flow.revision
    if source is not None:
        body["source"] = source
    return body


def log_json(entry: LogEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json", by_alias=True, exclude_none=True)
