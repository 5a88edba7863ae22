"""Operators review conversations in the admin: the transcript page, audio, labels,
filters, exports and the per-agent dashboard."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from agents.models import Agent
from conversations.exports import CSV_HEADER, conversation_as_dict, csv_text
from conversations.models import Channel, Conversation, Role, Turn, TurnLabel
from conversations.review import (
    RangeNotSatisfiable,
    byte_range,
    split_heard,
    top_emotions,
    transcript,
)
from conversations.selectors import agent_review_dashboard, percentile
from conversations.services import conversation_end, conversation_start, turn_label, turn_record
from conversations.voice_store import wav_file

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:conversations_conversation_changelist"
GREETING = "How do you do. Please tell me your problem."
QUESTION = "Where do visitors sign in?"
ANSWER = "Visitors sign in at the front desk, on the ground floor."
PROSODY = {"Calmness": 0.62, "Interest": 0.41, "Boredom": 0.05, "Doubt": 0.3}
REF = {
    "ref": "D7:C3",
    "chunk_id": 41,
    "document_id": 7,
    "document": "Facilities handbook",
    "index": 3,
    "page": 12,
    "section": "Facilities > Visitors",
    "score": 0.8731,
}
# 0.1 s of a ramp at 16 kHz: a real WAV file, small enough to compare byte for byte.
PCM = b"".join(n.to_bytes(2, "little", signed=True) for n in range(-800, 800))
WAV = wav_file(PCM, 16_000, "user.wav").read()
FULL_WATERFALL = (
    "Latency waterfall: End-of-turn wait 500 ms, STT 180 ms, LLM first token 420 ms, "
    "TTS first audio 95 ms, Voice-to-voice 1300 ms"
)


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


@dataclass
class Call:
    conversation: Conversation
    greeting: Turn
    question: Turn
    answer: Turn


def record_call(agent: Agent, *, external_id: str = "") -> Call:
    """A voice call: an interrupted greeting, a question with audio, and a timed answer."""
    conversation = conversation_start(
        agent=agent, channel=Channel.WEB_VOICE, external_id=external_id
    )
    greeting = turn_record(
        conversation=conversation,
        role=Role.ASSISTANT,
        text=GREETING,
        heard_text="How do you do.",
        interrupted=True,
    )
    question = turn_record(
        conversation=conversation,
        role=Role.USER,
        text=QUESTION,
        prosody=PROSODY,
        vad_end_at=timezone.now(),
        stt_ms=180,
    )
    question.audio.save("user.wav", wav_file(PCM, 16_000, "user.wav"), save=False)
    question.save(update_fields=["audio"])
    answer = turn_record(
        conversation=conversation,
        role=Role.ASSISTANT,
        text=ANSWER,
        llm_first_token_ms=420,
        tts_first_audio_ms=95,
        voice_to_voice_ms=1300,  # from the last voiced audio: the 500 ms wait included
        knowledge_refs=[REF],
    )
    return Call(conversation, greeting, question, answer)


def change_url(conversation: Conversation) -> str:
    return reverse("admin:conversations_conversation_change", args=[conversation.pk])


def audio_url(turn: Turn) -> str:
    return reverse("admin:conversations_turn_audio", args=[turn.pk])


def label_url(turn: Turn) -> str:
    return reverse("admin:conversations_turn_label", args=[turn.pk])


def review_fields(turn: Turn) -> tuple[Any, ...]:
    turn.refresh_from_db()
    return (turn.label, turn.review_note, turn.reviewed_by_id, turn.reviewed_at)


def staff_with(make_user: Callable[..., User], *codenames: str) -> User:
    user = make_user(staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="conversations", codename__in=codenames)
    )
    return user


@pytest.fixture
def agent(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent(name="Front desk", slug="front-desk")


@pytest.fixture
def call(agent: Agent) -> Call:
    return record_call(agent)


@pytest.fixture
def operator_client(client: Client, operator: User) -> Client:
    client.force_login(operator)
    return client


# --- the conversation page -----------------------------------------------------------------


def test_the_page_shows_every_turn_in_order_with_its_role(operator_client, call) -> None:
    response = operator_client.get(change_url(call.conversation))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'class="review-turn role-(\w+)[^"]*" data-index="(\d+)"', html) == [
        ("assistant", "0"),
        ("user", "1"),
        ("assistant", "2"),
    ]
    assertContains(response, '<span class="review-turn-role">User</span>', count=1, html=True)
    assertContains(response, '<span class="review-turn-role">Assistant</span>', count=2, html=True)
    assertContains(response, f'<p class="review-said">{QUESTION}</p>', html=True)
    assertContains(response, f'<p class="review-said">{ANSWER}</p>', html=True)


def test_a_page_conversation_marks_typed_and_spoken_turns(operator_client, agent) -> None:
    conversation = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    turn_record(conversation=conversation, role=Role.USER, text="Typed first.")
    turn_record(
        conversation=conversation, role=Role.USER, text="Then said.", channel=Channel.WEB_VOICE
    )
    response = operator_client.get(change_url(conversation))
    html = response.content.decode()
    assert re.findall(r'class="review-badge badge-channel"[^>]*>(\w+)<', html) == [
        "typed",
        "voice",
    ]


def test_an_interrupted_turn_shows_the_heard_part_and_strikes_the_rest(
    operator_client, call
) -> None:
    response = operator_client.get(change_url(call.conversation))
    assertContains(
        response,
        '<p class="review-said"><span class="heard">How do you do.</span>'
        '<span class="cut" title="Cut off here" aria-hidden="true"></span>'
        '<del class="unheard" title="Generated, not heard">'
        '<span class="review-sr">Not heard: </span>Please tell me your problem.</del></p>',
        html=True,
    )
    assertContains(
        response,
        '<span class="review-badge badge-interrupted" '
        'title="The caller spoke over this reply and it stopped">✂ interrupted</span>',
        count=1,
        html=True,
    )


def test_the_three_strongest_emotions_are_shown_with_their_scores(operator_client, call) -> None:
    response = operator_client.get(change_url(call.conversation))
    [emotions] = re.findall(
        r'<ul class="review-emotions".*?</ul>', response.content.decode(), flags=re.S
    )
    shown = re.findall(
        r'<span class="emotion-name">(\w+)</span> <meter min="0" max="1" value="([\d.]+)">'
        r'</meter> <span class="emotion-score">([\d.]+)</span>',
        emotions,
    )
    assert shown == [
        ("Calmness", "0.620", "0.62"),
        ("Interest", "0.410", "0.41"),
        ("Doubt", "0.300", "0.30"),
    ]
    assertNotContains(response, "Boredom")


def test_the_knowledge_a_reply_used_is_listed(operator_client, call) -> None:
    response = operator_client.get(change_url(call.conversation))
    assertContains(response, "<summary>Knowledge used (1)</summary>", html=True)
    assertContains(
        response,
        '<strong class="ref-document">Facilities handbook</strong>',
        count=1,
        html=True,
    )
    assertContains(response, '<span class="ref-page">p. 12</span>', html=True)
    assertContains(response, '<span class="ref-section">Facilities &gt; Visitors</span>', html=True)
    assertContains(response, '<code class="ref-id">D7:C3</code>', html=True)
    assertContains(response, '<span class="ref-score">score 0.873</span>', html=True)


def test_stored_audio_gets_a_player_on_the_authorised_url(operator_client, call) -> None:
    response = operator_client.get(change_url(call.conversation))
    assertContains(
        response,
        f'<audio class="review-audio" controls preload="metadata" src="{audio_url(call.question)}"'
        ' aria-label="Recording of turn 1"></audio>',
        count=1,
        html=True,
    )
    # The file's public location never reaches the page.
    assertNotContains(response, call.question.audio.name)
    assertNotContains(response, "/media/")


def test_each_reply_has_a_waterfall_with_its_exchange_timings(operator_client, call) -> None:
    response = operator_client.get(change_url(call.conversation))
    html = response.content.decode()
    [svg] = re.findall(r'<svg[^>]*class="waterfall-chart".*?</svg>', html, flags=re.S)
    assert f'aria-label="{FULL_WATERFALL}"' in svg
    assert f"<title>{FULL_WATERFALL}</title>" in svg
    assert re.findall(r'data-stage="(\w+)" data-ms="(\d*)"', svg) == [
        ("wait", "500"),  # the agent's end-of-turn silence, from the conversation's snapshot
        ("stt", "180"),
        ("llm", "420"),
        ("tts", "95"),
        ("total", "1300"),
    ]
    # One bar after the other from the end of speech, on a 220 px scale for 1300 ms.
    assert re.findall(r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg) == [
        ("118.0", "84.6"),
        ("202.6", "30.5"),
        ("233.1", "71.1"),
        ("304.2", "16.1"),
        ("118.0", "220.0"),
    ]


def test_a_missing_stage_is_shown_as_missing_not_zero(operator_client, agent) -> None:
    conversation = conversation_start(agent=agent, channel=Channel.WEB_VOICE)
    turn_record(conversation=conversation, role=Role.USER, text="Hello?", stt_ms=150)
    turn_record(
        conversation=conversation,
        role=Role.ASSISTANT,
        text="Hello.",
        llm_first_token_ms=300,
        voice_to_voice_ms=1000,
    )
    response = operator_client.get(change_url(conversation))
    html = response.content.decode()
    label = (
        "Latency waterfall: End-of-turn wait 500 ms, STT 150 ms, LLM first token 300 ms, "
        "TTS first audio missing, Voice-to-voice 1000 ms"
    )
    assert f'aria-label="{label}"' in html
    assert '<g class="stage stage-tts is-missing" data-stage="tts" data-ms="">' in html
    [tts] = re.findall(r'data-stage="tts".*?</g>', html, flags=re.S)
    assert '<rect class="bar-missing"' in tts
    assert '<rect class="bar"' not in tts
    assert '<text class="stage-value" x="344" y="89">missing</text>' in tts


def test_a_greeting_has_one_bar_of_its_own_and_text_chats_no_wait(operator_client, agent) -> None:
    call = conversation_start(agent=agent, channel=Channel.WEB_VOICE)
    turn_record(conversation=call, role=Role.ASSISTANT, text="Hello.", tts_first_audio_ms=120)
    html = operator_client.get(change_url(call)).content.decode()
    [svg] = re.findall(r'<svg[^>]*class="waterfall-chart".*?</svg>', html, flags=re.S)
    assert re.findall(r'data-stage="(\w+)" data-ms="(\d*)"', svg) == [("greeting", "120")]
    assert "is-missing" not in svg
    assert "Time to the greeting's first audio" in html

    chat = conversation_start(agent=agent, channel=Channel.HTTP_API)
    turn_record(conversation=chat, role=Role.USER, text="Hi", stt_ms=90)
    turn_record(conversation=chat, role=Role.ASSISTANT, text="Hello.", voice_to_voice_ms=400)
    html = operator_client.get(change_url(chat)).content.decode()
    stages = re.findall(r'data-stage="(\w+)"', html)
    assert stages == ["stt", "llm", "tts", "total"]  # no end-of-turn wait outside a call


def test_a_reply_without_timings_has_no_waterfall(operator_client, agent) -> None:
    conversation = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    turn_record(conversation=conversation, role=Role.USER, text="Hi")
    turn_record(conversation=conversation, role=Role.ASSISTANT, text="Hello.")
    response = operator_client.get(change_url(conversation))
    assertNotContains(response, "waterfall-chart")


def test_the_page_costs_the_same_queries_however_many_turns(
    operator_client, agent, django_assert_max_num_queries
) -> None:
    short = record_call(agent)
    long = record_call(agent)
    for _ in range(10):
        turn_record(conversation=long.conversation, role=Role.USER, text="More", stt_ms=100)
        turn_record(
            conversation=long.conversation,
            role=Role.ASSISTANT,
            text="Go on.",
            voice_to_voice_ms=500,
            knowledge_refs=[REF],
        )
    turn_label(turn=long.answer, label=TurnLabel.GOOD, note="", user=None)
    operator_client.get(change_url(short.conversation))  # warm the session and permissions
    with CaptureQueriesContext(connection) as few:
        operator_client.get(change_url(short.conversation))
    # The session, the user, their two kinds of permission, the conversation, its turns.
    with django_assert_max_num_queries(6):
        response = operator_client.get(change_url(long.conversation))
    assert len(response.context["turns"]) == 23
    with CaptureQueriesContext(connection) as many:
        operator_client.get(change_url(long.conversation))
    assert len(many) == len(few)


# --- audio ---------------------------------------------------------------------------------


def test_audio_sends_anonymous_visitors_to_the_login(client: Client, call) -> None:
    response = client.get(audio_url(call.question))
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={audio_url(call.question)}"


def test_audio_is_refused_to_staff_without_view_turn(client: Client, make_user, call) -> None:
    client.force_login(staff_with(make_user, "view_conversation"))
    response = client.get(audio_url(call.question))
    assert response.status_code == 403
    assert b"RIFF" not in response.content


def test_audio_is_served_to_operators_as_wav(operator_client, call) -> None:
    response = operator_client.get(audio_url(call.question))
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(WAV))
    assert response.content == WAV
    assert "no-store" in response["Cache-Control"]


def test_audio_serves_the_byte_range_asked_for(operator_client, call) -> None:
    response = operator_client.get(audio_url(call.question), HTTP_RANGE="bytes=40-99")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 40-99/{len(WAV)}"
    assert response.content == WAV[40:100]
    whole = operator_client.get(audio_url(call.question), HTTP_RANGE="bytes=0-")
    assert whole.status_code == 206
    assert whole.content == WAV


def test_audio_refuses_a_range_past_the_end(operator_client, call) -> None:
    response = operator_client.get(audio_url(call.question), HTTP_RANGE=f"bytes={len(WAV)}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(WAV)}"


def test_a_turn_without_audio_has_none_to_serve(operator_client, call) -> None:
    assert operator_client.get(audio_url(call.answer)).status_code == 404


def test_a_recording_missing_from_storage_is_not_found(operator_client, call) -> None:
    call.question.audio.storage.delete(call.question.audio.name)
    assert operator_client.get(audio_url(call.question)).status_code == 404


def test_audio_refuses_writes(operator_client, call) -> None:
    assert operator_client.post(audio_url(call.question)).status_code == 405


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("bytes=0-", (0, 999)),
        ("bytes=10-19", (10, 19)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=0-9,20-29", None),
        ("items=0-9", None),
    ],
)
def test_byte_ranges_are_read_as_rfc_9110_says(header: str, expected) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=20-10", "bytes=-0"])
def test_unsatisfiable_byte_ranges_are_refused(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)


# --- labelling -----------------------------------------------------------------------------


def test_operators_label_a_turn_from_the_page(operator_client, operator, call) -> None:
    response = operator_client.post(
        label_url(call.answer), {"label": "wrong_answer", "note": "The desk moved to floor 2."}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{change_url(call.conversation)}#turn-2"
    call.answer.refresh_from_db()
    assert (call.answer.label, call.answer.review_note, call.answer.reviewed_by) == (
        "wrong_answer",
        "The desk moved to floor 2.",
        operator,
    )
    assert call.answer.reviewed_at is not None
    # Only the review changed; the record of what was said did not.
    assert (call.answer.text, call.answer.heard_text, call.answer.voice_to_voice_ms) == (
        ANSWER,
        ANSWER,
        1300,
    )
    page = operator_client.get(response["Location"])
    assertContains(page, "Turn #2 labelled: Wrong answer.")
    assertContains(
        page,
        '<span class="review-badge badge-label label-wrong_answer">Wrong answer</span>',
        html=True,
    )
    assertContains(page, '<option value="wrong_answer" selected>Wrong answer</option>', html=True)


def test_the_page_offers_labellers_a_form_per_turn_outside_the_record_form(
    operator_client, call
) -> None:
    html = operator_client.get(change_url(call.conversation)).content.decode()
    for turn in (call.greeting, call.question, call.answer):
        form = f'<form id="label-form-{turn.pk}" method="post" action="{label_url(turn)}" hidden>'
        assert form in html
        assert html.index(form) > html.index("</form>")  # after the record's own form
        assert f'<select id="label-{turn.pk}" name="label" form="label-form-{turn.pk}">' in html
        assert f'form="label-form-{turn.pk}">Save label</button>' in html


def test_a_bad_label_is_refused_and_changes_nothing(operator_client, call) -> None:
    turn_label(turn=call.answer, label=TurnLabel.GOOD, note="fine", user=None)
    before = review_fields(call.answer)
    response = operator_client.post(
        label_url(call.answer), {"label": "excellent", "note": "overwritten?"}, follow=True
    )
    assert review_fields(call.answer) == before
    assert [str(m) for m in response.context["messages"]] == [
        "Turn #2 was not labelled: Select a valid choice. excellent is not one of the "
        "available choices."
    ]


def test_labelling_is_refused_without_label_turn(client: Client, make_user, call) -> None:
    client.force_login(staff_with(make_user, "view_conversation", "view_turn"))
    before = review_fields(call.answer)
    response = client.post(label_url(call.answer), {"label": "good", "note": ""})
    assert response.status_code == 403
    assert review_fields(call.answer) == before


def test_without_label_turn_the_label_is_read_only(client: Client, make_user, call) -> None:
    turn_label(turn=call.answer, label=TurnLabel.CUT_OFF_EARLY, note="Stopped mid-word.", user=None)
    client.force_login(staff_with(make_user, "view_conversation", "view_turn"))
    response = client.get(change_url(call.conversation))
    assertNotContains(response, "label-form-")
    assertNotContains(response, "<select")
    assertContains(
        response,
        '<p class="review-label-readonly">Label: <strong>Cut off too early</strong>'
        " — Stopped mid-word.</p>",
        html=True,
    )
    assertContains(response, '<p class="review-muted">Not labelled.</p>', count=2, html=True)


def test_labelling_needs_the_csrf_token(operator, call) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    before = review_fields(call.answer)
    assert client.post(label_url(call.answer), {"label": "good"}).status_code == 403
    assert review_fields(call.answer) == before


def test_labelling_is_post_only(operator_client, call) -> None:
    assert operator_client.get(label_url(call.answer)).status_code == 405


def test_an_empty_label_clears_it(operator_client, call) -> None:
    turn_label(turn=call.answer, label=TurnLabel.GOOD, note="fine", user=None)
    operator_client.post(label_url(call.answer), {"label": "", "note": ""})
    assert review_fields(call.answer)[:2] == ("", "")


# --- the conversation list -----------------------------------------------------------------


@pytest.fixture
def three_calls(make_agent: Callable[..., Agent], agent: Agent) -> list[Conversation]:
    """Oldest first: interrupted and labelled "wrong answer"; a calm one labelled "good"
    for another agent; and an unlabelled text chat."""
    first = record_call(agent, external_id="session-first")
    turn_label(turn=first.answer, label=TurnLabel.WRONG_ANSWER, note="floor 2", user=None)
    other = make_agent(name="Help line", slug="help-line")
    second = conversation_start(agent=other, channel=Channel.WEB_VOICE)
    turn_record(conversation=second, role=Role.USER, text="Is it raining?")
    reply = turn_record(conversation=second, role=Role.ASSISTANT, text="I cannot see outside.")
    turn_label(turn=reply, label=TurnLabel.GOOD, note="", user=None)
    third = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    turn_record(conversation=third, role=Role.USER, text="opening hours?")
    return [first.conversation, second, third]


def listed(client: Client, **params: str) -> list[Conversation]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_the_list_filters_by_label(operator_client, three_calls) -> None:
    first, second, third = three_calls
    assert listed(operator_client, label="wrong_answer") == [first]
    assert listed(operator_client, label="good") == [second]
    assert listed(operator_client, label="cut_off_early") == []
    assert listed(operator_client, label="any") == [second, first]
    assert listed(operator_client, label="none") == [third]


def test_the_list_filters_by_agent(operator_client, three_calls, agent) -> None:
    first, _, third = three_calls
    assert listed(operator_client, agent__id__exact=str(agent.pk)) == [third, first]


def test_the_list_filters_by_interruption(operator_client, three_calls) -> None:
    first, second, third = three_calls
    assert listed(operator_client, interrupted="yes") == [first]
    assert listed(operator_client, interrupted="no") == [third, second]


def test_the_list_filters_by_channel_status_and_date(operator_client, three_calls) -> None:
    first, second, third = three_calls
    assert listed(operator_client, channel__exact="web_text") == [third]
    assert listed(operator_client, status__exact="active") == [third, second, first]
    Conversation.objects.filter(pk=first.pk).update(
        started_at=timezone.now() - dt.timedelta(days=3)
    )
    # What the filter's "Today" link asks for.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    assert listed(
        operator_client,
        started_at__gte=str(today),
        started_at__lt=str(today + dt.timedelta(days=1)),
    ) == [third, second]


def test_the_list_searches_heard_text_external_and_conversation_ids(
    operator_client, three_calls
) -> None:
    first, second, _ = three_calls
    assert listed(operator_client, q="raining") == [second]
    assert listed(operator_client, q="session-first") == [first]
    assert listed(operator_client, q=str(second.pk)) == [second]
    assert listed(operator_client, q="front desk") == [first]


def test_the_list_links_to_the_dashboard(operator_client, three_calls) -> None:
    response = operator_client.get(reverse(CHANGELIST))
    assertContains(
        response,
        '<a href="/admin/conversations/conversation/dashboard/">Dashboard</a>',
        html=True,
    )


# --- exports -------------------------------------------------------------------------------


def export(client: Client, action: str, selected: list[Any], model: str = "conversation") -> Any:
    return client.post(
        reverse(f"admin:conversations_{model}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in selected]},
    )


def test_operators_are_offered_the_exports_and_not_deletion(operator_client, three_calls) -> None:
    response = operator_client.get(reverse(CHANGELIST))
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "export_csv", "export_json"]


def test_csv_export_holds_exactly_the_selected_conversations(operator_client, three_calls) -> None:
    first, _, third = three_calls
    response = export(operator_client, "export_csv", [first.pk, third.pk])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert re.fullmatch(
        r'attachment; filename="conversations-\d{8}-\d{6}\.csv"', response["Content-Disposition"]
    )
    body = response.content.decode()
    assert body == csv_text([third, first])  # the list's order: newest first
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == list(CSV_HEADER)
    assert len(set(CSV_HEADER)) == len(CSV_HEADER)  # every column has its own name
    assert {"conversation_status", "turn_status"} <= set(CSV_HEADER)
    column = {name: n for n, name in enumerate(CSV_HEADER)}
    assert [
        [row[column[name]] for name in ("conversation", "index", "role", "heard_text", "label")]
        for row in rows[1:]
    ] == [
        [str(third.pk), "0", "user", "opening hours?", ""],
        [str(first.pk), "0", "assistant", "How do you do.", ""],
        [str(first.pk), "1", "user", QUESTION, ""],
        [str(first.pk), "2", "assistant", ANSWER, "wrong_answer"],
    ]


def test_json_export_holds_exactly_the_selected_conversations(operator_client, three_calls) -> None:
    first, second, _ = three_calls
    response = export(operator_client, "export_json", [first.pk, second.pk])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = json.loads(response.content)
    assert document == {
        "conversations": [conversation_as_dict(second), conversation_as_dict(first)]
    }
    assert [
        (t["index"], t["label"], t["review_note"]) for t in document["conversations"][1]["turns"]
    ] == [
        (0, "", ""),
        (1, "", ""),
        (2, "wrong_answer", "floor 2"),
    ]


def test_turn_exports_hold_only_the_selected_turns(operator_client, three_calls) -> None:
    first, second, _ = three_calls
    labelled = list(Turn.objects.exclude(label="").order_by("pk"))
    response = export(operator_client, "export_csv", [t.pk for t in labelled], model="turn")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    everything = list(csv.reader(io.StringIO(csv_text([second, first]))))
    assert rows == [everything[0], everything[2], everything[5]]
    assert [(r[0], r[CSV_HEADER.index("label")]) for r in rows[1:]] == [
        (str(second.pk), "good"),
        (str(first.pk), "wrong_answer"),
    ]

    response = export(operator_client, "export_json", [t.pk for t in labelled], model="turn")
    documents = json.loads(response.content)["conversations"]
    assert [(d["conversation"], [t["index"] for t in d["turns"]]) for d in documents] == [
        (str(second.pk), [1]),
        (str(first.pk), [2]),
    ]
    assert documents[1]["turns"][0] == conversation_as_dict(first)["turns"][2]


def test_the_turn_list_filters_by_label_role_interruption_and_agent(
    operator_client, three_calls, agent
) -> None:
    url = reverse("admin:conversations_turn_changelist")

    def turns(**params: str) -> list[tuple[str, int]]:
        response = operator_client.get(url, params)
        return sorted((str(t.conversation_id), t.index) for t in response.context["cl"].result_list)

    first, second, third = three_calls
    assert turns(label__exact="good") == [(str(second.pk), 1)]
    assert turns(interrupted__exact="1") == [(str(first.pk), 0)]
    assert turns(role__exact="user", conversation__agent__id__exact=str(agent.pk)) == sorted(
        [(str(first.pk), 1), (str(third.pk), 0)]
    )


# --- the dashboard -------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([400, 100, 300, 200], 50) == 250
    assert percentile([100, 200, 300, 400], 95) == pytest.approx(385)
    assert percentile([700], 95) == 700
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


@pytest.fixture
def month(make_agent: Callable[..., Agent], agent: Agent) -> dict[str, Any]:
    """Replies over three days of the window and one long before it; and another agent."""
    today = timezone.localdate()
    yesterday = today - dt.timedelta(days=1)
    long_ago = today - dt.timedelta(days=40)
    good, barge_in, wrong = TurnLabel.GOOD, TurnLabel.FALSE_BARGE_IN, TurnLabel.WRONG_ANSWER
    plan: list[tuple[dt.date, list[tuple[int | None, bool, str]]]] = [
        # (day, [(voice-to-voice ms, interrupted, label)...])
        (
            yesterday,
            [(100, False, good), (200, True, barge_in), (300, False, ""), (400, False, "")],
        ),
        (yesterday, [(1000, False, good)]),
        (today, [(500, False, ""), (None, True, "")]),
        (long_ago, [(9000, True, wrong)]),
    ]
    for day, replies in plan:
        conversation = conversation_start(agent=agent, channel=Channel.WEB_VOICE)
        for ms, interrupted, label in replies:
            turn_record(conversation=conversation, role=Role.USER, text="?", stt_ms=50)
            reply = turn_record(
                conversation=conversation,
                role=Role.ASSISTANT,
                text="!",
                heard_text="" if interrupted else None,
                interrupted=interrupted,
                voice_to_voice_ms=ms,
            )
            if label:
                turn_label(turn=reply, label=label, note="", user=None)
        Conversation.objects.filter(pk=conversation.pk).update(started_at=at(day, 9))
        conversation.turns.update(created_at=at(day))
    other = make_agent(name="Other", slug="other")
    busy = conversation_start(agent=other, channel=Channel.WEB_VOICE)
    turn_record(conversation=busy, role=Role.ASSISTANT, text="x", voice_to_voice_ms=5)
    return {"today": today, "yesterday": yesterday}


def test_the_dashboard_numbers_for_an_agent(agent, month) -> None:
    board = agent_review_dashboard(agent=agent, today=month["today"])
    assert (board.first_day, board.last_day) == (
        month["today"] - dt.timedelta(days=29),
        month["today"],
    )
    assert len(board.days) == 30
    assert board.conversation_count == 3
    by_day = {d.day: d for d in board.days if d.conversations or d.replies}
    assert sorted(by_day) == [month["yesterday"], month["today"]]
    yesterday, today = by_day[month["yesterday"]], by_day[month["today"]]
    assert (yesterday.conversations, yesterday.replies, yesterday.median_ms) == (2, 5, 300)
    assert yesterday.p95_ms == pytest.approx(880)  # 400 + 0.8 * (1000 - 400)
    assert (today.conversations, today.replies, today.median_ms, today.p95_ms) == (1, 1, 500, 500)
    assert board.median_ms == 350  # of 100, 200, 300, 400, 500, 1000
    assert board.p95_ms == pytest.approx(875)  # 500 + 0.75 * (1000 - 500)
    assert (board.assistant_turns, board.interrupted_turns, board.interruption_rate) == (
        7,
        2,
        2 / 7,
    )
    assert board.label_counts == {
        "good": 2,
        "false_barge_in": 1,
        "cut_off_early": 0,
        "wrong_answer": 0,
    }


def test_the_dashboard_page_shows_the_numbers(operator_client, agent, month) -> None:
    response = operator_client.get(
        reverse("admin:conversations_conversation_dashboard"), {"agent": agent.slug}
    )
    assert response.status_code == 200
    html = response.content.decode()
    cards = dict(re.findall(r'data-metric="(\w+)"><dt>[^<]+</dt><dd>([^<]+)', html))
    assert cards == {
        "conversations": "3",
        "median": "350 ms",
        "p95": "875 ms",
        "interruptions": "28.6 % ",
    }
    assertContains(response, "<small>2 of 7 replies</small>", html=True)
    yesterday = f"{month['yesterday']:%Y-%m-%d}"
    assert (
        f"<title>{yesterday}: median 300 ms, p95 880 ms, 5 replies, 2 conversations</title>" in html
    )
    assert html.count('<rect class="median"') == 2
    assert html.count('<circle class="p95-dot"') == 2
    labels = dict(re.findall(r'<tr data-label="(\w+)">.*?<td class="num">(\d+)</td>', html, re.S))
    assert labels == {"good": "2", "false_barge_in": "1", "cut_off_early": "0", "wrong_answer": "0"}


def test_the_dashboard_defaults_to_the_default_agent_and_offers_the_others(
    operator_client, agent, month
) -> None:
    response = operator_client.get(reverse("admin:conversations_conversation_dashboard"))
    assert response.context["agent"] == agent
    assertContains(
        response, '<option value="front-desk" selected>Front desk (front-desk)</option>', html=True
    )
    assertContains(response, '<option value="other">Other (other)</option>', html=True)


def test_the_dashboard_of_an_unknown_agent_is_not_found(operator_client, agent) -> None:
    url = reverse("admin:conversations_conversation_dashboard")
    assert operator_client.get(url, {"agent": "nobody"}).status_code == 404


def test_the_dashboard_needs_the_view_permission(client: Client, make_user, agent) -> None:
    url = reverse("admin:conversations_conversation_dashboard")
    assert client.get(url).status_code == 302
    client.force_login(make_user(staff=True))
    assert client.get(url).status_code == 403


# --- the helpers the page is drawn with ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "heard", "expected"),
    [
        ("One two. Three four.", "One two.", ("One two.", "Three four.", True)),
        ("One two.  Three\nfour.", "One two. Three", ("One two.  Three", "four.", True)),
        ("One two.", "", ("", "One two.", True)),
        ("One two.", "Uno", ("Uno", "", False)),
        ("One", "One two", ("One two", "", False)),
    ],
)
def test_the_heard_text_is_cut_from_the_generated_text(text, heard, expected) -> None:
    said = split_heard(text, heard)
    assert (said.heard, said.unheard, said.matches) == expected


def test_top_emotions_are_the_highest_three_readably_named() -> None:
    emotions = top_emotions(
        {"calmness": 0.2, "Empathic Pain": 0.9, "joy": 0.5, "x": "n/a", "awe": 0.1}
    )
    assert [(e.name, e.score, e.percent) for e in emotions] == [
        ("Empathic Pain", 0.9, 90.0),
        ("Joy", 0.5, 50.0),
        ("Calmness", 0.2, 20.0),
    ]


def test_a_reply_is_paired_with_the_user_turn_before_it(call) -> None:
    turns = list(call.conversation.turns.order_by("index"))
    views = transcript(turns)
    assert [v.answers.index if v.answers else None for v in views] == [None, None, 1]
    assert views[0].waterfall is None  # the greeting answers nobody and was not timed
    assert views[2].waterfall is not None
    assert views[2].waterfall.vad_end_at == call.question.vad_end_at


def test_the_list_shows_how_long_a_call_lasted_and_why_it_ended(
    client: Client, operator, make_agent
) -> None:
    agent = make_agent()
    call = conversation_start(agent=agent, channel=Channel.WEB_VOICE)
    conversation_end(conversation=call, reason="caller_hung_up")
    Conversation.objects.filter(pk=call.pk).update(
        ended_at=call.started_at + dt.timedelta(seconds=65)
    )
    conversation_start(agent=agent, channel=Channel.WEB_TEXT)  # still going
    client.force_login(operator)
    url = reverse("admin:conversations_conversation_changelist")
    html = client.get(url).content.decode()
    assert '<td class="field-duration">1:05</td>' in html
    assert '<td class="field-end_reason">Caller hung up</td>' in html
    ended = client.get(url, {"end_reason__exact": "caller_hung_up"})
    assert [c.pk for c in ended.context["cl"].result_list] == [call.pk]
