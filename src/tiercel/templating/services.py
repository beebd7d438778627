"""The I/O that some template functions need, supplied by whoever renders.

Templates must not reach storage, the KV store or secrets on their own: the engine decides what a
task run may read. So functions such as ``read()`` or ``secret()`` look for a :class:`RenderServices`
object under :data:`SERVICES_KEY` in the variables and fail cleanly when there is none (for example
while the executor evaluates a flow-control expression).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from jinja2.runtime import Context

from tiercel.errors import TemplateError

__all__ = ["SERVICES_KEY", "RenderServices", "require_services", "secret_from_env"]

SERVICES_KEY = "__services__"


@runtime_checkable
class RenderServices(Protocol):
    """What the engine lends to one render. Implementations enforce namespace/execution scoping."""

    def read(self, path: str) -> str: ...

    def file_size(self, path: str) -> int: ...

    def file_uri(self, path: str) -> str: ...

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any: ...

    def secret(self, key: str) -> str: ...

    def error_logs(self) -> list[Mapping[str, Any]]: ...


def require_services(context: Context, function: str) -> RenderServices:
    """The services of this render, or a clear error naming the function that needed them."""
    services = context.get(SERVICES_KEY)
    if services is None:
        raise TemplateError(f"The '{function}' function is not available here")
    return services


def secret_from_env(key: str, environ: Mapping[str, str]) -> str:
    """Kestra OSS secrets: environment variable ``SECRET_<KEY>`` (key upper-cased), base64-encoded.

    Line breaks inside the encoded value are ignored, as Java's MIME decoder does.
    """
    encoded = environ.get(f"SECRET_{key.upper()}")
    if encoded is None:
        raise TemplateError(f"No secret found for the key '{key}'.")
    compact = "".join(encoded.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise TemplateError(f"The secret '{key}' is not valid base64.") from None
