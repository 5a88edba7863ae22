"""Django's SQLite backend, whose kept connections are recycled when they may be broken.

The embedded profile keeps one SQLite connection per thread for the life of the process.
Django replaces a kept connection after an error only if the backend says it is no longer
usable, and the SQLite backend always says it is; so a connection left broken (a disk
error, a WAL file removed under it, the database file replaced by a restore) stayed in use
until restart, failing or writing where nobody would read. Here a connection is unusable
after any database error and whenever the file at the configured path is no longer the
file it opened; Django then closes it at the next request or socket call and the next
query opens the file that is there now.
"""

from __future__ import annotations

import os
from typing import Any

from django.db.backends.sqlite3 import base


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


#: Path -> identity of the file this process's most recent connection to it opened
#: (readiness compares it with the file at the path now; see ``voiceapp.health``).
last_opened: dict[str, tuple[int, int] | None] = {}


class DatabaseWrapper(base.DatabaseWrapper):
    opened_identity: tuple[int, int] | None = None

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            path = str(self.settings_dict["NAME"])
            self.opened_identity = last_opened[path] = file_identity(path)
        return connection

    def is_usable(self) -> bool:
        if self.errors_occurred:
            return False
        return self.still_the_same_file()

    def still_the_same_file(self) -> bool:
        """Whether the configured path still names the file this connection opened (always
        true for an in-memory database)."""
        if self.is_in_memory_db():
            return True
        return file_identity(str(self.settings_dict["NAME"])) == self.opened_identity
