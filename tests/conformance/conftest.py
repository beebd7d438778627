"""Conformance fixtures: Kestra's test-only plugins are stood in for by Tiercel shims, and the
PostgreSQL cases share one database per process.

The shims go into the process-wide registry once per process (each pytest-xdist worker registers
its own) before any conformance test loads a flow. Unit tests are unaffected unless they share a
worker with conformance tests and run later, and none of them use the test-only type names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance import kestra_test_plugins


@pytest.fixture(scope="session", autouse=True)
def kestra_test_only_plugins() -> None:
    kestra_test_plugins.register()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This process's database for the ``postgres`` cases (one per xdist worker), emptied before each
    case and dropped at the end of the session.

    Not one database per case: CREATE and DROP DATABASE (which forces a checkpoint) hold a transaction
    id on the shared server for up to a second under load, and PostgresQueue delivers no broadcast
    (kills) in *any* database of the server while an older transaction is still running, so they made
    other workers' cases (sleep.yml::kill-running) miss their kill.
    """
    from tests.support.postgres import fresh_database

    with fresh_database() as url:
        yield url
