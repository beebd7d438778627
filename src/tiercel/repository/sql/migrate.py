"""Alembic, run from code: the repositories upgrade their schema to ``head`` when they open.

The migration scripts live in ``migrations/`` inside the package (no ``alembic.ini`` needed). Their
version is kept in ``alembic_version_repository``, so other components (the SQL queues create their
own tables) can share the database without sharing a version history.

Alembic (with mako and pygments) costs a sixth of a server's start-up imports, so a database that is
already at ``HEAD_REVISION`` is recognised with one plain query and alembic is never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version_repository"
HEAD_REVISION = "0002"
"""The newest migration's revision; a test checks it is alembic's head."""


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An alembic ``Config`` for the repository migrations, bound to ``connection`` (or to ``url``
    for the alembic command line)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    config.attributes["connection"] = connection
    return config


def include_object(dialect: str) -> Callable[..., bool]:
    """An alembic ``include_object`` hook that leaves out what the metadata declares for other
    dialects only (``Index(...).ddl_if(dialect="postgresql")``)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect in (None, dialect)

    return include


def head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(connection: Connection) -> str | None:
    """The schema revision stored in the database; ``None`` for an empty one."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` on ``connection``, inside the caller's transaction
    when one is open (the caller commits). Does nothing when the schema is current."""
    if revision == "head" and current(connection) == HEAD_REVISION:
        return
    from alembic import command

    command.upgrade(alembic_config(connection), revision)
