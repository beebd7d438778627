"""Internal storage in an Azure Blob Storage container (or Azurite), on obstore.

The obstore calls are the S3 backend's (:mod:`tiercel.storage.s3`): downloads arrive in chunks,
and an upload from a stream or a large file goes up as blocks of ``PART_SIZE`` that one Put Block
List commits atomically, so readers never see a partial blob and a failed upload leaves the
previous one in place (its uncommitted blocks expire). Folders follow
:mod:`tiercel.storage.objects`, with the S3 backend's ``a/b/.tiercel-dir`` marker.

Azure takes metadata names that are C# identifiers and ASCII values, so names are stored escaped
(``_<hex>_`` for anything but ``a-z`` and ``0-9``, a leading digit included) and values
percent-encoded, as on S3.

Credentials, one of: ``connection_string`` (as the Azure portal shows it, or
``UseDevelopmentStorage=true``); ``account`` with ``account_key`` or ``sas_token``; ``account``
alone, for obstore's Azure chain (``AZURE_STORAGE_*`` variables, workload or managed identity,
Azure CLI). ``endpoint`` points at Azurite or another compatible server (``http://`` is allowed
then); for Azurite it ends with the account: ``http://127.0.0.1:10000/devstoreaccount1``. Without
``account``, the account is read from the endpoint (``https://<account>.blob.…``, or Azurite's path),
so an endpoint and a SAS token are enough.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import os
from collections.abc import AsyncIterable, Mapping, Sequence
from typing import IO, Any, cast
from urllib.parse import quote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import AzureStore

from tiercel.errors import ConfigError
from tiercel.storage.base import CHUNK_SIZE, PutSource
from tiercel.storage.objects import ObjectInfo, ObjectStorage, gather
from tiercel.storage.obstore_io import (
    PART_SIZE,
    PARTS_IN_FLIGHT,
    VALUE_SAFE,
    Download,
    decode_metadata,
    read_in_thread,
)
from tiercel.storage.uri import RESERVED_PREFIX

EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known account and key (public: they only ever open a local emulator)."""

_MARKER = RESERVED_PREFIX + "dir"
_NAME_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


class AzureStorage(ObjectStorage):
    """Blobs in ``container``; the URI ``/a/b`` is the blob ``a/b``."""

    def __init__(
        self,
        container: str | None = None,
        connection_string: str | None = None,
        account: str | None = None,
        account_key: str | None = None,
        sas_token: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__()
        if not container:
            raise ConfigError("storage.azure.container is required when storage.type is azure")
        if connection_string:
            if account or account_key or sas_token or endpoint:
                raise ConfigError(
                    "storage.azure.connection_string cannot be combined with account, account_key, "
                    "sas_token or endpoint"
                )
            account, account_key, sas_token, endpoint = parse_connection_string(connection_string)
        account = account or account_of(endpoint) or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        if not account:
            raise ConfigError("storage.azure needs connection_string or account when storage.type is azure")
        if account_key and sas_token:
            raise ConfigError("storage.azure: set account_key or sas_token, not both")
        config: dict[str, Any] = {"account_name": account}
        client: dict[str, Any] = {}
        if account_key:
            _check_key(account_key)
            config["account_key"] = account_key
        if sas_token:
            config["sas_key"] = sas_token.removeprefix("?")
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
                raise ConfigError("storage.azure.endpoint must be an http:// or https:// URL")
            config["endpoint"] = endpoint.rstrip("/")
            client["allow_http"] = parts.scheme.lower() == "http"
        try:
            self._store = AzureStore(container, config=cast(Any, config), client_options=cast(Any, client))
        except (ObstoreError, ValueError) as exc:
            raise ConfigError(f"storage.azure: the settings were refused ({type(exc).__name__})") from None

    async def open(self) -> None:
        """Fail at start-up rather than at the first task when the container cannot be listed."""
        try:
            async for _ in obstore.list(self._store, None, chunk_size=1):
                break
        except (ObstoreError, OSError) as exc:
            raise self._failure("list", "", exc) from None

    # -- folders ------------------------------------------------------------------------------
    def _marker(self, folder: str) -> str:
        return f"{folder}/{_MARKER}"

    def _folder_of_marker(self, key: str) -> str | None:
        folder, _, name = key.rpartition("/")
        return folder if name == _MARKER and folder else None

    # -- primitives ---------------------------------------------------------------------------
    async def _head(self, key: str) -> ObjectInfo | None:
        try:
            result = await obstore.get_async(self._store, key, options={"head": True})
        except FileNotFoundError:
            return None  # no such blob, or no such container: the listing that follows says which
        except ObstoreError as exc:
            raise self._failure("read attributes of", key, exc) from None
        meta = result.meta
        return ObjectInfo(
            key, meta["size"], meta["last_modified"], metadata=decode_metadata(result.attributes)
        )

    async def _list(
        self, prefix: str, *, recursive: bool, limit: int | None = None
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str]]:
        path = prefix.rstrip("/") or None
        try:
            if not recursive:
                level = await obstore.list_with_delimiter_async(self._store, path)
                objects = [_info(meta) for meta in level["objects"]]
                return objects, builtins.list(level["common_prefixes"])
            found: builtins.list[ObjectInfo] = []
            async for chunk in obstore.list(self._store, path, chunk_size=limit or 1000):
                found.extend(_info(meta) for meta in chunk)
                if limit is not None and len(found) >= limit:
                    return found[:limit], []
            return found, []
        except (ObstoreError, FileNotFoundError) as exc:
            raise self._failure("list", prefix.rstrip("/"), exc) from None

    async def _open(self, key: str) -> Download | None:
        try:
            result = await obstore.get_async(self._store, key)
        except FileNotFoundError:
            return None
        except ObstoreError as exc:
            raise self._failure("read", key, exc) from None
        return Download(result.stream(min_chunk_size=CHUNK_SIZE), lambda exc: self._failure("read", key, exc))

    async def _write(self, key: str, source: PutSource, metadata: Mapping[str, str]) -> None:
        data: Any = source
        if not isinstance(source, bytes | bytearray | memoryview | AsyncIterable) and hasattr(source, "read"):
            data = read_in_thread(cast(IO[bytes], source))
        try:
            await obstore.put_async(
                self._store,
                key,
                data,
                attributes=cast(Any, _encode(metadata)),
                chunk_size=PART_SIZE,
                max_concurrency=PARTS_IN_FLIGHT,
            )
        except (ObstoreError, FileNotFoundError) as exc:  # a missing container is a FileNotFoundError
            raise self._failure("write", key, exc) from None

    async def _copy(self, source: str, destination: str) -> None:
        try:
            await obstore.copy_async(self._store, source, destination)
        except (ObstoreError, FileNotFoundError) as exc:
            raise self._failure("copy", source, exc) from None

    async def _delete(self, keys: Sequence[str]) -> None:
        """One batch request per 256 keys; Azure fails a batch on a key that is already gone, so
        then each key is deleted on its own, those ignored."""
        if not keys:
            return
        try:
            await obstore.delete_async(self._store, builtins.list(keys))
        except FileNotFoundError:
            await gather(self._delete_one(key) for key in keys)
        except ObstoreError as exc:
            raise self._failure("delete", keys[0], exc) from None

    async def _delete_one(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            pass
        except ObstoreError as exc:
            raise self._failure("delete", key, exc) from None


def parse_connection_string(text: str) -> tuple[str | None, str | None, str | None, str | None]:
    """``(account, account_key, sas_token, endpoint)`` from an Azure Storage connection string.

    The blob endpoint is ``BlobEndpoint`` when given, else built from ``DefaultEndpointsProtocol``
    and ``EndpointSuffix`` (None: obstore's ``https://<account>.blob.core.windows.net``). Errors
    never quote the text, which holds the key.
    """
    fields: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, equals, value = part.partition("=")
        if not equals or not name.strip():
            raise ConfigError("storage.azure.connection_string is not a connection string (Name=value;…)")
        fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return EMULATOR_ACCOUNT, EMULATOR_KEY, None, f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}"
    account = fields.get("accountname")
    endpoint = fields.get("blobendpoint")
    if not account and not account_of(endpoint):
        raise ConfigError("storage.azure.connection_string has neither AccountName nor BlobEndpoint")
    if not endpoint and ("endpointsuffix" in fields or "defaultendpointsprotocol" in fields):
        scheme = fields.get("defaultendpointsprotocol") or "https"
        endpoint = f"{scheme}://{account}.blob.{fields.get('endpointsuffix') or 'core.windows.net'}"
    return account, fields.get("accountkey"), fields.get("sharedaccesssignature"), endpoint


def account_of(endpoint: str | None) -> str | None:
    """The account a blob endpoint names: its first path segment (Azurite's
    ``http://host:port/account``) or its first host label (``https://account.blob.…``); else None."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    segment = parts.path.strip("/").split("/")[0]
    host = parts.hostname or ""
    return segment or (host.split(".")[0] if ".blob." in host else None)


def _check_key(key: str) -> None:
    """Refuse a key that is not base64 here, with a message obstore's error would not give."""
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("storage.azure.account_key must be the base64 key the Azure portal shows") from None


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(meta["path"], meta["size"], meta["last_modified"])


def _encode(metadata: Mapping[str, str]) -> dict[str, str]:
    return {_encode_name(name): quote(value, safe=VALUE_SAFE) for name, value in metadata.items()}


def _encode_name(name: str) -> str:
    """``fileName`` → ``file_4e_ame``, ``2x`` → ``_32_x``: a C# identifier whatever the name, which
    the S3 backend's decoding reads back."""
    return "".join(
        c if c in _NAME_SAFE and not (i == 0 and c.isdigit()) else f"_{ord(c):x}_" for i, c in enumerate(name)
    )


__all__ = ["EMULATOR_ACCOUNT", "EMULATOR_KEY", "AzureStorage", "account_of", "parse_connection_string"]
