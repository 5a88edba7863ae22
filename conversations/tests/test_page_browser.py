"""The agent page in a real browser: Debian's headless Chromium, driven by Playwright,
against a live uvicorn process on the test database.

Chromium's fake microphone plays a WAV made here with the bundled Piper voice, so the whole
path is real: getUserMedia (echo cancellation, noise suppression, auto gain), the
AudioWorklet, msgpack frames, VAD, faster-whisper, ELIZA, Piper, and Web Audio playback.
The voice socket is routed through Playwright so the test can read every frame the page
sends. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client as DjangoClient
from playwright.sync_api import (
    Browser,
    Page,
    ViewportSize,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from agents.eliza import sentence_case
from agents.models import Agent
from conversations.models import Conversation, Turn
from testing.speech import normalise, say, silence

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "eliza"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
GREETING = "How do you do. Please tell me your problem."
SPOKEN = "I need a new job."
ANSWER = sentence_case("WHAT WOULD IT MEAN TO YOU IF YOU GOT A NEW JOB")

T = TypeVar("T")


def in_db_thread(query: Callable[[], T]) -> T:
    """Run ORM code off this thread: Playwright's sync API keeps an event loop marked as
    running here between its calls, and Django rightly refuses sync queries there. The
    tests are transactional, so another thread's connection sees the same data."""

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(run).result()


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Chromium's fake microphone plays: a second of silence, the sentence, and two
    seconds of silence (the end of a turn needs silence), as 16-bit mono 16 kHz."""
    audio = np.concatenate([silence(1.0), say(SPOKEN), silence(2.0)])
    path = tmp_path_factory.mktemp("microphone") / "need-a-new-job.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def browser(microphone_wav: Path) -> Iterator[Browser]:
    """Chromium for one test. Started after the test's database set-up and stopped before
    its tear-down: while Playwright's sync API runs, this thread counts as async and Django
    refuses ORM calls on it (see :func:`in_db_thread`)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone_wav}%noloop",
            ],
        )
        yield browser
        browser.close()


# Chromium logs this when a send races the server dropping the socket; the page then
# sees the close and reconnects, which the dropped-call test checks.
TOLERATED_CONSOLE_ERRORS = {"WebSocket is already in CLOSING or CLOSED state."}


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """A page in a fresh browser context; its console errors fail the test."""
    contexts = []
    errors: list[str] = []

    def open_(viewport: ViewportSize) -> Page:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and msg.text not in TOLERATED_CONSOLE_ERRORS
                else None
            ),
        )
        page.set_default_timeout(20_000)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


@pytest.fixture
def doctor(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent(
        name="Doctor", slug="doctor", eliza_script=(SHARED / "DOCTOR-1966.txt").read_text()
    )


def open_agent(page: Page, url: str) -> None:
    """Load an agent page and wait until its scripts have wired it up."""
    page.goto(url)
    expect(page.locator(".chat")).to_have_attribute("data-ready", "true")


def eventually(page: Page, check: Callable[[], object], timeout_s: float = 30) -> None:
    """Wait for ``check`` to pass on state the test collects from Playwright's events,
    letting Playwright deliver them (they arrive only while it has control).

    The page's own state is awaited with Playwright's ``expect`` (it retries until its
    timeout); what the test gathers itself, with this. Never a fixed pause: see
    ``testing/waits.py`` for the rules every wait here follows."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# --- the voice socket, routed through the test ---------------------------------------------


@dataclass
class Frame:
    direction: str  # "sent" (page to server) or "received"
    message: dict[str, Any]


@dataclass
class VoiceTap:
    """Forwards the page's voice socket to the server and keeps every frame, decoded."""

    # Playwright calls the handlers on this thread, while the test waits in one of its calls.
    frames: list[Frame] = field(default_factory=list)
    routes: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.route_web_socket(re.compile(r"/conversation(\?|$)"), self.route)

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self.routes.append((ws, server))
        ws.on_message(lambda data: self.relay("sent", data, server.send))
        server.on_message(lambda data: self.relay("received", data, ws.send))

    def drop(self, n: int) -> None:
        """Break connection ``n`` as a network failure would: both ends close."""
        page_end, server_end = self.routes[n]
        server_end.close()
        page_end.close(code=1011, reason="connection lost")

    def relay(self, direction: str, data: str | bytes, forward: Callable[[Any], None]) -> None:
        assert isinstance(data, bytes), f"a text frame on the audio socket: {data!r}"
        self.frames.append(Frame(direction, msgpack.unpackb(data)))
        forward(data)

    def of(self, direction: str, kind: str) -> list[dict[str, Any]]:
        return [
            f.message for f in self.frames if f.direction == direction and f.message["type"] == kind
        ]


def audio_ms(frames: list[dict[str, Any]], token: str) -> float:
    """Milliseconds of 44.1 kHz s16le audio the server sent under ``token``."""
    samples = sum((len(f["audio"]) - 8) // 2 for f in frames if f["audio"][:8] == token.encode())
    return samples * 1000 / 44_100


# --- tests -----------------------------------------------------------------------------------


def test_a_call_hears_the_user_answers_and_plays_the_answer(
    doctor: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(DESKTOP)
    tap = VoiceTap()
    tap.attach(page)
    open_agent(page, f"{server.http_url}/agents/doctor/")
    call = page.get_by_role("button", name="Start call")
    call.click()
    expect(page.locator("#call-button")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(page.get_by_role("button", name="End call")).to_be_visible()

    user = page.locator(".turn.user[data-channel=voice] .text")
    expect(user).to_have_count(1, timeout=30_000)
    assert normalise(user.inner_text()) == normalise(SPOKEN)
    answer = page.locator(".turn.agent[data-channel=voice]").last
    expect(answer.locator(".text")).to_have_text(ANSWER, timeout=20_000)
    # Played to the end, by the playback clock.
    expect(answer).to_have_attribute("data-audio", "played", timeout=20_000)
    played_ms = int(answer.get_attribute("data-played-ms") or 0)
    assert abs(played_ms - int(answer.get_attribute("data-audio-ms") or 0)) <= 1
    assert played_ms > 1500
    expect(page.locator("#latency")).to_have_attribute("data-ms", re.compile(r"^\d+$"))
    assert page.locator("#latency").inner_text() == (
        f"{page.locator('#latency').get_attribute('data-ms')} ms"
    )
    # The fake microphone talks at once, over the greeting: the page marks that turn, and
    # strikes through the words that were not played.
    greeting = page.locator(".turn.agent[data-channel=voice]").first
    expect(greeting).to_have_class(re.compile(r"\binterrupted\b"))
    expect(greeting.locator(".badge")).to_have_text("interrupted")
    # Cut short, it is not speaking any more: no "speaking" ring left on it.
    expect(greeting).to_have_attribute("data-playing", "false")
    unheard = " ".join(greeting.locator(".unheard").all_inner_texts())
    heard = greeting.locator(".clause").evaluate(
        "clause => [...clause.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)"
        ".map(n => n.textContent).join('').trim()"
    )
    assert " ".join(filter(None, [heard, unheard])) == GREETING
    assert unheard
    screenshot(page, "call-desktop-1280x800")
    page.set_viewport_size(PHONE)
    screenshot(page, "call-phone-390x844")

    page.get_by_role("button", name="End call").click()
    expect(page.locator("#call-button")).to_have_attribute("data-state", "idle")
    eventually(page, lambda: tap.of("sent", "close"))

    # What the page sent: open, 100 ms Float32 chunks, played reports, and state waiting
    # only once the answer had been played through.
    sent = [f.message for f in tap.frames if f.direction == "sent"]
    assert sent[0] == {"type": "open", "format": "pcm_44100", "reports_played": True}
    chunks = [m["audio"] for m in sent if m["type"] == "audio"]
    assert len(chunks) >= 30
    assert {len(c) for c in chunks} == {1600 * 4}
    assert sent[-1] == {"type": "close"}
    [token] = [m["token"] for m in tap.of("received", "token")]
    [interrupt] = tap.of("received", "interrupt")
    reply_token = interrupt["token"]
    answer_ms = audio_ms(tap.of("received", "audio"), reply_token)
    reports = [m["ms"] for m in tap.of("sent", "played") if m["token"] == reply_token]
    assert reports == sorted(reports)
    assert abs(reports[-1] - answer_ms) <= 1
    frames = [f.message for f in tap.frames]
    [waiting_at] = [i for i, m in enumerate(frames) if m["type"] == "state"]
    assert frames[waiting_at] == {"type": "state", "state": "waiting"}
    before = frames[:waiting_at]
    assert [m for m in before if m["type"] == "metrics"] == tap.of("received", "metrics")
    assert [m for m in before if m["type"] == "played"][-1]["ms"] == reports[-1]
    assert token != reply_token

    def stored() -> tuple[list[tuple[str, str, bool]], str, int]:
        turns = list(Turn.objects.order_by("index"))
        return (
            [(t.role, t.text, t.interrupted) for t in turns],
            turns[0].heard_text,
            Conversation.objects.count(),
        )

    turns, greeting_heard, conversations = in_db_thread(stored)
    assert conversations == 1
    assert turns == [
        ("assistant", GREETING, True),
        ("user", user.inner_text(), False),
        ("assistant", ANSWER, False),
    ]
    # The server counts what was heard from the page's `played` reports, which can only
    # lag the page's own count.
    assert heard.startswith(greeting_heard)


def test_a_dropped_call_reconnects_and_resumes_the_conversation(
    doctor: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(DESKTOP)
    tap = VoiceTap()
    tap.attach(page)
    open_agent(page, f"{server.http_url}/agents/doctor/")
    page.get_by_role("button", name="Start call").click()
    expect(page.locator("#call-button")).to_have_attribute("data-state", "live", timeout=30_000)
    [session] = tap.of("received", "session")

    tap.drop(0)
    expect(page.locator("#call-status")).to_have_text("Reconnected: the conversation goes on.")
    expect(page.locator("#call-button")).to_have_attribute("data-state", "live", timeout=30_000)
    opens = tap.of("sent", "open")
    assert opens == [
        {"type": "open", "format": "pcm_44100", "reports_played": True},
        {
            "type": "open",
            "format": "pcm_44100",
            "reports_played": True,
            "conversation": session["conversation"],
        },
    ]
    assert [s["resumed"] for s in tap.of("received", "session")] == [False, True]
    assert len({s["conversation"] for s in tap.of("received", "session")}) == 1
    page.get_by_role("button", name="End call").click()
    assert in_db_thread(Conversation.objects.count) == 1


@pytest.fixture
def private_doctor(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent(
        name="Private doctor",
        slug="private-doctor",
        is_public=False,
        eliza_script=(SHARED / "DOCTOR-1966.txt").read_text(),
    )


@pytest.fixture
def signed_in(make_user: Callable[..., User]) -> tuple[User, str]:
    """A user and the session cookie a browser of theirs would hold."""
    user = make_user()
    client = DjangoClient()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


def test_a_typed_exchange_streams_in_and_belongs_to_the_signed_in_user(
    private_doctor: Agent,
    signed_in: tuple[User, str],
    start_server: Callable[..., Any],
    open_page: Callable[..., Page],
) -> None:
    user, session_cookie = signed_in
    server = start_server()
    page = open_page(PHONE)
    page.context.add_cookies(
        [{"name": "sessionid", "value": session_cookie, "url": server.http_url}]
    )
    open_agent(page, f"{server.http_url}/agents/private-doctor/")
    expect(page.get_by_text(f"Signed in as {user.username}")).to_be_visible()

    message = page.get_by_label("Message to Private doctor")
    message.fill(SPOKEN)
    message.press("Enter")
    expect(message).to_have_value("")
    turns = page.locator("#transcript .turn")
    expect(turns).to_have_count(3)
    assert turns.nth(0).locator(".text").inner_text() == GREETING
    assert turns.nth(1).locator(".text").inner_text() == SPOKEN
    expect(turns.nth(2)).to_have_attribute("data-complete", "true")
    assert turns.nth(2).locator(".text").inner_text() == ANSWER
    assert turns.nth(2).get_attribute("class") == "turn agent"
    screenshot(page, "chat-phone-390x844")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "chat-desktop-1280x800")

    conversation = in_db_thread(lambda: Conversation.objects.get())
    assert conversation.user_id == user.pk
    assert conversation.channel == "web_text"


def test_a_text_conversation_survives_a_dropped_socket_and_a_reload(
    doctor: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(PHONE)
    urls: list[str] = []
    routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def route(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        routes.append((ws, ws.connect_to_server()))

    page.route_web_socket(re.compile(r"/chat(\?|$)"), route)
    open_agent(page, f"{server.http_url}/agents/doctor/")
    message = page.get_by_label("Message to Doctor")
    replies = page.locator(".turn.agent[data-complete=true] .text")
    message.fill("I am sad about my brother.")
    message.press("Enter")
    expect(replies).to_have_text([sentence_case("TELL ME MORE ABOUT YOUR FAMILY")])

    page_end, server_end = routes[0]
    server_end.close()
    page_end.close(code=1011, reason="connection lost")
    expect(page.locator("#chat-status")).to_have_text("Reconnected.")
    message.fill("My mother is always busy.")
    message.press("Enter")
    # ELIZA's memory came back with the conversation: the family rule moves on.
    expect(replies).to_have_text(
        [
            sentence_case("TELL ME MORE ABOUT YOUR FAMILY"),
            sentence_case("WHO ELSE IN YOUR FAMILY IS ALWAYS BUSY"),
        ]
    )
    conversation = in_db_thread(lambda: Conversation.objects.get())
    assert urls[1].endswith(f"/agents/doctor/chat?conversation={conversation.pk}")
    assert in_db_thread(lambda: conversation.turns.count()) == 5
    # The greeting is shown once, not again after the reconnect.
    expect(page.locator(".turn.agent")).to_have_count(3)

    # This tab remembers its conversation: a reload shows the history from the server.
    on_screen = page.locator("#transcript .turn .text").all_inner_texts()
    page.reload()
    expect(page.locator("#transcript .turn .text")).to_have_text(on_screen)
    assert urls[2].endswith(f"/agents/doctor/chat?conversation={conversation.pk}")
    assert in_db_thread(Conversation.objects.count) == 1


PHASE_RECORDER = """
window.phases = [];
new MutationObserver(() => {
  const phase = document.querySelector("#call-phase").dataset.phase;
  if (phase !== window.phases.at(-1)) window.phases.push(phase);
}).observe(document.querySelector("#call-phase"), { attributes: true });
"""


def test_typing_then_calling_is_one_conversation_shown_whole_after_a_reload(
    doctor: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(DESKTOP)
    tap = VoiceTap()
    tap.attach(page)
    open_agent(page, f"{server.http_url}/agents/doctor/")
    message = page.get_by_label("Message to Doctor")
    message.fill("I am sad about my brother.")
    message.press("Enter")
    replies = page.locator(".turn.agent[data-complete=true] .text")
    expect(replies).to_have_text([sentence_case("TELL ME MORE ABOUT YOUR FAMILY")])
    typed = in_db_thread(lambda: Conversation.objects.get())

    page.evaluate(PHASE_RECORDER)
    page.get_by_role("button", name="Start call").click()
    expect(page.locator("#call-button")).to_have_attribute("data-state", "live", timeout=30_000)
    # The call continues the typed conversation, so it is not greeted again.
    assert tap.of("sent", "open")[0]["conversation"] == str(typed.pk)
    expect(page.locator("#call-status")).to_have_text("In a call. Speak when you're ready.")
    # Typing waits while the call is on.
    expect(message).to_be_disabled()
    answer = page.locator(".turn.agent[data-channel=voice]")
    expect(answer).to_have_count(1, timeout=30_000)
    expect(answer).to_have_attribute("data-audio", "played", timeout=30_000)
    expect(page.locator("#call-phase")).to_have_text("Listening…")
    phases = page.evaluate("window.phases")
    # Who had the floor, in order: the person, the agent working, the agent speaking.
    assert phases[:4] == ["listening", "thinking", "speaking", "listening"]
    screenshot(page, "call-after-typing-desktop-1280x800")
    page.get_by_role("button", name="End call").click()
    expect(message).to_be_enabled()
    expect(page.locator("#call-phase")).to_have_text("")
    assert tap.of("received", "reply")  # the answer came on the call
    assert not [m for m in tap.of("received", "reply") if m["text"] == GREETING]

    def stored() -> tuple[int, list[tuple[str, str]]]:
        return Conversation.objects.count(), list(
            Turn.objects.order_by("index").values_list("role", "channel")
        )

    conversations, turns = in_db_thread(stored)
    assert conversations == 1
    assert turns == [
        ("assistant", "web_text"),
        ("user", "web_text"),
        ("assistant", "web_text"),
        ("user", "web_voice"),
        ("assistant", "web_voice"),
    ]

    # A reload shows the whole conversation: typed turns, then the call's, tagged "voice".
    page.reload()
    on_screen = page.locator("#transcript .turn")
    expect(on_screen).to_have_count(5)
    assert [t.get_attribute("data-channel") for t in on_screen.all()] == [
        "text",
        "text",
        "text",
        "voice",
        "voice",
    ]
    expect(on_screen.nth(4).locator(".text")).to_have_text(ANSWER)
    screenshot(page, "reloaded-text-and-voice-desktop-1280x800")


def test_new_conversation_starts_afresh_and_ends_the_old_one(
    doctor: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(PHONE)
    open_agent(page, f"{server.http_url}/agents/doctor/")
    message = page.get_by_label("Message to Doctor")
    message.fill("I am sad about my brother.")
    message.press("Enter")
    expect(page.locator(".turn.agent[data-complete=true]")).to_have_count(1)
    expect(page.locator("#transcript .turn")).to_have_count(3)
    first = in_db_thread(lambda: Conversation.objects.get())

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#transcript .turn")).to_have_count(0)
    expect(page.locator(".transcript-empty")).to_be_visible()
    message.fill("Hello.")
    message.press("Enter")
    # A new conversation: greeted afresh, and the old one ended as the person left it.
    expect(page.locator("#transcript .turn .text").first).to_have_text(GREETING)
    expect(page.locator(".turn.agent[data-complete=true]")).to_have_count(1)
    expect(page.locator("#transcript .turn")).to_have_count(3)

    def both() -> list[tuple[str, str, str]]:
        return [
            (str(c.pk), c.status, c.end_reason) for c in Conversation.objects.order_by("started_at")
        ]

    eventually(page, lambda: [c[1] for c in in_db_thread(both)] == ["ended", "active"])
    old, new = in_db_thread(both)
    assert old == (str(first.pk), "ended", "caller_hung_up")
    assert new[1] == "active"
    # A reload keeps the new conversation, not the old one.
    page.reload()
    expect(page.locator("#transcript .turn")).to_have_count(3)
    expect(page.locator("#transcript .turn.user .text")).to_have_text(["Hello."])


def test_a_denied_microphone_is_explained_and_nothing_is_opened(
    doctor: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(PHONE)
    # The browser's answer when the person (or a policy) blocks the microphone.
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    open_agent(page, f"{server.http_url}/agents/doctor/")
    page.get_by_role("button", name="Start call").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Microphone access was denied.")
    expect(alert).to_have_attribute("data-error-code", "microphone_denied")
    expect(page.locator("#call-button")).to_have_attribute("data-state", "error")
    expect(page.locator("#call-status")).to_have_text("The call did not start.")
    expect(page.get_by_role("button", name="Start call")).to_be_visible()
    screenshot(page, "microphone-denied-phone-390x844")
    assert in_db_thread(Conversation.objects.count) == 0


@pytest.fixture
def mute_agent(make_agent: Callable[..., Agent]) -> Agent:
    """An agent whose voice file is missing: its calls cannot start."""
    return make_agent(name="Mute", slug="mute", tts_voice="/nowhere/voice.onnx")


def test_a_server_error_frame_ends_a_call_that_cannot_start(
    mute_agent: Agent, start_server: Callable[..., Any], open_page: Callable[..., Page]
) -> None:
    server = start_server()
    page = open_page(DESKTOP)
    open_agent(page, f"{server.http_url}/agents/mute/")
    page.get_by_role("button", name="Start call").click()
    alert = page.get_by_role("alert")
    # The server's words, without its internals (no file paths reach the page).
    expect(alert).to_contain_text(
        "The call could not start: this agent's voice is not available right now"
    )
    expect(alert).not_to_contain_text("/nowhere")
    expect(alert).to_have_attribute("data-error-code", "config")
    expect(page.locator("#call-button")).to_have_attribute("data-state", "error")
    expect(page.locator("#call-status")).to_have_text("The call did not start.")
    screenshot(page, "server-error-desktop-1280x800")
