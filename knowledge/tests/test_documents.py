"""Uploading, indexing, replacing and deleting documents through the services."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from agents.models import Agent
from knowledge.models import Chunk, Document, Status
from knowledge.services import (
    DuplicateDocument,
    document_create,
    document_delete,
    document_index,
    document_inspect_upload,
    document_request_index,
    document_save,
)
from knowledge.tests.conftest import make_docx, make_pdf, upload

pytestmark = pytest.mark.django_db

# Each page is long enough (80 words) to end its own chunk at the page break.
PDF_PAGES = [
    " ".join(["The museum opens at nine o'clock every day except Monday."] * 8),
    " ".join(["Guided tours start at eleven and last about one hour."] * 8),
]


def stored_path(document: Document):
    return Path(settings.MEDIA_ROOT) / document.file.name


def test_an_uploaded_pdf_is_kept_hashed_and_indexed_with_page_references(
    make_agent: Callable[..., Agent], add_document
) -> None:
    agent = make_agent()
    data = make_pdf(PDF_PAGES)
    document = add_document("Museum guide.pdf", data, agents=[agent])
    assert (document.title, document.kind, document.content_type, document.size) == (
        "Museum guide",
        "pdf",
        "application/pdf",
        len(data),
    )
    assert stored_path(document).read_bytes() == data  # the original is kept
    assert len(document.sha256) == 64
    assert (document.status, document.status_message) == (Status.DONE, "2 chunks from 2 pages.")
    assert document.indexed_at is not None
    assert list(document.agents.all()) == [agent]
    first, second = Chunk.objects.filter(document=document)
    assert (first.index, first.page, first.text) == (0, 1, PDF_PAGES[0])
    # The second starts with the first's last sentences (the overlap), then page 2.
    overlap = " ".join(["The museum opens at nine o'clock every day except Monday."] * 3)
    assert (second.index, second.page, second.text) == (1, 2, f"{overlap}\n\n{PDF_PAGES[1]}")


def test_a_docx_is_indexed_with_its_headings_as_sections(add_document) -> None:
    data = make_docx([("h1", "Tours"), ("p", "Tours start at eleven.")])
    document = add_document("tours.docx", data)
    assert list(Chunk.objects.filter(document=document).values_list("section", "text")) == [
        ("Tours", "Tours start at eleven.")
    ]


def test_the_same_content_cannot_be_uploaded_twice(add_document) -> None:
    first = add_document("a.txt", b"Identical words.")
    with pytest.raises(DuplicateDocument) as caught:
        add_document("b.txt", b"Identical words.")
    assert caught.value.existing == first
    assert caught.value.messages == [f"This file is already uploaded as “A” (document {first.pk})."]
    assert Document.objects.count() == 1


def test_a_file_lying_about_its_type_is_refused_and_nothing_is_stored(add_document) -> None:
    with pytest.raises(ValidationError) as caught:
        add_document("slides.pdf", make_docx([("p", "Not a PDF.")]))
    assert caught.value.messages == [
        "slides.pdf is named as a PDF but its content is a Word document (DOCX)."
    ]
    assert Document.objects.count() == 0
    assert not (Path(settings.MEDIA_ROOT) / "documents").exists()


def test_a_file_over_the_size_limit_is_refused(settings) -> None:
    settings.KNOWLEDGE_MAX_DOCUMENT_BYTES = 1024 * 1024
    with pytest.raises(ValidationError) as caught:
        document_inspect_upload(file=upload("big.txt", b"a" * (1024 * 1024 + 1)))
    assert caught.value.messages == ["big.txt is 1.0 MB; the limit is 1 MB."]


def test_a_corrupt_pdf_ends_failed_with_a_message_and_no_chunks(add_document) -> None:
    data = make_pdf(["Cut short."])
    document = add_document("broken.pdf", data[: len(data) // 3])
    assert document.status == Status.FAILED
    assert document.status_message.startswith("The PDF is damaged and cannot be read")
    assert document.indexed_at is None
    assert not Chunk.objects.filter(document=document).exists()


def test_a_missing_stored_file_ends_failed(add_document) -> None:
    document = add_document("gone.txt", b"Soon gone.")
    stored_path(document).unlink()
    document_index(document_id=document.pk)
    document.refresh_from_db()
    assert (document.status, document.status_message) == (
        Status.FAILED,
        "The stored file is missing; upload it again.",
    )
    assert not Chunk.objects.filter(document=document).exists()


def test_an_unexpected_failure_is_recorded_not_left_running(add_document, monkeypatch) -> None:
    document = add_document("fine.txt", b"Fine words.")

    def explode(blocks, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("knowledge.services.chunk_blocks", explode)
    document_index(document_id=document.pk)
    document.refresh_from_db()
    assert (document.status, document.status_message) == (
        Status.FAILED,
        "Indexing failed unexpectedly: RuntimeError('boom')",
    )
    assert not Chunk.objects.filter(document=document).exists()


def test_replacing_the_file_reindexes_and_removes_the_old_copy(
    add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("hours.txt", b"Open at nine.")
    old_path = stored_path(document)
    with django_capture_on_commit_callbacks(execute=True):
        document_save(
            document=document,
            upload=document_inspect_upload(file=upload("hours-v2.txt", b"Open at ten.")),
        )
    document.refresh_from_db()
    assert (document.status, document.original_name) == (Status.DONE, "hours-v2.txt")
    assert list(Chunk.objects.filter(document=document).values_list("text", flat=True)) == [
        "Open at ten."
    ]
    assert not old_path.exists()
    assert stored_path(document).read_bytes() == b"Open at ten."


def test_reindexing_twice_leaves_the_same_chunks(add_document, django_capture_on_commit_callbacks):
    document = add_document("a.md", b"# A\n\nOne.\n\n# B\n\nTwo.")
    before = list(Chunk.objects.filter(document=document).values_list("index", "section", "text"))
    with django_capture_on_commit_callbacks(execute=True):
        assert document_request_index(document_ids=[document.pk, document.pk]) == 1
    after = list(Chunk.objects.filter(document=document).values_list("index", "section", "text"))
    assert before == after == [(0, "A", "One."), (1, "B", "Two.")]


def test_an_index_run_for_a_replaced_file_does_not_overwrite_the_new_one(
    add_document, monkeypatch
) -> None:
    document = add_document("a.txt", b"Version one.")
    from knowledge import services

    read = services._chunks_of

    def read_then_replaced(doc):
        result = read(doc)
        # The file is replaced while this run extracts the old one: its result is dropped.
        Document.objects.filter(pk=doc.pk).update(sha256="f" * 64, status=Status.PENDING)
        return result

    monkeypatch.setattr(services, "_chunks_of", read_then_replaced)
    document_index(document_id=document.pk)
    document.refresh_from_db()
    assert document.status == Status.PENDING
    assert list(Chunk.objects.filter(document=document).values_list("text", flat=True)) == [
        "Version one."
    ]


def test_deleting_a_document_removes_its_chunks_and_file(
    add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("a.txt", b"Short lived.")
    path = stored_path(document)
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(document=document)
    assert not Document.objects.exists()
    assert not Chunk.objects.exists()
    assert not path.exists()


def test_a_failed_save_removes_the_file_it_stored(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise ValidationError("nope")

    monkeypatch.setattr(Document, "full_clean", refuse)
    with pytest.raises(ValidationError):
        document_create(file=upload("a.txt", b"Never stored."))
    assert list((Path(settings.MEDIA_ROOT) / "documents").rglob("*.txt")) == []
