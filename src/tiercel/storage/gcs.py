"""Internal storage in a Google Cloud Storage bucket, on the official google-cloud-storage SDK.

The SDK blocks, so every call runs in a worker thread. Data moves in chunks both ways: a download
reads ``CHUNK_SIZE`` ranges of the generation it opened (a concurrent overwrite never mixes two
versions), and an upload from a stream or a large file is a resumable upload of
``UPLOAD_CHUNK_SIZE`` chunks that GCS publishes only when the last one arrives, so a failed upload
leaves the previous object in place. A stream is fed to the SDK's thread through :class:`_Reader`,
which pulls from the async iterable on the event loop one chunk at a time.

Folders follow :mod:`tiercel.storage.objects`, with Kestra's marker: the empty object ``a/b/``.

Credentials: ``credentials_file`` (a service-account key) when set; else anonymous when
``endpoint`` is set (an emulator); else Application Default Credentials.
"""

from __future__ import annotations

import asyncio
import builtins
import io
import threading
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from requests.exceptions import RequestException

from tiercel.errors import ConfigError, StorageError
from tiercel.storage.base import CHUNK_SIZE, PutSource
from tiercel.storage.objects import ObjectInfo, ObjectStorage, gather

UPLOAD_CHUNK_SIZE = 8 * 1024 * 1024
"""Resumable upload chunk: what one upload holds in memory (a multiple of 256 KiB, as GCS requires)."""

_ERRORS = (GoogleAPIError, GoogleAuthError, RequestException, InvalidResponse, DataCorruption)
_NO_PROJECT = "<none>"
"""The project an anonymous client names (as ``storage.Client.create_anonymous_client`` does)."""


class GCSStorage(ObjectStorage):
    """Objects in ``bucket``; the URI ``/a/b`` is the blob ``a/b``."""

    def __init__(
        self,
        bucket: str | None = None,
        project: str | None = None,
        credentials_file: str | Path | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__()
        if not bucket:
            raise ConfigError("storage.gcs.bucket is required when storage.type is gcs")
        self._bucket_name = bucket
        self._project = project
        self._credentials_file = credentials_file
        self._endpoint = endpoint
        self._client: storage.Client | None = None
        self._client_lock = threading.Lock()

    def _bucket(self) -> storage.Bucket:
        """The bucket handle, creating the client on first use (in a worker thread: finding
        Application Default Credentials may block on the metadata server)."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = self._new_client()
                except (OSError, ValueError, GoogleAuthError) as exc:
                    # the SDK's message may show the key file's path or the key's contents
                    raise ConfigError(
                        f"storage.gcs: cannot create the client ({type(exc).__name__}): check "
                        "credentials_file, or the Application Default Credentials, and project"
                    ) from None
            return self._client.bucket(self._bucket_name)

    def _new_client(self) -> storage.Client:
        options = {"api_endpoint": self._endpoint} if self._endpoint else None
        if self._credentials_file is not None:
            return storage.Client.from_service_account_json(
                str(self._credentials_file), project=self._project, client_options=options
            )
        if self._endpoint:
            return storage.Client(
                project=self._project or _NO_PROJECT,
                credentials=AnonymousCredentials(),
                client_options=options,
            )
        return storage.Client(project=self._project)

    async def _call(self, action: str, key: str, call: Callable[[storage.Bucket], Any]) -> Any:
        """Run ``call(bucket)`` in a worker thread, the SDK's errors turned into ``StorageError``."""

        def run() -> Any:
            try:
                return call(self._bucket())
            except _ERRORS as exc:
                raise self._failure(action, key, exc) from None

        return await asyncio.to_thread(run)

    async def open(self) -> None:
        """Fail at start-up rather than at the first task when the bucket cannot be listed."""
        await self._list("", recursive=True, limit=1)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    # -- folders ------------------------------------------------------------------------------
    def _marker(self, folder: str) -> str:
        return folder + "/"

    def _folder_of_marker(self, key: str) -> str | None:
        return key[:-1] if key.endswith("/") and len(key) > 1 else None

    # -- primitives ---------------------------------------------------------------------------
    async def _head(self, key: str) -> ObjectInfo | None:
        blob = await self._call("read attributes of", key, lambda bucket: bucket.get_blob(key))
        return None if blob is None else _info(blob)

    async def _list(
        self, prefix: str, *, recursive: bool, limit: int | None = None
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str]]:
        def scan(bucket: storage.Bucket) -> tuple[builtins.list[ObjectInfo], builtins.list[str]]:
            pages = bucket.list_blobs(
                prefix=prefix or None, delimiter=None if recursive else "/", max_results=limit
            )
            found: builtins.list[ObjectInfo] = []
            for blob in pages:
                found.append(_info(blob))
                if limit is not None and len(found) >= limit:
                    return found, []
            return found, sorted(p.rstrip("/") for p in pages.prefixes)

        result: tuple[builtins.list[ObjectInfo], builtins.list[str]] = await self._call(
            "list", prefix.rstrip("/"), scan
        )
        return result

    async def _open(self, key: str) -> _BlobStream | None:
        def start(bucket: storage.Bucket) -> IO[bytes] | None:
            found = bucket.get_blob(key)
            if found is None:
                return None
            # a new handle on the generation found: reads never mix two versions, and their URLs
            # are built here (an emulator's mediaLink may leave the name unencoded)
            return bucket.blob(key, generation=found.generation).open("rb", chunk_size=CHUNK_SIZE)

        reader = await self._call("read", key, start)
        return None if reader is None else _BlobStream(reader, lambda exc: self._failure("read", key, exc))

    async def _write(self, key: str, source: PutSource, metadata: Mapping[str, str]) -> None:
        reader: _Reader | None = None
        if isinstance(source, AsyncIterable):
            reader = _Reader(_pull_async(source, asyncio.get_running_loop()))
        elif not isinstance(source, bytes | bytearray | memoryview | Path):
            reader = _Reader(_pull_file(source))

        def upload(bucket: storage.Bucket) -> None:
            blob = bucket.blob(key, chunk_size=UPLOAD_CHUNK_SIZE)
            blob.metadata = dict(metadata) or None
            try:
                if isinstance(source, Path):
                    blob.upload_from_filename(str(source))
                elif reader is not None:
                    blob.upload_from_file(reader, retry=None)  # a stream cannot be rewound for a retry
                else:
                    data = bytes(source)  # type: ignore[arg-type]
                    blob.upload_from_file(io.BytesIO(data), size=len(data))
            except BaseException:
                if reader is not None and reader.error is not None:
                    raise reader.error from None  # the source failed, not GCS
                raise

        try:
            await self._call("write", key, upload)
        except BaseException:
            if reader is not None:
                reader.abort()
            raise

    async def _copy(self, source: str, destination: str) -> None:
        await self._call(
            "copy", source, lambda bucket: bucket.copy_blob(bucket.blob(source), bucket, destination)
        )

    async def _delete(self, keys: Sequence[str]) -> None:
        def delete_one(key: str) -> Callable[[storage.Bucket], None]:
            return lambda bucket: bucket.delete_blobs([bucket.blob(key)], on_error=lambda _: None)

        await gather(self._call("delete", key, delete_one(key)) for key in keys)


class _BlobStream:
    """A GCS download read in ``CHUNK_SIZE`` chunks off the event loop; closes itself at the end."""

    __slots__ = ("_fail", "_reader")

    def __init__(self, reader: IO[bytes], fail: Callable[[BaseException], StorageError]) -> None:
        self._reader: IO[bytes] | None = reader
        self._fail = fail

    def __aiter__(self) -> _BlobStream:
        return self

    async def __anext__(self) -> bytes:
        if self._reader is None:
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._reader.read, CHUNK_SIZE)
        except _ERRORS as exc:
            await self.aclose()
            raise self._fail(exc) from None
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._reader = None  # a BlobReader holds no connection between its ranged reads

    async def __aenter__(self) -> _BlobStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Aborted(Exception):
    """The upload's caller went away (cancelled or failed): stop feeding the SDK."""


class _Reader:
    """A blocking, file-like view of chunks pulled by ``pull`` (None at the end), for the SDK's
    upload in a worker thread.

    ``read(n)`` returns exactly ``n`` bytes until the end: the resumable upload takes a short read
    for the last chunk and would finish the object early. A failure of the source is kept in
    ``error`` so the caller sees it rather than the SDK's reaction to it.
    """

    def __init__(self, pull: Callable[[], bytes | None]) -> None:
        self._pull = pull
        self._buffer = bytearray()
        self._position = 0
        self._done = False
        self._aborted = threading.Event()
        self.error: BaseException | None = None

    def abort(self) -> None:
        self._aborted.set()

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            if self._aborted.is_set():
                raise _Aborted
            try:
                chunk = self._pull()
            except BaseException as exc:
                self.error = exc
                raise
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._position += count
        return out


def _pull_async(source: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> Callable[[], bytes | None]:
    """Pull the next chunk of an async iterable from a worker thread (it runs on ``loop``)."""
    chunks = aiter(source)

    async def following() -> bytes | None:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None

    return lambda: asyncio.run_coroutine_threadsafe(following(), loop).result()


def _pull_file(file: Any) -> Callable[[], bytes | None]:
    return lambda: file.read(CHUNK_SIZE) or None


def _info(blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(blob.name, blob.size or 0, blob.updated, blob.time_created, dict(blob.metadata or {}))


__all__ = ["UPLOAD_CHUNK_SIZE", "GCSStorage"]
