"""``build_components``: backends come from entry points, bad pairs and missing extras are refused."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points as real_entry_points
from pathlib import Path
from typing import Any

import pytest

from tests.contracts.conftest import require_server
from tests.support import object_stores
from tiercel.config import Config
from tiercel.errors import ConfigError
from tiercel.queue.base import QueueClosed, Topic
from tiercel.queue.memory import MemoryQueue
from tiercel.repository.memory import MemoryRepositories
from tiercel.server import wiring
from tiercel.server.wiring import build_components, close_components
from tiercel.storage.azure import EMULATOR_ACCOUNT, EMULATOR_KEY
from tiercel.storage.local import LocalStorage

HERE = "tests.unit.server.test_wiring"


def memory_config(tmp_path: Path, **sections: Any) -> Config:
    return Config(
        queue={"type": "memory"},
        repository={"type": "memory"},
        storage={"type": "local", "local": {"base_path": tmp_path / "storage"}},
        **sections,
    )


class FakeBackend:
    """A third-party backend: records its arguments and its life cycle."""

    events: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.events.append(f"new {type(self).__name__}")

    async def open(self) -> None:
        self.events.append(f"open {type(self).__name__}")

    async def close(self) -> None:
        self.events.append(f"close {type(self).__name__}")


class FakeQueue(FakeBackend):
    pass


class FakeRepositories(FakeBackend):
    pass


class FakeStorage(FakeBackend):
    pass


class LazyPostgresQueue:
    """Imports its driver only when constructed."""

    def __init__(self, url: str) -> None:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")


class BrokenStorage:
    def __init__(self, **kwargs: Any) -> None:
        raise RuntimeError("cannot start")


@pytest.fixture
def extra_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[EntryPoint]]]:
    """Entry points added to (or, with ``hide``, taken from) the installed ones, as a fake
    distribution would register them."""
    added: dict[str, list[EntryPoint]] = {}

    def entry_points(*, group: str) -> list[EntryPoint]:
        return [*real_entry_points(group=group), *added.get(group, [])]

    monkeypatch.setattr(wiring, "entry_points", entry_points)
    FakeBackend.events = []
    yield added


def register(added: dict[str, list[EntryPoint]], group: str, name: str, value: str) -> None:
    added.setdefault(group, []).append(EntryPoint(name=name, value=value, group=group))


# -- memory + memory ------------------------------------------------------------------------------


async def test_memory_backends(tmp_path: Path) -> None:
    config = memory_config(
        tmp_path,
        variables={"globals": {"region": "eu"}, "env_vars_prefix": "MY_"},
        encryption={"secret_key": "k" * 32},
    )
    components = await build_components(config, environ={"MY_TEAM": "data", "OTHER": "x"})
    assert isinstance(components.queue, MemoryQueue)
    assert isinstance(components.repositories, MemoryRepositories)
    assert isinstance(components.storage, LocalStorage)
    assert components.storage.base_path == (tmp_path / "storage").resolve()
    assert components.config is config
    assert dict(components.settings.globals) == {"region": "eu"}
    assert dict(components.settings.envs) == {"team": "data"}
    assert components.settings.encryption_key == "k" * 32

    await close_components(components)
    with pytest.raises(QueueClosed):
        components.queue.subscribe(Topic.EXECUTIONS, "executor")


async def test_backends_are_loaded_through_entry_points(
    tmp_path: Path, extra_entry_points: dict[str, list[EntryPoint]]
) -> None:
    register(extra_entry_points, "tiercel.queue", "custom", f"{HERE}:FakeQueue")
    register(extra_entry_points, "tiercel.repository", "custom", f"{HERE}:FakeRepositories")
    register(extra_entry_points, "tiercel.storage", "custom", f"{HERE}:FakeStorage")
    config = Config(
        queue={"type": "custom"},
        repository={"type": "custom"},
        datasource={"url": "custom://db"},
        storage={"type": "custom"},
    )
    components = await build_components(config, environ={})
    assert isinstance(components.queue, FakeQueue) and components.queue.args == ("custom://db",)
    assert isinstance(components.repositories, FakeRepositories)
    assert components.repositories.args == ("custom://db",)
    assert isinstance(components.storage, FakeStorage) and components.storage.kwargs == {}
    await close_components(components)
    assert FakeBackend.events == [
        "new FakeQueue",
        "open FakeQueue",
        "new FakeRepositories",
        "open FakeRepositories",
        "new FakeStorage",
        "open FakeStorage",
        "close FakeStorage",
        "close FakeRepositories",
        "close FakeQueue",
    ]


async def test_a_failed_start_closes_what_was_opened(
    tmp_path: Path, extra_entry_points: dict[str, list[EntryPoint]]
) -> None:
    register(extra_entry_points, "tiercel.queue", "custom", f"{HERE}:FakeQueue")
    register(extra_entry_points, "tiercel.repository", "custom", f"{HERE}:FakeRepositories")
    register(extra_entry_points, "tiercel.storage", "broken", f"{HERE}:BrokenStorage")
    config = Config(queue={"type": "custom"}, repository={"type": "custom"}, storage={"type": "broken"})
    with pytest.raises(RuntimeError, match="cannot start"):
        await build_components(config, environ={})
    assert FakeBackend.events[-2:] == ["close FakeRepositories", "close FakeQueue"]


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "repository"),
    [(q, r) for q in ("memory", "sqlite", "postgres") for r in ("memory", "sqlite", "postgres") if q != r],
)
async def test_bad_pair_is_refused_before_anything_is_loaded(
    queue: str, repository: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_entry_points(**kwargs: Any) -> list[EntryPoint]:
        raise AssertionError("nothing may be loaded before the pairing is checked")

    monkeypatch.setattr(wiring, "entry_points", no_entry_points)
    config = Config(queue={"type": queue}, repository={"type": repository})
    with pytest.raises(ConfigError) as info:
        await build_components(config)
    assert str(info.value) == (
        f"queue.type={queue} cannot be used with repository.type={repository}: the queue and the "
        "repository must be the same kind (memory+memory, sqlite+sqlite, postgres+postgres)"
    )


async def test_wrong_datasource_url_is_refused() -> None:
    config = Config(queue={"type": "postgres"}, repository={"type": "postgres"})
    with pytest.raises(ConfigError, match=r"^datasource\.url must be a PostgreSQL URL"):
        await build_components(config)


async def test_unknown_type_lists_the_available_ones(tmp_path: Path) -> None:
    config = memory_config(tmp_path).model_copy(update={"storage": Config(storage={"type": "ftp"}).storage})
    with pytest.raises(ConfigError) as info:
        await build_components(config)
    message = str(info.value)
    assert message.startswith("storage.type=ftp is not a known backend; available: ")
    assert "local" in message.rpartition("available: ")[2].split(", ")


async def test_missing_extra_when_the_dependency_is_not_installed(
    extra_entry_points: dict[str, list[EntryPoint]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def only_fakes(*, group: str) -> list[EntryPoint]:
        return extra_entry_points.get(group, [])  # whatever is installed, postgres is the fake below

    monkeypatch.setattr(wiring, "entry_points", only_fakes)
    register(extra_entry_points, "tiercel.queue", "postgres", "psycopg_is_not_installed_here:PostgresQueue")
    config = Config(
        queue={"type": "postgres"},
        repository={"type": "postgres"},
        datasource={"url": "postgresql://postgres@127.0.0.1:5432/tiercel"},
    )
    with pytest.raises(ConfigError) as info:
        await build_components(config)
    assert (
        str(info.value) == "queue.type=postgres needs the 'postgres' extra: pip install 'tiercel[postgres]'"
    )


async def test_missing_extra_imported_lazily_by_the_constructor(
    extra_entry_points: dict[str, list[EntryPoint]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "entry_points", lambda *, group: extra_entry_points.get(group, []))
    register(extra_entry_points, "tiercel.queue", "postgres", f"{HERE}:LazyPostgresQueue")
    register(extra_entry_points, "tiercel.repository", "postgres", f"{HERE}:FakeRepositories")
    register(extra_entry_points, "tiercel.storage", "local", "tiercel.storage.local:LocalStorage")
    config = Config(
        queue={"type": "postgres"},
        repository={"type": "postgres"},
        datasource={"url": "postgresql://postgres@127.0.0.1:5432/tiercel"},
    )
    with pytest.raises(ConfigError) as info:
        await build_components(config)
    assert (
        str(info.value) == "queue.type=postgres needs the 'postgres' extra: pip install 'tiercel[postgres]'"
    )
    assert FakeBackend.events == []  # nothing was started after the queue failed


async def test_missing_extra_when_the_entry_point_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_storage(*, group: str) -> list[EntryPoint]:
        return [] if group == "tiercel.storage" else list(real_entry_points(group=group))

    monkeypatch.setattr(wiring, "entry_points", without_storage)
    config = memory_config(tmp_path).model_copy(update={"storage": Config(storage={"type": "s3"}).storage})
    with pytest.raises(ConfigError) as info:
        await build_components(config)
    assert str(info.value) == "storage.type=s3 needs the 's3' extra: pip install 'tiercel[s3]'"


async def test_a_broken_backend_module_is_not_blamed_on_an_extra(
    tmp_path: Path, extra_entry_points: dict[str, list[EntryPoint]]
) -> None:
    register(extra_entry_points, "tiercel.queue", "custom", "tiercel.queue.does_not_exist:Queue")
    register(extra_entry_points, "tiercel.repository", "custom", f"{HERE}:FakeRepositories")
    config = Config(
        queue={"type": "custom"},
        repository={"type": "custom"},
        storage={"local": {"base_path": tmp_path / "storage"}},
    )
    with pytest.raises(ConfigError) as info:
        await build_components(config)
    assert str(info.value).startswith(
        "queue.type=custom could not be loaded from tiercel.queue.does_not_exist:Queue: No module named"
    )


# -- sqlite + sqlite ------------------------------------------------------------------------------


def _sqlite_backends_ready() -> bool:
    modules = ("tiercel.queue.sqlite", "tiercel.repository.sqlite")
    try:
        importable = all(importlib.util.find_spec(name) is not None for name in modules)
    except ImportError:
        return False
    registered = all(
        any(ep.name == "sqlite" for ep in real_entry_points(group=group))
        for group in ("tiercel.queue", "tiercel.repository")
    )
    return importable and registered


async def test_sqlite_backends(tmp_path: Path) -> None:
    config = Config(
        datasource={"url": f"sqlite:///{tmp_path / 'tiercel.db'}"},
        storage={"local": {"base_path": tmp_path / "storage"}},
    )
    components = await build_components(config, environ={})
    try:
        assert type(components.queue).__name__ == "SQLiteQueue"
        assert type(components.repositories).__name__ == "SqliteRepositories"
        assert isinstance(components.storage, LocalStorage)
    finally:
        await close_components(components)


# -- object storage: the built-in s3, gcs and azure entry points ------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with object_stores.s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def gcs_endpoint() -> Iterator[str]:
    with object_stores.gcs_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def azure_endpoint() -> Iterator[str]:
    require_server("azure", object_stores.AZURITE.exists())
    with object_stores.azure_server() as endpoint:
        yield endpoint


async def test_s3_storage(s3_endpoint: str) -> None:
    from tiercel.storage.s3 import S3Storage

    settings = {
        "bucket": object_stores.new_s3_bucket(s3_endpoint),
        "endpoint": s3_endpoint,
        "access_key": object_stores.S3_ACCESS_KEY,
        "secret_key": object_stores.S3_SECRET_KEY,
        "path_style": True,
    }
    config = Config(
        queue={"type": "memory"}, repository={"type": "memory"}, storage={"type": "s3", "s3": settings}
    )
    components = await build_components(config, environ={})
    try:
        assert isinstance(components.storage, S3Storage)
        await components.storage.put("kestra:///ns/a.txt", b"through the entry point")
        assert await components.storage.get_bytes("kestra:///ns/a.txt") == b"through the entry point"
    finally:
        await close_components(components)


async def test_gcs_storage(gcs_endpoint: str) -> None:
    from tiercel.storage.gcs import GCSStorage

    settings = {"bucket": object_stores.new_gcs_bucket(gcs_endpoint), "endpoint": gcs_endpoint}
    config = Config(
        queue={"type": "memory"}, repository={"type": "memory"}, storage={"type": "gcs", "gcs": settings}
    )
    components = await build_components(config, environ={})
    try:
        assert isinstance(components.storage, GCSStorage)
        await components.storage.put("kestra:///ns/a.txt", b"through the entry point")
        assert await components.storage.get_bytes("kestra:///ns/a.txt") == b"through the entry point"
    finally:
        await close_components(components)


@pytest.mark.parametrize("credential", ["account_key", "sas_token"])
async def test_azure_storage(azure_endpoint: str, credential: str) -> None:
    from tiercel.storage.azure import AzureStorage

    settings = {"container": object_stores.new_azure_container(azure_endpoint), "endpoint": azure_endpoint}
    if credential == "account_key":
        settings |= {"account": EMULATOR_ACCOUNT, "account_key": EMULATOR_KEY}
    else:
        settings["sas_token"] = object_stores.azure_sas_token()  # the account comes from the endpoint
    config = Config(
        queue={"type": "memory"}, repository={"type": "memory"}, storage={"type": "azure", "azure": settings}
    )
    components = await build_components(config, environ={})
    try:
        assert isinstance(components.storage, AzureStorage)
        await components.storage.put("kestra:///ns/a.txt", b"through the entry point")
        assert await components.storage.get_bytes("kestra:///ns/a.txt") == b"through the entry point"
    finally:
        await close_components(components)


async def test_azure_storage_without_a_container_is_refused() -> None:
    config = Config(queue={"type": "memory"}, repository={"type": "memory"}, storage={"type": "azure"})
    with pytest.raises(
        ConfigError, match=r"^storage\.azure\.container is required when storage\.type is azure$"
    ):
        await build_components(config, environ={})


@pytest.mark.parametrize("kind", ["s3", "gcs"])
async def test_object_storage_without_a_bucket_is_refused(kind: str) -> None:
    config = Config(queue={"type": "memory"}, repository={"type": "memory"}, storage={"type": kind})
    with pytest.raises(
        ConfigError, match=rf"^storage\.{kind}\.bucket is required when storage\.type is {kind}$"
    ):
        await build_components(config, environ={})
