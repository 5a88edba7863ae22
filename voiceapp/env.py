"""Reading settings from environment variables, loudly.

Every helper names the variable in its error, so a typo in a deployment stops start-up
with a message that says what to fix instead of quietly running with a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_RATE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")


class Env:
    """Typed accessors over a mapping of environment variables (``os.environ`` by default)."""

    def __init__(self, environ_map: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ_map is None else environ_map

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def is_set(self, name: str) -> bool:
        return self.raw(name) is not None

    def text(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None else value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a boolean; use one of: true, false, 1, 0, yes, no, on, off"
        )

    def number(self, name: str, default: int, *, minimum: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}")
        return number

    def items(self, name: str, default: list[str]) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}")
        return value

    def rate(self, name: str, default: str) -> str:
        """A request rate as REST framework writes it: ``<count>/<second|minute|hour|day>``."""
        value = self.text(name, default)
        if not _RATE.fullmatch(value):
            raise ImproperlyConfigured(
                f"{name}={value!r} is not a rate; write it like 60/minute (second, minute, "
                "hour or day)"
            )
        return value

    def database(self, name: str, default: str) -> dict[str, Any]:
        url = self.text(name, default)
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
            raise ImproperlyConfigured(
                f"{name} must be a sqlite:// or postgres:// URL, got {_redact(url)!r}"
            )
        if scheme != "sqlite":
            parts = urlsplit(url)
            try:
                parts.port  # noqa: B018 - property access validates the port number
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name} has an invalid port: {_redact(url)!r}"
                ) from None
            if not parts.hostname or not parts.path.strip("/"):
                raise ImproperlyConfigured(
                    f"{name} must name a host and a database: {_redact(url)!r}"
                )
        try:
            config: dict[str, Any] = environ.Env.db_url_config(url)
        except (ValueError, KeyError) as exc:
            raise ImproperlyConfigured(f"{name} is malformed ({exc}): {_redact(url)!r}") from None
        return config

    def redis_url(self, name: str) -> str | None:
        url = self.raw(name)
        if url is None:
            return None
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - property access validates the port number
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port: {_redact(url)!r}") from None
        if parts.scheme not in {"redis", "rediss", "unix"} or (
            parts.scheme != "unix" and not parts.hostname
        ):
            raise ImproperlyConfigured(
                f"{name} must be a redis://HOST[:PORT][/DB] URL, got {_redact(url)!r}"
            )
        return url


def _redact(url: str) -> str:
    """Hide a password in a URL so that error messages never leak it."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
