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


class LeavesDrainRegistry:
    """Mixin for a consumer, listed before it: its socket leaves the drain registry when the
    consumer's application ends, however it ends. Channels calls ``disconnect`` only for a
    socket that got through ``connect``; one whose client went away mid-connect would
    otherwise stay registered, and a draining process would wait its whole grace period
    for it."""

    live_socket: drain.LiveSocket | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            drain.unregister(self.live_socket)
