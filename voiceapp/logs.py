"""Log records that say which conversation they belong to, and never carry secrets.

Consumers and views call :func:`bind_conversation` once they know the conversation; the
id lives in a context variable, so it follows the socket's task and every task started
from it (reply tasks, the voice pipeline) but never leaks to another socket.
:class:`ConversationFilter`, installed on the handler by the ``LOGGING`` setting, copies it
onto each record; the two formatters write it (``LOG_FORMAT=plain`` or ``json``) and
redact credentials from the whole line, tracebacks included, whoever logged it (uvicorn
writes request paths with their query strings, where Hume puts the socket's token).

This module imports nothing from Django: the settings module refers to it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from contextvars import ContextVar

_conversation_id: ContextVar[str | None] = ContextVar("conversation_id", default=None)

REDACTED = "***"

# Each pattern keeps its first group and replaces the rest of the match with REDACTED.
_SECRETS = [
    # Query parameters and form fields: ?token=…, &sig=…, api_key=…, password=…
    re.compile(
        r"(?i)((?<![\w-])(?:token|access_token|sig|signature|api_?key|key|secret|password|passwd)"
        r"=)[^&\s\"'#;,]+"
    ),
    # Credentials in URLs: scheme://user:password@host
    re.compile(r"(://[^:/@\s]*:)[^@\s/]+(?=@)"),
    # Authorization headers: "Bearer <token>", DRF's "Token <40 hex>"
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"),
    re.compile(r"(\bToken\s+)[0-9a-f]{40}\b"),
    # Keys in dumped dicts or JSON: 'api_key': '…', "password": "…", "token": "…"
    re.compile(
        r"(?i)([\"'](?:token|access_token|api_?key|secret|password|authorization)[\"']\s*:\s*"
        r"[\"'])[^\"']+"
    ),
    # Provider keys that turn up in exception messages (OpenAI: sk-…).
    re.compile(r"(\bsk-)[A-Za-z0-9_-]{8,}"),
    # Session and CSRF cookies, should a request's headers ever be logged
    re.compile(r"(?i)(\b(?:sessionid|csrftoken|csrfmiddlewaretoken)=)[^;\s\"',&]+"),
]


def bind_conversation(conversation_id: str) -> None:
    """Tag every log record of the current task (and tasks it starts) with this id."""
    _conversation_id.set(conversation_id)


def current_conversation() -> str | None:
    return _conversation_id.get()


def redact(text: str) -> str:
    """``text`` with tokens, keys and passwords replaced by ``***``."""
    for pattern in _SECRETS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


class ConversationFilter(logging.Filter):
    """Adds ``conversation_id`` (the bound id, or None) to every record; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation_id"):
            record.conversation_id = _conversation_id.get()
        return True


class ClientErrorFilter(logging.Filter):
    """Requests refused for the client's own doing (any 4xx; a Host header not in
    ALLOWED_HOSTS) become one WARNING line without a traceback: nothing failed on the
    server, and anyone can send them, so they must not look like (or bury) real errors.
    Django logs these with the exception attached, and a bad Host at ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        client_error = record.name.startswith("django.security") or (
            record.name == "django.request" and isinstance(status, int) and status < 500
        )
        if client_error:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class OneLineFilter(logging.Filter):
    """For loggers whose failures are operational and expected (a mail server that does
    not answer): the exception's message joins the line and the traceback is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _conversation_of(record: logging.LogRecord) -> str | None:
    value = getattr(record, "conversation_id", None)
    return value if isinstance(value, str) and value else None


class PlainFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [conv=<id>] <message>``, one line plus any traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(conversation_tag)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        conversation = _conversation_of(record)
        record.conversation_tag = f" [conv={conversation}]" if conversation else ""
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, and ``conversation_id`` and ``exc_info`` (the traceback text) when there
    are any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if conversation := _conversation_of(record):
            line["conversation_id"] = conversation
        if record.exc_info:
            # Cached on the record like logging.Formatter does, for other handlers.
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            line["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)
