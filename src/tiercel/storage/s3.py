"""Internal storage in an S3 bucket (AWS, or MinIO and other S3-compatible servers), on obstore.

obstore streams both ways: a download arrives in chunks, and an upload from a stream or a large
file goes up as a multipart upload of ``PART_SIZE`` parts (at most ``PARTS_IN_FLIGHT`` at once),
which S3 assembles atomically: readers never see a partial object, and a failed upload is aborted.

Folders follow :mod:`tiercel.storage.objects`. Kestra marks a folder with an empty ``a/b/`` key,
but obstore normalises a trailing ``/`` away, so the marker here is ``a/b/.tiercel-dir`` (a name
URIs cannot use). A bucket Kestra wrote is readable, but its ``a/b/`` keys look like empty files
``a/b`` to recursive listings: give Tiercel a bucket (or a bucket Tiercel wrote) of its own.

S3 lower-cases metadata keys and takes only ASCII values, so keys are stored escaped (see
``_encode_key``) and values percent-encoded: metadata round-trips whatever its case or text.

Credentials: ``access_key``/``secret_key`` when configured, else ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, else the rest of obstore's AWS chain (web identity, ECS, instance
metadata).
"""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterable, Mapping, Sequence
from typing import IO, Any, cast
from urllib.parse import quote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

from tiercel.errors import ConfigError
from tiercel.storage.base import CHUNK_SIZE, PutSource
from tiercel.storage.objects import ObjectInfo, ObjectStorage
from tiercel.storage.obstore_io import (
    PART_SIZE,
    PARTS_IN_FLIGHT,
    VALUE_SAFE,
    Download,
    decode_metadata,
    read_in_thread,
)
from tiercel.storage.uri import RESERVED_PREFIX

_MARKER = RESERVED_PREFIX + "dir"
_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


class S3Storage(ObjectStorage):
    """Objects in ``bucket``; the URI ``/a/b`` is the key ``a/b``.

    ``endpoint`` points at MinIO or another S3-compatible server (``http://`` is allowed then);
    ``path_style`` addresses the bucket as ``<endpoint>/<bucket>`` rather than as the host
    ``<bucket>.<endpoint host>``, which most self-hosted servers need.
    """

    def __init__(
        self,
        bucket: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        path_style: bool = False,
    ) -> None:
        super().__init__()
        if not bucket:
            raise ConfigError("storage.s3.bucket is required when storage.type is s3")
        config: dict[str, Any] = {"virtual_hosted_style_request": not path_style}
        client: dict[str, Any] = {}
        access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
        secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
        if bool(access_key) != bool(secret_key):
            raise ConfigError("storage.s3.access_key and storage.s3.secret_key must be set together")
        if region:
            config["region"] = region
        if access_key:
            config["access_key_id"] = access_key
        if secret_key:
            config["secret_access_key"] = secret_key
        if endpoint:
            scheme = urlsplit(endpoint).scheme.lower()
            if scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
                raise ConfigError("storage.s3.endpoint must be an http:// or https:// URL")
            config["endpoint"] = endpoint if path_style else virtual_host_endpoint(endpoint, bucket)
            client["allow_http"] = scheme == "http"
        try:
            self._store = S3Store(bucket, config=cast(Any, config), client_options=cast(Any, client))
        except (ObstoreError, ValueError) as exc:
            raise ConfigError(f"storage.s3: the settings were refused ({type(exc).__name__})") from None

    async def open(self) -> None:
        """Fail at start-up rather than at the first task when the bucket cannot be listed."""
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
            return None
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
        except ObstoreError as exc:
            raise self._failure("write", key, exc) from None

    async def _copy(self, source: str, destination: str) -> None:
        try:
            await obstore.copy_async(self._store, source, destination)
        except (ObstoreError, FileNotFoundError) as exc:
            raise self._failure("copy", source, exc) from None

    async def _delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await obstore.delete_async(self._store, builtins.list(keys))
        except (ObstoreError, FileNotFoundError) as exc:
            raise self._failure("delete", keys[0], exc) from None


def virtual_host_endpoint(endpoint: str, bucket: str) -> str:
    """``https://bucket.host`` for ``https://host``: obstore's virtual-hosted requests expect the
    bucket in the endpoint, as AWS SDKs put it there themselves."""
    parts = urlsplit(endpoint)
    return parts._replace(netloc=f"{bucket}.{parts.netloc}").geturl()


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(meta["path"], meta["size"], meta["last_modified"])


def _encode(metadata: Mapping[str, str]) -> dict[str, str]:
    return {_encode_key(key): quote(value, safe=VALUE_SAFE) for key, value in metadata.items()}


def _encode_key(key: str) -> str:
    """``fileName`` → ``file_4e_ame``: lower-case letters, digits, ``-`` and ``.`` as they are,
    anything else (``_`` included) as ``_<hex code point>_``, which S3 and its clones all keep."""
    return "".join(c if c in _KEY_SAFE else f"_{ord(c):x}_" for c in key)


__all__ = ["PART_SIZE", "S3Storage", "virtual_host_endpoint"]
