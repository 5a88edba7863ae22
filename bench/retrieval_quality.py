"""Retrieval quality on the staff-handbook questions: MRR and hit@k, per ranking method.

Run it on the embedded profile (SQLite) and on PostgreSQL::

    .venv/bin/python bench/retrieval_quality.py
    DATABASE_URL=postgres://... .venv/bin/python bench/retrieval_quality.py

It creates a throw-away test database, uploads the corpus of
``knowledge/tests/retrieval_corpus.py`` through the real services (extraction, chunking,
indexing), then asks every question with each method measured in the same run:

- ``fts5-bm25`` (SQLite) / ``pg-bm25`` (PostgreSQL): what the product uses;
- ``pg-ts_rank_cd``: PostgreSQL's built-in ranking over the same tsvector matches;
- ``term-overlap``: a baseline without word weights: chunks ranked by how many of the
  question's words they contain (stemmed the same crude way for every chunk).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceapp.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402

from agents.services import agent_create  # noqa: E402
from knowledge.models import Chunk, Status  # noqa: E402
from knowledge.search import postgres, search_terms, sqlite  # noqa: E402
from knowledge.search.types import Hit  # noqa: E402
from knowledge.services import document_create  # noqa: E402
from knowledge.tests.retrieval_corpus import DOCUMENTS, QUESTIONS  # noqa: E402
from voiceapp.celery import app  # noqa: E402

Ranker = Callable[[int, list[str], int], list[Hit]]
DEPTH = 10


def _stem(word: str) -> str:
    return re.sub(r"(ing|ed|es|s)$", "", word)


def term_overlap(agent_id: int, terms: list[str], limit: int) -> list[Hit]:
    wanted = {_stem(term) for term in terms}
    scored = []
    for chunk in Chunk.objects.filter(document__agents=agent_id, document__status=Status.DONE):
        words = {
            _stem(word) for word in re.findall(r"\w+", f"{chunk.section} {chunk.text}".lower())
        }
        score = len(wanted & words)
        if score:
            scored.append(Hit(chunk.pk, float(score)))
    scored.sort(key=lambda hit: (-hit.score, hit.chunk_id))
    return scored[:limit]


def sql_ranker(search: Callable[..., list[Hit]]) -> Ranker:
    def rank(agent_id: int, terms: list[str], limit: int) -> list[Hit]:
        with connection.cursor() as cursor:
            return search(cursor, agent_id=agent_id, terms=terms, limit=limit)

    return rank


def measure(agent_id: int, rank: Ranker) -> tuple[float, float, float, float]:
    reciprocal, hit1, hit3 = 0.0, 0, 0
    started = time.perf_counter()
    for question, phrase in QUESTIONS:
        answer = Chunk.objects.get(text__contains=phrase).pk
        ids = [hit.chunk_id for hit in rank(agent_id, search_terms(question), DEPTH)]
        if answer in ids:
            position = ids.index(answer) + 1
            reciprocal += 1 / position
            hit1 += position == 1
            hit3 += position <= 3
    elapsed_ms = (time.perf_counter() - started) * 1000 / len(QUESTIONS)
    n = len(QUESTIONS)
    return reciprocal / n, hit1 / n, hit3 / n, elapsed_ms


def main() -> None:
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0)
    app.conf.task_always_eager = True  # index in-process, like the embedded profile
    try:
        with tempfile.TemporaryDirectory() as media:
            settings.MEDIA_ROOT = media
            agent = agent_create(name="Bench", slug="bench")
            for name, text in DOCUMENTS:
                document_create(file=SimpleUploadedFile(name, text.encode()), agents=[agent])
            chunks = Chunk.objects.count()
            methods: dict[str, Ranker] = {}
            if connection.vendor == "sqlite":
                methods["fts5-bm25"] = sql_ranker(sqlite.search)
            else:
                methods["pg-bm25"] = sql_ranker(postgres.search)
                methods["pg-ts_rank_cd"] = sql_ranker(postgres.search_ts_rank)
            methods["term-overlap"] = term_overlap
            print(
                f"{connection.vendor}: {len(DOCUMENTS)} documents, {chunks} chunks, "
                f"{len(QUESTIONS)} questions"
            )
            print(f"{'method':<16}{'MRR':>8}{'hit@1':>8}{'hit@3':>8}{'ms/query':>10}")
            for label, rank in methods.items():
                mrr, hit1, hit3, ms = measure(agent.pk, rank)
                print(f"{label:<16}{mrr:>8.3f}{hit1:>8.3f}{hit3:>8.3f}{ms:>10.2f}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


if __name__ == "__main__":
    main()
