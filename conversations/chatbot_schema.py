"""The chatbot-server endpoints in the OpenAPI schema (they are plain async views).

drf-spectacular only sees REST framework views, so this post-processing hook (registered
in ``SPECTACULAR_SETTINGS``) writes their paths, with their bodies, audio responses and
error responses, as ``conversations.chatbot`` documents them.
"""

from __future__ import annotations

from typing import Any

from conversations.chatbot import MAX_TEXT_CHARS, OUTPUT_SAMPLE_RATE, PCM_SAMPLE_RATES

_TAG = "chatbot-server"
_ERROR = "ChatbotError"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_SCHEMAS: dict[str, dict[str, Any]] = {
    _ERROR: {
        "type": "object",
        "description": "A refused request. ``statusCode`` repeats the HTTP status for the "
        "old clients, which read it from the body.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                    "retry_after_seconds": {"type": "integer"},
                },
                "required": ["code", "message"],
            },
            "statusCode": {"type": "integer"},
        },
        "required": ["error", "statusCode"],
    },
    "ChatbotText": {
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_TEXT_CHARS,
                "description": "What the user says.",
            }
        },
        "required": ["text"],
    },
    "ChatbotAudioUpload": {
        "type": "object",
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The recording: WAV, MP3, WebM/Opus, OGG, FLAC, ... or raw "
                "s16le mono PCM when sample_rate is given.",
            },
            "sample_rate": {
                "type": "integer",
                "minimum": PCM_SAMPLE_RATES.start,
                "maximum": PCM_SAMPLE_RATES.stop - 1,
                "description": "The rate of a raw PCM recording (leave out for containers).",
            },
        },
        "required": ["file"],
    },
    "ChatbotQuery": {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS},
            "address": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "description": "Whose conversation this is (the old clients sent a MAC or IP "
                "address): later prompts with the same address continue it.",
            },
        },
        "required": ["prompt", "address"],
    },
    "ChatbotAnswer": {
        "type": "object",
        "properties": {
            "content": {"type": "string", "description": "The answer."},
            "run_id": {"type": "string", "description": "The stored answer turn's id."},
            "thread_id": {
                "type": "string",
                "description": "The OpenAI conversation id for OpenAI agents, else the "
                "stored conversation's id.",
            },
            "statusCode": {"type": "integer", "enum": [200]},
        },
        "required": ["content", "run_id", "thread_id", "statusCode"],
    },
    "ChatbotCleared": {
        "type": "object",
        "properties": {
            "statusCode": {"type": "integer", "enum": [200]},
            "status": {"type": "boolean", "enum": [True]},
        },
        "required": ["statusCode", "status"],
    },
}

_AGENT = {
    "name": "agent",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "The agent's slug; the default agent when left out.",
}
_FORMAT = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["mp3", "wav", "pcm"]},
    "description": "The reply's audio format (else from Accept; MP3 by default).",
}
_QUERY_TEXT = {
    "name": "text",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "The older form of the text, used only when there is no body.",
}
_QUERY_RATE = {
    "name": "sample_rate",
    "in": "query",
    "required": False,
    "schema": {
        "type": "integer",
        "minimum": PCM_SAMPLE_RATES.start,
        "maximum": PCM_SAMPLE_RATES.stop - 1,
    },
    "description": "As the form field of the same name.",
}

_ERRORS = {
    "400": "Bad input (see error.code).",
    "401": "The agent is not public and there is no signed-in user or valid token.",
    "404": "No such agent, or it is inactive.",
    "413": "The body, text or recording is too large.",
    "415": "The body is of the wrong media type.",
    "429": "Too many requests from this address; see Retry-After.",
}


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    described = {**_ERRORS, **dict(extra)}
    return {
        status: {"description": text, "content": _json(_ref(_ERROR))}
        for status, text in sorted(described.items())
    }


def _audio_reply() -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    header = {"schema": {"type": "string"}}
    return {
        "description": f"The spoken reply, streamed as it is synthesised (mono, "
        f"{OUTPUT_SAMPLE_RATE} Hz): concatenated MP3s (default) or raw s16le PCM "
        "as application/octet-stream, or one WAV as audio/wav.",
        "headers": {
            "X-Audio-Format": {**header, "description": "mp3, wav or pcm_s16le"},
            "X-Sample-Rate": {**header, "description": "The rate of the audio."},
            "X-Conversation-Id": {**header, "description": "The stored conversation."},
        },
        "content": {"application/octet-stream": binary, "audio/wav": binary},
    }


def _operation(
    operation_id: str,
    summary: str,
    description: str,
    *,
    parameters: list[dict[str, Any]],
    request_body: dict[str, Any] | None,
    ok: dict[str, Any],
    errors: dict[str, Any],
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [_TAG],
        "parameters": parameters,
        "responses": {"200": ok, **errors},
        # Public agents need nothing; others a session or a token.
        "security": [{}, {"tokenAuth": []}, {"cookieAuth": []}],
    }
    if request_body is not None:
        operation["requestBody"] = request_body
    return operation


def _paths() -> dict[str, dict[str, Any]]:
    speech_errors = [
        ("503", "The speech models are busy (see Retry-After) or unavailable."),
    ]
    return {
        "/processText/": {
            "post": _operation(
                "chatbot_process_text",
                "Speak the reply to a text",
                "The agent's reply to `text`, as audio streamed sentence by sentence while "
                "it is written. Also at /processText (no slash). The older form sends "
                "?text= and no body.",
                parameters=[_AGENT, _FORMAT, _QUERY_TEXT],
                request_body={"required": False, "content": _json(_ref("ChatbotText"))},
                ok=_audio_reply(),
                errors=_errors(*speech_errors),
            )
        },
        "/processAudioFile/": {
            "post": _operation(
                "chatbot_process_audio_file",
                "Speak the reply to a recording",
                "The recording is transcribed with the agent's speech-to-text and answered "
                "as /processText/ answers. Also at /processAudioFile.",
                parameters=[_AGENT, _FORMAT, _QUERY_RATE],
                request_body={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("ChatbotAudioUpload")}},
                },
                ok={
                    **_audio_reply(),
                    "headers": {
                        **_audio_reply()["headers"],
                        "X-Transcript": {
                            "schema": {"type": "string"},
                            "description": "What was heard (percent-encoded UTF-8).",
                        },
                    },
                },
                errors=_errors(("422", "No speech was heard in the recording."), *speech_errors),
            )
        },
        "/queryAssistant/": {
            "post": _operation(
                "chatbot_query_assistant",
                "Answer a prompt in the address's conversation",
                "Each address has one conversation that later prompts continue. Also at "
                "/queryAssistant.",
                parameters=[_AGENT],
                request_body={"required": True, "content": _json(_ref("ChatbotQuery"))},
                ok={"description": "The answer.", "content": _json(_ref("ChatbotAnswer"))},
                errors=_errors(
                    ("403", "The address's conversation belongs to another signed-in user."),
                    ("502", "The language model failed; content is the fallback line."),
                    ("503", "The agent's language model is misconfigured."),
                ),
            )
        },
        "/clearCache/": {
            "post": _operation(
                "chatbot_clear_cache",
                "Start every address's conversation afresh",
                "The agent's per-address conversations start afresh on their next prompt. "
                "Also at /clearCache.",
                parameters=[_AGENT],
                request_body=None,
                ok={
                    "description": "The reset is queued.",
                    "content": _json(_ref("ChatbotCleared")),
                },
                errors={
                    status: response
                    for status, response in _errors().items()
                    if status in ("401", "404", "429")
                },
            )
        },
    }


_SECURITY_SCHEMES = {
    # The same definitions drf-spectacular writes for REST framework's classes.
    "tokenAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    },
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
}


def add_chatbot_paths(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the four chatbot-server operations."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_SCHEMAS)
    schemes = components.setdefault("securitySchemes", {})
    for name, scheme in _SECURITY_SCHEMES.items():
        schemes.setdefault(name, scheme)
    result.setdefault("paths", {}).update(_paths())
    tags = result.setdefault("tags", [])
    if not any(tag.get("name") == _TAG for tag in tags):
        tags.append(
            {
                "name": _TAG,
                "description": "The endpoints of the chatbot server this project replaces.",
            }
        )
    return result
