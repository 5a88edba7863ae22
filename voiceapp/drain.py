"""Draining a server process's live sockets before it stops (no Django).

When a server process is told to stop (SIGTERM, see :mod:`voiceapp.serve`) it stops
accepting connections and *drains*: every registered socket that is not in the middle of
a turn is closed at once with :data:`CLOSE_SERVICE_RESTART`, and a socket that is in a
turn is closed right after that turn's reply has ended and been stored. Clients
reconnect, through the proxy, to another process and carry on: a conversation's state
lives in the database, so any process can continue it.

While draining, no new turn starts: consumers check :func:`draining` before answering a
payload and drop it (the socket is about to close; the client sends it again on its new
connection). A socket that was accepted just before the listener closed is closed as
soon as it registers.

A consumer registers once it is ready to talk, marks its turns and unregisters when it
disconnects::

    restart = functools.partial(self.close, code=drain.CLOSE_SERVICE_RESTART)
    self.live_socket = drain.register(restart)
    async with self.live_socket.turn():
        ...  # answer, store, send the end-of-reply frame
    drain.unregister(self.live_socket)  # in disconnect()

The module keeps one :class:`Registry` per process (a server process runs one event
loop); tests make their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

#: RFC 6455 / IANA close code 1012 "Service Restart": the server is restarting; a client
#: should reconnect (after a short, randomised delay), which reaches another process.
CLOSE_SERVICE_RESTART = 1012

Close = Callable[[], Awaitable[None]]


class LiveSocket:
    """One registered socket: its close callback and whether it is in a turn."""

    def __init__(self, registry: Registry, close: Close) -> None:
        self._registry = registry
        self._close = close
        self._turns = 0
        self.closing = False  # its drain close has been started

    @property
    def in_turn(self) -> bool:
        return self._turns > 0

    def start_turn(self) -> None:
        """A reply is being produced on this socket: a drain waits for :meth:`end_turn`."""
        self._turns += 1

    def end_turn(self) -> None:
        """The reply has ended (and is stored); a draining process closes the socket now."""
        self._turns = max(0, self._turns - 1)
        if not self._turns and self._registry.is_draining:
            self._registry.close_socket(self)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Mark the body as a turn (however it ends: done, failed or cancelled)."""
        self.start_turn()
        try:
            yield
        finally:
            self.end_turn()


class Registry:
    """The live sockets of one process, and its draining state."""

    def __init__(self) -> None:
        self.is_draining = False
        self._sockets: set[LiveSocket] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._emptied = asyncio.Event()  # set whenever the last socket unregisters

    def __len__(self) -> int:
        return len(self._sockets)

    def register(self, close: Close) -> LiveSocket:
        """Track a socket; ``close`` closes it with :data:`CLOSE_SERVICE_RESTART`."""
        socket = LiveSocket(self, close)
        self._sockets.add(socket)
        if self.is_draining:
            self.close_socket(socket)
        return socket

    def unregister(self, socket: LiveSocket | None) -> None:
        """The socket has disconnected (whoever closed it); None is allowed and ignored."""
        if socket is not None:
            self._sockets.discard(socket)
            if not self._sockets:
                self._emptied.set()

    def begin(self) -> None:
        """Start draining: close idle sockets now, the others as their turns end."""
        if self.is_draining:
            return
        self.is_draining = True
        idle = [socket for socket in self._sockets if not socket.in_turn]
        log.info(
            "draining: closing %d idle socket(s) now, %d after their turn",
            len(idle),
            len(self._sockets) - len(idle),
        )
        for socket in idle:
            self.close_socket(socket)

    def close_socket(self, socket: LiveSocket) -> None:
        """Run the socket's close callback once, in a task this registry owns."""
        if socket.closing or socket not in self._sockets:
            return
        socket.closing = True
        task = asyncio.get_running_loop().create_task(self._close(socket))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, socket: LiveSocket) -> None:
        try:
            await socket._close()
        except Exception as exc:
            # The client may have gone already (the close then has nothing to send to);
            # the process is stopping either way, so say so and go on draining the rest.
            log.warning("draining: a socket could not be closed (%s: %s)", type(exc).__name__, exc)

    async def wait_closed(self) -> None:
        """Return once every registered socket has disconnected (bound it with a timeout).

        However it ends, close callbacks still running are cancelled: past this point
        the server's own shutdown closes whatever is left.
        """
        try:
            while self._sockets:
                self._emptied.clear()
                await self._emptied.wait()
        finally:
            for task in list(self._closing):
                task.cancel()
            await asyncio.gather(*self._closing, return_exceptions=True)


_registry = Registry()


def register(close: Close) -> LiveSocket:
    """Track a live socket of this process (see :meth:`Registry.register`)."""
    return _registry.register(close)


def unregister(socket: LiveSocket | None) -> None:
    """Forget a socket that has disconnected (see :meth:`Registry.unregister`)."""
    _registry.unregister(socket)


def draining() -> bool:
    """True once this process has started draining: start no new turn."""
    return _registry.is_draining


def begin() -> None:
    """Start draining this process's sockets (see :meth:`Registry.begin`)."""
    _registry.begin()


async def wait_closed() -> None:
    """Wait for this process's sockets to close (see :meth:`Registry.wait_closed`)."""
    await _registry.wait_closed()
