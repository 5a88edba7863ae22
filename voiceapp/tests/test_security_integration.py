"""The security suite against real server processes (uvicorn, as ``start_server`` runs it).

What only a real server shows: the Origin header of a real WebSocket handshake, bodies
that are really sent (or only announced) over a socket, frames past the server's own
limit, and the log of a process at DEBUG with every kind of secret passing through it.
The table-driven checks of every route and socket are in ``test_security.py``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import select
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections
from rest_framework.authtoken.models import Token

from agents import links
from agents.models import Agent
from conversations.tests.hume_payloads import payload, sdk_user
from knowledge.models import Document
from testing.fake_openai import FakeOpenAI

pytestmark = [
    pytest.mark.integration,
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
]

CLM_TOKEN = "clm-token-of-closed-7f3a9c51"
EVIL = "https://evil.example"
BROWSER_SOCKETS = [
    "/conversation",
    "/conversation/websocket",
    "/agents/open/conversation",
    "/chat",
    "/agents/open/chat",
    "/ws/monitor",
]


@pytest.fixture
async def closes_connections() -> AsyncIterator[None]:
    yield
    # ORM calls here run on asgiref's worker thread: close its connection so that the
    # test database can be flushed and dropped.
    await sync_to_async(connections.close_all)()


def _agents(make_agent: Callable[..., Agent]) -> None:
    make_agent(slug="open")  # public, the default
    make_agent(slug="closed", is_public=False, clm_token=CLM_TOKEN)


# The server is conftest's ServerProcess (conftest is not imported as a module).
ServerProcess = Any


async def _serve(start_server: Callable[..., ServerProcess], **env: str) -> ServerProcess:
    # A short grace on SIGTERM: the stop at the end of each test need not wait for turns.
    return await sync_to_async(start_server)(
        VOICE_LOAD_MODELS_AT_START="false", SHUTDOWN_GRACE_SECONDS="1", **env
    )


# --- real Origin headers ------------------------------------------------------------------------


async def _handshake(url: str, origin: str | None) -> str:
    headers = {"Origin": origin} if origin is not None else {}
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=10):
            return "open"
    except websockets.InvalidStatus as exc:
        return str(exc.response.status_code)


async def test_real_handshakes_are_checked_for_their_origin(
    start_server, make_agent, closes_connections
) -> None:
    """Browser sockets take only this site's Origin (scheme, host and port) and none from
    programs; the custom-LLM socket takes any (Hume's servers send no browser Origin):
    there, the agent's token is what admits (README)."""
    await sync_to_async(_agents)(make_agent)
    server = await _serve(start_server)
    got = {
        path: (
            await _handshake(server.ws_url + path, EVIL),
            await _handshake(server.ws_url + path, "http://127.0.0.1.evil.example"),
            await _handshake(server.ws_url + path, f"http://127.0.0.1:{server.port + 1}"),
            await _handshake(server.ws_url + path, f"https://127.0.0.1:{server.port}"),
            await _handshake(server.ws_url + path, server.http_url),
            await _handshake(server.ws_url + path, None),  # a program, not a browser
        )
        for path in BROWSER_SOCKETS
    }
    assert got == {path: ("403", "403", "403", "403", "open", "open") for path in BROWSER_SOCKETS}
    # Without the token the server answers at once and closes (nothing to send: a send
    # could race the close); with it, a payload is answered.
    async with websockets.connect(
        f"{server.ws_url}/llm/closed", additional_headers={"Origin": EVIL}
    ) as clm:
        refused = json.loads(await asyncio.wait_for(clm.recv(), timeout=30))
    async with websockets.connect(
        f"{server.ws_url}/llm/closed?token={CLM_TOKEN}", additional_headers={"Origin": EVIL}
    ) as clm:
        await clm.send(payload([sdk_user("Hello.")], "s-1"))
        answered = json.loads(await asyncio.wait_for(clm.recv(), timeout=30))
    assert (refused["code"], answered["type"]) == ("unauthorized", "assistant_input")


async def test_a_session_cannot_write_from_another_sites_page(
    start_server, make_agent, make_user, closes_connections
) -> None:
    await sync_to_async(_agents)(make_agent)
    superuser = await sync_to_async(make_user)(superuser=True)
    server = await _serve(start_server)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        await _sign_in(client, superuser.username, "pw-12345-xyz")  # conftest's password
        headers = {"X-CSRFToken": client.cookies["csrftoken"]}
        body = {"slug": "from-evil", "name": "From evil"}
        foreign = await client.post("/api/agents/", json=body, headers={**headers, "Origin": EVIL})
        no_token = await client.post("/api/agents/", json=body, headers={"Origin": EVIL})
        own = await client.post(
            "/api/agents/", json=body, headers={**headers, "Origin": server.http_url}
        )
    assert (foreign.status_code, no_token.status_code, own.status_code) == (403, 403, 201)
    assert foreign.json()["error"]["code"] == "permission_denied"


async def _sign_in(client: httpx.AsyncClient, username: str, password: str) -> None:
    """Sign in through the real form, with its CSRF token, as a browser does."""
    await client.get("/accounts/login/")
    response = await client.post(
        "/accounts/login/",
        data={"username": username, "password": password},
        headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": str(client.base_url)},
    )
    assert (response.status_code, response.headers["location"]) == (302, "/")


# --- real oversized bodies and frames -------------------------------------------------------------

MB = 1024 * 1024


def _stored(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _announce(port: int, path: str, length: int) -> tuple[int, Any]:
    """Send only the headers of a POST whose Content-Length is ``length``; the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length_of(raw):
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _length_of(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.fixture
async def small_limits(
    start_server, make_agent, make_user, closes_connections
) -> tuple[ServerProcess, str]:
    """A server whose limits are small: documents and audio 1 MB, custom-LLM frames
    64 KiB, so every body over 2 MB (the largest + 1 MB) is refused unread."""
    await sync_to_async(_agents)(make_agent)
    staff = await sync_to_async(make_user)(superuser=True)
    token = await sync_to_async(Token.objects.create)(user=staff)
    server = await _serve(
        start_server,
        KNOWLEDGE_MAX_DOCUMENT_MB="1",
        CHATBOT_MAX_AUDIO_MB="1",
        CLM_MAX_FRAME_BYTES="65536",
    )
    return server, token.key


def _send_chunked(port: int, path: str, total: int) -> tuple[int, Any, int]:
    """POST ``total`` bytes with no Content-Length (chunked), 64 KiB at a time, stopping
    as soon as the server answers; the answer, and how many bytes went out."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * (64 * 1024)
        sent = 0
        while sent < total and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length_of(raw):
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body), sent


async def test_bodies_over_the_limit_are_refused_before_they_are_read(small_limits) -> None:
    server, _ = small_limits
    refused = {
        "error": {
            "code": "too_large",
            "message": f"the request body has {3 * MB} bytes; the limit is {2 * MB}",
        }
    }
    for path in ("/api/documents/", "/processAudioFile/", "/llm/chat/completions", "/api/agents/"):
        # Announced: refused from the headers, before a byte of the body is sent.
        assert await asyncio.to_thread(_announce, server.port, path, 3 * MB) == (413, refused)
    # Not announced (chunked): counted as it arrives, refused once past the limit.
    status, body, sent = await asyncio.to_thread(
        _send_chunked, server.port, "/api/documents/", 3 * MB
    )
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert sent > 2 * MB


async def test_uploads_over_their_own_limits_are_413_and_store_nothing(small_limits) -> None:
    server, key = small_limits
    media = Path(settings.MEDIA_ROOT)
    before = (await sync_to_async(Document.objects.count)(), _stored(media))
    document = ("big.txt", b"word " * (300 * 1024), "text/plain")  # 1.5 MB
    audio = ("big.wav", b"\0" * (1536 * 1024), "audio/wav")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as client:
        too_big_document = await client.post(
            "/api/documents/", files={"file": document}, headers={"Authorization": f"Token {key}"}
        )
        too_big_audio = await client.post("/processAudioFile/", files={"file": audio})
        big_sse = await client.post(
            "/llm/chat/completions",
            json={"messages": [{"role": "user", "content": "x" * 200_000}]},
        )
    assert (too_big_document.status_code, too_big_document.json()["error"]) == (
        413,
        {"code": "too_large", "message": "big.txt is 1.5 MB; the limit is 1 MB."},
    )
    assert (too_big_audio.status_code, too_big_audio.json()["error"]["code"]) == (413, "too_large")
    assert (big_sse.status_code, big_sse.json()["error"]["code"]) == (413, "payload_too_large")
    assert (await sync_to_async(Document.objects.count)(), _stored(media)) == before


async def test_oversized_frames_are_refused_and_sockets_carry_on(small_limits) -> None:
    server, _ = small_limits
    async with websockets.connect(f"{server.ws_url}/llm", max_size=None) as clm:
        await clm.send(payload([sdk_user("x" * 70_000)], "s-big"))
        error = json.loads(await asyncio.wait_for(clm.recv(), timeout=10))
        assert (error["type"], error["code"]) == ("error", "payload_too_large")
        await clm.send(payload([sdk_user("Hello.")], "s-big"))
        reply = json.loads(await asyncio.wait_for(clm.recv(), timeout=10))
        assert reply["type"] == "assistant_input"
    async with websockets.connect(
        f"{server.ws_url}/conversation", additional_headers={"Origin": server.http_url}
    ) as voice:
        await voice.send(msgpack.packb({"type": "audio", "audio": b"\0" * 70_000}))
        error = msgpack.unpackb(await asyncio.wait_for(voice.recv(), timeout=10))
        assert (error["type"], error["code"]) == ("error", "frame_too_large")
    # Past the server's own frame limit (uvicorn's 16 MiB), the socket is closed: 1009.
    async with websockets.connect(f"{server.ws_url}/llm", max_size=None) as clm:
        await clm.send("x" * (17 * MB))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(clm.recv(), timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


# --- secrets never logged --------------------------------------------------------------------------


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[str]:
    """A Redis of our own that wants a password: its URL, password included."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    password = "SECRET-REDIS-" + secrets.token_hex(6)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            *(server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--requirepass", password, "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _database_url_with(password: str) -> dict[str, str]:
    """DATABASE_URL with a password, where the database has one to give (PostgreSQL, whose
    test cluster trusts loopback and so ignores it); SQLite has none."""
    db = connection.settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        return {}
    return {
        "DATABASE_URL": f"postgres://{db['USER']}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    }


async def test_secrets_never_reach_the_log_of_a_debug_server(
    start_server,
    make_agent,
    make_user,
    fake_openai: FakeOpenAI,
    redis_with_password: str,
    closes_connections,
) -> None:
    marks = {
        "clm token": "SECRET-CLM-" + secrets.token_hex(6),
        "sse token": "SECRET-SSE-" + secrets.token_hex(6),
        "llm key": "SECRET-LLM-KEY-" + secrets.token_hex(6),
        "password": "SECRET-PASSWORD-" + secrets.token_hex(6),
        "metrics token": "SECRET-METRICS-" + secrets.token_hex(6),
        "redis password": redis_with_password.split(":")[2].split("@")[0],
    }
    database = _database_url_with("SECRET-PG-" + secrets.token_hex(6))
    if database:  # PostgreSQL: a DATABASE_URL with a password
        marks["database password"] = database["DATABASE_URL"].split(":")[2].split("@")[0]

    def setup() -> tuple[str, str]:
        make_agent(slug="open")
        make_agent(slug="closed", is_public=False, clm_token=marks["clm token"])
        make_agent(slug="hume", clm_token=marks["sse token"])
        make_agent(
            slug="remote",
            llm_provider="openai_compatible",
            llm_model="fake-model",
            llm_base_url=fake_openai.base_url,
            llm_api_key_env="AGENT_KEY_SECURITY_SUITE",
        )
        user = make_user(superuser=True)
        user.set_password(marks["password"])
        user.save()
        return user.username, Token.objects.create(user=user).key

    username, key = await sync_to_async(setup)()
    marks["drf token"] = key
    server = await _serve(
        start_server,
        log_level="debug",
        LOG_LEVEL="DEBUG",
        AGENT_KEY_SECURITY_SUITE=marks["llm key"],
        METRICS_TOKEN=marks["metrics token"],
        REDIS_URL=redis_with_password,
        **database,
    )
    sig = links.signed_link_token("closed")
    marks["signed link"] = sig.rsplit(":", 1)[1]

    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as client:
        await client.get("/accounts/login/")
        signed_in = await client.post(
            "/accounts/login/",
            data={"username": username, "password": marks["password"]},
            headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": server.http_url},
        )
        assert signed_in.status_code == 302
        marks["session"] = client.cookies["sessionid"]
        wrong = await client.post(  # a failed sign-in with a near miss of the password
            "/admin/login/",
            data={"username": username, "password": marks["password"] + "x"},
            headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": server.http_url},
        )
        assert wrong.status_code == 200
        assert (await client.get("/admin/")).status_code == 200
        assert (await client.get(f"/agents/closed/?sig={sig}")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        # Each secret once right and once nearly right (refusals are what gets logged).
        for token, status in ((marks["sse token"], 200), (marks["sse token"] + "x", 401)):
            sse = await client.post(
                "/llm/hume/chat/completions",
                json={"messages": [{"role": "user", "content": "Hello."}]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert sse.status_code == status
        for token, status in ((marks["metrics token"], 200), ("x" + marks["metrics token"], 401)):
            metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert metrics.status_code == status
        for token, status in ((key, 200), (key[::-1], 401)):
            api = await client.get("/api/documents/", headers={"Authorization": f"Token {token}"})
            assert api.status_code == status
        answer = await client.post(
            "/queryAssistant/?agent=remote",
            json={"prompt": "Hello.", "address": "log-test"},
            headers={"Authorization": f"Token {key}"},
        )
        assert answer.status_code == 200
        marks["csrf cookie"] = client.cookies["csrftoken"]
        cookie = f"sessionid={marks['session']}; csrftoken={marks['csrf cookie']}"

    for token in (marks["clm token"], marks["clm token"] + "x"):
        async with websockets.connect(f"{server.ws_url}/llm/closed?token={token}") as clm:
            await clm.send(payload([sdk_user("Hello.")], "s-1"))
            await asyncio.wait_for(clm.recv(), timeout=10)
    browser = {"Origin": server.http_url, "Cookie": cookie}
    async with websockets.connect(
        f"{server.ws_url}/agents/closed/chat?sig={sig}", additional_headers=browser
    ) as chat:
        assert json.loads(await asyncio.wait_for(chat.recv(), timeout=10))["type"] == "session"
    async with websockets.connect(f"{server.ws_url}/ws/monitor", additional_headers=browser):
        pass
    await asyncio.to_thread(_stop, server)

    sent = fake_openai.requests_to("/v1/chat/completions")
    assert [r.headers["authorization"] for r in sent] == [f"Bearer {marks['llm key']}"]
    log = server.log()
    assert " DEBUG " in log  # it did log at DEBUG,
    assert "GET /admin/ HTTP/1.1" in log  # every request,
    assert "/llm/closed?token=***" in log  # and the paths with their tokens
    assert {name: mark for name, mark in marks.items() if mark in log} == {}


def _stop(server: ServerProcess) -> None:
    server.process.terminate()
    server.process.wait(timeout=10)
