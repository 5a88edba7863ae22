"""What the sockets share about failing cleanly."""

from __future__ import annotations

from typing import Any

from conversations.models import EndReason
from conversations.stores import DATABASE_DOWN
from voiceapp import drain

#: RFC 6455 / IANA 1013 "Try Again Later": the database is unreachable right now.
CLOSE_TRY_AGAIN_LATER = 1013
__all__ = ["CLOSE_TRY_AGAIN_LATER", "DATABASE_DOWN", "ReleasesOnEnd"]


#: The server's close codes that say why a conversation ended (4408: maximum length).
_REASONS = {drain.CLOSE_SERVICE_RESTART: EndReason.SERVER_RESTART, 4408: EndReason.TIMED_OUT}


class ReleasesOnEnd:
    """Mixin for a consumer, listed before it: :meth:`release` runs when the consumer's
    application ends, however it ends. Channels calls ``disconnect`` only for a socket
    that got through ``connect`` and ended normally; a handler that raised, or a client
    that went away mid-connect, would otherwise keep what the socket holds (its place in
    the drain registry, per-address session slots, timers) until the process restarts.

    Subclasses extend :meth:`release` (calling ``super()``); it must be idempotent, since
    ``disconnect`` usually calls it first.
    """

    live_socket: drain.LiveSocket | None = None
    closed_with: int | None = None  # the close code this side sent, if it closed first

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.closed_with is None and isinstance(code, int) and not isinstance(code, bool):
            self.closed_with = code
        await super().close(code=code, reason=reason)  # type: ignore[misc]

    def end_reason(self) -> EndReason:
        """Why the conversation on this socket ends: the server's close code when it
        closed (restart, time limit), else the caller hung up (or went away)."""
        return _REASONS.get(self.closed_with or 0, EndReason.CALLER_HUNG_UP)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            await self.release()

    async def release(self) -> None:
        drain.unregister(self.live_socket)
        self.live_socket = None
