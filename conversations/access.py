"""Who may use a socket or endpoint: shared checks for tokens on live channels."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from django.http import HttpRequest


def _bearer(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def scope_token(scope: Mapping[str, Any]) -> str:
    """A socket's token: ``?token=`` (Hume's config holds a URL) or a Bearer header."""
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return _bearer(value.decode("latin-1"))
    return ""


def request_token(request: HttpRequest) -> str:
    """An HTTP request's token: a Bearer header (Hume's SSE key) or ``?token=``."""
    return _bearer(request.headers.get("Authorization", "")) or request.GET.get("token", "")


def token_matches(expected: str, given: str) -> bool:
    """True when the agent needs no token, or the client sent exactly the right one."""
    if not expected:
        return True
    return hmac.compare_digest(given.encode(), expected.encode())
