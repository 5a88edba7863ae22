"""First-run set-up: the demo ELIZA agent and an admin account."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from agents.services import agent_ensure_demo


class Command(BaseCommand):
    help = (
        "Create the demo ELIZA agent (slug 'eliza') and, if no superuser exists, an 'admin' "
        "superuser whose generated password is printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        agent, created = agent_ensure_demo()
        if created:
            self.stdout.write(f"Created the demo agent {agent.name!r} (slug {agent.slug!r}).")
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(15)
        user_model.objects.create_superuser(username="admin", email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the admin user.\n  username: admin\n  password: {password}\n"
                "This password is shown only now; change it in the admin."
            )
        )
