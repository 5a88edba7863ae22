"""What the sockets share about failing cleanly."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError

from voiceapp import drain

#: RFC 6455 / IANA 1013 "Try Again Later": the database is unreachable right now.
CLOSE_TRY_AGAIN_LATER = 1013
#: The database cannot be reached (down, restarting, connection lost): the client is told
#: ``unavailable`` and may try again; nothing of the turn is stored.
DATABASE_DOWN = (OperationalError, InterfaceError)


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

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            await self.release()

    async def release(self) -> None:
        drain.unregister(self.live_socket)
        self.live_socket = None
