"""The first-run command creates the demo agent and an admin, whose password is shown once
(or written to a private file)."""

from __future__ import annotations

import re
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
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
    # The password is printed once only.
    assert again.getvalue() == "A superuser exists already: no admin account was created.\n"
    assert Agent.objects.count() == 1


def test_with_a_password_file_the_password_never_reaches_the_output(tmp_path: Path) -> None:
    secret = tmp_path / "admin-password"
    out = StringIO()
    call_command("bootstrap", "--password-file", str(secret), stdout=out)
    password = secret.read_text().strip()
    assert password not in out.getvalue()
    assert f"its password is in {secret}" in out.getvalue()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert authenticate(username="admin", password=password) is not None
    # An existing file is never overwritten, and nothing is created then.
    with pytest.raises(CommandError, match="exists already"):
        call_command("bootstrap", "--password-file", str(secret), stdout=StringIO())
    assert secret.read_text().strip() == password


def test_home_page_lists_active_agents(client: Client, make_agent) -> None:
    make_agent(name="Visible helper")
    make_agent(name="Retired helper", is_active=False)
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Visible helper" in html
    assert "Retired helper" not in html
