"""Internal storage on a local directory (the default backend).

A URI's canonical path maps to ``<base_path>/<path>``. After the URI checks, the real path is
resolved (symlinks followed) and must still be under the resolved base: a symlink planted inside
the root can never lead outside it, and the checked real path is the one that is opened.
Writes go to a temp file in the destination folder and are renamed into place (``os.replace``
is atomic), so a reader, or a crash, never leaves a half-written object under a real name.

Bookkeeping files (temp files, metadata sidecars) are named ``.tiercel-*``; they are hidden from
listings and such names are refused in URIs.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from tiercel.errors import StorageError, StorageNotFound
from tiercel.storage.base import CHUNK_SIZE, FileAttributes, FileType, PutSource, URILike
from tiercel.storage.uri import RESERVED_PREFIX, InvalidStorageURI, StorageURI, parse_user_uri

_META = RESERVED_PREFIX + "meta."
_TMP = RESERVED_PREFIX + "tmp-"


class LocalFileStream:
    """A file opened for chunked reading; closes itself at EOF, on error, or on ``aclose``."""

    __slots__ = ("_file",)

    def __init__(self, file: IO[bytes]) -> None:
        self._file: IO[bytes] | None = file

    def __aiter__(self) -> LocalFileStream:
        return self

    async def __anext__(self) -> bytes:
        if self._file is None:
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._file.read, CHUNK_SIZE)
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    async def __aenter__(self) -> LocalFileStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()


class LocalStorage:
    """Files under ``base_path`` (created if missing)."""

    supports_metadata = True

    def __init__(self, base_path: str | os.PathLike[str]) -> None:
        base = Path(base_path)
        base.mkdir(parents=True, exist_ok=True)
        self._base = Path(os.path.realpath(base))
        self._base_str = str(self._base)

    @property
    def base_path(self) -> Path:
        return self._base

    # -- path mapping -----------------------------------------------------------------------
    def _uri(self, uri: URILike) -> StorageURI:
        return parse_user_uri(uri)

    def _real(self, uri: StorageURI, follow: bool = True) -> Path:
        """The resolved filesystem path for ``uri``; refuses anything resolving outside the root.

        ``follow=False`` resolves only the parent folder, so deleting or moving a symlink acts on
        the link itself, never on what it points to.
        """
        if uri.is_root:
            return self._base
        lexical = os.path.join(self._base_str, *uri.segments)
        if follow:
            real = os.path.realpath(lexical)
        else:
            real = os.path.join(os.path.realpath(os.path.dirname(lexical)), uri.name)
        if real != self._base_str and not real.startswith(self._base_str + os.sep):
            raise InvalidStorageURI(f"Invalid storage URI '{uri}': it resolves outside the storage root")
        return Path(real)

    def _inside(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return real == self._base_str or real.startswith(self._base_str + os.sep)

    def _to_uri(self, path: Path) -> str:
        rel = path.relative_to(self._base).as_posix()
        return str(StorageURI("/" + rel if rel != "." else "/"))

    # -- reading ----------------------------------------------------------------------------
    async def get(self, uri: URILike) -> LocalFileStream:
        target = self._uri(uri)

        def _open() -> IO[bytes]:
            path = self._real(target)
            try:
                return open(path, "rb")
            except FileNotFoundError:
                raise StorageNotFound(f"File not found: {target}") from None
            except IsADirectoryError:
                raise StorageError(f"Cannot read {target}: it is a directory") from None
            except OSError as exc:
                raise StorageError(f"Cannot read {target}: {exc.strerror}") from None

        return LocalFileStream(await asyncio.to_thread(_open))

    async def get_bytes(self, uri: URILike) -> bytes:
        parts = []
        async with await self.get(uri) as stream:
            async for chunk in stream:
                parts.append(chunk)
        return b"".join(parts)

    async def exists(self, uri: URILike) -> bool:
        target = self._uri(uri)
        return await asyncio.to_thread(lambda: self._real(target).exists())

    async def attributes(self, uri: URILike) -> FileAttributes:
        target = self._uri(uri)
        return await asyncio.to_thread(lambda: self._attributes(target, self._real(target)))

    def _attributes(self, uri: StorageURI, path: Path) -> FileAttributes:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise StorageNotFound(f"File not found: {uri}") from None
        except OSError as exc:
            raise StorageError(f"Cannot read attributes of {uri}: {exc.strerror}") from None
        is_dir = path.is_dir()
        created = getattr(st, "st_birthtime", None) or st.st_ctime
        return FileAttributes(
            name=uri.name,
            type=FileType.DIRECTORY if is_dir else FileType.FILE,
            size=0 if is_dir else st.st_size,
            created=datetime.fromtimestamp(created, UTC),
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
            metadata={} if is_dir else _read_metadata(path),
            uri=str(uri),
        )

    async def list(self, uri: URILike) -> builtins.list[FileAttributes]:
        target = self._uri(uri)

        def _list() -> builtins.list[FileAttributes]:
            path = self._real(target)
            try:
                names = sorted(os.listdir(path))
            except FileNotFoundError:
                raise StorageNotFound(f"Directory not found: {target}") from None
            except NotADirectoryError:
                raise StorageError(f"Cannot list {target}: it is not a directory") from None
            out = []
            for name in names:
                if name.startswith(RESERVED_PREFIX):
                    continue
                child = target.join(name)
                try:
                    out.append(self._attributes(child, self._real(child)))
                except (StorageNotFound, InvalidStorageURI):
                    continue  # removed meanwhile, or a symlink pointing outside: not ours to show
            return out

        return await asyncio.to_thread(_list)

    async def list_prefix(self, prefix: URILike, include_directories: bool = False) -> builtins.list[str]:
        target = self._uri(prefix)
        return await asyncio.to_thread(self._walk, target, include_directories)

    def _walk(self, target: StorageURI, include_directories: bool) -> builtins.list[str]:
        root = self._real(target)
        if not root.is_dir():
            return []
        out: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if self._visible(here / d))
            if include_directories:
                out.extend(self._to_uri(here / d) for d in dirnames)
            out.extend(self._to_uri(here / f) for f in filenames if self._visible(here / f))
        return sorted(out)

    def _visible(self, path: Path) -> bool:
        if path.name.startswith(RESERVED_PREFIX):
            return False
        return not path.is_symlink() or self._inside(path)

    # -- writing ----------------------------------------------------------------------------
    async def put(self, uri: URILike, source: PutSource, metadata: Mapping[str, str] | None = None) -> str:
        target = self._uri(uri)
        if target.is_root:
            raise InvalidStorageURI("Invalid storage URI 'kestra:///': cannot write the root")
        path, tmp = await asyncio.to_thread(self._open_temp, target)
        try:
            if isinstance(source, bytes | bytearray | memoryview):
                await asyncio.to_thread(tmp.write, bytes(source))
            elif isinstance(source, Path):
                await asyncio.to_thread(_copy_path, source, tmp, target)
            elif isinstance(source, AsyncIterable):
                await _copy_async(source, tmp)
            elif hasattr(source, "read"):
                await asyncio.to_thread(shutil.copyfileobj, source, tmp, CHUNK_SIZE)
            else:
                raise StorageError(f"Cannot write {target}: unsupported source {type(source).__name__}")
            await asyncio.to_thread(self._commit, tmp, path, target, metadata)
        except BaseException:
            await asyncio.to_thread(_discard, tmp)
            raise
        return str(target)

    def _open_temp(self, uri: StorageURI) -> tuple[Path, BinaryIO]:
        path = self._real(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = tempfile.NamedTemporaryFile(prefix=_TMP, dir=path.parent, delete=False)  # noqa: SIM115
        except (FileExistsError, NotADirectoryError):
            raise StorageError(f"Cannot write {uri}: a parent is a file") from None
        except OSError as exc:
            raise StorageError(f"Cannot write {uri}: {exc.strerror}") from None
        return path, tmp  # type: ignore[return-value]

    def _commit(self, tmp: BinaryIO, path: Path, uri: StorageURI, metadata: Mapping[str, str] | None) -> None:
        try:
            tmp.close()
            if path.is_dir():
                raise StorageError(f"Cannot write {uri}: it is a directory")
            if metadata:
                _write_metadata(path, metadata)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_meta_path(path))
            os.replace(tmp.name, path)
        except OSError as exc:
            raise StorageError(f"Cannot write {uri}: {exc.strerror}") from None

    async def create_directory(self, uri: URILike) -> str:
        target = self._uri(uri)

        def _mkdir() -> None:
            try:
                self._real(target).mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise StorageError(f"Cannot create directory {target}: a file has that name") from None
            except OSError as exc:
                raise StorageError(f"Cannot create directory {target}: {exc.strerror}") from None

        await asyncio.to_thread(_mkdir)
        return str(target)

    async def move(self, source: URILike, destination: URILike) -> str:
        src, dst = self._uri(source), self._uri(destination)
        if src.is_root or dst.is_root:
            raise InvalidStorageURI("Cannot move the storage root")
        if dst.is_under(src):
            raise StorageError(f"Cannot move {src} into itself ({dst})")

        def _move() -> None:
            src_path, dst_path = self._real(src, follow=False), self._real(dst)
            if not src_path.exists() and not src_path.is_symlink():
                raise StorageNotFound(f"File not found: {src}")
            try:
                dst_path.parent.mkdir(parents=True, exist_ok=True)
                if src_path.is_file() and _meta_path(src_path).exists():
                    os.replace(_meta_path(src_path), _meta_path(dst_path))
                elif dst_path.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(_meta_path(dst_path))
                os.replace(src_path, dst_path)
            except OSError as exc:
                raise StorageError(f"Cannot move {src} to {dst}: {exc.strerror}") from None

        await asyncio.to_thread(_move)
        return str(dst)

    # -- deleting ---------------------------------------------------------------------------
    async def delete(self, uri: URILike) -> bool:
        target = self._uri(uri)
        if target.is_root:
            raise InvalidStorageURI("Refusing to delete the storage root")

        def _delete() -> bool:
            path = self._real(target, follow=False)
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                    return True
                os.unlink(path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise StorageError(f"Cannot delete {target}: {exc.strerror}") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_meta_path(path))
            return True

        return await asyncio.to_thread(_delete)

    async def delete_prefix(self, prefix: URILike) -> builtins.list[str]:
        target = self._uri(prefix)
        if target.is_root:
            raise InvalidStorageURI("Refusing to delete the storage root")

        def _delete() -> builtins.list[str]:
            path = self._real(target, follow=False)
            if not path.exists() or path.is_symlink():
                return []
            if not path.is_dir():
                raise StorageError(f"Cannot delete prefix {target}: it is a file")
            files = self._walk(target, include_directories=False)
            file_set = set(files)
            dirs = [u for u in self._walk(target, include_directories=True) if u not in file_set]
            dirs.sort(key=lambda u: u.count("/"), reverse=True)
            try:
                shutil.rmtree(path)
            except OSError as exc:
                raise StorageError(f"Cannot delete {target}: {exc.strerror}") from None
            return [*files, *dirs, str(target)]

        return await asyncio.to_thread(_delete)


# -- helpers ---------------------------------------------------------------------------------


def _meta_path(path: Path) -> Path:
    return path.with_name(_META + path.name)


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        data: Any = json.loads(_meta_path(path).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP, dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(metadata), f)
    os.replace(tmp, _meta_path(path))


def _copy_path(source: Path, tmp: BinaryIO, uri: StorageURI) -> None:
    try:
        with open(source, "rb") as f:
            shutil.copyfileobj(f, tmp, CHUNK_SIZE)
    except FileNotFoundError:
        raise StorageError(f"Cannot write {uri}: the local source file does not exist") from None
    except IsADirectoryError:
        raise StorageError(f"Cannot write {uri}: the local source is a directory") from None


async def _copy_async(source: AsyncIterable[bytes], tmp: BinaryIO) -> None:
    """Copy an async stream, batching small chunks so each thread hop writes up to 1 MiB."""
    buffer = bytearray()
    async for chunk in source:
        buffer += chunk
        if len(buffer) >= CHUNK_SIZE:
            data, buffer = bytes(buffer), bytearray()
            await asyncio.to_thread(tmp.write, data)
    if buffer:
        await asyncio.to_thread(tmp.write, bytes(buffer))


def _discard(tmp: BinaryIO) -> None:
    with contextlib.suppress(OSError):
        tmp.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp.name)


__all__ = ["LocalFileStream", "LocalStorage"]
