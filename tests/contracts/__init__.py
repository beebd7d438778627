"""Contract suites: the same tests for every backend of a component (see conftest.py)."""

from __future__ import annotations
