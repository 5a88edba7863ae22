"""The server entry point: ``python -m voiceapp.serve [--host H] [--port P] [--ws IMPL]``.

uvicorn serving the project, with a graceful stop. uvicorn's own shutdown sends every
WebSocket close code 1012 at once, which cancels replies half-way; this one, on SIGTERM
or SIGINT:

1. stops accepting connections (the listening socket is closed: a new connection is
   refused, and the proxy sends it to another process);
2. marks the process draining: ``/readyz`` answers 503 (``voiceapp.health``) and no
   socket starts a new turn (:mod:`voiceapp.drain`);
3. closes idle HTTP keep-alive connections, and lets requests in flight finish;
4. closes every idle socket with 1012 at once and every socket in a turn right after its
   reply has ended and been stored, waiting at most ``SHUTDOWN_GRACE_SECONDS``;
5. hands over to uvicorn's shutdown, which closes whatever is left with 1012 (a reply
   still running is then stored as interrupted) and gives the remaining requests the rest
   of the grace time, at least :data:`FINAL_SECONDS`;

then exits with status 0. A second SIGINT skips the waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from voiceapp import drain
from voiceapp.http_limits import DEFAULT_HEADER_TIMEOUT_SECONDS, header_timeout_protocol

log = logging.getLogger("voiceapp.serve")

APP = "voiceapp.asgi:application"
DEFAULT_GRACE_SECONDS = 20
#: Open connections (HTTP and WebSocket) one process takes before it answers 503.
DEFAULT_MAX_CONNECTIONS = 2000
#: Time left, after the grace period, for cancelled replies to be stored and responses
#: to end before the process exits.
FINAL_SECONDS = 3


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains its sockets before the usual shutdown."""

    def __init__(self, config: uvicorn.Config, *, grace_seconds: float) -> None:
        super().__init__(config)
        self.grace_seconds = grace_seconds
        self._drain_waiter: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # As uvicorn's, except that it does not raise the signal again once the server
        # has stopped: a completed graceful stop exits with status 0, not 143.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        waiter = self._drain_waiter
        if self.force_exit and waiter is not None:
            # A second Ctrl+C: stop waiting for turns (runs in the signal handler, so
            # wake the loop through its thread-safe door).
            waiter.get_loop().call_soon_threadsafe(waiter.cancel)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_seconds
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        mark_draining()
        # HTTP: idle keep-alive connections close now; one with a response in flight
        # closes once it is sent. WebSockets are left to the drain.
        ws_protocol = self.config.ws_protocol_class
        for connection in list(self.server_state.connections):
            if ws_protocol is None or not isinstance(connection, ws_protocol):
                connection.shutdown()
        drain.begin()
        waiter = asyncio.create_task(drain.wait_closed())
        self._drain_waiter = waiter
        await asyncio.wait([waiter], timeout=self.grace_seconds)
        if not waiter.done():
            log.warning(
                "draining: sockets still open after %s s; closing them now", self.grace_seconds
            )
            waiter.cancel()
            await asyncio.wait([waiter])
        remaining = max(deadline - loop.time(), FINAL_SECONDS)
        self.config.timeout_graceful_shutdown = math.ceil(remaining)
        await super().shutdown(sockets=sockets)


def mark_draining() -> None:
    """Tell the health checks that this process is going away (``/readyz`` answers 503)."""
    # Imported here, not at the top: it needs Django set up, which loading the app does.
    from voiceapp import health

    health.set_draining(True)


def grace_seconds(environ: Mapping[str, str]) -> int:
    """``SHUTDOWN_GRACE_SECONDS``: a non-negative integer, default 20."""
    raw = environ.get("SHUTDOWN_GRACE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_GRACE_SECONDS
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"SHUTDOWN_GRACE_SECONDS={raw!r} is not an integer") from None
    if value < 0:
        raise SystemExit(f"SHUTDOWN_GRACE_SECONDS={value} must be at least 0")
    return value


def _positive_number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if not value > 0 or not math.isfinite(value):
        raise SystemExit(f"{name}={raw!r} must be a positive number")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voiceapp.serve",
        description="Serve HTTP and WebSockets with uvicorn; drain sockets on SIGTERM.",
    )
    parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=["websockets-sansio", "websockets", "wsproto", "auto"],
        help="uvicorn's WebSocket implementation (default: websockets-sansio)",
    )
    parser.add_argument(
        "--log-level",
        default=(os.environ.get("LOG_LEVEL") or "info").lower(),
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds to let turns finish on SIGTERM (default: SHUTDOWN_GRACE_SECONDS, 20)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    grace = args.grace if args.grace is not None else grace_seconds(os.environ)
    config = uvicorn.Config(
        APP,
        host=args.host,
        port=args.port,
        ws=args.ws,
        log_level=args.log_level,
        # Behind the proxy: trust X-Forwarded-For/-Proto from FORWARDED_ALLOW_IPS
        # (uvicorn's default: 127.0.0.1, where deploy/nginx.conf's nginx runs).
        proxy_headers=True,
        # A request's headers must arrive within this time (uvicorn sets no such limit).
        http=header_timeout_protocol(
            _positive_number(
                os.environ, "SERVER_HEADER_TIMEOUT_SECONDS", DEFAULT_HEADER_TIMEOUT_SECONDS
            )
        ),
        # Past this many open connections (HTTP and WebSocket together) or requests in
        # progress, new requests get 503 rather than slowing everyone down.
        limit_concurrency=int(
            _positive_number(os.environ, "SERVER_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)
        ),
    )
    server = DrainingServer(config, grace_seconds=grace)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's own exit status for a failed start


if __name__ == "__main__":
    main()
