"""Folders on a flat object store: what the S3 and GCS backends share besides their SDK calls.

An object store has keys, not folders. As in Kestra's S3 and GCS storages, the URI ``/a/b`` is
the key ``a/b``, and a folder is the key prefix ``a/b/`` plus a zero-byte *marker* object that
``put`` and ``create_directory`` write for the folder and each of its parents. So a folder emptied
of its files still exists, as on local disk, and has dates. A prefix with objects below it and no
marker (written by another tool, or by a process whose marker was since deleted) is a folder too.

An object store would also keep ``a`` and ``a/b`` side by side, which local disk cannot. To give
every backend one meaning, ``put`` refuses a destination that is a folder and a parent that is a
file. The folders a process has checked are remembered (a bounded set), so a stream of outputs
into one folder costs one listing and one upload per file.

A backend subclasses :class:`ObjectStorage`, implements the primitives on keys (``_head``,
``_list``, ``_open``, ``_write``, ``_copy``, ``_delete``) and names its markers. It turns its
SDK's errors into :meth:`ObjectStorage._failure`, whose message names the ``kestra://`` URI and
the kind of failure, never the bucket, endpoint or credentials the SDK's own text may contain.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from tiercel.errors import StorageError, StorageNotFound
from tiercel.storage.base import ByteStream, FileAttributes, FileType, PutSource, URILike
from tiercel.storage.uri import (
    RESERVED_PREFIX,
    InvalidStorageURI,
    StorageURI,
    check_segment,
    parse_user_uri,
)

logger = logging.getLogger(__name__)

EPOCH = datetime.fromtimestamp(0, UTC)
CONCURRENCY = 16
"""Requests one storage call keeps in flight (the HEADs behind a listing, the copies of a move)."""
KNOWN_FOLDERS = 10_000
"""How many checked folders a process remembers."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object as a backend reports it. ``metadata`` is None when the call that found
    it (a listing) does not return metadata; ``created`` is None when the store keeps no such date."""

    key: str
    size: int
    modified: datetime
    created: datetime | None = None
    metadata: Mapping[str, str] | None = None


class ObjectStorage(ABC):
    """The ``Storage`` protocol over the key primitives a subclass provides."""

    supports_metadata = True

    def __init__(self) -> None:
        self._folders: OrderedDict[str, None] = OrderedDict()

    # -- what a backend provides --------------------------------------------------------------
    @abstractmethod
    def _marker(self, folder: str) -> str:
        """The key of the marker of folder ``folder`` (a non-empty key)."""

    @abstractmethod
    def _folder_of_marker(self, key: str) -> str | None:
        """The folder whose marker ``key`` is, or None when ``key`` is not a marker."""

    @abstractmethod
    async def _head(self, key: str) -> ObjectInfo | None:
        """The object at ``key``, metadata included; None when there is none."""

    @abstractmethod
    async def _list(
        self, prefix: str, *, recursive: bool, limit: int | None = None
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str]]:
        """Objects whose key starts with ``prefix`` (``""`` or ending in ``/``), at most ``limit``.

        Not recursive: only the objects directly below ``prefix``, and the sub-prefixes one level
        down (without their trailing ``/``) as the second item; recursive: every object, ``[]``.
        """

    @abstractmethod
    async def _open(self, key: str) -> ByteStream | None:
        """A stream of the object at ``key`` in chunks of at most ``CHUNK_SIZE``; None if absent."""

    @abstractmethod
    async def _write(self, key: str, source: PutSource, metadata: Mapping[str, str]) -> None:
        """Store ``source`` (already checked by ``put``) at ``key``, replacing any object there,
        in one atomic step: a failed write leaves the previous object as it was."""

    @abstractmethod
    async def _copy(self, source: str, destination: str) -> None:
        """Copy one object with its metadata, replacing ``destination``."""

    @abstractmethod
    async def _delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys``; keys that do not exist are ignored."""

    def _failure(self, action: str, key: str, exc: BaseException) -> StorageError:
        """The ``StorageError`` for a failed SDK call on ``key``.

        The SDK's own message usually shows the endpoint URL and bucket, so it goes to the debug
        log only; the error says which URI and what kind of failure (the exception's class).
        """
        uri = StorageURI("/" + key)
        logger.debug("storage: cannot %s %s", action, uri, exc_info=exc)
        return StorageError(f"Cannot {action} {uri}: {type(exc).__name__}")

    # -- reading ------------------------------------------------------------------------------
    async def get(self, uri: URILike) -> ByteStream:
        target = parse_user_uri(uri)
        key = _key(target)
        stream = None if target.is_root else await self._open(key)
        if stream is not None:
            return stream
        if await self._is_folder(key):
            raise StorageError(f"Cannot read {target}: it is a directory")
        raise StorageNotFound(f"File not found: {target}")

    async def get_bytes(self, uri: URILike) -> bytes:
        parts = []
        async with await self.get(uri) as stream:
            async for chunk in stream:
                parts.append(chunk)
        return b"".join(parts)

    async def exists(self, uri: URILike) -> bool:
        key = _key(parse_user_uri(uri))
        if key and await self._head(key) is not None:
            return True
        return await self._is_folder(key)

    async def attributes(self, uri: URILike) -> FileAttributes:
        target = parse_user_uri(uri)
        if target.is_root:
            return FileAttributes("", FileType.DIRECTORY, 0, EPOCH, EPOCH, {}, str(target))
        key = _key(target)
        info = await self._head(key)
        found = _file_attributes(info) if info is not None else await self._folder_attributes(key)
        if found is None:
            raise StorageNotFound(f"File not found: {target}")
        return found

    async def list(self, uri: URILike) -> builtins.list[FileAttributes]:
        target = parse_user_uri(uri)
        key = _key(target)
        objects, prefixes = await self._list(_prefix(key), recursive=False)
        if not objects and not prefixes and not target.is_root:
            if await self._head(key) is not None:
                raise StorageError(f"Cannot list {target}: it is not a directory")
            raise StorageNotFound(f"Directory not found: {target}")
        calls: builtins.list[Awaitable[FileAttributes | None]] = [
            self._listed_file(o)
            for o in objects
            if self._folder_of_marker(o.key) is None and _to_uri(o.key) is not None
        ]
        calls += [self._folder_attributes(p) for p in prefixes if _to_uri(p) is not None]
        found = await gather(calls)
        return sorted((a for a in found if a is not None), key=lambda a: a.name)

    async def list_prefix(self, prefix: URILike, include_directories: bool = False) -> builtins.list[str]:
        key = _key(parse_user_uri(prefix))
        objects, _ = await self._list(_prefix(key), recursive=True)
        files, folders = self._tree(key, objects)
        return sorted(_texts(files | folders if include_directories else files))

    async def _listed_file(self, info: ObjectInfo) -> FileAttributes | None:
        if info.metadata is None:
            full = await self._head(info.key)
            if full is None:
                return None  # deleted since it was listed
            info = full
        return _file_attributes(info)

    async def _folder_attributes(self, key: str) -> FileAttributes | None:
        """A folder's attributes (dates from its marker, else from one object below it); None
        when there is no such folder."""
        info = await self._head(self._marker(key))
        if info is None:
            below, _ = await self._list(_prefix(key), recursive=True, limit=1)
            if not below:
                return None
            info = below[0]
        uri = StorageURI("/" + key)
        created = info.created or info.modified
        return FileAttributes(uri.name, FileType.DIRECTORY, 0, created, info.modified, {}, str(uri))

    async def _is_folder(self, key: str) -> bool:
        """True for the root and for any key with a marker or an object below it (one request:
        a folder's marker is always below its prefix)."""
        if not key:
            return True
        below, _ = await self._list(_prefix(key), recursive=True, limit=1)
        return bool(below)

    def _tree(self, base: str, objects: Iterable[ObjectInfo]) -> tuple[set[str], set[str]]:
        """The file keys and folder keys strictly below folder ``base``, from a recursive listing."""
        prefix = _prefix(base)
        files: set[str] = set()
        folders: set[str] = set()
        for obj in objects:
            folder = self._folder_of_marker(obj.key)
            key = obj.key if folder is None else folder
            if not key.startswith(prefix) or key == base or _to_uri(key) is None:
                continue
            (files if folder is None else folders).add(key)
            folders.update(p for p in _parents(key) if len(p) > len(base))
        return files, folders

    # -- writing ------------------------------------------------------------------------------
    async def put(self, uri: URILike, source: PutSource, metadata: Mapping[str, str] | None = None) -> str:
        target = parse_user_uri(uri)
        if target.is_root:
            raise InvalidStorageURI("Invalid storage URI 'kestra:///': cannot write the root")
        _check_source(source, target)
        key = _key(target)
        if await self._is_folder(key):
            raise StorageError(f"Cannot write {target}: it is a directory")
        await self._make_folders(_key(target.parent), f"write {target}")
        await self._write(key, source, dict(metadata or {}))
        return str(target)

    async def create_directory(self, uri: URILike) -> str:
        target = parse_user_uri(uri)
        key = _key(target)
        if key and await self._head(key) is not None:
            raise StorageError(f"Cannot create directory {target}: a file has that name")
        await self._make_folders(key, f"create directory {target}")
        return str(target)

    async def move(self, source: URILike, destination: URILike) -> str:
        src, dst = parse_user_uri(source), parse_user_uri(destination)
        if src.is_root or dst.is_root:
            raise InvalidStorageURI("Cannot move the storage root")
        if dst.is_under(src):
            raise StorageError(f"Cannot move {src} into itself ({dst})")
        old, new = _key(src), _key(dst)
        action = f"move {src} to {dst}"
        if await self._head(old) is not None:
            if await self._is_folder(new):
                raise StorageError(f"Cannot {action}: the destination is a directory")
            await self._make_folders(_key(dst.parent), action)
            await self._copy(old, new)
            await self._delete([old])
            return str(dst)
        objects, _ = await self._list(_prefix(old), recursive=True)
        if not objects:
            raise StorageNotFound(f"File not found: {src}")
        if await self._head(new) is not None:
            raise StorageError(f"Cannot {action}: the destination is a file")
        await self._make_folders(new, action)
        await gather(self._copy(o.key, new + o.key[len(old) :]) for o in objects)
        await self._delete([o.key for o in objects])
        self._forget(old)
        return str(dst)

    async def _make_folders(self, folder: str, action: str) -> None:
        """Write the markers of ``folder`` and its parents, refusing if one of them is a file.

        Like Kestra's ``mkdirs``, a marker already present on ``folder`` means its parents were
        made too, and nothing is written (so a folder keeps its dates).
        """
        if not folder:
            return
        missing = [f for f in [*_parents(folder), folder] if f not in self._folders]
        if not missing:
            return
        *files, marker = await gather([*map(self._head, missing), self._head(self._marker(folder))])
        if any(info is not None for info in files):
            raise StorageError(f"Cannot {action}: a parent is a file")
        if marker is None:
            await gather(self._write(self._marker(f), b"", {}) for f in missing)
        for f in missing:
            self._folders[f] = None
        while len(self._folders) > KNOWN_FOLDERS:
            self._folders.popitem(last=False)

    def _forget(self, folder: str) -> None:
        """Drop ``folder`` and what is below it from the checked folders (they were deleted)."""
        below = folder + "/"
        for known in [k for k in self._folders if k == folder or k.startswith(below)]:
            del self._folders[known]

    # -- deleting -----------------------------------------------------------------------------
    async def delete(self, uri: URILike) -> bool:
        target = parse_user_uri(uri)
        if target.is_root:
            raise InvalidStorageURI("Refusing to delete the storage root")
        key = _key(target)
        if await self._head(key) is not None:
            await self._delete([key])
            return True
        objects, _ = await self._list(_prefix(key), recursive=True)
        if not objects:
            return False
        await self._delete([o.key for o in objects])
        self._forget(key)
        return True

    async def delete_prefix(self, prefix: URILike) -> builtins.list[str]:
        target = parse_user_uri(prefix)
        if target.is_root:
            raise InvalidStorageURI("Refusing to delete the storage root")
        key = _key(target)
        objects, _ = await self._list(_prefix(key), recursive=True)
        if not objects:
            if await self._head(key) is not None:
                raise StorageError(f"Cannot delete prefix {target}: it is a file")
            return []
        files, folders = self._tree(key, objects)
        await self._delete([o.key for o in objects])
        self._forget(key)
        deepest_first = sorted(sorted(_texts(folders)), key=lambda u: u.count("/"), reverse=True)
        return [*sorted(_texts(files)), *deepest_first, str(target)]


# -- helpers ---------------------------------------------------------------------------------


def _key(uri: StorageURI) -> str:
    return uri.path[1:]


def _prefix(folder: str) -> str:
    """The key prefix of everything below ``folder`` (``""`` for the root)."""
    return folder + "/" if folder else ""


def _parents(key: str) -> builtins.list[str]:
    """``["a", "a/b"]`` for ``a/b/c``."""
    parts = key.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _to_uri(key: str) -> StorageURI | None:
    """The URI of a key found in the store, or None for a key no URI names (an empty, dot or
    reserved segment: another tool's objects, never returned to callers)."""
    try:
        segments = [check_segment(segment) for segment in key.split("/")]
    except InvalidStorageURI:
        return None
    if any(segment.startswith(RESERVED_PREFIX) for segment in segments):
        return None
    return StorageURI("/" + key)


def _texts(keys: Iterable[str]) -> builtins.list[str]:
    return [str(StorageURI("/" + key)) for key in keys]


def _file_attributes(info: ObjectInfo) -> FileAttributes:
    uri = StorageURI("/" + info.key)
    return FileAttributes(
        name=uri.name,
        type=FileType.FILE,
        size=info.size,
        created=info.created or info.modified,
        modified=info.modified,
        metadata=dict(info.metadata or {}),
        uri=str(uri),
    )


def _check_source(source: PutSource, uri: StorageURI) -> None:
    """Refuse a source the backends cannot read, with the local backend's messages."""
    if isinstance(source, Path):
        if not source.exists():
            raise StorageError(f"Cannot write {uri}: the local source file does not exist")
        if source.is_dir():
            raise StorageError(f"Cannot write {uri}: the local source is a directory")
    elif not isinstance(source, bytes | bytearray | memoryview | AsyncIterable) and not hasattr(
        source, "read"
    ):
        raise StorageError(f"Cannot write {uri}: unsupported source {type(source).__name__}")


async def gather(calls: Iterable[Awaitable[T]]) -> builtins.list[T]:
    """Await ``calls`` at most ``CONCURRENCY`` at a time, in order; on a failure the others are
    cancelled and the first failure is raised."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Awaitable[T]) -> T:
        async with limit:
            return await call

    tasks = [asyncio.ensure_future(one(call)) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


__all__ = ["ObjectInfo", "ObjectStorage", "gather"]
