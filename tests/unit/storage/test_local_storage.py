from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tiercel.errors import StorageError, StorageNotFound
from tiercel.storage import CHUNK_SIZE, FileType, LocalStorage, Storage
from tiercel.storage.uri import InvalidStorageURI


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage(root)


def test_is_a_storage(storage: LocalStorage) -> None:
    assert isinstance(storage, Storage)


async def test_put_get_bytes(storage: LocalStorage, root: Path) -> None:
    uri = await storage.put("kestra:///ns/flow/a.txt", b"hello")
    assert uri == "kestra:///ns/flow/a.txt"
    assert (root / "ns" / "flow" / "a.txt").read_bytes() == b"hello"
    assert await storage.get_bytes(uri) == b"hello"
    assert await storage.exists(uri)
    assert not await storage.exists("kestra:///ns/flow/b.txt")


async def test_stream_in_chunks(storage: LocalStorage) -> None:
    payload = os.urandom(CHUNK_SIZE * 2 + 10)

    async def source() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 1000):
            yield payload[i : i + 1000]

    await storage.put("kestra:///big.bin", source())
    sizes = []
    data = bytearray()
    async with await storage.get("kestra:///big.bin") as stream:
        async for chunk in stream:
            sizes.append(len(chunk))
            data += chunk
    assert bytes(data) == payload
    assert max(sizes) <= CHUNK_SIZE and len(sizes) == 3


async def test_put_from_path_and_file_object(storage: LocalStorage, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_bytes(b"from path")
    await storage.put("kestra:///p.txt", local)
    await storage.put("kestra:///f.txt", io.BytesIO(b"from file"))
    assert await storage.get_bytes("kestra:///p.txt") == b"from path"
    assert await storage.get_bytes("kestra:///f.txt") == b"from file"


async def test_missing_raises_not_found_on_open(storage: LocalStorage, root: Path) -> None:
    with pytest.raises(StorageNotFound) as info:
        await storage.get("kestra:///nope.txt")
    assert "kestra:///nope.txt" in str(info.value)
    assert str(root) not in str(info.value)
    with pytest.raises(StorageNotFound):
        await storage.attributes("kestra:///nope.txt")
    with pytest.raises(StorageNotFound):
        await storage.list("kestra:///nope")


async def test_failed_put_leaves_previous_content(storage: LocalStorage, root: Path) -> None:
    await storage.put("kestra:///x.txt", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"new"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await storage.put("kestra:///x.txt", broken())
    assert await storage.get_bytes("kestra:///x.txt") == b"old"
    assert sorted(os.listdir(root)) == ["x.txt"]


async def test_attributes_list_and_metadata(storage: LocalStorage) -> None:
    await storage.put("kestra:///d/a.txt", b"abc", metadata={"k": "v"})
    await storage.put("kestra:///d/sub/b.txt", b"")
    attrs = await storage.attributes("kestra:///d/a.txt")
    assert (attrs.name, attrs.type, attrs.size, dict(attrs.metadata)) == (
        "a.txt",
        FileType.FILE,
        3,
        {"k": "v"},
    )
    listing = await storage.list("kestra:///d")
    assert [(a.name, a.type) for a in listing] == [("a.txt", FileType.FILE), ("sub", FileType.DIRECTORY)]
    assert await storage.list_prefix("kestra:///d") == ["kestra:///d/a.txt", "kestra:///d/sub/b.txt"]
    assert await storage.list_prefix("kestra:///d", include_directories=True) == [
        "kestra:///d/a.txt",
        "kestra:///d/sub",
        "kestra:///d/sub/b.txt",
    ]
    assert await storage.list_prefix("kestra:///nothing") == []
    await storage.put("kestra:///dd/x", b"")
    assert await storage.list_prefix("kestra:///d") == ["kestra:///d/a.txt", "kestra:///d/sub/b.txt"]


async def test_delete_recursive_and_prefix(storage: LocalStorage) -> None:
    await storage.put("kestra:///e/1/a", b"a")
    await storage.put("kestra:///e/1/b/c", b"c")
    await storage.put("kestra:///e/2", b"2")
    assert await storage.delete("kestra:///e/2")
    assert not await storage.delete("kestra:///e/2")
    assert await storage.delete("kestra:///e/1/b")
    assert await storage.list_prefix("kestra:///e") == ["kestra:///e/1/a"]
    deleted = await storage.delete_prefix("kestra:///e")
    assert deleted == ["kestra:///e/1/a", "kestra:///e/1", "kestra:///e"]
    assert not await storage.exists("kestra:///e")
    assert await storage.delete_prefix("kestra:///e") == []
    with pytest.raises(InvalidStorageURI):
        await storage.delete("kestra:///")


async def test_move_and_create_directory(storage: LocalStorage) -> None:
    await storage.put("kestra:///m/a.txt", b"a", metadata={"x": "1"})
    assert await storage.move("kestra:///m/a.txt", "kestra:///n/b.txt") == "kestra:///n/b.txt"
    assert not await storage.exists("kestra:///m/a.txt")
    assert (await storage.attributes("kestra:///n/b.txt")).metadata == {"x": "1"}
    with pytest.raises(StorageNotFound):
        await storage.move("kestra:///m/a.txt", "kestra:///z")
    assert await storage.create_directory("kestra:///dir/sub") == "kestra:///dir/sub"
    assert (await storage.attributes("kestra:///dir/sub")).type is FileType.DIRECTORY
    await storage.move("kestra:///n", "kestra:///dir/sub/n")
    assert await storage.list_prefix("kestra:///dir") == ["kestra:///dir/sub/n/b.txt"]


async def test_directory_errors(storage: LocalStorage) -> None:
    await storage.create_directory("kestra:///d")
    with pytest.raises(StorageError):
        await storage.get("kestra:///d")
    with pytest.raises(StorageError):
        await storage.put("kestra:///d", b"x")


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///../secret.txt",
        "kestra:///a/../../secret.txt",
        "kestra:///..%2Fsecret.txt",
        "kestra:///%2e%2e/secret.txt",
        "kestra:///..\\secret.txt",
        "kestra:///a/..\\..\\secret.txt",
        "kestra:///secret.txt%00",
        "kestra:///.tiercel-tmp-x",
    ],
)
async def test_traversal_never_reads_outside(
    storage: LocalStorage, root: Path, tmp_path: Path, uri: str
) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    for call in (storage.get, storage.get_bytes, storage.exists, storage.attributes, storage.delete):
        with pytest.raises(InvalidStorageURI) as info:
            await call(uri)
        assert str(tmp_path) not in str(info.value)
    with pytest.raises(InvalidStorageURI):
        await storage.put(uri, b"pwned")
    assert (tmp_path / "secret.txt").read_text() == "top secret"


async def test_symlink_escape_refused(storage: LocalStorage, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside, root / "link")
    os.symlink(outside / "secret.txt", root / "file-link")
    for uri in ("kestra:///link/secret.txt", "kestra:///file-link"):
        with pytest.raises(InvalidStorageURI) as info:
            await storage.get_bytes(uri)
        assert str(tmp_path) not in str(info.value)
    with pytest.raises(InvalidStorageURI):
        await storage.put("kestra:///link/new.txt", b"x")
    assert not (outside / "new.txt").exists()
    assert await storage.list_prefix("kestra:///") == []
    assert [a.name for a in await storage.list("kestra:///")] == []
    # deleting the link removes the link, never what it points to
    assert await storage.delete("kestra:///link")
    assert (outside / "secret.txt").exists()


async def test_symlink_inside_root_is_followed(storage: LocalStorage, root: Path) -> None:
    await storage.put("kestra:///real/a.txt", b"a")
    os.symlink(root / "real", root / "alias")
    assert await storage.get_bytes("kestra:///alias/a.txt") == b"a"


async def test_error_message_hides_real_path(storage: LocalStorage, root: Path) -> None:
    await storage.put("kestra:///file", b"x")
    with pytest.raises(StorageError) as info:
        await storage.put("kestra:///file/child", b"x")
    assert str(root) not in str(info.value)
    assert "kestra:///file/child" in str(info.value)
