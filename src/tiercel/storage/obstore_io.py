"""What the obstore backends (``s3``, ``azure``) share: chunked downloads, uploads read off the
event loop, multipart sizes, and the metadata encoding that survives each service's header rules."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import IO
from urllib.parse import unquote

from obstore.exceptions import BaseError as ObstoreError

from tiercel.errors import StorageError
from tiercel.storage.base import CHUNK_SIZE

PART_SIZE = 5 * 1024 * 1024
"""Multipart upload part size: S3's minimum, so an upload holds little in memory."""
PARTS_IN_FLIGHT = 4

KEY_ESCAPE = re.compile(r"_([0-9a-f]{1,6})_")
"""``_<hex code point>_``: how metadata names escape what a service would mangle."""
VALUE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
"""Printable ASCII but ``%``: what metadata values keep as is (the rest is percent-encoded)."""
STANDARD_ATTRIBUTES = frozenset(
    {
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Type",
        "Cache-Control",
        "Storage-Class",
    }
)


class Download:
    """An obstore download handed out in chunks of at most ``CHUNK_SIZE`` bytes.

    Closing drops obstore's stream, which closes the connection.
    """

    __slots__ = ("_chunks", "_fail", "_pending")

    def __init__(self, chunks: AsyncIterator[bytes], fail: Callable[[BaseException], StorageError]) -> None:
        self._chunks: AsyncIterator[bytes] | None = chunks
        self._fail = fail
        self._pending = memoryview(b"")

    def __aiter__(self) -> Download:
        return self

    async def __anext__(self) -> bytes:
        while not self._pending:
            if self._chunks is None:
                raise StopAsyncIteration
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._chunks = None
                raise
            except ObstoreError as exc:
                self._chunks = None
                raise self._fail(exc) from None
            if len(chunk) <= CHUNK_SIZE:
                return chunk
            self._pending = memoryview(chunk)
        out, self._pending = self._pending[:CHUNK_SIZE], self._pending[CHUNK_SIZE:]
        return bytes(out)

    async def aclose(self) -> None:
        self._chunks = None
        self._pending = memoryview(b"")

    async def __aenter__(self) -> Download:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def read_in_thread(file: IO[bytes]) -> AsyncIterator[bytes]:
    """A file object's chunks, each read off the event loop (obstore would read it on the loop)."""
    while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
        yield chunk


def decode_metadata(attributes: Mapping[str, str]) -> dict[str, str]:
    return {
        KEY_ESCAPE.sub(_unescape, k): unquote(v)
        for k, v in attributes.items()
        if k not in STANDARD_ATTRIBUTES
    }


def _unescape(match: re.Match[str]) -> str:
    code = int(match[1], 16)
    return chr(code) if code <= sys.maxunicode else match[0]
