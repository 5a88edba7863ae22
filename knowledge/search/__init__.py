"""Full-text retrieval over chunks, on whichever database the project runs.

``search_chunks`` picks the backend from the connection: FTS5 on SQLite (the embedded
profile), ``tsvector`` + GIN on PostgreSQL (production). Both rank with BM25 over an OR
of the question's meaningful words (:func:`knowledge.terms.search_terms`).
"""

from __future__ import annotations

from django.db import connection

from knowledge.search import postgres, sqlite
from knowledge.search.types import Hit
from knowledge.terms import search_terms

__all__ = ["Hit", "install", "search_chunks", "search_terms", "uninstall"]


def search_chunks(*, agent_id: int, text: str, limit: int) -> list[Hit]:
    """The best ``limit`` indexed chunks of the agent's documents for ``text``."""
    terms = search_terms(text)
    if not terms or limit <= 0:
        return []
    backend = postgres if connection.vendor == "postgresql" else sqlite
    with connection.cursor() as cursor:
        hits: list[Hit] = backend.search(cursor, agent_id=agent_id, terms=terms, limit=limit)
    return hits


def _statements(vendor: str, *, install: bool) -> list[str]:
    if vendor == "sqlite":
        return sqlite.INSTALL if install else sqlite.UNINSTALL
    if vendor == "postgresql":
        return postgres.INSTALL if install else postgres.UNINSTALL
    raise NotImplementedError(f"no full-text index for the {vendor} database")


def install(schema_editor: object) -> None:
    """Create the index and its upkeep on the migrating database (used by migrations)."""
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

    assert isinstance(schema_editor, BaseDatabaseSchemaEditor)
    for statement in _statements(schema_editor.connection.vendor, install=True):
        schema_editor.execute(statement, params=None)


def uninstall(schema_editor: object) -> None:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

    assert isinstance(schema_editor, BaseDatabaseSchemaEditor)
    for statement in _statements(schema_editor.connection.vendor, install=False):
        schema_editor.execute(statement, params=None)
