"""The documents API: staff upload, list, read and delete documents; refusals keep the
service's codes and store nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from knowledge.models import Chunk, Document, Status
from knowledge.tests.conftest import make_docx, make_pdf, upload

pytestmark = pytest.mark.django_db

URL = "/api/documents/"


def _stored_files(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _staff_with(make_user: Callable[..., User], *codenames: str) -> User:
    user = make_user(staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# --- uploading -----------------------------------------------------------------------------


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
    status = admin_client.get(f"{URL}{document.pk}/").json()
    assert (status["status"], status["status_message"]) == (Status.DONE, "1 chunk from 1 page.")


def test_a_title_and_several_agents_may_be_given(admin_client: Client, make_agent) -> None:
    make_agent(slug="desk")
    make_agent(slug="sales")
    response = admin_client.post(
        URL,
        {"file": upload("a.txt", b"Facts."), "title": "Facts", "agents": ["sales", "desk"]},
    )
    assert response.status_code == 201
    assert (response.json()["title"], response.json()["agents"]) == ("Facts", ["desk", "sales"])


def test_a_lying_file_is_refused_with_the_reason(admin_client: Client, settings) -> None:
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
    assert not Document.objects.exists()
    assert _stored_files(settings) == []


def test_a_duplicate_is_refused_naming_the_original(
    admin_client: Client, add_document, settings
) -> None:
    original = add_document("a.txt", b"Same.")
    files_before = _stored_files(settings)
    response = admin_client.post(URL, {"file": upload("b.txt", b"Same.")})
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "duplicate",
            "message": f"This file is already uploaded as “A” (document {original.pk}).",
            "document": original.pk,
        }
    }
    assert list(Document.objects.all()) == [original]
    assert _stored_files(settings) == files_before


def test_a_file_over_the_limit_is_refused_with_413(admin_client: Client, settings) -> None:
    settings.KNOWLEDGE_MAX_DOCUMENT_BYTES = 1024 * 1024
    response = admin_client.post(URL, {"file": upload("big.txt", b"x" * (1024 * 1024 + 1))})
    assert (response.status_code, response.json()) == (
        413,
        {"error": {"code": "too_large", "message": "big.txt is 1.0 MB; the limit is 1 MB."}},
    )
    assert not Document.objects.exists()
    assert _stored_files(settings) == []


def test_unknown_agents_are_refused(admin_client: Client, make_agent, settings) -> None:
    make_agent(slug="desk")
    response = admin_client.post(
        URL, {"file": upload("a.txt", b"x"), "agents": ["desk", "nobody", "ghost"]}
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"code": "unknown_agent", "message": "no agent ghost, nobody"}},
    )
    assert not Document.objects.exists()
    assert _stored_files(settings) == []


def test_an_upload_without_a_file_is_refused_by_field(admin_client: Client) -> None:
    response = admin_client.post(URL, {"title": "Nothing"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"file": ["No file was submitted."]}
    assert not Document.objects.exists()


def test_an_upload_must_be_multipart(admin_client: Client) -> None:
    response = admin_client.post(URL, {"title": "x"}, content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (
        415,
        "unsupported_media_type",
    )


# --- who may ------------------------------------------------------------------------------------


def test_anonymous_and_unprivileged_users_are_refused(make_user) -> None:
    client = Client()
    assert client.post(URL, {"file": upload("a.txt", b"x")}).status_code == 401
    staff = make_user(staff=True)
    client.force_login(staff)
    assert client.post(URL, {"file": upload("a.txt", b"x")}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="add_document"))
    client.force_login(staff)
    assert client.post(URL, {"file": upload("a.txt", b"x")}).status_code == 201


@pytest.mark.parametrize("who", ["plain", "operator", "staff without perms"])
def test_users_without_the_knowledge_permissions_see_and_change_nothing(
    who: str, make_user, add_document
) -> None:
    user = {
        "plain": lambda: make_user(),
        "operator": lambda: make_user(staff=True, groups=("Operators",)),
        "staff without perms": lambda: make_user(staff=True),
    }[who]()
    document = add_document("a.txt", b"Kept.")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    responses = [
        client.get(URL),
        client.get(f"{URL}{document.pk}/"),
        client.delete(f"{URL}{document.pk}/"),
        client.post(URL, {"file": upload("b.txt", b"New.")}, format="multipart"),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert {r.json()["error"]["code"] for r in responses} == {"permission_denied"}
    assert list(Document.objects.all()) == [document]


def test_permissions_are_per_method(make_user, add_document) -> None:
    """Non-superuser staff need view to read, add to upload, delete to delete."""
    document = add_document("a.txt", b"Kept.")
    client = APIClient()
    client.force_authenticate(_staff_with(make_user, "view_document"))
    assert client.get(f"{URL}{document.pk}/").status_code == 200
    assert client.delete(f"{URL}{document.pk}/").status_code == 403
    client.force_authenticate(_staff_with(make_user, "view_document", "delete_document"))
    assert client.delete(f"{URL}{document.pk}/").status_code == 204


def test_non_staff_with_the_permissions_are_still_refused(make_user, add_document) -> None:
    user = make_user()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="knowledge"))
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(URL).status_code == 403


# --- listing, reading, deleting ---------------------------------------------------------------


def test_staff_list_documents_by_title(admin_client: Client, add_document, make_agent) -> None:
    desk = make_agent(slug="desk")
    add_document("b.txt", b"Bees.", title="Bees", agents=[desk])
    add_document("a.txt", b"Ants.", title="Ants")
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert [(d["title"], d["agents"], d["status"]) for d in response.json()["results"]] == [
        ("Ants", [], "done"),
        ("Bees", ["desk"], "done"),
    ]


def test_reading_a_document_shows_its_openai_copies(
    admin_client: Client, add_document, openai_agent, fake_openai
) -> None:
    document = add_document("a.txt", b"Facts for OpenAI.", agents=[openai_agent])
    body = admin_client.get(f"{URL}{document.pk}/").json()
    assert (body["id"], body["kind"], body["size"]) == (document.pk, "txt", 17)
    assert body["openai"] == [{"agent": openai_agent.slug, "status": "done", "message": ""}]


def test_staff_delete_a_document_with_its_chunks_and_file(
    admin_client: Client, add_document, settings, django_capture_on_commit_callbacks
) -> None:
    document = add_document("a.txt", b"Gone soon.")
    assert Chunk.objects.filter(document=document).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.delete(f"{URL}{document.pk}/")
    assert (response.status_code, response.content) == (204, b"")
    assert not Document.objects.exists()
    assert not Chunk.objects.exists()
    assert _stored_files(settings) == []


def test_an_unknown_document_is_a_404_in_the_error_shape(admin_client: Client) -> None:
    for response in (admin_client.get(f"{URL}999/"), admin_client.delete(f"{URL}999/")):
        assert (response.status_code, response.json()) == (
            404,
            {"error": {"code": "not_found", "message": "There is no document 999."}},
        )
    malformed = admin_client.get(f"{URL}abc/")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (404, "not_found")


def test_documents_cannot_be_replaced_in_place(admin_client: Client, add_document) -> None:
    document = add_document("a.txt", b"Kept.")
    response = admin_client.put(f"{URL}{document.pk}/", {"title": "New"})
    assert (response.status_code, response.json()["error"]["code"]) == (
        405,
        "method_not_allowed",
    )
    assert Document.objects.get().title == document.title


def test_the_old_endpoints_are_gone(admin_client: Client) -> None:
    assert admin_client.post("/api/knowledge/documents", {}).status_code == 404
