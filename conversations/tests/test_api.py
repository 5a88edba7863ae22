"""The conversations HTTP API: operators list, filter, read, export and label conversations;
everyone else is refused and changes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agents.models import Agent
from conversations.exports import CSV_HEADER, conversation_as_dict, csv_text
from conversations.models import Channel, Conversation, ConversationStatus, Role, Turn, TurnLabel
from conversations.services import conversation_start, turn_label, turn_record

pytestmark = pytest.mark.django_db

URL = "/api/conversations/"
NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def _client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def operator_api(operator: User) -> APIClient:
    return _client(operator)


@pytest.fixture
def desk(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent(slug="desk")


def _conversation(
    agent: Agent,
    *,
    channel: Channel = Channel.WEB_VOICE,
    started_at: dt.datetime = NOON,
    external_id: str = "",
    turns: tuple[tuple[Role, str, bool], ...] = (),
) -> Conversation:
    conversation = conversation_start(agent=agent, channel=channel, external_id=external_id)
    Conversation.objects.filter(pk=conversation.pk).update(started_at=started_at)
    for role, text, interrupted in turns:
        turn_record(conversation=conversation, role=role, text=text, interrupted=interrupted)
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def call(desk: Agent) -> Conversation:
    """A voice call: the user asks, the agent answers and is interrupted."""
    return _conversation(
        desk,
        turns=(
            (Role.USER, "When do you open?", False),
            (Role.ASSISTANT, "We open at nine, and on Sundays", True),
            (Role.USER, "Thanks.", False),
        ),
    )


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["conversation"] for row in response.json()["results"]]


# --- who may --------------------------------------------------------------------------------


def test_anonymous_requests_are_refused_with_401(call: Conversation) -> None:
    client = APIClient()
    for url in (
        URL,
        f"{URL}{call.pk}/",
        f"{URL}{call.pk}/export.csv",
        f"{URL}{call.pk}/turns/0/",
    ):
        response = client.get(url)
        assert (response.status_code, response.json()["error"]["code"]) == (
            401,
            "not_authenticated",
        ), url


@pytest.mark.parametrize("staff", [False, True])
def test_users_without_view_conversation_are_refused_with_403(
    staff: bool, call: Conversation, make_user
) -> None:
    client = _client(make_user(staff=staff))
    for url in (
        URL,
        f"{URL}{call.pk}/",
        f"{URL}{call.pk}/export.json",
        f"{URL}{call.pk}/export.csv",
        f"{URL}{call.pk}/turns/0/",
    ):
        response = client.get(url)
        assert (response.status_code, response.json()["error"]["code"]) == (
            403,
            "permission_denied",
        ), url
    response = client.patch(f"{URL}{call.pk}/turns/1/", {"label": "good"})
    assert response.status_code == 403
    assert Turn.objects.get(conversation=call, index=1).label == ""


def test_operators_read_conversations_by_token_or_session(
    call: Conversation, operator: User
) -> None:
    assert _ids(_client(operator).get(URL)) == [str(call.pk)]
    session = APIClient()
    session.force_login(operator)
    assert _ids(session.get(URL)) == [str(call.pk)]


def test_operators_need_not_be_staff(call: Conversation, make_user) -> None:
    client = _client(make_user(groups=("Operators",)))
    assert _ids(client.get(URL)) == [str(call.pk)]


def test_a_superuser_reads_conversations(call: Conversation, make_user) -> None:
    assert _ids(_client(make_user(superuser=True)).get(URL)) == [str(call.pk)]


# --- listing and filtering ------------------------------------------------------------------------


def test_the_list_summarises_each_conversation(call: Conversation, operator_api) -> None:
    response = operator_api.get(URL)
    assert response.json()["count"] == 1
    row = response.json()["results"][0]
    assert row == {
        "conversation": str(call.pk),
        "agent": "desk",
        "channel": "web_voice",
        "external_id": "",
        "status": "active",
        "prompt_version": 1,
        "started_at": "2026-03-02T12:00:00Z",
        "ended_at": None,
        "turn_count": 3,
    }


def test_filters_narrow_the_list(desk: Agent, make_agent, operator_api) -> None:
    other_agent = make_agent(slug="sales")
    interrupted = _conversation(
        desk,
        started_at=NOON - dt.timedelta(days=1),
        turns=((Role.ASSISTANT, "Our hours are", True),),
    )
    typed = _conversation(
        desk,
        channel=Channel.WEB_TEXT,
        started_at=NOON,
        turns=((Role.USER, "Do you sell PARKING permits?", False),),
    )
    hume = _conversation(
        other_agent,
        channel=Channel.HUME_CLM,
        external_id="hume-session-42",
        started_at=NOON + dt.timedelta(days=1),
        turns=((Role.ASSISTANT, "Hello.", False),),
    )
    Conversation.objects.filter(pk=hume.pk).update(
        status=ConversationStatus.ENDED, ended_at=NOON + dt.timedelta(days=1, hours=1)
    )
    turn_label(turn=typed.turns.get(), label=TurnLabel.WRONG_ANSWER, note="", user=None)

    def ids(**query: str) -> list[str]:
        return _ids(operator_api.get(URL, query))

    assert ids() == [str(hume.pk), str(typed.pk), str(interrupted.pk)]
    assert ids(agent="desk") == [str(typed.pk), str(interrupted.pk)]
    assert ids(agent="nobody") == []
    assert ids(channel="web_text") == [str(typed.pk)]
    assert ids(status="ended") == [str(hume.pk)]
    assert ids(started_after=NOON.isoformat()) == [str(hume.pk), str(typed.pk)]
    assert ids(started_before=NOON.isoformat()) == [str(interrupted.pk)]
    assert ids(interrupted="true") == [str(interrupted.pk)]
    assert ids(interrupted="false") == [str(hume.pk), str(typed.pk)]
    assert ids(label="wrong_answer") == [str(typed.pk)]
    assert ids(search="parking") == [str(typed.pk)]
    assert ids(search="session-42") == [str(hume.pk)]
    assert ids(search="") == [str(hume.pk), str(typed.pk), str(interrupted.pk)]
    assert ids(agent="desk", interrupted="false") == [str(typed.pk)]


def test_filters_on_turns_do_not_repeat_or_miscount(call: Conversation, operator_api) -> None:
    rows = operator_api.get(URL, {"search": "o", "interrupted": "true"}).json()["results"]
    assert [(row["conversation"], row["turn_count"]) for row in rows] == [(str(call.pk), 3)]


def test_bad_filter_values_are_refused_by_name(call: Conversation, operator_api) -> None:
    response = operator_api.get(
        URL,
        {"channel": "fax", "started_after": "yesterday", "interrupted": "maybe", "label": "meh"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {
        "channel",
        "started_after",
        "interrupted",
        "label",
    }


def test_a_page_past_the_end_is_a_404(call: Conversation, operator_api) -> None:
    response = operator_api.get(URL, {"page": 2})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


# --- reading and exporting ------------------------------------------------------------------------


def test_a_conversation_reads_exactly_as_it_exports(call: Conversation, operator_api) -> None:
    response = operator_api.get(f"{URL}{call.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body == conversation_as_dict(call)
    assert [(t["index"], t["role"], t["interrupted"]) for t in body["turns"]] == [
        (0, "user", False),
        (1, "assistant", True),
        (2, "user", False),
    ]


def test_the_json_export_is_a_download_of_the_same_document(
    call: Conversation, operator_api
) -> None:
    response = operator_api.get(f"{URL}{call.pk}/export.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{call.pk}.json"'
    assert response.json() == conversation_as_dict(call)


def test_the_csv_export_has_the_header_and_one_row_per_turn(
    call: Conversation, operator_api
) -> None:
    response = operator_api.get(f"{URL}{call.pk}/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{call.pk}.csv"'
    text = response.content.decode()
    assert text == csv_text([call])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(CSV_HEADER)
    assert [row[CSV_HEADER.index("text")] for row in rows[1:]] == [
        "When do you open?",
        "We open at nine, and on Sundays",
        "Thanks.",
    ]


def test_the_csv_export_ignores_the_accept_header_and_its_errors_are_json(
    call: Conversation, operator_api
) -> None:
    found = operator_api.get(f"{URL}{call.pk}/export.csv", HTTP_ACCEPT="text/csv")
    assert (found.status_code, found["Content-Type"]) == (200, "text/csv; charset=utf-8")
    missing = operator_api.get(f"{URL}{uuid.uuid4()}/export.csv", HTTP_ACCEPT="text/csv")
    assert (missing.status_code, missing["Content-Type"]) == (404, "application/json")
    assert missing.json()["error"]["code"] == "not_found"


def test_unknown_and_malformed_ids_are_404s_in_the_error_shape(
    call: Conversation, operator_api
) -> None:
    unknown = uuid.uuid4()
    response = operator_api.get(f"{URL}{unknown}/")
    assert (response.status_code, response.json()) == (
        404,
        {"error": {"code": "not_found", "message": f"There is no conversation {unknown}."}},
    )
    assert operator_api.get(f"{URL}{unknown}/export.json").status_code == 404
    malformed = operator_api.get(f"{URL}not-a-uuid/")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (404, "not_found")
    missing_turn = operator_api.get(f"{URL}{call.pk}/turns/9/")
    assert (missing_turn.status_code, missing_turn.json()["error"]["message"]) == (
        404,
        f"Conversation {call.pk} has no turn 9.",
    )


def test_conversations_cannot_be_changed_or_deleted(call: Conversation, make_user) -> None:
    client = _client(make_user(superuser=True))
    for response in (
        client.delete(f"{URL}{call.pk}/"),
        client.patch(f"{URL}{call.pk}/", {"status": "ended"}),
        client.post(URL, {"agent": "desk"}),
    ):
        assert (response.status_code, response.json()["error"]["code"]) == (
            405,
            "method_not_allowed",
        )
    assert Conversation.objects.get().status == ConversationStatus.ACTIVE


# --- labelling turns ---------------------------------------------------------------------------


def test_operators_label_a_turn_and_note_why(call: Conversation, operator: User) -> None:
    response = _client(operator).patch(
        f"{URL}{call.pk}/turns/1/",
        {"label": "false_barge_in", "review_note": "The caller only coughed."},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["label"], body["review_note"], body["reviewed_by"]) == (
        "false_barge_in",
        "The caller only coughed.",
        operator.username,
    )
    turn = Turn.objects.get(conversation=call, index=1)
    assert (turn.label, turn.review_note, turn.reviewed_by) == (
        "false_barge_in",
        "The caller only coughed.",
        operator,
    )
    assert turn.reviewed_at is not None
    # What was said stays as recorded.
    assert (turn.text, turn.interrupted) == ("We open at nine, and on Sundays", True)


def test_a_partial_review_keeps_the_rest(call: Conversation, operator_api) -> None:
    turn = Turn.objects.get(conversation=call, index=1)
    turn_label(turn=turn, label=TurnLabel.GOOD, note="Fine.", user=None)
    url = f"{URL}{call.pk}/turns/1/"
    assert operator_api.patch(url, {"review_note": "Fine, really."}).json()["label"] == "good"
    assert operator_api.patch(url, {"label": ""}).json()["review_note"] == "Fine, really."
    turn.refresh_from_db()
    assert (turn.label, turn.review_note) == ("", "Fine, really.")


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"label": "brilliant"}, {"label"}),
        ({"label": None}, {"label"}),
        ({"review_note": 42, "label": ["good"]}, {"label"}),
        ({}, {"non_field_errors"}),
    ],
)
def test_a_bad_review_is_refused_and_changes_nothing(
    payload: dict[str, object], fields: set[str], call: Conversation, operator_api
) -> None:
    response = operator_api.patch(f"{URL}{call.pk}/turns/1/", payload)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == fields
    turn = Turn.objects.get(conversation=call, index=1)
    assert (turn.label, turn.review_note, turn.reviewed_at) == ("", "", None)


def test_labelling_needs_the_label_turn_permission(call: Conversation, make_user) -> None:
    reader = make_user(staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client = _client(reader)
    assert client.get(f"{URL}{call.pk}/turns/1/").status_code == 200
    response = client.patch(f"{URL}{call.pk}/turns/1/", {"label": "good"})
    assert response.status_code == 403
    assert Turn.objects.get(conversation=call, index=1).reviewed_at is None


def test_a_session_review_needs_the_csrf_token(call: Conversation, operator: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.patch(f"{URL}{call.pk}/turns/1/", {"label": "good"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert Turn.objects.get(conversation=call, index=1).label == ""


def test_reading_a_turn_gives_the_export_shape(call: Conversation, operator_api) -> None:
    response = operator_api.get(f"{URL}{call.pk}/turns/2/")
    assert response.status_code == 200
    assert response.json() == conversation_as_dict(call)["turns"][2]
