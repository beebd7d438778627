"""WorkingDirectory cache: saved by pattern, restored while fresh, ignored once its ttl passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tiercel.engine import workdir_cache
from tiercel.storage.local import LocalStorage

CACHE = {"patterns": ["*.txt"], "ttl": "PT5m"}


async def test_save_then_restore_round_trips_matching_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (first / "hello.txt").write_text("HELLO")
    (first / "skip.bin").write_text("no")
    uri = workdir_cache.cache_uri("io.kestra.tests", "flow", "workingDir")
    assert await workdir_cache.save(storage, uri, first, CACHE) == 1
    assert await workdir_cache.restore(storage, uri, second, CACHE, datetime.now(UTC))
    assert (second / "hello.txt").read_text() == "HELLO"
    assert not (second / "skip.bin").exists()


async def test_expired_cache_is_not_restored(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("A")
    uri = workdir_cache.cache_uri("io.kestra.tests", "flow", "wd")
    await workdir_cache.save(storage, uri, work, CACHE)
    later = datetime.now(UTC) + timedelta(minutes=6)
    target = tmp_path / "target"
    target.mkdir()
    assert not await workdir_cache.restore(storage, uri, target, CACHE, later)
    assert list(target.iterdir()) == []
