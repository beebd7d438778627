"""Conformance fixtures: Kestra's test-only plugins are stood in for by Tiercel shims.

The shims go into the process-wide registry once per process (each pytest-xdist worker registers
its own) before any conformance test loads a flow. Unit tests are unaffected unless they share a
worker with conformance tests and run later, and none of them use the test-only type names.
"""

from __future__ import annotations

import pytest

from tests.conformance import kestra_test_plugins


@pytest.fixture(scope="session", autouse=True)
def kestra_test_only_plugins() -> None:
    kestra_test_plugins.register()
