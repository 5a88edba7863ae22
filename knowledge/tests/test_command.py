"""``manage.py knowledge index|sync`` with a progress bar."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import Agent
from knowledge.models import Chunk, Status, VectorStore
from knowledge.tests.conftest import make_pdf
from knowledge.tests.test_openai_sync import assert_in_step

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("knowledge", *args, stdout=out)
    return out.getvalue()


def test_index_rebuilds_every_documents_chunks(add_document) -> None:
    add_document("a.txt", b"Alpha.")
    add_document("b.md", b"# B\n\nBeta.")
    Chunk.objects.all().delete()
    output = run("index")
    assert "Indexing" in output
    assert output.rstrip().endswith("Indexed 2 of 2 documents.")
    assert sorted(Chunk.objects.values_list("text", flat=True)) == ["Alpha.", "Beta."]


def test_index_reports_failures_and_exits_non_zero(add_document) -> None:
    add_document("good.txt", b"Fine.")
    broken = add_document("broken.pdf", make_pdf(["x"])[:200])
    with pytest.raises(CommandError, match=r"^1 documents could not be indexed\.$"):
        run("index", "--only", "failed")
    broken.refresh_from_db()
    assert broken.status == Status.FAILED


def test_sync_brings_every_openai_agent_in_step(
    openai_agent: Agent, add_document, fake_openai
) -> None:
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    fake_openai.reset()  # OpenAI lost everything: the command puts it back
    output = run("sync")
    assert output.rstrip().endswith("Synced 1 of 1 vector stores.")
    assert_in_step(fake_openai, openai_agent)


def test_sync_removes_a_store_whose_agent_was_deleted(
    openai_agent: Agent, add_document, fake_openai
) -> None:
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    openai_agent.delete()  # the store stays, detached (agent set to NULL)
    assert VectorStore.objects.get().agent is None
    run("sync")
    assert (fake_openai.files, fake_openai.vector_stores) == ({}, {})
    assert not VectorStore.objects.exists()


def test_sync_names_an_unknown_agent() -> None:
    with pytest.raises(CommandError, match=r"^no OpenAI agent with slug nobody$"):
        run("sync", "--agent", "nobody")
