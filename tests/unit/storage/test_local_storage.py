"""What only the local backend does: files on disk, temp files, symlinks. The behaviour every
backend shares is in ``tests/contracts/test_storage_contract.py``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tiercel.storage import LocalStorage
from tiercel.storage.uri import InvalidStorageURI


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage(root)


async def test_a_uri_is_a_file_under_the_base_path(storage: LocalStorage, root: Path) -> None:
    await storage.put("kestra:///ns/flow/a.txt", b"hello", metadata={"k": "v"})
    assert storage.base_path == root.resolve()
    assert (root / "ns" / "flow" / "a.txt").read_bytes() == b"hello"
    assert [a.name for a in await storage.list("kestra:///ns/flow")] == ["a.txt"]  # sidecar hidden


async def test_failed_put_leaves_no_temp_file(storage: LocalStorage, root: Path) -> None:
    await storage.put("kestra:///x.txt", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"new"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await storage.put("kestra:///x.txt", broken())
    assert sorted(os.listdir(root)) == ["x.txt"]


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///../secret.txt",
        "kestra:///a/../../secret.txt",
        "kestra:///..%2Fsecret.txt",
        "kestra:///%2e%2e/secret.txt",
        "kestra:///..\\secret.txt",
        "kestra:///a/..\\..\\secret.txt",
    ],
)
async def test_traversal_never_touches_outside(storage: LocalStorage, tmp_path: Path, uri: str) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    for call in (storage.get_bytes, storage.delete):
        with pytest.raises(InvalidStorageURI):
            await call(uri)
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
