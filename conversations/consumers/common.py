"""What the sockets share about failing cleanly."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

#: RFC 6455 / IANA 1013 "Try Again Later": the database is unreachable right now.
CLOSE_TRY_AGAIN_LATER = 1013
#: The database cannot be reached (down, restarting, connection lost): the client is told
#: ``unavailable`` and may try again; nothing of the turn is stored.
DATABASE_DOWN = (OperationalError, InterfaceError)
