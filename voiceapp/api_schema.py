"""A drf-spectacular post-processing hook: the errors every API operation can answer.

Each view documents its own outcomes (200, 404, 400 …); the ones that come from the
authentication and throttling classes every endpoint under /api/ shares are added here,
in the API's one error shape, so Swagger lists them instead of calling them undocumented.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": True},
                "retry_after_seconds": {"type": "integer"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
_SHARED = {
    "401": "Not signed in: no session, or a missing or wrong `Authorization: Token` key.",
    "403": "Signed in, but this role may not do this.",
    "429": "Too many requests: `retry_after_seconds` says when to try again.",
}


def add_shared_errors(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["ApiError"] = _ERROR
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in _SHARED.items():
                responses.setdefault(status, {"description": description, "content": reference})
    return result
