"""Print a user's API token, creating it on first use.

Programs send it as ``Authorization: Token <key>``: to the HTTP API (what the user's role
allows) and to the voice and chat sockets (talking as that user, to the agents a signed-in
user may talk to). Tokens are handed out here, by someone with shell access, rather than
by a password endpoint: there is nothing on the network to guess passwords against.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the API token of a user (created if missing). --rotate replaces it, "
        "so programs holding the old one are refused from then on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--rotate", action="store_true", help="Replace the user's token with a new one."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}.")
        if not user.is_active:
            raise CommandError(f"{username} is inactive; activate the account first.")
        with transaction.atomic():
            if options["rotate"]:
                Token.objects.filter(user=user).delete()
            token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
