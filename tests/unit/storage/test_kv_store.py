from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tiercel.clock import ManualClock
from tiercel.errors import ValidationError
from tiercel.storage import KVKeyNotFound, KVStore, KVType, LocalStorage


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def kv(tmp_path: Path, clock: ManualClock) -> KVStore:
    return KVStore(LocalStorage(tmp_path), clock)


async def test_set_get_document(kv: KVStore, tmp_path: Path) -> None:
    await kv.set("company.team", "my-key", {"field": "value"})
    entry = await kv.get("company.team", "my-key")
    assert entry is not None
    assert entry.value == {"field": "value"} and entry.type is KVType.JSON
    assert (tmp_path / "company" / "team" / "_kv" / "my-key.json").exists()


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("s", KVType.STRING),
        (1, KVType.NUMBER),
        (1.5, KVType.NUMBER),
        (True, KVType.BOOLEAN),
        ([1], KVType.JSON),
    ],
)
async def test_inferred_types(kv: KVStore, value: object, kind: KVType) -> None:
    await kv.set("ns", "k", value)
    entry = await kv.get("ns", "k")
    assert entry is not None and entry.value == value and entry.type is kind


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("42", KVType.NUMBER, 42),
        ("4.5", KVType.NUMBER, 4.5),
        ("true", KVType.BOOLEAN, True),
        ("2024-01-02T03:04:05Z", KVType.DATETIME, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02", KVType.DATE, date(2024, 1, 2)),
        ("PT5M", KVType.DURATION, timedelta(minutes=5)),
        ('{"a": [1]}', KVType.JSON, {"a": [1]}),
        ("text", KVType.STRING, "text"),
    ],
)
async def test_kv_type_conversion_round_trips(kv: KVStore, raw: str, kind: KVType, expected: object) -> None:
    await kv.set("ns", "typed", raw, kv_type=kind)
    entry = await kv.get("ns", "typed")
    assert entry is not None and entry.value == expected and entry.type is kind


async def test_bad_conversion(kv: KVStore) -> None:
    with pytest.raises(ValidationError):
        await kv.set("ns", "k", "not a number", kv_type=KVType.NUMBER)


async def test_ttl_expiry_with_clock(kv: KVStore, clock: ManualClock, tmp_path: Path) -> None:
    await kv.set("ns", "temp", "v", ttl=timedelta(minutes=5))
    clock.advance(timedelta(minutes=4))
    assert await kv.get_value("ns", "temp") == "v"
    clock.advance(timedelta(minutes=2))
    assert await kv.get("ns", "temp") is None
    assert not (tmp_path / "ns" / "_kv" / "temp.json").exists()
    assert await kv.list("ns") == []


async def test_overwrite_false(kv: KVStore, clock: ManualClock) -> None:
    await kv.set("ns", "k", "first")
    clock.advance(timedelta(seconds=1))
    with pytest.raises(ValidationError, match="already exists"):
        await kv.set("ns", "k", "second", overwrite=False)
    entry = await kv.set("ns", "k", "third")
    assert entry.created < entry.updated
    assert await kv.get_value("ns", "k") == "third"


async def test_overwrite_false_after_expiry(kv: KVStore, clock: ManualClock) -> None:
    await kv.set("ns", "k", "first", ttl=timedelta(seconds=1))
    clock.advance(timedelta(seconds=2))
    await kv.set("ns", "k", "second", overwrite=False)
    assert await kv.get_value("ns", "k") == "second"


@pytest.mark.parametrize("key", ["", "-x", ".x", "a/b", "../x", "a b", "é", "a\\b"])
async def test_key_validation(kv: KVStore, key: str) -> None:
    with pytest.raises(ValidationError, match="Invalid KV key"):
        await kv.set("ns", key, "v")
    with pytest.raises(ValidationError):
        await kv.get("ns", key)


async def test_list_and_delete(kv: KVStore) -> None:
    for key in ("b", "a", "ab"):
        await kv.set("ns", key, key)
    await kv.set("other", "z", 1)
    assert [e.key for e in await kv.list("ns")] == ["a", "ab", "b"]
    assert [e.key for e in await kv.list("ns", "a")] == ["a", "ab"]
    assert await kv.delete("ns", "a")
    assert not await kv.delete("ns", "a")
    assert await kv.list("empty") == []


async def test_missing_key_message(kv: KVStore) -> None:
    assert await kv.get_value("io.kestra.tests", "my-key") is None
    with pytest.raises(KVKeyNotFound) as info:
        await kv.get_value("io.kestra.tests", "my-key", error_on_missing=True)
    assert str(info.value) == "The key 'my-key' does not exist in the namespace 'io.kestra.tests'."
