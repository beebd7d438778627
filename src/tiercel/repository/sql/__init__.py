"""The SQL repositories shared by the ``sqlite`` and ``postgres`` backends.

* ``tables`` — the SQLAlchemy Core ``MetaData`` (one definition for both dialects);
* ``migrations/`` + ``migrate`` — alembic scripts, applied by ``open()``;
* ``database`` — what a dialect provides (how work runs, a few expressions, the hot paths);
* ``repositories`` / ``records`` — dialect-neutral queries; ``codec`` — records to rows.

The backends themselves are ``tiercel.repository.sqlite`` and ``tiercel.repository.postgres``.
Importing this package loads SQLAlchemy; ``tiercel.repository`` alone does not.
"""
