"""The chatbot-server endpoints in the OpenAPI schema (they are plain async views)."""

from __future__ import annotations

from typing import Any


def add_chatbot_paths(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    return result
