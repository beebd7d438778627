"""The internal storage contract every backend (local disk, S3, GCS, Azure, memory) fulfils.

Storage holds every file an execution produces or consumes: task outputs, FILE inputs,
namespace files, the KV store and the legacy state store. Addresses are ``kestra:///…`` URIs;
backends accept a ``str`` or a :class:`~tiercel.storage.uri.StorageURI` and canonicalise it
with :meth:`StorageURI.parse` before anything else, so traversal and encoding tricks are refused
in one place (:class:`~tiercel.storage.uri.InvalidStorageURI`, a ``StorageError``).

Errors: a missing object raises :class:`tiercel.errors.StorageNotFound`; any other failure raises
:class:`tiercel.errors.StorageError`. Messages name the ``kestra://`` URI, never a real filesystem
path, bucket credential or endpoint, because they end up in task logs and API responses.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from tiercel.storage.uri import StorageURI

CHUNK_SIZE = 1024 * 1024
"""Streams move in chunks of at most this many bytes: memory use never grows with file size."""

PutSource = bytes | AsyncIterable[bytes] | Path | BinaryIO
URILike = str | StorageURI


class FileType(StrEnum):
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"


@dataclass(frozen=True, slots=True)
class FileAttributes:
    """What ``attributes`` and ``list`` report about one object (Kestra's ``FileAttributes``)."""

    name: str
    type: FileType
    size: int
    created: datetime
    modified: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    uri: str = ""


class ByteStream(Protocol):
    """An open download (an ``AsyncIterator[bytes]``): iterate it for chunks; it closes itself
    at the end.

    A caller that stops early must close it (``await stream.aclose()`` or ``async with``); the
    backend otherwise keeps a file handle or connection until garbage collection.
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def __anext__(self) -> bytes: ...
    async def aclose(self) -> None: ...
    async def __aenter__(self) -> ByteStream: ...
    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class Storage(Protocol):
    """Internal storage. All methods are coroutines; blocking I/O stays inside the backend."""

    async def get(self, uri: URILike) -> ByteStream:
        """Open ``uri`` for reading and return a stream of chunks (≤ ``CHUNK_SIZE`` bytes each).

        The object is opened *before* this returns, so a missing file raises
        ``StorageNotFound`` here, not on the first chunk (an HTTP handler can still answer 404).
        A directory raises ``StorageError``. The caller owns the stream and closes it.
        """
        ...

    async def get_bytes(self, uri: URILike) -> bytes:
        """The whole object in memory: only for files known to be small (templates, KV docs)."""
        ...

    async def put(self, uri: URILike, source: PutSource, metadata: Mapping[str, str] | None = None) -> str:
        """Store ``source`` at ``uri`` and return the canonical ``kestra:///…`` URI.

        ``source`` is bytes, an async iterable of chunks, a local file path, or a binary file
        object; the backend reads it in chunks and never closes a file object it did not open.
        Readers never see a partial object: either the previous content or the new one.
        An existing object is replaced; missing parent folders are created.
        """
        ...

    async def exists(self, uri: URILike) -> bool:
        """True when ``uri`` is a file or a directory."""
        ...

    async def attributes(self, uri: URILike) -> FileAttributes:
        """Name, type, size, dates and metadata of one object; ``StorageNotFound`` if absent."""
        ...

    async def list(self, uri: URILike) -> builtins.list[FileAttributes]:
        """Direct children of a directory, sorted by name; ``StorageNotFound`` if it is absent."""
        ...

    async def list_prefix(self, prefix: URILike, include_directories: bool = False) -> builtins.list[str]:
        """URIs of every file below ``prefix`` (recursively, sorted), ``[]`` when there are none.

        ``prefix`` is a directory path: ``/a/b`` matches ``/a/b/c`` but not ``/a/bc``.
        """
        ...

    async def delete(self, uri: URILike) -> bool:
        """Delete a file, or a directory with everything under it; False when nothing existed."""
        ...

    async def delete_prefix(self, prefix: URILike) -> builtins.list[str]:
        """Delete everything below ``prefix`` (the prefix directory included); return the
        URIs removed, files first, then directories deepest first."""
        ...

    async def create_directory(self, uri: URILike) -> str:
        """Create a directory and its parents (no error if it exists); return its URI."""
        ...

    async def move(self, source: URILike, destination: URILike) -> str:
        """Move a file or directory, replacing a file at ``destination``; return the new URI.

        ``StorageNotFound`` when ``source`` does not exist.
        """
        ...


__all__ = [
    "CHUNK_SIZE",
    "ByteStream",
    "FileAttributes",
    "FileType",
    "PutSource",
    "Storage",
    "URILike",
]
