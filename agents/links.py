"""Signed links: a time-limited token that lets whoever holds it talk to one agent that
is not public (its page, and its voice and chat sockets), without an account."""

from __future__ import annotations

from django.core import signing

# Unchanged since the links were first made: links already handed out stay valid.
LINK_SALT = "conversations.voice-link"


def signed_link_token(slug: str) -> str:
    """A token that lets anyone holding it talk to agent ``slug`` for a limited time."""
    return signing.TimestampSigner(salt=LINK_SALT).sign(slug)


def signed_link_valid(slug: str, token: str, *, max_age: int) -> bool:
    """Whether ``token`` was made by :func:`signed_link_token` for ``slug`` and is still fresh."""
    try:
        return signing.TimestampSigner(salt=LINK_SALT).unsign(token, max_age=max_age) == slug
    except signing.BadSignature:
        return False
