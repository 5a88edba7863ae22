"""Waiting in tests: on the event, with a generous deadline, never on a guess of speed.

CI shares its two cores with other work, and a test that sleeps "long enough" on a quiet
machine fails on a busy one. The rules every test here follows:

- Wait for the thing itself: a frame, a stored row, a log line, a closed connection, a
  counter reaching its value. If the code under test offers an event (an
  ``asyncio.Event``, a future, a socket read that returns when data or the close comes),
  await that with a timeout: ``async with asyncio.timeout(30)`` or a ``timeout=``.
- When there is nothing to await (another process or thread changes the state), poll
  the observable state with :func:`until` / :func:`wait_until`: a short interval, a long
  deadline (30 s unless the thing is known to be slower), and a message that says what
  was awaited. The interval costs nothing on a fast machine; the deadline only matters
  when something is really broken.
- Never assert that something did *not* happen after a fixed pause: make the absence
  observable instead (send a probe and wait for its answer; the answer comes after any
  earlier reply would have).
- Timing figures belong in ``bench/``, not in assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

DEFAULT_TIMEOUT_S = 30.0


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    what: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = 0.02,
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = 0.02,
) -> None:
    """:func:`until` for synchronous tests."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)
