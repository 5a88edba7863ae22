"""What anyone can make a running server do: requests refused for the client's own doing are
one WARNING line each (no traceback), a password reset never fails loudly, and a client
that never finishes its request headers is disconnected."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as DjangoClient

from conftest import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def request(
    server: ServerProcess,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str = "",
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(method, path, body=body or None, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def session_cookie(user: User) -> str:
    client = DjangoClient()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def reset_form(server: ServerProcess, email: str) -> http.client.HTTPResponse:
    """Post the password-reset form as a browser would (its CSRF cookie and token)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/accounts/password_reset/")
    page = connection.getresponse()
    html = page.read().decode()
    cookie = page.getheader("Set-Cookie", "").split(";")[0]
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    connection.request(
        "POST",
        "/accounts/password_reset/",
        body=f"csrfmiddlewaretoken={token}&email={email}",
        headers={
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"{server.http_url}/accounts/password_reset/",
        },
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def read_response(connection: socket.socket) -> bytes:
    """One whole HTTP response (headers, then Content-Length bytes), however it arrives."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(body) < length:
        body += connection.recv(4096)
    return head + b"\r\n\r\n" + body


def log_lines(server: ServerProcess, level: str) -> list[str]:
    return [line for line in server.log().splitlines() if f" {level} " in line]


def test_client_errors_are_one_warning_line_each(
    start_server: Callable[..., ServerProcess], make_user: Callable[..., User], make_agent: Any
) -> None:
    make_agent(slug="desk")
    staff_without_rights = make_user(staff=True)
    server = start_server(log_level="info", VOICE_LOAD_MODELS_AT_START="false")

    assert request(server, "GET", "/", {"Host": "evil.example"}).status == 400
    assert request(server, "GET", "/", {"Host": "127.0.0.1:1\x7f"}).status == 400
    cookie = {"Cookie": session_cookie(staff_without_rights)}
    assert request(server, "GET", "/admin/agents/agent/", cookie).status == 403
    assert request(server, "GET", "/admin/agents/agent/add/", cookie).status == 403
    assert (
        request(server, "POST", "/processText/", {"Content-Type": "application/json"}, "{").status
        == 400
    )

    text = server.log()
    assert "Traceback" not in text
    assert log_lines(server, "ERROR") == []
    warnings = log_lines(server, "WARNING")
    assert sum("Invalid HTTP_HOST header: 'evil.example'" in line for line in warnings) == 1
    assert (
        sum("Forbidden (Permission denied): /admin/agents/agent/" in line for line in warnings) == 2
    )


def test_without_mail_the_reset_page_says_whom_to_ask(
    start_server: Callable[..., ServerProcess], make_user: Callable[..., User]
) -> None:
    user = make_user()
    user.email = "someone@example.org"
    user.save()
    server = start_server(log_level="info", VOICE_LOAD_MODELS_AT_START="false")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/accounts/password_reset/")
    page = connection.getresponse()
    assert page.status == 200
    assert "Ask an administrator to set a new password" in page.read().decode()
    assert "Traceback" not in server.log()


def test_a_mail_server_that_fails_is_one_error_line_and_the_person_sees_the_usual_page(
    start_server: Callable[..., ServerProcess], make_user: Callable[..., User]
) -> None:
    user = make_user()
    user.email = "someone@example.org"
    user.save()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the block ends
    server = start_server(
        log_level="info",
        VOICE_LOAD_MODELS_AT_START="false",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
    )
    for email in ("someone@example.org", "nobody@example.org"):
        response = reset_form(server, email)
        assert (response.status, response.getheader("Location")) == (
            302,
            "/accounts/password_reset/done/",
        )
    assert "Traceback" not in server.log()
    [error] = log_lines(server, "ERROR")
    assert f"Failed to send password reset email to {user.pk}: " in error


def test_a_client_that_never_finishes_its_headers_is_disconnected(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        log_level="info", VOICE_LOAD_MODELS_AT_START="false", SERVER_HEADER_TIMEOUT_SECONDS="1"
    )
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and nothing more
    # The server closes both: recv returns b"" at the close (waited for, up to 30 s).
    assert slow.recv(100) == b""
    assert silent.recv(100) == b""
    slow.close()
    silent.close()
    # A keep-alive connection whose second request stalls in its headers goes the same way.
    kept = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_response(kept).startswith(b"HTTP/1.1 200")
    kept.sendall(b"GET /healthz HTTP/1.1\r\n")
    assert kept.recv(100) == b""
    kept.close()
    # Complete requests are served as before.
    assert request(server, "GET", "/healthz").status == 200
    assert "no complete request headers in 1 s" in server.log()


def test_a_replaced_database_file_is_noticed_and_the_connection_recycled(
    start_server: Callable[..., ServerProcess], make_agent: Any
) -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the embedded profile's SQLite file (make test's first stage)")
    make_agent(slug="desk")
    server = start_server(log_level="info", VOICE_LOAD_MODELS_AT_START="false")
    assert request(server, "GET", "/").status == 200  # the process has its connection
    assert request(server, "GET", "/readyz").status == 200

    # A restore replaces the file (same content, new inode) under the running process.
    path = Path(connection.settings_dict["NAME"])
    copy = path.with_suffix(".restored")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    os.replace(copy, path)

    ready = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    ready.request("GET", "/readyz")
    answer = ready.getresponse()
    body = json.loads(answer.read())
    assert answer.status == 503
    assert body["checks"]["database"]["error"] == "CheckFailed"
    assert "the database file was replaced or removed" in server.log()

    # The next request recycles the connection; what it writes lands in the new file.
    reply = request(
        server, "POST", "/processText/", {"Content-Type": "application/json"}, '{"text": "Hello"}'
    )
    assert reply.status == 200
    assert request(server, "GET", "/readyz").status == 200
    with sqlite3.connect(path) as fresh:
        [(count,)] = fresh.execute("SELECT COUNT(*) FROM conversations_conversation").fetchall()
    assert count == 1
