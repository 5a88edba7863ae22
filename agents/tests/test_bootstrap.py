"""The first-run command creates the demo agent and prints the admin password once."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client

from agents.models import Agent

pytestmark = pytest.mark.django_db


def test_bootstrap_creates_demo_agent_and_admin_whose_password_works() -> None:
    out = StringIO()
    call_command("bootstrap", stdout=out)
    match = re.search(r"password: (\S+)", out.getvalue())
    assert match, out.getvalue()
    assert authenticate(username="admin", password=match.group(1)) is not None
    assert Agent.objects.get(slug="eliza").is_default

    again = StringIO()
    call_command("bootstrap", stdout=again)
    assert again.getvalue() == ""  # the password is printed once only
    assert Agent.objects.count() == 1


def test_home_page_lists_active_agents(client: Client, make_agent) -> None:
    make_agent(name="Visible helper")
    make_agent(name="Retired helper", is_active=False)
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Visible helper" in html
    assert "Retired helper" not in html
