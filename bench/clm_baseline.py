"""The baseline for bench/clm_load.py: a bare ASGI custom-LLM server, no persistence.

The same ELIZA engine (and the same bundled script, sentence-cased the same way) behind a
minimal ASGI WebSocket app: one engine per connection, state only in memory, no Django,
no database. Serve it with ``uvicorn bench.clm_baseline:app``.
"""

from __future__ import annotations

import json
from typing import Any

from agents.eliza import Eliza, load_default_script, sentence_case

SCRIPT = load_default_script()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    engines: dict[str | None, Eliza] = {}
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        payload = json.loads(message.get("text") or message.get("bytes") or b"")
        session = payload.get("custom_session_id")
        engine = engines.setdefault(session, Eliza(SCRIPT))
        text = payload["messages"][-1]["message"]["content"].split("{")[0]
        reply = sentence_case(engine.respond(text))
        await send(
            {
                "type": "websocket.send",
                "text": json.dumps({"type": "assistant_input", "text": reply}),
            }
        )
        await send({"type": "websocket.send", "text": json.dumps({"type": "assistant_end"})})
