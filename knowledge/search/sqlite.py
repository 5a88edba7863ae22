"""SQLite: an FTS5 index over chunks (porter stemming), ranked with FTS5's own BM25.

The FTS5 table is an "external content" index of ``knowledge_chunk``: it stores only
the index, and triggers on the chunk table keep it in step, so an insert, a delete (a
document's cascade included) or an update of a chunk can never leave the two apart.
"""

from __future__ import annotations

from typing import Any

from knowledge.search.types import Hit

TABLE = "knowledge_chunk_fts"
# Section headings count twice as much as body text (bm25 column weights).
SECTION_WEIGHT = 2.0

INSTALL = [
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(
        section, text,
        content='knowledge_chunk', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_ai AFTER INSERT ON knowledge_chunk BEGIN
        INSERT INTO {TABLE}(rowid, section, text) VALUES (new.id, new.section, new.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_ad AFTER DELETE ON knowledge_chunk BEGIN
        INSERT INTO {TABLE}({TABLE}, rowid, section, text)
        VALUES ('delete', old.id, old.section, old.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_au AFTER UPDATE ON knowledge_chunk BEGIN
        INSERT INTO {TABLE}({TABLE}, rowid, section, text)
        VALUES ('delete', old.id, old.section, old.text);
        INSERT INTO {TABLE}(rowid, section, text) VALUES (new.id, new.section, new.text);
    END""",
    # Index whatever chunks already exist (none on a fresh install).
    f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')",
]

UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_ai",
    f"DROP TRIGGER IF EXISTS {TABLE}_ad",
    f"DROP TRIGGER IF EXISTS {TABLE}_au",
    f"DROP TABLE IF EXISTS {TABLE}",
]

TRIGGERS = (f"{TABLE}_ai", f"{TABLE}_ad", f"{TABLE}_au")


def match_expression(terms: list[str]) -> str:
    """An FTS5 query matching any of ``terms`` (each quoted: they hold no quotes)."""
    return " OR ".join(f'"{term}"' for term in terms)


def search(cursor: Any, *, agent_id: int, terms: list[str], limit: int) -> list[Hit]:
    """The agent's best indexed chunks for ``terms``, best first (scores: higher is better)."""
    cursor.execute(
        f"""
        SELECT c.id, -bm25({TABLE}, %s, 1.0) AS score
        FROM {TABLE}
        JOIN knowledge_chunk c ON c.id = {TABLE}.rowid
        JOIN knowledge_document d ON d.id = c.document_id
        JOIN knowledge_document_agents da ON da.document_id = d.id
        WHERE {TABLE} MATCH %s AND da.agent_id = %s AND d.status = 'done'
        ORDER BY score DESC, c.id
        LIMIT %s
        """,
        [SECTION_WEIGHT, match_expression(terms), agent_id, limit],
    )
    return [Hit(chunk_id=row[0], score=float(row[1])) for row in cursor.fetchall()]
