"""Alembic environment of the repository tables (SQLite in batch mode, PostgreSQL transactional)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from tiercel.repository.sql.migrate import VERSION_TABLE, include_object
from tiercel.repository.sql.tables import metadata


def _configure(**kwargs: Any) -> None:
    context.configure(target_metadata=metadata, version_table=VERSION_TABLE, compare_type=True, **kwargs)


def _run(connection: Connection) -> None:
    dialect = connection.dialect.name
    _configure(
        connection=connection, render_as_batch=dialect == "sqlite", include_object=include_object(dialect)
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "", poolclass=NullPool)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()
