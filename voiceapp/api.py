"""What every HTTP API error looks like: ``{"error": {"code", "message"[, "fields"]}}``.

The same shape as the custom-LLM and knowledge endpoints, so a client handles one kind of
error body whichever endpoint it called. ``code`` is stable and machine-readable;
``message`` is for people; ``fields`` maps each invalid field to its messages.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid",
    status.HTTP_401_UNAUTHORIZED: "not_authenticated",
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_409_CONFLICT: "conflict",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "too_large",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        inner = _first_message(value)
        return inner if key == "non_field_errors" else f"{key}: {inner}"
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST framework's handler, with its body rewritten into the shared error shape."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500 handling (and logging) applies
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
    code = _CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.APIException) and not isinstance(exc, exceptions.ValidationError):
        codes = exc.get_codes()
        if isinstance(codes, str):
            code = codes
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError) and isinstance(detail, dict):
        extra["fields"] = {key: [str(m) for m in _as_list(value)] for key, value in detail.items()}
    # The stubs do not declare Throttled.wait (seconds until a retry may succeed).
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        extra["retry_after_seconds"] = math.ceil(wait)
    response.data = error_body(code, _first_message(detail), **extra)
    return response


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [m for item in value for m in (_as_list(item) if isinstance(item, list) else [item])]
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _as_list(v)]
    return [value]
