"""Who may use a socket or endpoint: shared checks for tokens on live channels."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

from agents.links import signed_link_valid
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


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_key(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as ``https://app.example:8443``, with the
    scheme's default port filled in; None when it is not an http(s) origin (``null``,
    ``file://``, garbage)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _site_key(scope: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """This site's origin as the socket's own request names it: its Host header (which
    must be one of ALLOWED_HOSTS) and http or https after ws or wss."""
    host = ""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1")
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return scheme, domain.lower(), int(port) if port else _DEFAULT_PORTS[scheme]


def socket_origin(scope: Mapping[str, Any]) -> str:
    """How a browser-facing socket's Origin stands: ``site`` (this site, scheme, host and
    port alike), ``allowed`` (in ALLOWED_ORIGINS), ``absent`` (no Origin: not a browser),
    or ``foreign``."""
    origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
    if not origins:
        return "absent"
    key = origin_key(origins[0].decode("latin-1"))
    if key is None:
        return "foreign"
    if key == _site_key(scope):
        return "site"
    if key in {origin_key(allowed) for allowed in settings.ALLOWED_ORIGINS}:
        return "allowed"
    return "foreign"


class SiteOriginValidator:
    """Admits a browser socket only from this site's pages or ALLOWED_ORIGINS (scheme, host
    and port compared), refusing others at the handshake (403) without touching the
    channel layer.

    A socket without an Origin comes from a program, not a browser (browsers always send
    one), so it is no cross-site risk and is admitted; but a session cookie is a browser's,
    so it counts only with a browser Origin: such a program is anonymous unless it brings
    an API token (``Authorization: Token …``) or a signed link (``?sig=``).
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        origin = socket_origin(scope)
        if origin == "foreign":
            return await _QuietDenier()(scope, receive, send)
        scope = dict(scope, origin=origin)
        if origin == "absent":
            scope["user"] = await _token_user(scope) or AnonymousUser()
        return await self.application(scope, receive, send)


async def _token_user(scope: Mapping[str, Any]) -> Any:
    """The active user whose API token the socket sent (``Authorization: Token <key>``)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                found: User | None = await _user_for_token(key.strip())
                return found
    return None


def _token_owner(key: str) -> User | None:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    user: User = token.user
    return user


_user_for_token = database_sync_to_async(_token_owner)
