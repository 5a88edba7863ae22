"""Reads for knowledge: retrieval for a turn, and status for the admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from agents.llm import Passage
from agents.models import Agent, LLMProvider
from knowledge.models import Chunk, Status, VectorStore
from knowledge.search import search_chunks

# How many passages go into the model's context for one user turn.
PASSAGES_PER_TURN = 4


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk found for a question, with where it came from and how well it matched."""

    chunk_id: int
    document_id: int
    document_title: str
    index: int
    page: int | None
    section: str
    text: str
    score: float

    @property
    def ref(self) -> str:
        return f"D{self.document_id}:C{self.index}"

    def passage(self) -> Passage:
        where = [self.document_title]
        if self.page is not None:
            where.append(f"p. {self.page}")
        if self.section:
            where.append(self.section)
        return Passage(ref=self.ref, text=self.text, title=" · ".join(where))

    def as_ref(self) -> dict[str, Any]:
        """What the turn records (``Turn.knowledge_refs``), for operators to review."""
        return {
            "ref": self.ref,
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "document": self.document_title,
            "index": self.index,
            "page": self.page,
            "section": self.section,
            "score": round(self.score, 4),
            # The start of the passage, so a reviewer sees what the model was given even
            # after the document has changed.
            "snippet": _snippet(self.text),
        }


SNIPPET_CHARS = 240


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    return flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def knowledge_search(
    *, agent_id: int, question: str, limit: int = PASSAGES_PER_TURN
) -> list[RetrievedChunk]:
    """The agent's indexed chunks that best answer ``question``, best first."""
    hits = search_chunks(agent_id=agent_id, text=question, limit=limit)
    chunks = Chunk.objects.select_related("document").in_bulk([hit.chunk_id for hit in hits])
    found = []
    for hit in hits:
        chunk = chunks.get(hit.chunk_id)
        if chunk is None:
            continue  # deleted between the search and this read
        found.append(
            RetrievedChunk(
                chunk_id=chunk.pk,
                document_id=chunk.document_id,
                document_title=chunk.document.title,
                index=chunk.index,
                page=chunk.page,
                section=chunk.section,
                text=chunk.text,
                score=hit.score,
            )
        )
    return found


def knowledge_for_turn(*, agent: Agent, question: str) -> list[RetrievedChunk]:
    """The passages for one user turn: none for ELIZA agents, which use no context."""
    if agent.llm_provider == LLMProvider.ELIZA:
        return []
    return knowledge_search(agent_id=agent.pk, question=question)


def vector_store_id_for(*, agent: Agent) -> str:
    """The OpenAI vector store ``file_search`` should read for ``agent``, or ``""``."""
    if agent.llm_provider != LLMProvider.OPENAI:
        return ""
    store = VectorStore.objects.filter(agent=agent).exclude(openai_id="").first()
    # A store made with other credentials belongs to another account: not usable now.
    if store is None or (store.base_url, store.api_key_env) != (
        agent.llm_base_url,
        agent.llm_api_key_env,
    ):
        return ""
    return store.openai_id


def agents_with_knowledge_status(agents: QuerySet[Agent]) -> QuerySet[Agent]:
    """``agents`` with ``documents_<status>`` counts and their vector store joined."""
    counts = {
        f"documents_{status.value}": Count(
            "documents", filter=Q(documents__status=status), distinct=True
        )
        for status in Status
    }
    return agents.annotate(**counts).select_related("vector_store")


def knowledge_summary(agent: Agent) -> str:
    """ "3 done, 1 failed" for an agent from :func:`agents_with_knowledge_status`."""
    parts = []
    for status in Status:
        count = int(getattr(agent, f"documents_{status.value}", 0))
        if count:
            parts.append(f"{count} {status.label.lower()}")
    return ", ".join(parts) or "no documents"


def sync_summary(agent: Agent) -> str:
    """The agent's OpenAI vector store status, with its message when it failed."""
    try:
        store = agent.vector_store
    except VectorStore.DoesNotExist:
        return "—"
    label = Status(store.status).label
    return f"{label}: {store.status_message}" if store.status == Status.FAILED else label
