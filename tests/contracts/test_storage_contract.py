"""The ``Storage`` contract, run against every backend in ``STORAGE_BACKENDS`` (local, s3, gcs, azure).

Local-only behaviour (symlinks, the files on disk) is tested in ``tests/unit/storage``.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.contracts.conftest import StorageBackend
from tiercel.errors import StorageError, StorageNotFound
from tiercel.storage import CHUNK_SIZE, FileType, Storage
from tiercel.storage.uri import InvalidStorageURI, StorageURI

LARGE = 9 * 1024 * 1024
"""Above S3's multipart part size and GCS's resumable chunk size: several parts each way."""


def payload(size: int) -> bytes:
    return os.urandom(size)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_chunks(storage: Storage, uri: str) -> list[bytes]:
    chunks = []
    async with await storage.get(uri) as stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks


def assert_hidden(error: BaseException, backend: StorageBackend) -> None:
    for secret in backend.hidden:
        assert secret not in str(error)


def test_is_a_storage(storage: Storage) -> None:
    assert isinstance(storage, Storage)


# -- put and get ----------------------------------------------------------------------------------


async def test_put_get_bytes(storage: Storage) -> None:
    uri = await storage.put("kestra:///ns/flow/a.txt", b"hello")
    assert uri == "kestra:///ns/flow/a.txt"
    assert await storage.get_bytes(uri) == b"hello"
    assert await storage.get_bytes("/ns/flow/a.txt") == b"hello"
    assert await storage.exists(uri)
    assert not await storage.exists("kestra:///ns/flow/b.txt")


async def test_put_replaces(storage: Storage) -> None:
    await storage.put("kestra:///r.txt", b"first, longer")
    await storage.put("kestra:///r.txt", b"second")
    assert await storage.get_bytes("kestra:///r.txt") == b"second"
    await storage.put("kestra:///empty", b"")
    assert await storage.get_bytes("kestra:///empty") == b""
    assert (await storage.attributes("kestra:///empty")).size == 0


async def test_stream_in_chunks(storage: Storage) -> None:
    data = payload(CHUNK_SIZE * 2 + 10)
    await storage.put("kestra:///big.bin", pieces(data, 1000))
    chunks = await read_chunks(storage, "kestra:///big.bin")
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) <= CHUNK_SIZE and len(chunks) >= 3


async def test_large_objects_from_every_source(storage: Storage, tmp_path: Path) -> None:
    data = payload(LARGE)
    local = tmp_path / "large.bin"
    local.write_bytes(data)
    await storage.put("kestra:///large/stream", pieces(data, 64 * 1024))
    await storage.put("kestra:///large/path", local)
    with local.open("rb") as file:
        await storage.put("kestra:///large/file", file)
    for name in ("stream", "path", "file"):
        chunks = await read_chunks(storage, f"kestra:///large/{name}")
        assert b"".join(chunks) == data, name
        assert max(map(len, chunks)) <= CHUNK_SIZE
    assert (await storage.attributes("kestra:///large/path")).size == LARGE


async def test_put_from_path_and_file_object(storage: Storage, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_bytes(b"from path")
    file = io.BytesIO(b"from file")
    await storage.put("kestra:///p.txt", local)
    await storage.put("kestra:///f.txt", file)
    assert not file.closed  # the caller's file object stays the caller's
    await storage.put("kestra:///m.txt", memoryview(b"from a buffer"))
    assert await storage.get_bytes("kestra:///p.txt") == b"from path"
    assert await storage.get_bytes("kestra:///f.txt") == b"from file"
    assert await storage.get_bytes("kestra:///m.txt") == b"from a buffer"


async def test_bad_sources_are_refused(
    storage: Storage, tmp_path: Path, storage_backend: StorageBackend
) -> None:
    with pytest.raises(StorageError, match="the local source file does not exist") as info:
        await storage.put("kestra:///x", tmp_path / "missing")
    assert_hidden(info.value, storage_backend)
    with pytest.raises(StorageError, match="the local source is a directory"):
        await storage.put("kestra:///x", tmp_path)
    with pytest.raises(StorageError, match="unsupported source"):
        await storage.put("kestra:///x", "text is not bytes")  # type: ignore[arg-type]
    assert not await storage.exists("kestra:///x")


async def test_failed_put_leaves_previous_content(storage: Storage) -> None:
    await storage.put("kestra:///x.txt", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"new" * 100_000
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await storage.put("kestra:///x.txt", broken())
    with pytest.raises(RuntimeError, match="boom"):
        await storage.put("kestra:///y.txt", broken())
    assert await storage.get_bytes("kestra:///x.txt") == b"old"
    assert await storage.list_prefix("kestra:///") == ["kestra:///x.txt"]


async def test_stream_closed_early(storage: Storage) -> None:
    await storage.put("kestra:///s.bin", payload(CHUNK_SIZE * 3))
    stream = await storage.get("kestra:///s.bin")
    first = await stream.__anext__()
    assert 0 < len(first) <= CHUNK_SIZE
    await stream.aclose()
    assert [chunk async for chunk in stream] == []
    await storage.delete("kestra:///s.bin")  # nothing still holds the object


async def test_names_round_trip(storage: Storage) -> None:
    names = ["sp ace", "ünï", "per%cent", "hash#", "q?", "plus+&=", "x.y-z_~", "(1)[2]{3}'@$!,;"]
    for name in names:
        uri = str(StorageURI("/names").join(name))
        assert await storage.put(uri, name.encode()) == uri
        assert await storage.get_bytes(uri) == name.encode()
    listed = await storage.list_prefix("kestra:///names")
    assert listed == sorted(str(StorageURI("/names").join(n)) for n in names)
    assert sorted(a.name for a in await storage.list("kestra:///names")) == sorted(names)


# -- attributes and listing -----------------------------------------------------------------------


async def test_attributes_and_metadata(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    metadata = {"k": "v", "fileName": "Ünïcode, spaces & 100%", "UPPER_case-key.x": ""}
    await storage.put("kestra:///d/a.txt", b"abc", metadata=metadata)
    attrs = await storage.attributes("kestra:///d/a.txt")
    assert (attrs.name, attrs.type, attrs.size, dict(attrs.metadata), attrs.uri) == (
        "a.txt",
        FileType.FILE,
        3,
        metadata,
        "kestra:///d/a.txt",
    )
    after = datetime.now(UTC) + timedelta(minutes=1)
    assert before <= attrs.created <= after and before <= attrs.modified <= after
    folder = await storage.attributes("kestra:///d")
    assert (folder.name, folder.type, folder.size, dict(folder.metadata)) == ("d", FileType.DIRECTORY, 0, {})
    assert before <= folder.modified <= after
    root = await storage.attributes("kestra:///")
    assert root.type is FileType.DIRECTORY
    await storage.put("kestra:///d/a.txt", b"abcd")
    assert (await storage.attributes("kestra:///d/a.txt")).metadata == {}  # replaced with the content


async def test_list_one_level(storage: Storage) -> None:
    await storage.put("kestra:///d/a.txt", b"abc", metadata={"k": "v"})
    await storage.put("kestra:///d/sub/b.txt", b"")
    await storage.put("kestra:///d/sub/deeper/c.txt", b"")
    await storage.put("kestra:///top.txt", b"t")
    listing = await storage.list("kestra:///d")
    assert [(a.name, a.type, a.uri) for a in listing] == [
        ("a.txt", FileType.FILE, "kestra:///d/a.txt"),
        ("sub", FileType.DIRECTORY, "kestra:///d/sub"),
    ]
    assert dict(listing[0].metadata) == {"k": "v"} and listing[0].size == 3
    assert [(a.name, a.type) for a in await storage.list("kestra:///")] == [
        ("d", FileType.DIRECTORY),
        ("top.txt", FileType.FILE),
    ]
    with pytest.raises(StorageError) as info:
        await storage.list("kestra:///top.txt")
    assert not isinstance(info.value, StorageNotFound)


async def test_list_prefix_recursive(storage: Storage) -> None:
    await storage.put("kestra:///d/a.txt", b"abc")
    await storage.put("kestra:///d/sub/b.txt", b"")
    await storage.put("kestra:///dd/x", b"")
    assert await storage.list_prefix("kestra:///d") == ["kestra:///d/a.txt", "kestra:///d/sub/b.txt"]
    assert await storage.list_prefix("kestra:///d", include_directories=True) == [
        "kestra:///d/a.txt",
        "kestra:///d/sub",
        "kestra:///d/sub/b.txt",
    ]
    assert await storage.list_prefix("kestra:///") == [
        "kestra:///d/a.txt",
        "kestra:///d/sub/b.txt",
        "kestra:///dd/x",
    ]
    assert await storage.list_prefix("kestra:///nothing") == []
    assert await storage.list_prefix("kestra:///d/a.txt") == []


async def test_missing_raises_not_found(storage: Storage, storage_backend: StorageBackend) -> None:
    with pytest.raises(StorageNotFound) as info:
        await storage.get("kestra:///nope.txt")  # on opening, not on the first chunk
    assert "kestra:///nope.txt" in str(info.value)
    assert_hidden(info.value, storage_backend)
    with pytest.raises(StorageNotFound):
        await storage.get_bytes("kestra:///nope/deeper.txt")
    with pytest.raises(StorageNotFound):
        await storage.attributes("kestra:///nope.txt")
    with pytest.raises(StorageNotFound) as info:
        await storage.list("kestra:///nope")
    assert_hidden(info.value, storage_backend)
    with pytest.raises(StorageNotFound):
        await storage.move("kestra:///nope", "kestra:///z")


# -- folders --------------------------------------------------------------------------------------


async def test_create_directory(storage: Storage) -> None:
    assert await storage.create_directory("kestra:///dir/sub") == "kestra:///dir/sub"
    assert await storage.create_directory("kestra:///dir/sub") == "kestra:///dir/sub"
    assert (await storage.attributes("kestra:///dir/sub")).type is FileType.DIRECTORY
    assert await storage.exists("kestra:///dir")
    assert await storage.list("kestra:///dir/sub") == []
    assert [a.name for a in await storage.list("kestra:///dir")] == ["sub"]
    assert await storage.list_prefix("kestra:///dir") == []
    assert await storage.list_prefix("kestra:///dir", include_directories=True) == ["kestra:///dir/sub"]


async def test_a_folder_outlives_its_last_file(storage: Storage) -> None:
    await storage.put("kestra:///x/a", b"a")
    assert await storage.delete("kestra:///x/a")
    assert await storage.exists("kestra:///x")
    assert await storage.list("kestra:///x") == []


async def test_directory_errors(storage: Storage, storage_backend: StorageBackend) -> None:
    await storage.create_directory("kestra:///d")
    await storage.put("kestra:///full/f", b"f")
    for folder in ("kestra:///d", "kestra:///full", "kestra:///"):
        with pytest.raises(StorageError) as info:
            await storage.get(folder)
        assert not isinstance(info.value, StorageNotFound)
    with pytest.raises(StorageError):
        await storage.put("kestra:///d", b"x")
    with pytest.raises(StorageError):
        await storage.put("kestra:///full", b"x")
    await storage.put("kestra:///file", b"x")
    with pytest.raises(StorageError) as info:
        await storage.put("kestra:///file/child", b"x")
    assert "kestra:///file/child" in str(info.value)
    assert_hidden(info.value, storage_backend)
    with pytest.raises(StorageError):
        await storage.create_directory("kestra:///file")
    with pytest.raises(StorageError):
        await storage.create_directory("kestra:///file/sub")
    assert await storage.list_prefix("kestra:///", include_directories=True) == [
        "kestra:///d",
        "kestra:///file",
        "kestra:///full",
        "kestra:///full/f",
    ]


async def test_another_instance_sees_the_same_data(storage_backend: StorageBackend) -> None:
    first, second = await storage_backend.open(), await storage_backend.open()
    await first.put("kestra:///shared/a/one", b"1")
    assert await second.get_bytes("kestra:///shared/a/one") == b"1"
    assert await second.delete_prefix("kestra:///shared") == [
        "kestra:///shared/a/one",
        "kestra:///shared/a",
        "kestra:///shared",
    ]
    await first.put("kestra:///shared/a/two", b"2")  # the first instance had seen those folders
    assert await second.list_prefix("kestra:///shared") == ["kestra:///shared/a/two"]
    assert [a.name for a in await second.list("kestra:///shared/a")] == ["two"]


# -- delete and move ------------------------------------------------------------------------------


async def test_delete_recursive_and_prefix(storage: Storage) -> None:
    await storage.put("kestra:///e/1/a", b"a")
    await storage.put("kestra:///e/1/b/c", b"c")
    await storage.put("kestra:///e/2", b"2")
    assert await storage.delete("kestra:///e/2")
    assert not await storage.delete("kestra:///e/2")
    assert await storage.delete("kestra:///e/1/b")
    assert not await storage.exists("kestra:///e/1/b/c")
    assert await storage.list_prefix("kestra:///e") == ["kestra:///e/1/a"]
    deleted = await storage.delete_prefix("kestra:///e")
    assert deleted == ["kestra:///e/1/a", "kestra:///e/1", "kestra:///e"]
    assert not await storage.exists("kestra:///e")
    assert await storage.delete_prefix("kestra:///e") == []
    assert not await storage.delete("kestra:///e")


async def test_delete_prefix_lists_files_then_folders_deepest_first(storage: Storage) -> None:
    for uri in ("/p/z", "/p/a/b/c", "/p/a/x", "/p/m/n/o/q"):
        await storage.put(uri, b"")
    await storage.create_directory("/p/empty")
    await storage.put("/pp/kept", b"")
    assert await storage.delete_prefix("kestra:///p") == [
        "kestra:///p/a/b/c",
        "kestra:///p/a/x",
        "kestra:///p/m/n/o/q",
        "kestra:///p/z",
        "kestra:///p/m/n/o",
        "kestra:///p/a/b",
        "kestra:///p/m/n",
        "kestra:///p/a",
        "kestra:///p/empty",
        "kestra:///p/m",
        "kestra:///p",
    ]
    assert await storage.list_prefix("kestra:///", include_directories=True) == [
        "kestra:///pp",
        "kestra:///pp/kept",
    ]
    with pytest.raises(StorageError, match="it is a file"):
        await storage.delete_prefix("kestra:///pp/kept")


async def test_the_root_is_never_deleted_or_moved(storage: Storage) -> None:
    await storage.put("kestra:///keep", b"k")
    for call in (storage.delete, storage.delete_prefix):
        with pytest.raises(InvalidStorageURI):
            await call("kestra:///")
    with pytest.raises(InvalidStorageURI):
        await storage.move("kestra:///", "kestra:///elsewhere")
    with pytest.raises(InvalidStorageURI):
        await storage.put("kestra:///", b"x")
    assert await storage.get_bytes("kestra:///keep") == b"k"


async def test_move_file(storage: Storage) -> None:
    await storage.put("kestra:///m/a.txt", b"a", metadata={"x": "1"})
    assert await storage.move("kestra:///m/a.txt", "kestra:///n/b.txt") == "kestra:///n/b.txt"
    assert not await storage.exists("kestra:///m/a.txt")
    assert await storage.exists("kestra:///m")
    assert await storage.get_bytes("kestra:///n/b.txt") == b"a"
    assert (await storage.attributes("kestra:///n/b.txt")).metadata == {"x": "1"}
    await storage.put("kestra:///m/c.txt", b"c")
    await storage.move("kestra:///m/c.txt", "kestra:///n/b.txt")  # replaces
    assert await storage.get_bytes("kestra:///n/b.txt") == b"c"
    assert (await storage.attributes("kestra:///n/b.txt")).metadata == {}


async def test_move_directory(storage: Storage) -> None:
    await storage.put("kestra:///n/b.txt", b"b", metadata={"y": "2"})
    await storage.put("kestra:///n/deep/c.txt", b"c")
    await storage.create_directory("kestra:///n/empty")
    await storage.create_directory("kestra:///dir/sub")
    assert await storage.move("kestra:///n", "kestra:///dir/sub/n") == "kestra:///dir/sub/n"
    assert not await storage.exists("kestra:///n")
    assert await storage.list_prefix("kestra:///dir", include_directories=True) == [
        "kestra:///dir/sub",
        "kestra:///dir/sub/n",
        "kestra:///dir/sub/n/b.txt",
        "kestra:///dir/sub/n/deep",
        "kestra:///dir/sub/n/deep/c.txt",
        "kestra:///dir/sub/n/empty",
    ]
    assert (await storage.attributes("kestra:///dir/sub/n/b.txt")).metadata == {"y": "2"}
    with pytest.raises(StorageError):
        await storage.move("kestra:///dir", "kestra:///dir/sub/inside")


# -- URI safety -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///../secret.txt",
        "kestra:///a/../../secret.txt",
        "kestra:///..%2Fsecret.txt",
        "kestra:///%2e%2e/secret.txt",
        "kestra:///%252e%252e/secret.txt",
        "kestra:///..\\secret.txt",
        "kestra:///a/..\\..\\secret.txt",
        "kestra:///secret.txt%00",
        "kestra:///secret\x00.txt",
        "kestra:///.tiercel-tmp-x",
        "kestra:///a/.tiercel-dir",
        "kestra://host/secret.txt",
        "s3://bucket/secret.txt",
        "relative/secret.txt",
    ],
)
async def test_unsafe_uris_are_refused(storage: Storage, storage_backend: StorageBackend, uri: str) -> None:
    calls = (
        storage.get,
        storage.get_bytes,
        storage.exists,
        storage.attributes,
        storage.list,
        storage.list_prefix,
        storage.delete,
        storage.delete_prefix,
        storage.create_directory,
    )
    for call in calls:
        with pytest.raises(InvalidStorageURI) as info:
            await call(uri)
        assert_hidden(info.value, storage_backend)
    with pytest.raises(InvalidStorageURI):
        await storage.put(uri, b"pwned")
    with pytest.raises(InvalidStorageURI):
        await storage.move("kestra:///anything", uri)
    assert await storage.list_prefix("kestra:///", include_directories=True) == []


async def test_a_failing_store_hides_bucket_and_endpoint(storage_backend: StorageBackend) -> None:
    if storage_backend.name == "local":
        pytest.skip("local storage has no remote store to fail")
    broken = await storage_backend.open(bucket="tiercel-missing-bucket")
    storage_backend.hidden.append("tiercel-missing-bucket")
    failures: list[StorageError] = []
    for call in (broken.get_bytes, broken.list, broken.list_prefix, broken.exists):
        with pytest.raises(StorageError) as info:
            await call("kestra:///a/b")
        failures.append(info.value)
    with pytest.raises(StorageError) as info:
        await broken.put("kestra:///a/b", b"x")
    failures.append(info.value)
    with pytest.raises(StorageError) as info:
        await broken.open()  # type: ignore[attr-defined]
    failures.append(info.value)
    for failure in failures:
        assert_hidden(failure, storage_backend)
        assert "kestra:///" in str(failure)
