"""The REST API (FastAPI). Importing this package imports FastAPI; ``import tiercel`` does not."""

from __future__ import annotations

from tiercel.api.app import create_app

__all__ = ["create_app"]
