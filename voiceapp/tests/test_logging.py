"""Structured logs: the conversation id on every line, JSON or plain, and no secrets."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, connections

from conversations.tests.hume_payloads import payload, sdk_user
from voiceapp.asgi import application
from voiceapp.logs import (
    ConversationFilter,
    JsonFormatter,
    PlainFormatter,
    bind_conversation,
    redact,
)

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
CLM_TOKEN = "clm-secret-Zq8vN3xT5pL0"


@contextmanager
def capture(formatter: logging.Formatter) -> Iterator[Callable[[], str]]:
    """Everything logged while the fixture is active, through the production handler setup."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ConversationFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream.getvalue
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    with capture(JsonFormatter()) as text:
        yield lambda: [json.loads(line) for line in text().splitlines()]


@pytest.fixture
def plain_log() -> Iterator[Callable[[], str]]:
    with capture(PlainFormatter()) as text:
        yield text


async def open_chat(path: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    chat = WebsocketCommunicator(application, path, headers=ORIGIN)
    assert (await chat.connect())[0]
    return chat, json.loads(await chat.receive_from(timeout=10))


@pytest.mark.django_db(transaction=True)
async def test_json_lines_carry_the_conversation_id_of_the_socket(make_agent, json_log) -> None:
    await sync_to_async(make_agent)(slug="eliza")
    logging.getLogger("voiceapp.tests").info("before any conversation")
    chat, session = await open_chat("/agents/eliza/chat")
    await chat.disconnect()

    lines = json_log()
    [opened] = [line for line in lines if line["logger"] == "conversations.consumers.chat"]
    assert set(opened) == {"time", "level", "logger", "message", "conversation_id"}
    assert opened["level"] == "INFO"
    assert opened["message"] == "chat conversation opened for agent eliza"
    assert opened["conversation_id"] == session["conversation"]
    assert opened["time"].endswith("+00:00")
    [before] = [line for line in lines if line["logger"] == "voiceapp.tests"]
    assert before == {
        "time": before["time"],
        "level": "INFO",
        "logger": "voiceapp.tests",
        "message": "before any conversation",
    }


@pytest.mark.django_db(transaction=True)
async def test_plain_lines_tag_the_conversation(make_agent, plain_log) -> None:
    await sync_to_async(make_agent)(slug="eliza")
    chat, session = await open_chat("/agents/eliza/chat")
    await chat.disconnect()
    [line] = [ln for ln in plain_log().splitlines() if "conversations.consumers.chat" in ln]
    assert line.endswith(
        f" INFO conversations.consumers.chat [conv={session['conversation']}] "
        "chat conversation opened for agent eliza"
    )


def test_an_exception_is_one_json_line_with_its_traceback(json_log) -> None:
    def fail_in_a_conversation() -> None:
        bind_conversation("c0ffee")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("voiceapp.tests").exception("the reply failed")

    # In a context of its own, as a socket's task has: the id must not outlive the test.
    contextvars.copy_context().run(fail_in_a_conversation)
    [line] = [line for line in json_log() if line["logger"] == "voiceapp.tests"]
    assert line["message"] == "the reply failed"
    assert line["level"] == "ERROR"
    assert line["conversation_id"] == "c0ffee"
    assert line["exc_info"].startswith("Traceback (most recent call last):")
    assert line["exc_info"].endswith("ValueError: boom")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '127.0.0.1:5000 - "WebSocket /llm/doctor?token=abc123&x=1" [accepted]',
            '127.0.0.1:5000 - "WebSocket /llm/doctor?token=***&x=1" [accepted]',
        ),
        ("GET /agents/a/chat?sig=a:1b2c:xyz HTTP/1.1", "GET /agents/a/chat?sig=*** HTTP/1.1"),
        ("redis://user:hunter2@cache:6379/0", "redis://user:***@cache:6379/0"),
        ("postgres://voice:pa55@db/voice failed", "postgres://voice:***@db/voice failed"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
        ("Token 0123456789abcdef0123456789abcdef01234567", "Token ***"),
        ("{'api_key': 'sk-live-1', 'model': 'm'}", "{'api_key': '***', 'model': 'm'}"),
        ("Incorrect API key provided: sk-proj-AbC123dEf456", "Incorrect API key provided: sk-***"),
        (
            "Cookie: csrftoken=AbC1; sessionid=q9x8w7",
            "Cookie: csrftoken=***; sessionid=***",
        ),
        ("missing or wrong token", "missing or wrong token"),
        ("monkey=banana keyboard=1", "monkey=banana keyboard=1"),
    ],
)
def test_secrets_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.django_db(transaction=True)
async def test_a_token_sent_to_the_clm_socket_is_not_logged(make_agent, json_log) -> None:
    await sync_to_async(make_agent)(slug="guarded", clm_token=CLM_TOKEN)
    for token in (CLM_TOKEN, CLM_TOKEN + "-wrong"):
        socket_ = WebsocketCommunicator(application, f"/llm/guarded?token={token}")
        assert (await socket_.connect())[0]
        await socket_.send_to(text_data=payload([sdk_user("I am sad.")], "s-1"))
        await socket_.receive_from(timeout=10)
        await socket_.disconnect()
    messages = [line["message"] for line in json_log()]
    assert "clm socket refused for agent guarded: missing or wrong token" in messages
    assert "clm conversation opened or resumed for agent guarded" in messages
    assert CLM_TOKEN not in json.dumps(json_log())


# --- A real server process ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, **extra_env: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    """uvicorn as production runs it (INFO level: it logs every socket's path)."""
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "voiceapp.settings_test", **extra_env}
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    port = _free_port()
    log_path = tmp_path / "server.log"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "voiceapp.asgi:application"),
            *("--port", str(port), "--ws", "websockets-sansio", "--log-level", "info"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port, log_path
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start in 30 s:\n{log_path.read_text()}")


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
async def test_a_server_logs_json_lines_without_the_clm_token(make_agent, tmp_path: Path) -> None:
    await sync_to_async(make_agent)(slug="guarded", clm_token=CLM_TOKEN)
    process, port, log_path = await sync_to_async(_serve)(
        tmp_path, LOG_FORMAT="json", VOICE_LOAD_MODELS_AT_START="false"
    )
    url = f"ws://127.0.0.1:{port}/llm/guarded?token="
    try:
        async with websockets.connect(url + CLM_TOKEN) as ws:
            await ws.send(payload([sdk_user("I am sad.")], "s-1"))
            assert json.loads(await ws.recv())["type"] == "assistant_input"
        async with websockets.connect(url + CLM_TOKEN + "-wrong") as ws:
            assert json.loads(await ws.recv())["code"] == "unauthorized"
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
    finally:
        process.terminate()
        await sync_to_async(process.wait)(timeout=10)
        await sync_to_async(connections.close_all)()
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert CLM_TOKEN not in text
    accepted = [line for line in lines if "[accepted]" in line["message"]]
    assert [line["logger"] for line in accepted] == ["uvicorn.error", "uvicorn.error"]
    assert all("/llm/guarded?token=***" in line["message"] for line in accepted)
    assert any(line.get("conversation_id") for line in lines)


def test_an_unknown_log_format_stops_start_up() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "LOG_FORMAT": "yaml"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT='yaml' must be one of: plain, json" in result.stderr
