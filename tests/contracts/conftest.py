"""The backends every contract suite runs against, one parametrized fixture per component.

Adding a backend (say ``sqlite``) takes three steps and no change to any test body:

1. add its name to ``QUEUE_BACKENDS`` / ``REPOSITORY_BACKENDS``;
2. add a branch in ``QueueBackend.open`` / ``_open_repositories`` that builds it on fresh storage
   (a temporary file, a template-copied PostgreSQL database, …). ``QueueBackend.open`` must return a
   new instance over the *same* storage each time it is called within one test, which is how the
   restart tests reopen a queue;
3. if it needs a server, call ``require_server(name, reachable)`` first.

``require_server`` follows dramatiq's rule: a backend whose server is missing is skipped on a
developer's machine but **fails** when the ``CI`` environment variable is set, so CI can never pass
by silently skipping a backend.

Abilities that only some backends have are declared by ``supports_*`` attributes on the backend
(``Queue.supports_redelivery_across_restarts``, …); tests consult them with ``pytest.skip``.

Storage backends (``STORAGE_BACKENDS``) are built in ``StorageBackend.open``: ``local`` on a
temporary folder, ``s3`` and ``gcs`` on a fresh bucket of an in-process server (moto,
gcp-storage-emulator), ``azure`` on a fresh container of an Azurite process (installed by
``make test``); each server is started once per pytest process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import object_stores
from tiercel.model.base import Record
from tiercel.queue.base import Queue
from tiercel.repository.base import Repositories
from tiercel.storage.azure import EMULATOR_ACCOUNT, EMULATOR_KEY
from tiercel.storage.base import Storage

QUEUE_BACKENDS = ["memory", "sqlite", "postgres"]
REPOSITORY_BACKENDS = ["memory", "sqlite", "postgres"]
STORAGE_BACKENDS = ["local", "s3", "gcs", "azure"]


def require_server(name: str, reachable: bool) -> None:
    """Skip (locally) or fail (when ``CI`` is set) a backend whose server is not reachable."""
    if reachable:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} backend: server not reachable, and CI is set: refusing to skip")
    pytest.skip(f"{name} backend: server not reachable")


class QueueBackend:
    """Opens queues of one backend over one test's storage and closes them all at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._opened: list[Queue] = []
        self._storage = contextlib.ExitStack()
        self._url: str | None = None

    def _storage_url(self) -> str:
        """This test's database, created on first use (a temporary file, a fresh PostgreSQL database)."""
        if self._url is None:
            if self.name == "sqlite":
                directory = tempfile.mkdtemp(prefix="tiercel-queue-")
                self._storage.callback(shutil.rmtree, directory, ignore_errors=True)
                self._url = f"sqlite:///{directory}/queue.db"
            else:
                from tests.support import postgres

                require_server("postgres", postgres.reachable())
                self._url = self._storage.enter_context(postgres.fresh_database())
        return self._url

    async def open(self, topics: Mapping[str, type[Record]] | None = None) -> Queue:
        """A queue carrying ``topics`` (default: the engine's), over this test's storage."""
        queue: Queue
        if self.name == "memory":
            from tiercel.queue.memory import MemoryQueue

            queue = MemoryQueue(topics)
        elif self.name == "sqlite":
            from tiercel.queue.sqlite import SQLiteQueue

            queue = SQLiteQueue(self._storage_url(), topics)
            await queue.open()
        elif self.name == "postgres":
            from tiercel.queue.postgres import PostgresQueue

            queue = PostgresQueue(self._storage_url(), topics)
            await queue.open()
        else:
            raise AssertionError(f"no queue backend named {self.name!r}")
        self._opened.append(queue)
        return queue

    async def aclose(self) -> None:
        try:
            for queue in reversed(self._opened):
                await queue.close()
        finally:
            self._storage.close()


@pytest.fixture(params=QUEUE_BACKENDS)
async def queue_backend(request: pytest.FixtureRequest) -> AsyncIterator[QueueBackend]:
    backend = QueueBackend(request.param)
    try:
        yield backend
    finally:
        await backend.aclose()


class RepositoryBackend:
    """Opens repositories of one backend over one test's storage and closes them all at the end.

    Each ``open()`` returns another instance over the same storage (a second engine on the same
    file or database), which is how the lock tests contend across instances; the memory backend's
    storage *is* its instance, so it returns that one again.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._opened: list[Repositories] = []
        self._storage = contextlib.ExitStack()
        self._url: str | None = None

    def _storage_url(self) -> str:
        """This test's database, created on first use (a temporary file, a fresh PostgreSQL database)."""
        if self._url is None:
            if self.name == "sqlite":
                directory = tempfile.mkdtemp(prefix="tiercel-repository-")
                self._storage.callback(shutil.rmtree, directory, ignore_errors=True)
                self._url = f"sqlite:///{directory}/tiercel.db"
            else:
                from tests.support import postgres

                require_server("postgres", postgres.reachable())
                self._url = self._storage.enter_context(postgres.fresh_database())
        return self._url

    async def open(self) -> Repositories:
        repos: Repositories
        if self.name == "memory":
            if self._opened:
                return self._opened[0]
            from tiercel.repository.memory import MemoryRepositories

            repos = MemoryRepositories()
        elif self.name == "sqlite":
            from tiercel.repository.sqlite import SqliteRepositories

            repos = SqliteRepositories(self._storage_url())
        elif self.name == "postgres":
            from tiercel.repository.postgres import PostgresRepositories

            repos = PostgresRepositories(self._storage_url())
        else:
            raise AssertionError(f"no repository backend named {self.name!r}")
        self._opened.append(repos)
        opener = getattr(repos, "open", None)
        if opener is not None:
            await opener()
        return repos

    async def aclose(self) -> None:
        try:
            for repos in reversed(self._opened):
                await repos.close()
        finally:
            self._storage.close()


@pytest.fixture(params=REPOSITORY_BACKENDS)
async def repository_backend(request: pytest.FixtureRequest) -> AsyncIterator[RepositoryBackend]:
    backend = RepositoryBackend(request.param)
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def repositories(repository_backend: RepositoryBackend) -> Repositories:
    return await repository_backend.open()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    require_server("s3", object_stores.available("moto.server"))
    with object_stores.s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    require_server("gcs", object_stores.available("gcp_storage_emulator.server"))
    with object_stores.gcs_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def azure_endpoint() -> Iterator[str]:
    require_server("azure", object_stores.AZURITE.exists())
    with object_stores.azure_server() as endpoint:
        yield endpoint


class StorageBackend:
    """Opens storages of one backend over one test's folder or bucket and closes them at the end.

    Each ``open()`` returns a new instance over the same data (another process's view).
    ``hidden`` lists what no error message may show: the real folder, the bucket, the endpoint,
    Azure's account and key.
    """

    def __init__(self, name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.name = name
        self._opened: list[Storage] = []
        self._endpoint = self._bucket = ""
        self._root = tmp_path / "storage"
        if name == "s3":
            self._endpoint = request.getfixturevalue("s3_endpoint")
            self._bucket = object_stores.new_s3_bucket(self._endpoint)
        elif name == "gcs":
            self._endpoint = request.getfixturevalue("gcs_endpoint")
            self._bucket = object_stores.new_gcs_bucket(self._endpoint)
        elif name == "azure":
            self._endpoint = request.getfixturevalue("azure_endpoint")
            self._bucket = object_stores.new_azure_container(self._endpoint)
        elif name != "local":
            raise AssertionError(f"no storage backend named {name!r}")
        self.hidden = [str(tmp_path)] if name == "local" else [self._bucket, self._endpoint, "127.0.0.1"]
        if name == "azure":
            self.hidden += [EMULATOR_ACCOUNT, EMULATOR_KEY]

    async def open(self, bucket: str | None = None) -> Storage:
        """A storage over this test's data; ``bucket`` names another (say, missing) bucket or
        container."""
        storage: Storage
        if self.name == "local":
            from tiercel.storage.local import LocalStorage

            storage = LocalStorage(self._root)
        elif self.name == "s3":
            from tiercel.storage.s3 import S3Storage

            storage = S3Storage(
                bucket=bucket or self._bucket,
                region="us-east-1",
                endpoint=self._endpoint,
                access_key=object_stores.S3_ACCESS_KEY,
                secret_key=object_stores.S3_SECRET_KEY,
                path_style=True,
            )
        elif self.name == "gcs":
            from tiercel.storage.gcs import GCSStorage

            storage = GCSStorage(bucket=bucket or self._bucket, endpoint=self._endpoint)
        else:
            from tiercel.storage.azure import AzureStorage

            connection_string = object_stores.azure_connection_string(self._endpoint)
            storage = AzureStorage(container=bucket or self._bucket, connection_string=connection_string)
        self._opened.append(storage)
        if bucket is None:
            opener = getattr(storage, "open", None)
            if opener is not None:
                await opener()
        return storage

    async def aclose(self) -> None:
        for storage in reversed(self._opened):
            closer = getattr(storage, "close", None)
            if closer is not None:
                await closer()


@pytest.fixture(params=STORAGE_BACKENDS)
async def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    backend = StorageBackend(request.param, request, tmp_path)
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def storage(storage_backend: StorageBackend) -> Storage:
    return await storage_backend.open()
