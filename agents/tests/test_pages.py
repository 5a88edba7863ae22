"""The front page and the agent page, through Django's test client (the browser tests in
conversations/tests/test_page_browser.py drive the same pages in Chromium)."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.links import signed_link_token
from agents.models import Agent

pytestmark = pytest.mark.django_db


class Links(HTMLParser):
    """The href of every <a> on a page, with its text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self.links.append((self._href, ""))

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            href, text = self.links[-1]
            self.links[-1] = (href, (text + " " + data.strip()).strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def links_on(html: str) -> list[tuple[str, str]]:
    parser = Links()
    parser.feed(html)
    return parser.links


def test_the_front_page_links_each_active_agent_to_its_page(
    client: Client, make_agent: Callable[..., Agent], make_user: Callable[..., User]
) -> None:
    make_agent(name="Zed", slug="zed")
    make_agent(name="Ada", slug="ada", is_public=False)
    make_agent(name="Off", slug="off", is_active=False)
    page = client.get("/")
    assert page.status_code == 200
    agent_links = [link for link in links_on(page.content.decode()) if "/agents/" in link[0]]
    # Anonymous visitors are not told the names of non-public agents.
    assert agent_links == [("/agents/zed/", "Zed")]
    assert "Ada" not in page.content.decode()
    client.force_login(make_user())
    page = client.get("/")
    agent_links = [link for link in links_on(page.content.decode()) if "/agents/" in link[0]]
    assert agent_links == [("/agents/ada/", "Ada"), ("/agents/zed/", "Zed")]
    assert "sign-in required" in page.content.decode()


def test_a_public_agent_page_serves_the_chat_and_the_call(
    client: Client, make_agent: Callable[..., Agent]
) -> None:
    make_agent(name="Doctor", slug="doctor")
    page = client.get("/agents/doctor/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<h1 id="agent-name">Doctor</h1>' in html
    assert 'data-chat-path="/agents/doctor/chat"' in html
    assert 'data-voice-path="/agents/doctor/conversation"' in html
    assert 'data-sig=""' in html
    assert '"@msgpack/msgpack": "/static/vendor/msgpack/index.mjs"' in html
    assert '<script type="module" src="/static/js/page.js"></script>' in html
    assert 'data-worklet-url="/static/js/mic-worklet.js"' in html
    assert 'role="log"' in html
    assert '<label for="message" class="visually-hidden">Message to Doctor</label>' in html


@pytest.mark.parametrize(
    "path",
    [
        "/static/vendor/msgpack/index.mjs",
        "/static/vendor/msgpack/Encoder.mjs",
        "/static/js/page.js",
        "/static/js/mic-worklet.js",
    ],
)
def test_the_page_scripts_are_served_by_the_app_as_javascript(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")


def test_unknown_and_inactive_agents_have_no_page(
    client: Client, make_agent: Callable[..., Agent]
) -> None:
    make_agent(slug="on")  # the first agent is the default, which must be active
    make_agent(slug="off", is_active=False)
    assert client.get("/agents/on/").status_code == 200
    assert client.get("/agents/nobody/").status_code == 404
    assert client.get("/agents/off/").status_code == 404


def test_a_private_agent_sends_anonymous_visitors_to_sign_in(
    client: Client, make_agent: Callable[..., Agent]
) -> None:
    make_agent(slug="private", is_public=False)
    page = client.get("/agents/private/")
    assert page.status_code == 302
    assert page["Location"] == "/accounts/login/?next=/agents/private/"


def test_a_private_agent_page_opens_for_a_signed_in_user(
    client: Client, make_agent: Callable[..., Agent], make_user: Callable[..., User]
) -> None:
    make_agent(slug="private", is_public=False)
    user = make_user()
    client.force_login(user)
    page = client.get("/agents/private/")
    assert page.status_code == 200
    assert f"Signed in as {user.username}" in page.content.decode()


def test_a_signed_link_opens_a_private_agent_page_and_reaches_its_sockets(
    client: Client, make_agent: Callable[..., Agent]
) -> None:
    make_agent(slug="private", is_public=False)
    sig = signed_link_token("private")
    page = client.get("/agents/private/", {"sig": sig})
    assert page.status_code == 200
    assert f'data-sig="{sig}"' in page.content.decode()

    forged = client.get("/agents/private/", {"sig": signed_link_token("other")})
    assert forged.status_code == 302


@pytest.mark.django_db
def test_a_non_staff_user_signs_in_on_the_site_and_reaches_a_private_agent(
    client: Client, make_agent, make_user
) -> None:
    make_agent(slug="private", is_public=False)
    user = make_user()
    page = client.post(
        "/accounts/login/",
        {"username": user.username, "password": "pw-12345-xyz", "next": "/agents/private/"},
    )
    assert page.status_code == 302
    assert page["Location"] == "/agents/private/"
    assert client.get("/agents/private/").status_code == 200


def test_missing_pages_are_the_sites_own_and_say_what_happened(
    client: Client, make_agent: Callable[..., Agent], make_user: Callable[..., User]
) -> None:
    make_agent(slug="desk")
    make_agent(slug="retired", is_active=False)
    make_agent(slug="hidden-retired", is_active=False, is_public=False)

    def lede(path: str) -> str:
        page = client.get(path)
        assert page.status_code == 404
        html = page.content.decode()
        assert '<link rel="stylesheet" href="/static/css/app.css">' in html
        assert '<a href="/">See the agents you can talk to</a>' in html
        return html.split('<p class="lede">')[1].split("</p>")[0]

    assert lede("/agents/retired/") == "This agent is switched off at the moment."
    assert lede("/agents/nobody/") == "There is no agent here."
    # Anonymous visitors are not told that a private agent exists.
    assert lede("/agents/hidden-retired/") == "There is no agent here."
    assert lede("/no/such/page/") == "There is nothing at /no/such/page/."
    client.force_login(make_user())
    assert lede("/agents/hidden-retired/") == "This agent is switched off at the moment."


def test_the_server_error_page_stands_alone() -> None:
    from django.template.loader import render_to_string

    html = render_to_string("500.html")
    assert "<h1>Something went wrong</h1>" in html
    assert '<a href="/">Back to the agents</a>' in html
