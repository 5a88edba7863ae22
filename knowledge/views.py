"""The documents API for staff: upload a document, read its indexing and sync status.

``POST /api/knowledge/documents`` (multipart: ``file``, optional ``title``, ``agents``
as agent slugs, repeatable) and ``GET /api/knowledge/documents/<id>``. Authentication is
Django's session (the admin login) with its CSRF protection; the user needs the
``knowledge.add_document`` / ``knowledge.view_document`` permission.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from agents.models import Agent
from knowledge.models import Document
from knowledge.services import DuplicateDocument, document_create


def _error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def _allowed(request: HttpRequest, permission: str) -> JsonResponse | None:
    if not request.user.is_authenticated:
        return _error(401, "unauthenticated", "log in first")
    if not (request.user.is_staff and request.user.has_perm(permission)):
        return _error(403, "forbidden", f"needs the {permission} permission")
    return None


def document_json(document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "title": document.title,
        "original_name": document.original_name,
        "kind": document.kind,
        "size": document.size,
        "sha256": document.sha256,
        "agents": sorted(document.agents.values_list("slug", flat=True)),
        "status": document.status,
        "status_message": document.status_message,
        "indexed_at": document.indexed_at.isoformat() if document.indexed_at else None,
        "openai": [
            {"agent": agent, "status": status, "message": message}
            for agent, status, message in document.openai_files.values_list(
                "store__agent__slug", "status", "status_message"
            ).order_by("store__agent__slug")
        ],
    }


@require_POST
def document_upload(request: HttpRequest) -> JsonResponse:
    refused = _allowed(request, "knowledge.add_document")
    if refused is not None:
        return refused
    file = request.FILES.get("file")
    if file is None:
        return _error(400, "required", "send the document as the multipart field 'file'")
    slugs = request.POST.getlist("agents")
    agents = list(Agent.objects.filter(slug__in=slugs))
    unknown = sorted(set(slugs) - {agent.slug for agent in agents})
    if unknown:
        return _error(400, "unknown_agent", f"no agent {', '.join(unknown)}")
    try:
        document = document_create(file=file, title=request.POST.get("title", ""), agents=agents)
    except DuplicateDocument as exc:
        return _error(409, "duplicate", exc.messages[0], document=exc.existing.pk)
    except ValidationError as exc:
        status = 413 if exc.code == "too_large" else 400
        return _error(status, exc.code or "invalid", exc.messages[0])
    document.refresh_from_db()
    return JsonResponse(document_json(document), status=201)


@require_GET
def document_detail(request: HttpRequest, pk: int) -> JsonResponse:
    refused = _allowed(request, "knowledge.view_document")
    if refused is not None:
        return refused
    document = Document.objects.filter(pk=pk).first()
    if document is None:
        return _error(404, "not_found", f"no document {pk}")
    return JsonResponse(document_json(document))
