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
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping

import pytest

from tiercel.model.base import Record
from tiercel.queue.base import Queue
from tiercel.repository.base import Repositories

QUEUE_BACKENDS = ["memory"]
REPOSITORY_BACKENDS = ["memory"]


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

    async def open(self, topics: Mapping[str, type[Record]] | None = None) -> Queue:
        """A queue carrying ``topics`` (default: the engine's), over this test's storage."""
        queue: Queue
        if self.name == "memory":
            from tiercel.queue.memory import MemoryQueue

            queue = MemoryQueue(topics)
        else:
            raise AssertionError(f"no queue backend named {self.name!r}")
        self._opened.append(queue)
        return queue

    async def aclose(self) -> None:
        for queue in reversed(self._opened):
            await queue.close()


@pytest.fixture(params=QUEUE_BACKENDS)
async def queue_backend(request: pytest.FixtureRequest) -> AsyncIterator[QueueBackend]:
    backend = QueueBackend(request.param)
    try:
        yield backend
    finally:
        await backend.aclose()


async def _open_repositories(name: str) -> Repositories:
    if name == "memory":
        from tiercel.repository.memory import MemoryRepositories

        return MemoryRepositories()
    raise AssertionError(f"no repository backend named {name!r}")


@pytest.fixture(params=REPOSITORY_BACKENDS)
async def repositories(request: pytest.FixtureRequest) -> AsyncIterator[Repositories]:
    repos = await _open_repositories(request.param)
    try:
        yield repos
    finally:
        await repos.close()
