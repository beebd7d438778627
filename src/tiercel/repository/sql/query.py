"""Small query builders shared by the SQL repositories."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select


def check_page(page: int, size: int) -> None:
    if page < 1 or size < 1:
        raise ValueError(f"page and size must be at least 1 (got page={page}, size={size})")


def namespace_under(column: Any, prefix: str | None) -> ColumnElement[bool] | None:
    """The dot-boundary prefix rule as an index-friendly range: ``'a.'`` ≤ x < ``'a/'`` (``/`` follows
    ``.``), compared by code point (``C`` collation on PostgreSQL, binary on SQLite)."""
    if prefix is None:
        return None
    return or_(column == prefix, and_(column > prefix + ".", column < prefix + "/"))


def contains(q: str | None, *columns: Any) -> ColumnElement[bool] | None:
    """Case-insensitive substring of any of ``columns`` (``%`` and ``_`` in ``q`` are literal)."""
    if not q:
        return None
    return or_(*(column.icontains(q, autoescape=True) for column in columns))


def where(*conditions: ColumnElement[bool] | None) -> builtins.list[ColumnElement[bool]]:
    return [c for c in conditions if c is not None]


def fetch_page(conn: Connection, query: Select[Any], page: int, size: int) -> tuple[builtins.list[Any], int]:
    """One page of ``query`` (already ordered) and the number of rows over all pages."""
    total = conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    if total <= (page - 1) * size:
        return [], total
    return builtins.list(conn.execute(query.limit(size).offset((page - 1) * size))), total
