"""Staff upload documents in the admin and see indexing and sync status there."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent, LLMProvider
from conversations.models import Channel, Conversation
from conversations.services import conversation_start
from knowledge.models import Chunk, Document, Status, VectorStore
from knowledge.tests.conftest import make_docx, make_pdf, upload

pytestmark = pytest.mark.django_db


def inline_data(client: Client, url: str) -> dict[str, object]:
    """The chunks inline's management form (and row ids), as the browser sends them back."""
    data: dict[str, object] = {}
    for inline in client.get(url).context["inline_admin_formsets"]:
        formset = inline.formset
        for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"):
            data[f"{formset.prefix}-{name}"] = formset.management_form.initial.get(name, 0)
        for index, form in enumerate(formset.initial_forms):
            data[f"{formset.prefix}-{index}-id"] = form.instance.pk
            data[f"{formset.prefix}-{index}-document"] = form.instance.document_id
    return data


def post_upload(client: Client, name: str, data: bytes, **fields):
    url = reverse("admin:knowledge_document_add")
    return client.post(
        url, {**inline_data(client, url), "title": "", "upload": upload(name, data), **fields}
    )


def test_staff_upload_a_pdf_and_it_is_indexed(
    admin_client: Client, make_agent, django_capture_on_commit_callbacks
) -> None:
    agent = make_agent()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(
            admin_client, "opening-hours.pdf", make_pdf(["Open at nine."]), agents=[agent.pk]
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    document = Document.objects.get()
    assert (document.title, document.status, list(document.agents.all())) == (
        "Opening hours",
        Status.DONE,
        [agent],
    )
    assert Chunk.objects.get().text == "Open at nine."


def test_a_file_lying_about_its_type_is_refused_with_the_reason(admin_client: Client) -> None:
    response = post_upload(admin_client, "report.pdf", make_docx([("p", "Hi.")]))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "upload": ["report.pdf is named as a PDF but its content is a Word document (DOCX)."]
    }
    assert not Document.objects.exists()


def test_a_duplicate_upload_is_refused_naming_the_original(
    admin_client: Client, add_document
) -> None:
    original = add_document("a.txt", b"Same bytes.")
    response = post_upload(admin_client, "b.txt", b"Same bytes.")
    assert response.context["adminform"].form.errors == {
        "upload": [f"This file is already uploaded as “A” (document {original.pk})."]
    }


def test_editing_the_title_keeps_the_file_and_chunks(
    admin_client: Client, add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("a.txt", b"Keep me.")
    url = reverse("admin:knowledge_document_change", args=[document.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url, {**inline_data(admin_client, url), "title": "Renamed", "upload": ""}
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    after = Document.objects.get()
    assert (after.title, after.file.name, after.sha256) == (
        "Renamed",
        document.file.name,
        document.sha256,
    )
    assert Chunk.objects.get().text == "Keep me."


def test_the_document_list_shows_indexing_and_sync_status(
    admin_client: Client, add_document
) -> None:
    add_document("broken.pdf", make_pdf(["x"])[:200])
    response = admin_client.get(reverse("admin:knowledge_document_changelist"))
    content = response.content.decode()
    assert "Failed" in content
    assert "The PDF is damaged and cannot be read" in content


def test_the_reindex_action_queues_and_runs_indexing(
    admin_client: Client, add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("a.txt", b"Words.")
    Chunk.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:knowledge_document_changelist"),
            {"action": "index_again", "_selected_action": [document.pk]},
        )
    assert Chunk.objects.get().text == "Words."


def test_deleting_in_the_admin_goes_through_the_service(
    admin_client: Client, add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("a.txt", b"Words.")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:knowledge_document_delete", args=[document.pk]), {"post": "yes"}
        )
    assert not Document.objects.exists()
    assert not Chunk.objects.exists()


def test_the_agent_list_shows_knowledge_and_sync_status(
    admin_client: Client, openai_agent: Agent, add_document, fake_openai
) -> None:
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    add_document("b.pdf", make_pdf(["x"])[:200], agents=[openai_agent])
    response = admin_client.get(reverse("admin:agents_agent_changelist"))
    content = response.content.decode()
    assert "1 done, 1 failed" in content
    assert VectorStore.objects.get().status == Status.DONE
    assert '<td class="field-openai_sync">Done</td>' in content


def test_the_agent_reset_action_marks_open_conversations(admin_client: Client, make_agent) -> None:
    agent = make_agent()
    conversation = conversation_start(agent=agent, channel=Channel.HTTP_API)
    Conversation.objects.filter(pk=conversation.pk).update(provider_conversation_id="conv_1")
    response = admin_client.post(
        reverse("admin:agents_agent_changelist"),
        {"action": "reset_conversations", "_selected_action": [agent.pk]},
        follow=True,
    )
    assert Conversation.objects.get().reset_requested is True
    assert "1 open conversations will start a fresh provider conversation." in (
        response.content.decode()
    )


def test_moving_an_agent_off_openai_in_the_admin_removes_its_store(
    admin_client: Client,
    openai_agent: Agent,
    add_document,
    fake_openai,
    django_capture_on_commit_callbacks,
) -> None:
    from agents.tests.test_admin import form_data

    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    assert fake_openai.files
    url = reverse("admin:agents_agent_change", args=[openai_agent.pk])
    data = form_data(admin_client.get(url))
    data["llm_provider"] = LLMProvider.OPENAI_COMPATIBLE
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert (fake_openai.files, fake_openai.vector_stores) == ({}, {})
    assert not VectorStore.objects.exists()


def test_staff_download_the_stored_file_and_operators_may_not(
    admin_client: Client, client: Client, operator, make_agent, django_capture_on_commit_callbacks
) -> None:
    pdf = make_pdf(["Open at nine."])
    with django_capture_on_commit_callbacks(execute=True):
        post_upload(admin_client, "opening-hours.pdf", pdf)
    document = Document.objects.get()
    page = admin_client.get(reverse("admin:knowledge_document_change", args=[document.pk]))
    url = reverse("admin:knowledge_document_file", args=[document.pk])
    assert f'<a href="{url}">opening-hours.pdf</a>' in page.content.decode()

    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.getvalue() == pdf
    assert response["Content-Disposition"] == 'attachment; filename="opening-hours.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"

    client.force_login(operator)  # may read conversations, not documents
    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302  # to the admin's sign-in
    assert admin_client.get(reverse("admin:knowledge_document_file", args=[999])).status_code == 404
