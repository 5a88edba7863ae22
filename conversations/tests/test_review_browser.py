"""Operators review a voice call in a real browser: Debian's headless Chromium, driven by
Playwright, against a live uvicorn process on the test database.

The call's question is real speech (the bundled Piper voice) stored as a WAV file, so the
page's player loads it through the authorised audio view as Chromium would for anyone.
Screenshots of the conversation and the agent's dashboard go to test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from agents.models import Agent
from conversations.models import Channel, Conversation, Role, Turn
from conversations.services import conversation_start, turn_record
from conversations.voice_store import wav_file
from testing.speech import say

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "pw-12345-xyz"  # what conftest's make_user gives every user
QUESTION = "Where do visitors sign in?"
WATERFALL = (
    "Latency waterfall: End-of-turn wait 500 ms, STT 212 ms, LLM first token 388 ms, "
    "TTS first audio 121 ms, Voice-to-voice 1294 ms"
)

T = TypeVar("T")


def in_db_thread(query: Callable[[], T]) -> T:
    """Run ORM code off this thread: Playwright's sync API keeps an event loop marked as
    running here, and Django refuses sync queries there. The tests are transactional, so
    another thread's connection sees the same data."""

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(run).result()


def pcm16(audio: np.ndarray) -> bytes:
    return bytes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


@dataclass
class ReviewedCall:
    agent: Agent
    operator: User
    conversation: Conversation
    question: Turn
    answer: Turn
    question_seconds: float
    files: list[Path] = field(default_factory=list)


def _history(agent: Agent) -> None:
    """Three weeks of timed replies, so the dashboard has a month to draw."""
    rng = np.random.default_rng(7)
    today = timezone.localdate()
    for back in range(1, 22):
        if back % 4 == 3:
            continue  # quiet days show as gaps
        day = today - dt.timedelta(days=back)
        conversation = conversation_start(agent=agent, channel=Channel.WEB_VOICE)
        for _ in range(int(rng.integers(2, 6))):
            turn_record(conversation=conversation, role=Role.USER, text="…", stt_ms=200)
            turn_record(
                conversation=conversation,
                role=Role.ASSISTANT,
                text="…",
                interrupted=bool(rng.random() < 0.2),
                voice_to_voice_ms=int(rng.normal(800, 120)) + back * 6,
            )
        noon = timezone.make_aware(dt.datetime.combine(day, dt.time(12)))
        Conversation.objects.filter(pk=conversation.pk).update(started_at=noon)
        conversation.turns.update(created_at=noon)


@pytest.fixture
def reviewed_call(make_agent: Callable[..., Agent], operator: User) -> Iterator[ReviewedCall]:
    # A transactional test may have flushed and remade the Operators group from the first
    # migration alone; labelling came with a later one.
    Group.objects.get(name="Operators").permissions.add(
        Permission.objects.get(content_type__app_label="conversations", codename="label_turn")
    )
    agent = make_agent(name="Front desk", slug="front-desk")
    _history(agent)
    conversation = conversation_start(agent=agent, channel=Channel.WEB_VOICE)
    turn_record(
        conversation=conversation,
        role=Role.ASSISTANT,
        text="Hello, this is the front desk. How can I help you today?",
        heard_text="Hello, this is the front desk.",
        interrupted=True,
    )
    speech = say(QUESTION)
    question = turn_record(
        conversation=conversation,
        role=Role.USER,
        text=QUESTION,
        prosody={"Interest": 0.58, "Calmness": 0.44, "Confusion": 0.21, "Boredom": 0.03},
        vad_end_at=timezone.now(),
        stt_ms=212,
    )
    question.audio.save("user.wav", wav_file(pcm16(speech), 16_000, "user.wav"), save=False)
    question.save(update_fields=["audio"])
    answer = turn_record(
        conversation=conversation,
        role=Role.ASSISTANT,
        text="Visitors sign in at the front desk on the ground floor, and get a badge.",
        llm_first_token_ms=388,
        tts_first_audio_ms=121,
        voice_to_voice_ms=1294,  # from the last voiced audio, the 500 ms wait included
        knowledge_refs=[
            {
                "ref": "D3:C12",
                "chunk_id": 112,
                "document_id": 3,
                "document": "Facilities handbook",
                "index": 12,
                "page": 4,
                "section": "Facilities > Visitors",
                "score": 0.8412,
            }
        ],
    )
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(22_050) / 22_050)
    answer.audio.save("reply.wav", wav_file(pcm16(tone), 22_050, "reply.wav"), save=False)
    answer.save(update_fields=["audio"])
    call = ReviewedCall(
        agent=agent,
        operator=operator,
        conversation=conversation,
        question=question,
        answer=answer,
        question_seconds=len(speech) / 16_000,
        files=[Path(settings.MEDIA_ROOT) / t.audio.name for t in (question, answer)],
    )
    yield call
    # The server process reads the test settings' MEDIA_ROOT, so the files live there.
    for path in call.files:
        path.unlink(missing_ok=True)


@pytest.fixture
def browser(reviewed_call: ReviewedCall) -> Iterator[Browser]:
    """Chromium, started after the test's data (the ORM is refused on this thread while
    Playwright runs) and stopped before its tear-down."""
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
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page; its console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console: {msg.text} ({msg.location.get('url')})")
            # The admin's pages name no icon, so Chromium asks for /favicon.ico, which
            # this project does not serve.
            if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert errors == []


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_reviews_a_voice_call_and_labels_a_reply(
    reviewed_call: ReviewedCall, start_server: Callable[..., Any], page: Page
) -> None:
    call = reviewed_call
    server = start_server()
    audio_responses: list[Response] = []
    page.on("response", lambda r: audio_responses.append(r) if "/audio/" in r.url else None)

    change = f"/admin/conversations/conversation/{call.conversation.pk}/change/"
    page.goto(f"{server.http_url}/admin/login/?next={change}")
    page.get_by_label("Username").fill(call.operator.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.http_url}{change}")

    turns = page.locator("li.review-turn")
    expect(turns).to_have_count(3)
    expect(turns.nth(0).locator(".unheard")).to_have_text(
        "Not heard: How can I help you today?", use_inner_text=True
    )
    expect(turns.nth(0).locator(".badge-interrupted")).to_be_visible()
    expect(turns.nth(1).locator(".emotion-name")).to_have_text(
        ["Interest", "Calmness", "Confusion"]
    )
    expect(turns.nth(2).locator(".ref-document")).to_have_text("Facilities handbook")

    chart = turns.nth(2).locator("svg.waterfall-chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("aria-label", WATERFALL)
    bars = chart.locator("rect.bar")
    expect(bars).to_have_count(5)
    # Drawn at the chart's own size: 220 px stand for the 1294 ms total.
    widths = [(bars.nth(n).bounding_box() or {"width": 0})["width"] for n in range(5)]
    assert widths == pytest.approx([ms * 220 / 1294 for ms in (500, 212, 388, 121, 1294)], abs=0.2)

    player = turns.nth(1).locator("audio.review-audio")
    expect(player).to_be_visible()
    duration = player.evaluate(
        """audio => new Promise((resolve, reject) => {
            if (audio.readyState >= 1) return resolve(audio.duration);
            audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
            audio.addEventListener("error", () => reject(new Error("audio error " + audio.error?.code)));
        })"""
    )
    assert duration == pytest.approx(call.question_seconds, abs=0.01)
    url = f"{server.http_url}/admin/conversations/conversation/turns/{call.question.pk}/audio/"
    served = [r for r in audio_responses if r.url == url]
    assert served
    assert {r.headers["content-type"] for r in served} == {"audio/wav"}
    assert {r.status for r in served} <= {200, 206}
    expect(turns.nth(2).locator("audio.review-audio")).to_be_visible()

    screenshot(page, "review-conversation")

    # Labelling: the turn's fields belong to a form outside the record's own.
    turns.nth(2).get_by_label("Label", exact=True).select_option("wrong_answer")
    turns.nth(2).get_by_label("Note", exact=True).fill("The desk moved to the first floor.")
    turns.nth(2).get_by_role("button", name="Save label").click()
    expect(page.locator(".messagelist")).to_have_text("Turn #2 labelled: Wrong answer.")
    expect(page.locator("li.review-turn").nth(2).locator(".badge-label")).to_have_text(
        "Wrong answer"
    )

    def stored() -> tuple[str, str, int | None]:
        turn = Turn.objects.get(pk=call.answer.pk)
        return turn.label, turn.review_note, turn.reviewed_by_id

    assert in_db_thread(stored) == (
        "wrong_answer",
        "The desk moved to the first floor.",
        call.operator.pk,
    )

    page.get_by_role("link", name="Agent dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard: Front desk")).to_be_visible()
    expect(page.locator("svg.latency-chart")).to_be_visible()
    expect(page.locator("svg.latency-chart rect.median")).to_have_count(17)
    expect(page.locator("tr[data-label=wrong_answer] td.num")).to_have_text("1")
    screenshot(page, "review-dashboard")
