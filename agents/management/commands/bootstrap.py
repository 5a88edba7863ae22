"""First-run set-up: the demo ELIZA agent and an admin account."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.services import agent_ensure_demo


class Command(BaseCommand):
    help = (
        "Create the demo ELIZA agent (slug 'eliza') and, if no superuser exists, an 'admin' "
        "superuser with a generated password: printed once, or with --password-file written "
        "to a new file only its owner can read (for machines whose output is logged)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password-file",
            type=Path,
            help="Write the admin's password to this new file (mode 0600) instead of printing it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password_file: Path | None = options["password_file"]
        if password_file is not None and password_file.exists():
            raise CommandError(f"{password_file} exists already; name a new file.")
        agent, created = agent_ensure_demo()
        if created:
            self.stdout.write(f"Created the demo agent {agent.name!r} (slug {agent.slug!r}).")
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("A superuser exists already: no admin account was created.")
            return
        password = secrets.token_urlsafe(15)
        if password_file is not None:
            # Created with its final mode: the password is never readable by others.
            descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(password + "\n")
        user_model.objects.create_superuser(username="admin", email="", password=password)
        if password_file is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the admin user 'admin'; its password is in {password_file} "
                    "(readable only by you). Change it in the admin, then delete the file."
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the admin user.\n  username: admin\n  password: {password}\n"
                "This password is shown only now; change it in the admin."
            )
        )
