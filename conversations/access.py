"""Who may use a socket or endpoint: shared checks for tokens on live channels."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.core import signing
from django.http import HttpRequest

from agents.models import Agent


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


def clm_refusal(agent: Agent, given: str) -> str | None:
    """Why the custom-LLM routes refuse this request for ``agent``, or None to answer.

    An agent with a custom-LLM token answers only that token. One without a token answers
    anyone only if it is public: Hume connects with no user, so a non-public agent needs
    a token to be reached here at all.
    """
    if agent.clm_token:
        return None if token_matches(agent.clm_token, given) else "missing or wrong token"
    if agent.is_public:
        return None
    return "this agent is not public: its custom-LLM token is required"


_LINK_SALT = "conversations.voice-link"


def signed_link_token(slug: str) -> str:
    """A token that lets anyone holding it talk to agent ``slug`` for a limited time."""
    return signing.TimestampSigner(salt=_LINK_SALT).sign(slug)


def signed_link_valid(slug: str, token: str, *, max_age: int) -> bool:
    """Whether ``token`` was made by :func:`signed_link_token` for ``slug`` and is still fresh."""
    try:
        return signing.TimestampSigner(salt=_LINK_SALT).unsign(token, max_age=max_age) == slug
    except signing.BadSignature:
        return False


def query_param(scope: Mapping[str, Any], name: str) -> str:
    values = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).get(name)
    return values[0] if values else ""


def may_talk_to(agent: Agent, scope: Mapping[str, Any]) -> bool:
    """Public agents are open to anyone; others need a signed-in user or a signed link."""
    if agent.is_public:
        return True
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return True
    return signed_link_valid(
        agent.slug, query_param(scope, "sig"), max_age=settings.VOICE_LINK_MAX_AGE_SECONDS
    )


class _QuietDenier(WebsocketDenier):  # type: ignore[misc]
    # A refused socket needs no channel: with Redis, Channels' default would open one (and
    # log a traceback when its blocking read is cut off as the socket closes).
    channel_layer_alias = None


class SiteOriginValidator(OriginValidator):  # type: ignore[misc]
    """Channels' check that a browser socket comes from this site (one of ALLOWED_HOSTS),
    refusing the others at the handshake (403) without touching the channel layer."""

    def __init__(self, application: Any) -> None:
        super().__init__(application, settings.ALLOWED_HOSTS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                with contextlib.suppress(UnicodeDecodeError):
                    origin = urlparse(value.decode("latin1"))
        if self.valid_origin(origin):
            return await self.application(scope, receive, send)
        return await _QuietDenier()(scope, receive, send)
