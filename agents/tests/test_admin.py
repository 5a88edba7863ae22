"""Staff manage agents in the admin; operators read conversations and nothing else."""

from __future__ import annotations

import io
import re
import wave
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent, PromptVersion
from conversations.models import Channel, Role
from conversations.services import conversation_start, turn_record

pytestmark = pytest.mark.django_db


def form_data(response: Any) -> dict[str, Any]:
    """The POST data a browser would send back for an admin change form, unchanged."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"):
            data[f"{formset.prefix}-{name}"] = management.initial.get(name, 0)
        for index, sub in enumerate(formset.initial_forms):
            data[f"{formset.prefix}-{index}-id"] = sub.instance.pk
            data[f"{formset.prefix}-{index}-agent"] = sub.instance.agent_id
    return data


def test_staff_create_an_agent_with_its_first_prompt(admin_client: Client) -> None:
    add_url = reverse("admin:agents_agent_add")
    data = form_data(admin_client.get(add_url))
    data.update(name="Front desk", slug="front-desk", system_prompt="Greet visitors.")
    response = admin_client.post(add_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    agent = Agent.objects.get(slug="front-desk")
    assert list(agent.prompt_versions.values_list("number", "text", "is_active")) == [
        (1, "Greet visitors.", True)
    ]
    assert agent.is_default is True  # the first agent


def test_editing_the_prompt_in_the_admin_adds_a_version(admin_client: Client, make_agent) -> None:
    agent = make_agent(prompt_text="Version one.")
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = form_data(admin_client.get(url))
    assert data["system_prompt"] == "Version one."
    data["system_prompt"] = "Version two."
    response = admin_client.post(url, data)
    assert response.status_code == 302
    versions = list(
        PromptVersion.objects.filter(agent=agent)
        .order_by("number")
        .values_list("number", "text", "is_active")
    )
    assert versions == [(1, "Version one.", False), (2, "Version two.", True)]


def test_saving_without_changing_the_prompt_adds_no_version(
    admin_client: Client, make_agent
) -> None:
    agent = make_agent(prompt_text="Stable.")
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = form_data(admin_client.get(url))
    data["greeting"] = "Hello there."
    assert admin_client.post(url, data).status_code == 302
    assert agent.prompt_versions.count() == 1
    agent.refresh_from_db()
    assert agent.greeting == "Hello there."


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        # The default flag is not on the form; its constraint is checked all the same.
        ({"is_active": ""}, "__all__", "The default agent must be active."),
        ({"llm_temperature": "2.5"}, "llm_temperature", "less than or equal to 2.0"),
        ({"vad_threshold": "1.0"}, "vad_threshold", "less than or equal to 0.95"),
        ({"slug": "taken"}, "slug", "Agent with this Slug already exists."),
    ],
)
def test_every_constraint_is_a_form_error_not_a_500(
    admin_client: Client, make_agent, change: dict[str, str], field: str, message: str
) -> None:
    default = make_agent(slug="desk")
    make_agent(slug="taken")
    url = reverse("admin:agents_agent_change", args=[default.pk])
    data = form_data(admin_client.get(url))
    data.update(change)
    data = {k: v for k, v in data.items() if v != ""}  # an unticked box is left out
    response = admin_client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert any(message in error for error in errors[field]), errors
    default.refresh_from_db()
    assert (default.slug, default.is_active, default.is_default) == ("desk", True, True)


def test_the_default_agent_cannot_be_deleted(admin_client: Client, make_agent) -> None:
    agent = make_agent()
    response = admin_client.post(
        reverse("admin:agents_agent_delete", args=[agent.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Agent.objects.filter(pk=agent.pk).exists()


def test_make_default_action_moves_the_flag(admin_client: Client, make_agent) -> None:
    make_agent()
    other = make_agent()
    response = admin_client.post(
        reverse("admin:agents_agent_changelist"),
        {"action": "make_default", "_selected_action": [other.pk]},
    )
    assert response.status_code == 302
    assert list(Agent.objects.filter(is_default=True)) == [other]


def test_operators_get_403_on_agent_pages(client: Client, operator, make_agent) -> None:
    agent = make_agent()
    client.force_login(operator)
    assert client.get(reverse("admin:agents_agent_change", args=[agent.pk])).status_code == 403
    assert client.get(reverse("admin:agents_agent_add")).status_code == 403
    assert client.get(reverse("admin:agents_agent_changelist")).status_code == 403
    response = client.post(
        reverse("admin:agents_agent_change", args=[agent.pk]), {"name": "Hijacked"}
    )
    assert response.status_code == 403
    agent.refresh_from_db()
    assert agent.name != "Hijacked"


def test_operators_read_and_search_conversations(client: Client, operator, make_agent) -> None:
    agent = make_agent()
    conversation = conversation_start(agent=agent, channel=Channel.HUME_CLM)
    turn_record(conversation=conversation, role=Role.USER, text="my printer is on fire")
    other = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    turn_record(conversation=other, role=Role.USER, text="hello")
    client.force_login(operator)

    listing = client.get(reverse("admin:conversations_conversation_changelist"), {"q": "printer"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [conversation]

    page = client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    assert page.status_code == 200
    assert "my printer is on fire" in page.content.decode()

    filtered = client.get(
        reverse("admin:conversations_conversation_changelist"), {"channel__exact": "web_text"}
    )
    assert list(filtered.context["cl"].result_list) == [other]


def test_the_review_page_links_only_what_the_reader_may_open(
    client: Client, admin_client: Client, operator, make_agent, make_user
) -> None:
    agent = make_agent(name="Front desk")
    caller = make_user()
    conversation = conversation_start(agent=agent, channel=Channel.WEB_TEXT, user=caller)
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    agent_url = reverse("admin:agents_agent_change", args=[agent.pk])
    user_url = reverse("admin:auth_user_change", args=[caller.pk])

    client.force_login(operator)
    html = client.get(url).content.decode()
    assert "Front desk" in html
    assert caller.username in html
    assert agent_url not in html  # a link operators would get a 403 from
    assert user_url not in html

    html = admin_client.get(url).content.decode()
    assert f'href="{agent_url}"' in html
    assert f'href="{user_url}"' in html


def test_operators_cannot_change_conversations(client: Client, operator, make_agent) -> None:
    conversation = conversation_start(agent=make_agent(), channel=Channel.WEB_TEXT)
    client.force_login(operator)
    url = reverse("admin:conversations_conversation_delete", args=[conversation.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403


def test_an_invalid_eliza_script_is_refused_with_line_and_column(
    admin_client: Client, make_agent
) -> None:
    agent = make_agent()
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = form_data(admin_client.get(url))
    data["eliza_script"] = "(HELLO)\nSTART\n((0) (BROKEN)\n"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["eliza_script"]
    assert len(errors) == 1
    assert errors[0].startswith("The script cannot be used: line ")
    assert ", column " in errors[0]
    agent.refresh_from_db()
    assert agent.eliza_script == ""


def test_a_valid_eliza_script_is_saved(admin_client: Client, make_agent) -> None:
    agent = make_agent()
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = form_data(admin_client.get(url))
    data["eliza_script"] = (
        "(HI THERE)\nSTART\n(SORRY ((0) (NO NEED TO APOLOGIZE)))\n(NONE ((0) (GO ON)))\n()\n"
    )
    assert admin_client.post(url, data).status_code == 302
    agent.refresh_from_db()
    assert agent.eliza_script.startswith("(HI THERE)")


# --- the agent editor: where to go from it, prompt history, the default flag ----------------


def test_the_editor_links_to_the_agents_page_conversations_and_dashboard(
    admin_client: Client, make_agent
) -> None:
    agent = make_agent(slug="front-desk")
    html = admin_client.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    assert 'href="/agents/front-desk/" target="_blank"' in html
    assert "Talk to this agent" in html
    conversations = reverse("admin:conversations_conversation_changelist")
    assert f'href="{conversations}?agent__id__exact={agent.pk}"' in html
    dashboard = reverse("admin:conversations_conversation_dashboard")
    assert f'href="{dashboard}?agent=front-desk"' in html
    # Those pages answer staff, filtered to the agent.
    listing = admin_client.get(f"{conversations}?agent__id__exact={agent.pk}")
    assert listing.status_code == 200
    assert admin_client.get(f"{dashboard}?agent=front-desk").status_code == 200
    # A new agent has none of them yet.
    add = admin_client.get(reverse("admin:agents_agent_add")).content.decode()
    assert "Talk to this agent" not in add


def test_the_default_flag_says_what_it_means_and_how_to_move_it(
    admin_client: Client, make_agent
) -> None:
    default = make_agent(slug="main", is_default=True)
    other = make_agent(slug="other")
    html = admin_client.get(reverse("admin:agents_agent_change", args=[default.pk])).content
    assert "it answers /conversation, /chat, /llm" in html.decode()
    html = admin_client.get(reverse("admin:agents_agent_change", args=[other.pk])).content
    assert "Make the selected agent the default" in html.decode()
    assert "icon-no.svg" not in html.decode()  # no bare red cross


def test_each_prompt_version_shows_its_changes_word_by_word(
    admin_client: Client, make_agent
) -> None:
    agent = make_agent()
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    for text in ("You are a calm receptionist.", "You are a cheerful receptionist. Be brief."):
        data = form_data(admin_client.get(url))
        data["system_prompt"] = text
        assert admin_client.post(url, data).status_code == 302
    html = admin_client.get(url).content.decode()
    assert "<del>calm</del><ins>cheerful</ins>" in html
    assert "<ins> Be brief.</ins>" in html or "<ins>Be brief.</ins>" in html


def test_an_earlier_prompt_version_can_be_made_active_again(
    admin_client: Client, make_agent
) -> None:
    agent = make_agent()
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    for text in ("First prompt.", "Second prompt."):
        data = form_data(admin_client.get(url))
        data["system_prompt"] = text
        admin_client.post(url, data)
    first = PromptVersion.objects.get(agent=agent, text="First prompt.")
    activate = reverse("admin:agents_promptversion_activate", args=[agent.pk, first.pk])
    html = admin_client.get(url).content.decode()
    assert f'formaction="{activate}"' in html
    assert admin_client.get(activate).status_code == 405  # a change: POST only

    response = admin_client.post(activate, form_data(admin_client.get(url)))
    assert response.status_code == 302
    assert response["Location"] == url
    assert agent.active_prompt == first
    assert PromptVersion.objects.filter(agent=agent).count() == 3  # nothing new stored
    # The editor now shows it, and saving unchanged keeps it.
    data = form_data(admin_client.get(url))
    assert data["system_prompt"] == "First prompt."
    admin_client.post(url, data)
    assert agent.active_prompt == first
    # A new conversation runs with it.
    conversation = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    assert conversation.prompt_version == first


def test_making_a_version_active_needs_change_permission(
    client: Client, operator, make_agent
) -> None:
    agent = make_agent()
    version = agent.active_prompt
    client.force_login(operator)
    url = reverse("admin:agents_promptversion_activate", args=[agent.pk, version.pk])
    assert client.post(url).status_code == 403


# --- the agent form: what applies to the chosen model, and speech that exists --------------


def test_each_model_setting_says_which_models_read_it(admin_client: Client, make_agent) -> None:
    agent = make_agent()
    html = admin_client.get(reverse("admin:agents_agent_change", args=[agent.pk])).content
    page = html.decode()

    def applies(name: str) -> str:
        [tag] = re.findall(rf'<(?:input|textarea|select)[^>]*name="{name}"[^>]*>', page)
        found = re.search(r'data-applies-to="([^"]*)"', tag)
        return found[1] if found else ""

    assert applies("eliza_script") == "eliza"
    assert applies("llm_model") == "openai openai_compatible"
    assert applies("llm_temperature") == "openai openai_compatible"
    assert applies("llm_base_url") == "openai_compatible"
    assert applies("system_prompt") == "openai openai_compatible"
    assert applies("name") == ""  # every model has a name


def test_an_eliza_agent_saves_without_the_model_settings_it_does_not_read(
    admin_client: Client, make_agent
) -> None:
    agent = make_agent(llm_temperature=0.3, llm_max_tokens=200)
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = form_data(admin_client.get(url))
    # Hidden in the editor, so a browser sends them empty.
    data["llm_temperature"] = ""
    data["llm_max_tokens"] = ""
    data["name"] = "Renamed"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    agent.refresh_from_db()
    assert (agent.name, agent.llm_temperature, agent.llm_max_tokens) == ("Renamed", 0.3, 200)


def test_staff_are_warned_when_an_eliza_agent_ignores_its_prompt_and_documents(
    admin_client: Client, make_agent
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from knowledge.services import document_create

    agent = make_agent(name="Clinic", prompt_text="Be kind.")
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    warning = (
        "Clinic uses ELIZA, which answers from its script alone: its system prompt is not used."
    )
    assert warning in admin_client.get(url).content.decode()

    for n in range(2):
        upload = SimpleUploadedFile(f"p{n}.txt", f"Policy number {n}.".encode())
        document_create(file=upload, title=f"Policy {n}", agents=[agent])
    data = form_data(admin_client.get(url))
    response = admin_client.post(url, data, follow=True)
    assert (
        "its system prompt and its 2 knowledge documents are not used" in response.content.decode()
    )
    # A language model reads both: no warning.
    agent.llm_provider = "openai_compatible"
    agent.llm_model = "m"
    agent.llm_base_url = "http://127.0.0.1:9/v1"
    agent.save()
    assert "not used" not in admin_client.get(url).content.decode()


def test_voices_and_speech_models_on_this_machine_are_suggested(
    admin_client: Client, make_agent, settings, tmp_path: Path
) -> None:
    settings.SPEECH_MODELS_DIR = tmp_path
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / "en_US-amy-low.onnx").write_bytes(b"onnx")
    (tmp_path / "amy" / "en_US-amy-low.onnx.json").write_text("{}")
    (tmp_path / "lonely.onnx").write_bytes(b"no config beside it")
    (tmp_path / "whisper-base").mkdir()
    (tmp_path / "whisper-base" / "model.bin").write_bytes(b"weights")
    agent = make_agent()
    page = admin_client.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    piper = re.search(r'<datalist id="id_tts_voice-piper">(.*?)</datalist>', page)
    assert piper is not None
    assert re.findall(r'<option value="([^"]+)">', piper[1]) == [
        str(tmp_path / "amy" / "en_US-amy-low.onnx")
    ]
    assert "Empty: bundled: " in page  # the bundled voice is the empty value
    openai = re.search(r'<datalist id="id_tts_voice-openai">(.*?)</datalist>', page)
    assert openai is not None
    assert '<option value="alloy">' in openai[1]
    whisper = re.search(r'<datalist id="id_stt_model-faster_whisper">(.*?)</datalist>', page)
    assert whisper is not None
    assert str(tmp_path / "whisper-base") in whisper[1]
    assert 'class="button hear-voice"' in page


def test_a_bundled_voice_can_be_heard_before_it_is_chosen(admin_client: Client) -> None:
    url = reverse("admin:agents_agent_voice_sample")
    response = admin_client.get(url, {"voice": ""})
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    body = response.content
    assert (body[:4], body[8:12]) == (b"RIFF", b"WAVE")
    with wave.open(io.BytesIO(body)) as wav:
        assert wav.getframerate() == 22_050
        assert wav.getnframes() / wav.getframerate() > 1.5  # a whole sentence


def test_a_voice_sample_never_loads_a_file_the_request_names(
    admin_client: Client, client: Client, operator, tmp_path: Path
) -> None:
    url = reverse("admin:agents_agent_voice_sample")
    stray = tmp_path / "stray.onnx"
    stray.write_bytes(b"x")
    (tmp_path / "stray.onnx.json").write_text("{}")
    response = admin_client.get(url, {"voice": str(stray)})
    assert response.status_code == 400
    assert "Piper voices on this machine only" in response.content.decode()
    client.force_login(operator)  # may read conversations, not edit agents
    assert client.get(url, {"voice": ""}).status_code == 403
