"""Django's SQLite backend, with connections that are replaced once they may be broken
(see :mod:`voiceapp.sqlite.base`)."""
