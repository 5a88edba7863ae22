"""The embedded profile's SQLite connections are replaced once they may be broken."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError

from voiceapp.sqlite.base import DatabaseWrapper


@pytest.fixture(autouse=True)
def own_databases(django_db_blocker: Any) -> Iterator[None]:
    """These tests open their own files, not the test database."""
    with django_db_blocker.unblock():
        yield


def wrapper(path: Path) -> DatabaseWrapper:
    return DatabaseWrapper({**_settings(), "NAME": str(path)})


def _settings() -> dict[str, object]:
    return {
        "ENGINE": "voiceapp.sqlite",
        "OPTIONS": {},
        "TIME_ZONE": None,
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,  # as the embedded profile sets it
        "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "TEST": {},
    }


def test_a_connection_is_replaced_after_an_error_and_reopens(tmp_path: Path) -> None:
    database = wrapper(tmp_path / "db.sqlite3")
    database.ensure_connection()
    first = database.connection
    try:
        with database.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
    except DatabaseError:
        pass
    assert database.errors_occurred
    database.close_if_unusable_or_obsolete()
    assert database.connection is None
    database.ensure_connection()
    assert database.connection is not first
    with database.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    database.close()


def test_a_connection_is_replaced_when_the_file_is_no_longer_the_one_it_opened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    database = wrapper(path)
    with database.cursor() as cursor:
        cursor.execute("CREATE TABLE notes (text TEXT)")
    database.close_if_unusable_or_obsolete()
    assert database.connection is not None  # a healthy connection is kept

    restored = tmp_path / "restored.sqlite3"
    with sqlite3.connect(restored) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    os.replace(restored, path)
    kept = database.connection
    database.close_if_unusable_or_obsolete()  # the end of a request, or of a socket's call
    with database.cursor() as cursor:  # the next one's first query checks the file
        cursor.execute("INSERT INTO notes VALUES ('kept')")
    assert database.connection is not kept
    database.close()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT text FROM notes").fetchall() == [("kept",)]
