"""The agent editor, the agent list and the dashboard in a real browser (Debian's headless
Chromium, driven by Playwright, against a live uvicorn process on the test database).
Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.db import connections
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from agents.models import Agent, PromptVersion
from conversations.models import Channel, Role
from conversations.services import conversation_start, turn_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "pw-12345-xyz"  # what conftest's make_user gives every user
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

T = TypeVar("T")


def in_db_thread(query: Callable[[], T]) -> T:
    """Run ORM code off this thread: while Playwright's sync API runs, Django counts this
    thread as async and refuses it."""

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def staff(make_user: Callable[..., User]) -> User:
    return make_user(superuser=True)


@pytest.fixture
def agents(make_agent: Callable[..., Agent]) -> list[Agent]:
    """A default ELIZA agent with a conversation, and an OpenAI-compatible one."""
    front = make_agent(
        name="Front desk", slug="front-desk", is_default=True, prompt_text="Be kind."
    )
    conversation = conversation_start(agent=front, channel=Channel.WEB_TEXT)
    turn_record(conversation=conversation, role=Role.USER, text="Hello there.")
    remote = make_agent(
        name="Night shift with a rather long name",
        slug="night-shift",
        llm_provider="openai_compatible",
        llm_model="llama3.1:8b-instruct-q4",
        llm_base_url="http://127.0.0.1:11434/v1",
    )
    return [front, remote]


@pytest.fixture
def browser(agents: list[Agent], staff: User) -> Iterator[Browser]:
    """Chromium, started after the test's data and stopped before its tear-down."""
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
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def signed_in(
    browser: Browser, staff: User, start_server: Callable[..., Any]
) -> Iterator[Callable[[ViewportSize], tuple[Page, str]]]:
    """A signed-in staff page at a viewport size, and the server's URL; console errors
    fail the test."""
    server = start_server()
    contexts = []
    errors: list[str] = []

    def open_(viewport: ViewportSize) -> tuple[Page, str]:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console: {msg.text}")
                if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico")
                else None
            ),
        )
        page.set_default_timeout(20_000)
        page.goto(f"{server.http_url}/admin/login/?next=/admin/")
        page.get_by_label("Username").fill(staff.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{server.http_url}/admin/")
        return page, server.http_url

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def overflow(page: Page, selector: str) -> float:
    """How far the element's content is wider than the element (0: nothing cut off)."""
    return float(page.locator(selector).evaluate("e => e.scrollWidth - e.clientWidth"))


def test_the_editor_shows_only_what_the_model_reads(
    agents: list[Agent], signed_in: Callable[..., tuple[Page, str]]
) -> None:
    front = agents[0]
    page, base = signed_in(DESKTOP)
    page.goto(f"{base}/admin/agents/agent/{front.pk}/change/")
    expect(page.locator("body")).to_have_attribute("data-agent-form-ready", "true")
    model_rows = [".field-llm_model", ".field-llm_temperature", ".field-llm_max_tokens"]
    for row in [*model_rows, ".field-llm_base_url", ".field-llm_api_key_env"]:
        expect(page.locator(row)).to_be_hidden()
    expect(page.locator(".field-eliza_script")).to_be_visible()
    expect(page.locator(".model-note")).to_contain_text("ELIZA answers from its script")
    expect(page.locator(".field-system_prompt .unused-note")).to_be_visible()
    # The server says the same without the script, as a warning.
    expect(page.locator(".messagelist .warning")).to_contain_text("its system prompt is not used")
    # Talk to it, its conversations, its dashboard; the default flag explained.
    expect(page.get_by_role("link", name="Talk to this agent ↗")).to_have_attribute(
        "href", "/agents/front-desk/"
    )
    expect(page.locator(".field-default_flag")).to_contain_text("it answers /conversation")
    screenshot(page, "agent-editor-eliza-desktop-1280x800")

    page.locator("#id_llm_provider").select_option("openai_compatible")
    for row in [*model_rows, ".field-llm_base_url", ".field-llm_api_key_env"]:
        expect(page.locator(row)).to_be_visible()
    expect(page.locator(".field-eliza_script")).to_be_hidden()
    expect(page.locator(".field-system_prompt .unused-note")).to_be_hidden()
    page.locator("#id_llm_provider").select_option("openai")
    expect(page.locator(".field-llm_base_url")).to_be_hidden()
    expect(page.locator(".field-llm_model")).to_be_visible()

    # Its conversations, one click away.
    page.get_by_role("link", name="Its conversations").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)


def test_a_voice_is_heard_and_speech_boxes_suggest_the_providers_choices(
    agents: list[Agent], signed_in: Callable[..., tuple[Page, str]]
) -> None:
    page, base = signed_in(DESKTOP)
    page.goto(f"{base}/admin/agents/agent/{agents[0].pk}/change/")
    expect(page.locator("body")).to_have_attribute("data-agent-form-ready", "true")
    voice = page.locator("#id_tts_voice")
    expect(voice).to_have_attribute("list", "id_tts_voice-piper")
    hear = page.get_by_role("button", name="Hear it")
    expect(hear).to_be_visible()
    hear.click()
    expect(hear).to_have_attribute("data-state", "played", timeout=30_000)
    duration = page.locator(".voice-sample").evaluate("a => a.duration")
    assert duration > 1.5

    page.locator("#id_tts_provider").select_option("openai")
    expect(voice).to_have_attribute("list", "id_tts_voice-openai")
    expect(hear).to_be_hidden()  # samples come from the voices on this machine
    options = page.locator("#id_tts_voice-openai option")
    assert "alloy" in [options.nth(n).get_attribute("value") for n in range(options.count())]
    page.locator("#id_stt_provider").select_option("openai")
    expect(page.locator("#id_stt_model")).to_have_attribute("list", "id_stt_model-openai")


def test_a_prompt_version_is_compared_and_made_active_again(
    agents: list[Agent], signed_in: Callable[..., tuple[Page, str]]
) -> None:
    front = agents[0]
    page, base = signed_in(DESKTOP)
    url = f"{base}/admin/agents/agent/{front.pk}/change/"
    page.goto(url)
    page.get_by_label("System prompt").fill("Be kind and brief.")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    latest = page.locator(".field-changes").first
    expect(latest.locator("ins")).to_have_text(" and brief")
    screenshot(page, "agent-prompt-versions-desktop-1280x800")

    page.get_by_role("button", name="Make this version active again").click()
    expect(page.locator(".messagelist .success")).to_contain_text(
        "Prompt version 1 is active again"
    )
    expect(page.get_by_label("System prompt")).to_have_value("Be kind.")
    active = in_db_thread(lambda: PromptVersion.objects.get(agent=front, is_active=True).number)
    assert active == 1


def test_the_agent_list_fits_a_laptop_and_the_dashboard_a_phone(
    agents: list[Agent], signed_in: Callable[..., tuple[Page, str]]
) -> None:
    page, base = signed_in(DESKTOP)
    page.goto(f"{base}/admin/agents/agent/")
    expect(page.locator("#result_list")).to_be_visible()
    screenshot(page, "agent-list-desktop-1280x800")
    expect(page.locator("#result_list td.field-language_model")).to_have_text(
        ["ELIZA", "OpenAI-compatible server: llama3.1:8b-instruct-q4"]
    )
    expect(page.locator("#result_list td.field-status")).to_have_text(
        ["default · active · public", "active · public"]
    )
    assert overflow(page, "#changelist .results") <= 0
    assert overflow(page, "html") <= 0

    phone, _ = signed_in(PHONE)
    phone.goto(f"{base}/admin/conversations/conversation/dashboard/?agent=front-desk")
    expect(phone.locator("h1")).to_contain_text("Dashboard")
    screenshot(phone, "dashboard-phone-390x844")
    assert overflow(phone, "html") <= 0
    # Every control can be reached without scrolling sideways.
    for button in phone.locator("#content button, #content input[type=submit]").all():
        box = button.bounding_box()
        assert box is not None
        assert 0 <= box["x"] <= box["x"] + box["width"] <= 390
