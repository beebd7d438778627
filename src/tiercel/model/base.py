"""The pydantic base every Tiercel model derives from.

Kestra's JSON and YAML use camelCase (``allowFailure``, ``taskRunList``); Python code uses
snake_case. Models accept both on input and serialise with Kestra's names, so what crosses a process
boundary or the API is Kestra's shape.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Immutable data: update with ``model_copy(update=...)``."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        ser_json_timedelta="iso8601",
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


class Record(Model):
    """Runtime data we wrote ourselves (executions, messages): computed fields in the JSON are
    ignored when read back, so a record round-trips through the queue and the repository."""

    model_config = ConfigDict(extra="ignore")


class OpenModel(Model):
    """A model that keeps unknown keys (payloads we store but do not interpret)."""

    model_config = ConfigDict(extra="allow")
