"""The namespace key-value store, kept in internal storage.

Each key is one small JSON document at ``/<namespace path>/_kv/<key>.json``::

    {"value": …, "type": "STRING", "expirationDate": "…" | null, "created": "…", "updated": "…"}

Keeping KV in storage (as Kestra does) means every storage backend gives a KV store for free and
a namespace's keys move with its files. Expiry is lazy: an expired key reads as absent and is
deleted by the read that notices it; nothing sweeps in the background.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

from tiercel.clock import Clock, SystemClock
from tiercel.errors import NotFoundError, StorageNotFound, ValidationError
from tiercel.storage.base import Storage
from tiercel.storage.uri import kv_prefix, kv_uri

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
_SUFFIX = ".json"
_DURATION = TypeAdapter(timedelta)
_DATETIME = TypeAdapter(datetime)
_DATE = TypeAdapter(date)


class KVType(StrEnum):
    """Kestra's ``kvType``: how a value is typed when stored and read back."""

    STRING = "STRING"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    DATETIME = "DATETIME"
    DATE = "DATE"
    DURATION = "DURATION"
    JSON = "JSON"


class KVKeyNotFound(NotFoundError):
    """A key is absent (or expired) and the caller asked for an error."""

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"The key '{key}' does not exist in the namespace '{namespace}'.")
        self.namespace = namespace
        self.key = key


class KVKeyExists(ValidationError):
    """``overwrite=False`` and the key is already set."""


@dataclass(frozen=True, slots=True)
class KVEntry:
    namespace: str
    key: str
    value: Any
    type: KVType
    created: datetime
    updated: datetime
    expiration_date: datetime | None = None


def validate_key(key: str) -> str:
    """Refuse keys that are not ``[a-zA-Z0-9][a-zA-Z0-9._-]*`` (they become file names)."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValidationError(
            f"Invalid KV key '{key}': a key starts with a letter or a digit and contains only letters, "
            "digits, '.', '_' and '-'"
        )
    return key


def infer_type(value: Any) -> KVType:
    if isinstance(value, bool):
        return KVType.BOOLEAN
    if isinstance(value, int | float | Decimal):
        return KVType.NUMBER
    if isinstance(value, datetime):
        return KVType.DATETIME
    if isinstance(value, date):
        return KVType.DATE
    if isinstance(value, timedelta):
        return KVType.DURATION
    if isinstance(value, str):
        return KVType.STRING
    return KVType.JSON


def coerce(value: Any, kv_type: KVType | str) -> Any:
    """Convert ``value`` (usually a rendered string) to ``kv_type``; ``ValidationError`` if it cannot be."""
    kind = KVType(kv_type)
    try:
        if kind is KVType.STRING:
            return value if isinstance(value, str) else json.dumps(value, default=str)
        if kind is KVType.NUMBER:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            number = json.loads(str(value).strip())
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(value)
            return number
        if kind is KVType.BOOLEAN:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() == "true"
        if kind is KVType.DATETIME:
            return value if isinstance(value, datetime) else _DATETIME.validate_python(str(value).strip())
        if kind is KVType.DATE:
            if isinstance(value, date) and not isinstance(value, datetime):
                return value
            return _DATE.validate_python(str(value).strip())
        if kind is KVType.DURATION:
            return value if isinstance(value, timedelta) else _DURATION.validate_python(str(value).strip())
        return json.loads(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise ValidationError(f"Cannot convert the value to kvType {kind.value}: {exc}") from None


def _encode(value: Any, kind: KVType) -> Any:
    if kind in (KVType.DATETIME, KVType.DATE):
        return value.isoformat()
    if kind is KVType.DURATION:
        return _DURATION.dump_python(value, mode="json")
    return value


def _decode(value: Any, kind: KVType) -> Any:
    if value is None:
        return None
    if kind is KVType.DATETIME:
        return _DATETIME.validate_python(value)
    if kind is KVType.DATE:
        return _DATE.validate_python(value)
    if kind is KVType.DURATION:
        return _DURATION.validate_python(value)
    return value


class KVStore:
    """Async KV operations over a :class:`~tiercel.storage.base.Storage`.

    ``clock`` decides expiry (inject a ``ManualClock`` in tests). Writes are whole-document
    replacements, so concurrent writers of one key end with one of the values, never a mix.
    """

    def __init__(self, storage: Storage, clock: Clock | None = None) -> None:
        self.storage = storage
        self.clock: Clock = clock or SystemClock()

    async def set(
        self,
        namespace: str,
        key: str,
        value: Any,
        ttl: timedelta | None = None,
        overwrite: bool = True,
        kv_type: KVType | str | None = None,
    ) -> KVEntry:
        """Store ``value``; with ``kv_type`` the value is converted first, else its type is inferred."""
        validate_key(key)
        now = self.clock.now()
        previous = await self.get(namespace, key)
        if previous is not None and not overwrite:
            raise KVKeyExists(
                f"Cannot set the key '{key}' in the namespace '{namespace}': "
                "it already exists and overwrite is false"
            )
        if kv_type is not None:
            value = coerce(value, kv_type)
            kind = KVType(kv_type)
        else:
            kind = infer_type(value)
        if ttl is not None and ttl <= timedelta(0):
            raise ValidationError(f"Invalid ttl for KV key '{key}': it must be positive")
        entry = KVEntry(
            namespace=namespace,
            key=key,
            value=value,
            type=kind,
            created=previous.created if previous is not None else now,
            updated=now,
            expiration_date=now + ttl if ttl is not None else None,
        )
        doc = {
            "value": _encode(value, kind),
            "type": kind.value,
            "expirationDate": entry.expiration_date.isoformat() if entry.expiration_date else None,
            "created": entry.created.isoformat(),
            "updated": entry.updated.isoformat(),
        }
        try:
            data = json.dumps(doc, ensure_ascii=False, default=_json_default).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"Cannot store KV key '{key}': the value is not JSON-serialisable ({exc})"
            ) from None
        await self.storage.put(kv_uri(namespace, key), data)
        return entry

    async def get(self, namespace: str, key: str) -> KVEntry | None:
        """The entry, or None when absent or expired (an expired key is deleted on the way)."""
        validate_key(key)
        uri = kv_uri(namespace, key)
        try:
            raw = await self.storage.get_bytes(uri)
        except StorageNotFound:
            return None
        entry = self._parse(namespace, key, raw)
        if entry.expiration_date is not None and entry.expiration_date <= self.clock.now():
            await self.storage.delete(uri)
            return None
        return entry

    async def get_value(self, namespace: str, key: str, error_on_missing: bool = False) -> Any:
        entry = await self.get(namespace, key)
        if entry is None:
            if error_on_missing:
                raise KVKeyNotFound(namespace, key)
            return None
        return entry.value

    async def list(self, namespace: str, prefix: str | None = None) -> builtins.list[KVEntry]:
        """Live entries of a namespace, sorted by key, optionally those whose key starts with ``prefix``."""
        uris = await self.storage.list_prefix(kv_prefix(namespace))
        out: builtins.list[KVEntry] = []
        for uri in uris:
            name = uri.rsplit("/", 1)[-1]
            if not name.endswith(_SUFFIX):
                continue
            key = name[: -len(_SUFFIX)]
            if not KEY_PATTERN.fullmatch(key) or (prefix and not key.startswith(prefix)):
                continue
            entry = await self.get(namespace, key)
            if entry is not None:
                out.append(entry)
        out.sort(key=lambda e: e.key)
        return out

    async def delete(self, namespace: str, key: str) -> bool:
        """True if a live key was deleted; an expired key is removed but reported as absent."""
        validate_key(key)
        entry = await self.get(namespace, key)
        if entry is None:
            return False
        return await self.storage.delete(kv_uri(namespace, key))

    def _parse(self, namespace: str, key: str, raw: bytes) -> KVEntry:
        try:
            doc = json.loads(raw)
            kind = KVType(doc.get("type") or KVType.JSON)
            created = _DATETIME.validate_python(doc["created"])
            updated = _DATETIME.validate_python(doc.get("updated") or doc["created"])
            expires = doc.get("expirationDate")
            return KVEntry(
                namespace=namespace,
                key=key,
                value=_decode(doc.get("value"), kind),
                type=kind,
                created=created,
                updated=updated,
                expiration_date=_DATETIME.validate_python(expires) if expires else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationError(
                f"The KV key '{key}' in the namespace '{namespace}' is corrupt: {exc}"
            ) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _DURATION.dump_python(value, mode="json")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


__all__ = [
    "KEY_PATTERN",
    "KVEntry",
    "KVKeyExists",
    "KVKeyNotFound",
    "KVStore",
    "KVType",
    "coerce",
    "infer_type",
    "validate_key",
]
