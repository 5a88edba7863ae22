"""Faults in production: a process stopped or killed mid-turn, Redis and PostgreSQL restarts.

Real server processes (``python -m voiceapp.serve``, the production entry point) on the
test database, the PostgreSQL and Redis that ``scripts/services.sh`` started (stopped and
started again here through ``testing.services``), and a real Celery worker. The slow
model is the local fake OpenAI server with a delay between deltas, so a signal can land
in the middle of a reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.test import Client

from conversations.models import Channel, Conversation, Turn
from conversations.services import conversation_start
from conversations.tests.hume_payloads import payload, sdk_assistant, sparse_user
from knowledge.tasks import conversations_reset
from knowledge.tests.conftest import start_worker  # noqa: F401 - a fixture, used by name
from testing.fake_openai import FakeOpenAI
from testing.services import Services, ServicesUnavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
REPLY = (
    "Here is a long answer, spoken slowly, one clause after another, "
    "so that a stop arrives in the middle of it."
)
GRACE_S = 15
#: What a fault test allows for a service to be usable again after it is back.
RECOVERY_BOUND_S = 30


# --- servers ------------------------------------------------------------------------------


class Served:
    """A ``python -m voiceapp.serve`` process."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.port = port
        self.process = process
        self.log_path = log_path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def database_url() -> str:
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("postgresql"):
        return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., list[Served]]]:
    """Start server processes on the test database, all at once (``serve(2)``).

    Afterwards each is stopped as production stops it (SIGTERM), or killed if it hangs.
    """
    started: list[Served] = []

    def start(count: int = 1, **extra_env: str) -> list[Served]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="voiceapp.settings_test",
            DATABASE_URL=database_url(),
            # These tests speak no audio: no speech models loading in the background.
            VOICE_LOAD_MODELS_AT_START="false",
            SHUTDOWN_GRACE_SECONDS=str(GRACE_S),
        )
        env.update(extra_env)
        servers = []
        for _ in range(count):
            port = free_port()
            log_path = tmp_path / f"serve-{port}.log"
            command = [sys.executable, "-m", "voiceapp.serve", "--host", "127.0.0.1"]
            process = subprocess.Popen(
                [*command, "--port", str(port), "--log-level", "info"],
                cwd=ROOT,
                env=env,
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
            servers.append(Served(port, process, log_path))
        started.extend(servers)
        deadline = time.monotonic() + 60
        waiting = list(servers)
        while waiting:
            server = waiting[0]
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start in 60 s:\n{server.log()}")
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                    waiting.pop(0)
            except OSError:
                time.sleep(0.1)
        return servers

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=GRACE_S + 5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture
def services() -> Iterator[Services]:
    """The shared PostgreSQL and Redis; whatever a test stopped is running again after it."""
    try:
        found = Services.from_environment()
    except ServicesUnavailable as exc:
        pytest.skip(str(exc))
    yield found
    found.ensure_running()
    # This thread's connection died with a PostgreSQL restart; the flush after the test
    # opens a new one.
    connections.close_all()


@pytest.fixture
def slow_model(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reply_text = REPLY
    fake_openai.delta_delay_s = 0.12  # 20 words: about 2.5 s a reply
    return fake_openai


@pytest.fixture
async def slow_agent(make_agent: Callable[..., Any], slow_model: FakeOpenAI) -> AsyncIterator[Any]:
    yield await sync_to_async(make_agent)(
        slug="slow",
        llm_provider="openai_compatible",
        llm_model="slow-test",
        llm_base_url=slow_model.base_url,
        is_public=True,
    )
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def eliza_agent(make_agent: Callable[..., Any]) -> AsyncIterator[Any]:
    yield await sync_to_async(make_agent)(slug="doctor")
    await sync_to_async(connections.close_all)()


# --- helpers ------------------------------------------------------------------------------


async def frames_until(socket: Any, last: str) -> list[dict[str, Any]]:
    """Frames up to and including the first of type ``last`` (each within 15 s)."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != last:
        frames.append(json.loads(await asyncio.wait_for(socket.recv(), 15)))
    return frames


async def ask(socket: Any, raw: str) -> list[dict[str, Any]]:
    await socket.send(raw)
    return await frames_until(socket, "assistant_end")


def spoken(frames: list[dict[str, Any]]) -> str:
    return " ".join(frame["text"] for frame in frames if frame["type"] == "assistant_input")


async def close_code(socket: Any, within_s: float = 10) -> int:
    """The code of the close the server sends next (any other frame fails the test)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), within_s)
    assert closed.value.rcvd is not None, "the connection dropped without a close frame"
    return closed.value.rcvd.code


async def read_until_closed(socket: Any) -> None:
    while True:
        await asyncio.wait_for(socket.recv(), 10)


async def refused(port: int, within_s: float = 3) -> bool:
    """True once a new connection to ``port`` is refused (polled for ``within_s``)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.05)
    return False


def turns_of(session_id: str) -> list[tuple[int, str, str, str, bool]]:
    return list(
        Turn.objects.filter(conversation__external_id=session_id)
        .order_by("index")
        .values_list("index", "role", "text", "status", "interrupted")
    )


def assert_whole_and_contiguous(turns: list[tuple[int, str, str, str, bool]]) -> None:
    """Indexes 0..n-1, user and assistant alternating: no half-written or doubled turn."""
    assert [turn[0] for turn in turns] == list(range(len(turns)))
    assert [turn[1] for turn in turns] == ["user", "assistant"] * (len(turns) // 2)


# --- a graceful stop ----------------------------------------------------------------------


async def test_sigterm_lets_the_turn_in_flight_finish_and_store_then_closes_with_1012(
    slow_agent, serve
) -> None:
    [server] = await asyncio.to_thread(serve)
    clm_url = f"{server.ws_url}/llm/slow"
    chat_url = f"{server.ws_url}/agents/slow/chat"
    question = "Tell me everything."
    async with (
        websockets.connect(clm_url) as busy,
        websockets.connect(clm_url) as idle,
        websockets.connect(chat_url, additional_headers={"Origin": server.http_url}) as chat,
    ):
        assert json.loads(await chat.recv())["type"] == "session"
        await busy.send(payload([sparse_user(question)], "drain-clm"))
        await chat.send(json.dumps({"type": "message", "text": question}))
        clm_frames = [json.loads(await asyncio.wait_for(busy.recv(), 10))]
        chat_frames = [json.loads(await asyncio.wait_for(chat.recv(), 10))]
        assert (clm_frames[0]["type"], chat_frames[0]["type"]) == ("assistant_input", "delta")

        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        # An idle socket is closed at once; the process takes no new connection.
        assert await close_code(idle, within_s=3) == 1012
        idle_closed_s = time.monotonic() - stopped_at
        assert await refused(server.port)
        # A payload that arrives while draining is not answered (the client sends it
        # again on its next connection): only the reply in flight ends, then the close.
        await busy.send(
            payload(
                [sparse_user(question), sdk_assistant("Here"), sparse_user("More?")], "drain-clm"
            )
        )
        after_idle_closed = await frames_until(busy, "assistant_end")
        assert len(after_idle_closed) > 1, "the idle socket was closed only after the reply"
        clm_frames += after_idle_closed
        assert await close_code(busy) == 1012
        chat_frames += await frames_until(chat, "done")
        assert await close_code(chat) == 1012

    exit_code = await asyncio.to_thread(server.process.wait, GRACE_S)
    exited_s = time.monotonic() - stopped_at
    print(f"\nSIGTERM: idle socket closed after {idle_closed_s:.2f} s, exit after {exited_s:.2f} s")
    assert exit_code == 0
    assert idle_closed_s < 2.0
    assert exited_s < GRACE_S
    assert spoken(clm_frames) == REPLY
    assert chat_frames[-1] == {"type": "done", "text": REPLY, "error": None}

    clm_turns = await sync_to_async(turns_of)("drain-clm")
    assert clm_turns == [
        (0, "user", question, "complete", False),
        (1, "assistant", REPLY, "complete", False),
    ]
    chat_turns = await sync_to_async(
        lambda: list(
            Turn.objects.filter(conversation__channel=Channel.WEB_TEXT)
            .order_by("index")
            .values_list("role", "text", "status", "interrupted")
        )
    )()
    assert chat_turns == [
        ("user", question, "complete", False),
        ("assistant", REPLY, "complete", False),
    ]
    assert "Traceback" not in server.log()


# --- a crash --------------------------------------------------------------------------------


async def test_after_a_sigkill_mid_turn_the_session_continues_on_another_process(
    slow_agent, slow_model, serve
) -> None:
    slow_model.delta_delay_s = 0.05  # slow enough to be killed mid-reply
    first, second = await asyncio.to_thread(serve, 2)
    session = "killed-mid-turn"
    questions = ["First question.", "Second question.", "Third question."]

    def history(upto: int) -> list[dict[str, Any]]:
        # Hume sends the whole conversation each time: the answered turns and the new one.
        messages: list[dict[str, Any]] = []
        for question in questions[:upto]:
            messages += [sparse_user(question), sdk_assistant(REPLY)]
        return [*messages, sparse_user(questions[upto])]

    async with websockets.connect(f"{first.ws_url}/llm/slow") as socket:
        assert spoken(await ask(socket, payload(history(0), session))) == REPLY
        await socket.send(payload(history(1), session))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "assistant_input"
        first.process.kill()  # mid-reply: nothing of this turn can have been stored
        await asyncio.to_thread(first.process.wait, 10)
        with pytest.raises(websockets.ConnectionClosed):
            await read_until_closed(socket)

    # The client reconnects with the same session id; the other process carries on.
    async with websockets.connect(f"{second.ws_url}/llm/slow") as socket:
        assert spoken(await ask(socket, payload(history(1), session))) == REPLY
        assert spoken(await ask(socket, payload(history(2), session))) == REPLY

    turns = await sync_to_async(turns_of)(session)
    assert_whole_and_contiguous(turns)
    assert [(role, text) for _, role, text, _, _ in turns] == [
        pair for question in questions for pair in (("user", question), ("assistant", REPLY))
    ]
    assert {(status, interrupted) for *_, status, interrupted in turns} == {("complete", False)}
    assert await sync_to_async(Conversation.objects.filter(external_id=session).count)() == 1
    assert "Traceback" not in second.log()


# --- Redis restarts -------------------------------------------------------------------------


def operator_cookie(operator: Any) -> str:
    client = Client()
    client.force_login(operator)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Monitor:
    """An operator's monitor socket that reconnects when it is dropped."""

    def __init__(self, server: Served, cookie: str) -> None:
        self.url = f"{server.ws_url}/ws/monitor"
        self.headers = {"Cookie": cookie, "Origin": server.http_url}
        self.socket: Any = None
        self.reconnects = 0

    async def connect(self) -> None:
        self.socket = await websockets.connect(self.url, additional_headers=self.headers)

    async def wait_for_text(self, text: str, within_s: float) -> bool:
        """True if a stored turn with ``text`` arrives within ``within_s``; reconnects (and
        returns False) if the socket is closed."""
        deadline = time.monotonic() + within_s
        try:
            if self.socket is None:
                await self.connect()
                self.reconnects += 1
            while (left := deadline - time.monotonic()) > 0:
                event = json.loads(await asyncio.wait_for(self.socket.recv(), left))
                if event.get("text") == text:
                    return True
        except TimeoutError:
            return False
        except (OSError, websockets.ConnectionClosed, websockets.InvalidStatus):
            self.socket = None
            await asyncio.sleep(0.2)
        return False

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


async def test_the_channel_layer_and_celery_recover_from_a_redis_restart(
    services,
    serve,
    start_worker,  # noqa: F811 - the fixture imported above
    operator,
    eliza_agent,
    make_agent,
) -> None:
    assert "channels_redis" in str(settings.CHANNEL_LAYERS["default"]["BACKEND"])
    (talker, watcher), _ = await asyncio.gather(
        asyncio.to_thread(serve, 2), asyncio.to_thread(start_worker)
    )
    cookie = await sync_to_async(operator_cookie)(operator)
    # A conversation with model state, for the Celery task to mark for a reset.
    other = await sync_to_async(make_agent)(slug="other")
    marked = await sync_to_async(conversation_start)(agent=other, channel=Channel.HUME_CLM)
    await sync_to_async(Conversation.objects.filter(pk=marked.pk).update)(
        engine_state={"memory": ["x"]}
    )

    monitor = Monitor(watcher, cookie)
    await monitor.connect()
    clm = await websockets.connect(f"{talker.ws_url}/llm/doctor")
    try:
        await ask(clm, payload([sparse_user("I am here before.")], "redis"))
        assert await monitor.wait_for_text("I am here before.", within_s=5)

        services.stop_redis()
        # Sessions that do not need Redis carry on while it is down.
        assert spoken(await ask(clm, payload([sparse_user("Redis is down.")], "redis")))

        services.start_redis()
        up_at = time.monotonic()
        conversations_reset.delay(agent_ids=[other.pk])
        layer_s = celery_s = None
        probe = 0
        while time.monotonic() - up_at < RECOVERY_BOUND_S and (layer_s is None or celery_s is None):
            if layer_s is None:
                probe += 1
                text = f"Probe number {probe}."
                await ask(clm, payload([sparse_user(text)], "redis"))
                if await monitor.wait_for_text(text, within_s=1):
                    layer_s = time.monotonic() - up_at
            if celery_s is None:
                if await sync_to_async(
                    Conversation.objects.filter(pk=marked.pk, reset_requested=True).exists
                )():
                    celery_s = time.monotonic() - up_at
                elif layer_s is not None:
                    await asyncio.sleep(0.1)
    finally:
        await monitor.close()
        await clm.close()
    print(
        f"\nRedis restart: channel layer delivering again after {layer_s} s "
        f"({monitor.reconnects} monitor reconnect(s)), Celery task run after {celery_s} s"
    )
    assert layer_s is not None, f"no event reached the monitor\n{watcher.log()}"
    assert celery_s is not None, "the task queued after the restart did not run"
    assert layer_s < RECOVERY_BOUND_S
    assert celery_s < RECOVERY_BOUND_S
    turns = await sync_to_async(turns_of)("redis")
    assert_whole_and_contiguous(turns)


# --- PostgreSQL restarts --------------------------------------------------------------------


def post_sse(url: str) -> tuple[int, str, Any]:
    body = {"model": "x", "stream": True, "messages": [{"role": "user", "content": "Hi."}]}
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], json.loads(error.read())


async def test_a_database_outage_gives_clean_errors_and_the_session_continues_after(
    services, serve, eliza_agent
) -> None:
    [server] = await asyncio.to_thread(serve)
    session = "through-an-outage"
    async with websockets.connect(f"{server.ws_url}/llm/doctor") as clm:
        assert spoken(await ask(clm, payload([sparse_user("I feel sad.")], session)))

        await sync_to_async(connections.close_all)()
        services.stop_postgres()
        try:
            # The live session: a clean error frame and the end of the reply, promptly.
            started = time.monotonic()
            frames = await ask(clm, payload([sparse_user("Nobody listens.")], session))
            assert time.monotonic() - started < 5
            errors = [frame for frame in frames if frame["type"] == "error"]
            assert [e["code"] for e in errors] == ["unavailable"]
            assert frames[-1] == {"type": "assistant_end"}
            # SSE: 503 with the documented JSON body, not an error page.
            status, content_type, body = await asyncio.to_thread(
                post_sse, f"{server.http_url}/llm/doctor/chat/completions"
            )
            assert (status, content_type) == (503, "application/json")
            assert body["error"]["code"] == "unavailable"
            # A new socket: the error frame, then "try again later".
            async with websockets.connect(f"{server.ws_url}/llm/doctor") as fresh:
                assert json.loads(await fresh.recv())["code"] == "unavailable"
                assert await close_code(fresh) == 1013
            # The page's text chat: the same.
            page = {"origin": server.http_url}  # browser sockets must come from the site
            async with websockets.connect(f"{server.ws_url}/agents/doctor/chat", **page) as chat:
                assert json.loads(await chat.recv())["code"] == "unavailable"
                assert await close_code(chat) == 1013
            # The audio socket stays open; 'open' gets the error and may be sent again.
            voice_url = f"{server.ws_url}/agents/doctor/conversation"
            async with websockets.connect(voice_url, **page) as voice:
                await voice.send(msgpack.packb({"type": "open", "format": "pcm_16000"}))
                frame = msgpack.unpackb(await voice.recv(), raw=False)
                assert (frame["type"], frame["code"]) == ("error", "unavailable")
        finally:
            services.start_postgres()
        up_at = time.monotonic()
        # The same socket and session go on once the database is back.
        while True:
            frames = await ask(clm, payload([sparse_user("I feel better now.")], session))
            if not any(frame["type"] == "error" for frame in frames):
                break
            assert time.monotonic() - up_at < RECOVERY_BOUND_S, frames
            await asyncio.sleep(0.2)
        recovered_s = time.monotonic() - up_at

    print(f"\nPostgreSQL restart: the session answered again after {recovered_s:.2f} s")
    await sync_to_async(connections.close_all)()
    turns = await sync_to_async(turns_of)(session)
    assert_whole_and_contiguous(turns)
    assert [(role, text) for _, role, text, _, _ in turns if role == "user"] == [
        ("user", "I feel sad."),
        ("user", "I feel better now."),
    ]
    assert "Traceback" not in server.log()
