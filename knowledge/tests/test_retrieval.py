"""Retrieval ranks the chunk that answers a question first, on SQLite (FTS5) and PostgreSQL.

The same tests run in both stages of ``make test``: on SQLite in the first, on PostgreSQL
in the second (they are database tests).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection

from agents.models import Agent
from knowledge.models import Chunk, Document, Status
from knowledge.search import search_terms
from knowledge.selectors import RetrievedChunk, knowledge_search
from knowledge.services import document_delete
from knowledge.tests.retrieval_corpus import DOCUMENTS, QUESTIONS

pytestmark = pytest.mark.django_db


@pytest.fixture
def handbook_agent(make_agent: Callable[..., Agent], add_document) -> Agent:
    agent = make_agent()
    for name, text in DOCUMENTS:
        document = add_document(name, text.encode(), agents=[agent])
        assert document.status == Status.DONE, document.status_message
    return agent


def test_every_answer_phrase_is_in_exactly_one_chunk(handbook_agent: Agent) -> None:
    for _, phrase in QUESTIONS:
        assert Chunk.objects.filter(text__contains=phrase).count() == 1, phrase


def test_the_answering_chunk_ranks_first_for_every_question(handbook_agent: Agent) -> None:
    # One test over the whole set: indexing the handbook once keeps this fast on both
    # databases, and the failure message lists every question that went wrong.
    wrong = {}
    for question, phrase in QUESTIONS:
        found = knowledge_search(agent_id=handbook_agent.pk, question=question)
        if not found or phrase not in found[0].text:
            wrong[question] = [chunk.text[:50] for chunk in found]
    assert wrong == {}, f"on {connection.vendor}"


def test_results_carry_their_document_page_and_section(handbook_agent: Agent) -> None:
    [best, *_] = knowledge_search(agent_id=handbook_agent.pk, question="Where do visitors sign in?")
    document = Document.objects.get(original_name="facilities.md")
    chunk = Chunk.objects.get(pk=best.chunk_id)
    assert (best.document_id, best.document_title, best.index, best.section) == (
        document.pk,
        "Facilities",
        chunk.index,
        "Facilities > Visitors",
    )
    assert best.as_ref() == {
        "ref": f"D{document.pk}:C{chunk.index}",
        "chunk_id": chunk.pk,
        "document_id": document.pk,
        "document": "Facilities",
        "index": chunk.index,
        "page": None,
        "section": "Facilities > Visitors",
        "score": round(best.score, 4),
        # The passage's start, whitespace flattened, cut at a word within 240 characters.
        "snippet": "Visitors sign in at reception and wear a visitor badge at all times. Hosts "
        "must meet their visitors in the lobby and escort them. Visitor parking spaces can be "
        "booked with reception a day ahead.",
    }
    passage = best.passage()
    assert (passage.ref, passage.title) == (best.ref, "Facilities · Facilities > Visitors")


def test_at_most_the_limit_is_returned_best_first(handbook_agent: Agent) -> None:
    found = knowledge_search(agent_id=handbook_agent.pk, question="leave days manager", limit=3)
    assert len(found) == 3
    assert [chunk.score for chunk in found] == sorted((c.score for c in found), reverse=True)


def test_another_agents_documents_are_not_searched(
    handbook_agent: Agent, make_agent: Callable[..., Agent], add_document
) -> None:
    other = make_agent()
    add_document("other.txt", b"The canteen serves soup every Tuesday.", agents=[other])
    assert knowledge_search(agent_id=handbook_agent.pk, question="canteen soup Tuesday") == []
    [found] = knowledge_search(agent_id=other.pk, question="canteen soup Tuesday")
    assert found.text == "The canteen serves soup every Tuesday."


def test_documents_not_indexed_are_not_searched(handbook_agent: Agent) -> None:
    Document.objects.filter(original_name="facilities.md").update(status=Status.PENDING)
    found = knowledge_search(agent_id=handbook_agent.pk, question="Where do visitors sign in?")
    assert all(chunk.document_title != "Facilities" for chunk in found)


def test_a_deleted_document_leaves_nothing_in_the_index(
    handbook_agent: Agent, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(document=Document.objects.get(original_name="it-and-security.md"))
    assert knowledge_search(agent_id=handbook_agent.pk, question="phishing email extension") == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM knowledge_chunk_fts WHERE knowledge_chunk_fts MATCH 'phishing'"
            )
            assert cursor.fetchone()[0] == 0


def test_a_question_of_only_common_words_finds_nothing(handbook_agent: Agent) -> None:
    assert knowledge_search(agent_id=handbook_agent.pk, question="What is it, and how?") == []


def test_search_terms_drop_stop_words_and_punctuation() -> None:
    assert search_terms("What's the policy's \"refund\" rule (in 2024)? OR NEAR*") == [
        "policy",
        "refund",
        "rule",
        "2024",
        "near",
    ]


def test_the_index_is_kept_by_the_database() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND name LIKE 'knowledge%' ORDER BY name"
            )
            assert [row[0] for row in cursor.fetchall()] == [
                "knowledge_chunk_fts_ad",
                "knowledge_chunk_fts_ai",
                "knowledge_chunk_fts_au",
            ]
        else:
            cursor.execute(
                "SELECT is_generated FROM information_schema.columns "
                "WHERE table_name = 'knowledge_chunk' AND column_name = 'search_vector'"
            )
            assert cursor.fetchone() == ("ALWAYS",)


def test_a_long_passage_is_recorded_by_its_start_cut_at_a_word() -> None:
    text = "word " * 100  # 500 characters
    found = RetrievedChunk(
        chunk_id=1,
        document_id=2,
        document_title="T",
        index=0,
        page=3,
        section="",
        text=text,
        score=1.0,
    )
    snippet = found.as_ref()["snippet"]
    assert snippet == "word " * 47 + "word …"  # 239 characters of whole words, then the mark
