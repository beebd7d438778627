"""io.kestra.plugin.core.storage.*: tasks that create, combine, split and delete storage files.

Files stream through these tasks chunk by chunk; none of them loads a whole file in memory.
Output files are stored under the task run's own prefix (``…/tasks/<task>/<task run id>/``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field

from tiercel.errors import StorageNotFound, TaskError
from tiercel.ids import new_id
from tiercel.plugins.base import RunContext, RunnableTask
from tiercel.plugins.core.convert import to_bool
from tiercel.storage.base import CHUNK_SIZE, FileType
from tiercel.storage.uri import InvalidStorageURI, StorageURI, execution_prefix, task_output_prefix

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


# -- helpers shared with other task modules ----------------------------------------------------


def output_uri(ctx: RunContext, name: str) -> StorageURI:
    """``name`` (may contain ``/``) under the task run's output prefix; never escapes it."""
    run = ctx.task_run
    prefix = task_output_prefix(ctx.namespace, ctx.flow_id, ctx.execution_id, run.task_id, run.id)
    try:
        return prefix.join(name)
    except InvalidStorageURI as exc:
        raise TaskError(str(exc)) from None


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A glob as Kestra (Java ``PathMatcher``) reads it, over ``/``-separated relative paths:
    ``*`` and ``?`` stay inside one folder, ``**`` crosses folders, ``{a,b}`` is an alternative."""
    out: list[str] = []
    i, depth = 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def safe_local_path(root: Path, relative: str) -> Path:
    """``relative`` inside ``root``; absolute paths, ``..`` and symlinks leading out are refused
    (GHSA-q3fw-mvgv-pjr2: a file name must never write outside the working directory)."""
    text = str(relative).replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or ".." in parts or not parts or "\x00" in text:
        raise TaskError(f"Invalid file path '{relative}': use a relative path inside the working directory")
    real_root = os.path.realpath(root)
    target = Path(real_root, *parts)
    real = os.path.realpath(target)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise TaskError(f"Invalid file path '{relative}': it resolves outside the working directory")
    return Path(real)


def matching_files(root: Path, patterns: list[str]) -> list[tuple[str, Path]]:
    """Regular files under ``root`` whose relative path matches a glob, sorted, never outside ``root``."""
    regexes = [glob_to_regex(p.lstrip("/")) for p in patterns]
    real_root = os.path.realpath(root)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(real_root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(real_root).as_posix()
            if not any(r.match(rel) for r in regexes):
                continue
            real = os.path.realpath(path)
            if real.startswith(real_root + os.sep) and os.path.isfile(real):
                found.append((rel, path))
    return found


def parse_size(value: Any) -> int:
    """``1024``, ``"10KB"``, ``"5 MB"``, ``"1GiB"`` → bytes (binary multiples, as Kestra)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise TaskError(f"Invalid size '{value}': expected a number of bytes such as 1024, 10KB or 5MB")
        unit = (match.group(2) or "").upper()
        size = int(match.group(1)) * _UNITS[unit[:1] if unit not in ("", "B") else unit]
    if size <= 0:
        raise TaskError(f"Invalid size '{value}': it must be positive")
    return size


def _as_list(value: Any, name: str) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise TaskError(f"`{name}` must be a list or a JSON array, got {value!r}") from None
    if not isinstance(value, list):
        raise TaskError(f"`{name}` must be a list or a JSON array")
    return value


def _extension(value: Any) -> str:
    ext = str(value or "")
    if "/" in ext or "\\" in ext or "\x00" in ext:
        raise TaskError(f"Invalid extension '{ext}'")
    return ext


# -- tasks ----------------------------------------------------------------------------------------


class Write(RunnableTask):
    """Store rendered text as a file and return its URI."""

    type: Literal["io.kestra.plugin.core.storage.Write"]
    content: Any
    extension: str = ".txt"

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        content = ctx.render(self.content)
        if not isinstance(content, str):
            content = json.dumps(content, default=str)
        uri = output_uri(ctx, new_id() + _extension(ctx.render(self.extension)))
        return {"uri": await ctx.services.storage.put(uri, content.encode("utf-8"))}


class LocalFiles(RunnableTask):
    """Create files in the working directory, and/or upload working-directory files by glob.

    Deprecated in Kestra (replaced by ``inputFiles``/``outputFiles``) but used inside
    ``WorkingDirectory`` by many flows. An input whose content is a ``kestra://`` URI is copied
    from storage; any other content is written as text.
    """

    type: Literal["io.kestra.plugin.core.storage.LocalFiles", "io.kestra.core.tasks.storages.LocalFiles"]
    inputs: dict[str, Any] | str | None = None
    outputs: list[str] | str | None = None

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        root = ctx.working_dir()
        storage = ctx.services.storage
        if self.inputs is not None:
            inputs = ctx.render(self.inputs)
            if isinstance(inputs, str):
                try:
                    inputs = json.loads(inputs)
                except ValueError:
                    raise TaskError("`inputs` must be a map of path to content, or a JSON object") from None
            if not isinstance(inputs, Mapping):
                raise TaskError("`inputs` must be a map of path to content, or a JSON object")
            for rel, content in inputs.items():
                target = safe_local_path(root, str(rel))
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, str) and content.startswith("kestra://"):
                    async with await storage.get(content) as stream:
                        with open(target, "wb") as out:
                            await _write_stream(stream, out)
                else:
                    text = content if isinstance(content, str) else json.dumps(content, default=str)
                    target.write_text(text, encoding="utf-8")
                ctx.logger.debug(f"Created local file '{rel}'")
        uris: dict[str, str] = {}
        if self.outputs is not None:
            patterns = [str(p) for p in _as_list(ctx.render(self.outputs), "outputs")]
            for rel, path in matching_files(root, patterns):
                uris[rel] = await ctx.services.storage.put(output_uri(ctx, rel), path)
        return {"uris": uris}


async def _write_stream(stream: AsyncIterator[bytes], out: IO[bytes]) -> None:
    async for chunk in stream:
        await asyncio.to_thread(out.write, chunk)


class Concat(RunnableTask):
    """Concatenate storage files, in order, each followed by ``separator`` when one is given."""

    type: Literal["io.kestra.plugin.core.storage.Concat", "io.kestra.core.tasks.storages.Concat"]
    files: list[str] | str
    separator: str | None = None
    extension: str = ".tmp"

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        files = [str(f) for f in _as_list(ctx.render(self.files), "files")]
        separator = ctx.render(self.separator).encode("utf-8") if self.separator else b""
        storage = ctx.services.storage

        async def chunks() -> AsyncIterator[bytes]:
            for uri in files:
                async with await storage.get(uri) as stream:
                    async for chunk in stream:
                        yield chunk
                if separator:
                    yield separator

        uri = output_uri(ctx, new_id() + _extension(ctx.render(self.extension)))
        return {"uri": await storage.put(uri, chunks())}


class Split(RunnableTask):
    """Split a file on ``separator`` into parts of at most ``bytes``, ``rows`` rows, or into
    ``partitions`` files (rows dealt round-robin). Rows are never cut."""

    type: Literal["io.kestra.plugin.core.storage.Split", "io.kestra.core.tasks.storages.Split"]
    from_: str = Field(alias="from")
    bytes_: str | int | None = Field(default=None, alias="bytes")
    partitions: int | str | None = None
    rows: int | str | None = None
    separator: str = "\n"

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        chosen = [v for v in (self.bytes_, self.partitions, self.rows) if v is not None]
        if len(chosen) != 1:
            raise TaskError("Split needs exactly one of `bytes`, `partitions` or `rows`")
        source = str(ctx.render(self.from_))
        separator = str(ctx.render(self.separator)).encode("utf-8")
        if not separator:
            raise TaskError("`separator` cannot be empty")
        name = StorageURI.parse(source).name
        stem, ext = os.path.splitext(name)
        folder = Path(ctx.working_dir(), f".split-{new_id()}")
        folder.mkdir(parents=True)
        parts: list[Path] = []

        def new_part() -> IO[bytes]:
            path = folder / f"{stem}-{len(parts)}{ext}"
            parts.append(path)
            return open(path, "wb")

        storage = ctx.services.storage
        if self.partitions is not None:
            count = int(ctx.render(self.partitions))
            if count <= 0:
                raise TaskError("`partitions` must be positive")
            outs = [new_part() for _ in range(count)]
            try:
                n = 0
                async for row in _rows(await storage.get(source), separator):
                    outs[n % count].write(row + separator)
                    n += 1
            finally:
                for out in outs:
                    out.close()
        else:
            if self.rows is not None:
                limit, by_rows = int(ctx.render(self.rows)), True
                if limit <= 0:
                    raise TaskError("`rows` must be positive")
            else:
                limit, by_rows = parse_size(ctx.render(self.bytes_)), False
            current: IO[bytes] | None = None
            written = 0
            try:
                async for row in _rows(await storage.get(source), separator):
                    if current is None:
                        current, written = new_part(), 0
                    current.write(row + separator)
                    written += 1 if by_rows else len(row) + len(separator)
                    if written >= limit:
                        current.close()
                        current = None
            finally:
                if current is not None:
                    current.close()
        uris = [await storage.put(output_uri(ctx, path.name), path) for path in parts]
        for path in parts:
            path.unlink(missing_ok=True)
        folder.rmdir()
        return {"uris": uris}


async def _rows(stream: Any, separator: bytes) -> AsyncIterator[bytes]:
    """Rows of a byte stream split on ``separator`` (a trailing separator ends the last row)."""
    buffer = b""
    async with stream:
        async for chunk in stream:
            buffer += chunk
            start = 0
            while True:
                end = buffer.find(separator, start)
                if end == -1:
                    break
                yield buffer[start:end]
                start = end + len(separator)
            buffer = buffer[start:]
            if len(buffer) > 64 * CHUNK_SIZE:
                raise TaskError("A row is longer than 64 MiB: is the separator right?")
    if buffer:
        yield buffer


class Size(RunnableTask):
    type: Literal["io.kestra.plugin.core.storage.Size", "io.kestra.core.tasks.storages.Size"]
    uri: str

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        attributes = await ctx.services.storage.attributes(str(ctx.render(self.uri)))
        return {"size": attributes.size}


class Delete(RunnableTask):
    """Delete one file. Directories are refused: one templated URI must not be able to wipe a
    whole namespace or execution folder (``PurgeCurrentExecutionFiles`` does that on purpose)."""

    type: Literal["io.kestra.plugin.core.storage.Delete", "io.kestra.core.tasks.storages.Delete"]
    uri: str
    error_on_missing: bool | str = False

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        uri = str(ctx.render(self.uri))
        storage = ctx.services.storage
        try:
            attributes = await storage.attributes(uri)
        except StorageNotFound:
            if to_bool(ctx.render(self.error_on_missing)):
                raise StorageNotFound(f"Unable to find the file '{uri}'") from None
            return {"uri": uri, "deleted": False}
        if attributes.type is FileType.DIRECTORY:
            raise TaskError(f"Cannot delete '{uri}': it is a directory")
        deleted = await storage.delete(uri)
        ctx.logger.debug(f"Deleted '{uri}'" if deleted else f"Nothing to delete at '{uri}'")
        return {"uri": uri, "deleted": deleted}


class PurgeCurrentExecutionFiles(RunnableTask):
    """Delete every storage file of the current execution (inputs and task outputs)."""

    type: Literal[
        "io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles",
        "io.kestra.plugin.core.storage.PurgeExecution",
        "io.kestra.core.tasks.storages.PurgeExecution",
    ]

    async def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        prefix = execution_prefix(ctx.namespace, ctx.flow_id, ctx.execution_id)
        return {"uris": await ctx.services.storage.delete_prefix(prefix)}


PLUGINS: list[type[RunnableTask]] = [
    Write,
    LocalFiles,
    Concat,
    Split,
    Size,
    Delete,
    PurgeCurrentExecutionFiles,
]
