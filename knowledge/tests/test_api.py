"""The documents API: staff upload a file and read its status."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from knowledge.models import Document, Status
from knowledge.tests.conftest import make_docx, make_pdf, upload

pytestmark = [pytest.mark.django_db, pytest.mark.urls("knowledge.tests.urls")]

URL = "/api/knowledge/documents"


def test_staff_upload_a_document_for_agents_and_it_is_indexed(
    admin_client: Client, make_agent, django_capture_on_commit_callbacks
) -> None:
    make_agent(slug="desk")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            URL, {"file": upload("hours.pdf", make_pdf(["Open at nine."])), "agents": ["desk"]}
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    document = Document.objects.get()
    assert body["id"] == document.pk
    assert (body["title"], body["kind"], body["agents"]) == ("Hours", "pdf", ["desk"])
    # Indexing ran after the response's transaction: read the status back.
    status = admin_client.get(f"{URL}/{document.pk}").json()
    assert (status["status"], status["status_message"]) == (Status.DONE, "1 chunks from 1 pages.")


def test_a_lying_file_is_refused_with_the_reason(admin_client: Client) -> None:
    response = admin_client.post(URL, {"file": upload("a.pdf", make_docx([("p", "x")]))})
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "code": "unsupported",
                "message": "a.pdf is named as a PDF but its content is a Word document (DOCX).",
            }
        },
    )


def test_a_duplicate_is_refused_naming_the_original(admin_client: Client, add_document) -> None:
    original = add_document("a.txt", b"Same.")
    response = admin_client.post(URL, {"file": upload("b.txt", b"Same.")})
    assert response.status_code == 409
    assert response.json()["error"]["document"] == original.pk


def test_unknown_agents_are_refused(admin_client: Client) -> None:
    response = admin_client.post(URL, {"file": upload("a.txt", b"x"), "agents": ["nobody"]})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "unknown_agent")
    assert not Document.objects.exists()


def test_anonymous_and_unprivileged_users_are_refused(make_user) -> None:
    client = Client()
    assert client.post(URL, {"file": upload("a.txt", b"x")}).status_code == 401
    staff = make_user(staff=True)
    client.force_login(staff)
    assert client.post(URL, {"file": upload("a.txt", b"x")}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="add_document"))
    client.force_login(staff)
    assert client.post(URL, {"file": upload("a.txt", b"x")}).status_code == 201
