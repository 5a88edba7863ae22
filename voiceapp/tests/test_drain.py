"""Draining live sockets before a process stops (voiceapp.drain, no server needed)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from voiceapp.drain import Registry


class Socket:
    """Stands in for a consumer: records its closes, unregisters as a consumer would."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.closes = 0
        self.live = registry.register(self.close)

    async def close(self) -> None:
        self.closes += 1
        self.registry.unregister(self.live)  # the disconnect that a close brings


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_idle_socket_is_closed_as_soon_as_draining_begins() -> None:
    registry = Registry()
    socket = Socket(registry)
    registry.begin()
    await settle()
    assert (socket.closes, len(registry), registry.is_draining) == (1, 0, True)


async def test_a_socket_in_a_turn_is_closed_right_after_the_turn() -> None:
    registry = Registry()
    socket = Socket(registry)
    async with socket.live.turn():
        registry.begin()
        await settle()
        assert socket.closes == 0
    await settle()
    assert (socket.closes, len(registry)) == (1, 0)


async def test_a_turn_that_fails_still_lets_the_socket_close() -> None:
    registry = Registry()
    socket = Socket(registry)
    registry.begin()
    with pytest.raises(RuntimeError):
        async with socket.live.turn():
            raise RuntimeError("the reply failed")
    await settle()
    assert socket.closes == 1


async def test_without_draining_a_turn_ending_closes_nothing() -> None:
    registry = Registry()
    socket = Socket(registry)
    async with socket.live.turn():
        pass
    await settle()
    assert (socket.closes, len(registry), registry.is_draining) == (0, 1, False)


async def test_a_socket_registered_while_draining_is_closed_at_once() -> None:
    registry = Registry()
    registry.begin()
    socket = Socket(registry)
    await settle()
    assert socket.closes == 1


async def test_a_socket_that_disconnected_by_itself_is_not_closed_again() -> None:
    registry = Registry()
    socket = Socket(registry)
    async with socket.live.turn():
        registry.begin()
        registry.unregister(socket.live)  # the client went away mid-turn
    await settle()
    assert socket.closes == 0


async def test_wait_closed_returns_once_the_last_socket_has_gone() -> None:
    registry = Registry()
    busy, idle = Socket(registry), Socket(registry)
    busy.live.start_turn()
    registry.begin()
    waiter = asyncio.create_task(registry.wait_closed())
    await settle()
    assert (idle.closes, waiter.done()) == (1, False)
    busy.live.end_turn()
    await asyncio.wait_for(waiter, timeout=1)
    assert (busy.closes, len(registry)) == (1, 0)


async def test_wait_closed_is_bounded_by_the_caller() -> None:
    registry = Registry()
    stuck = Socket(registry)
    stuck.live.start_turn()  # a turn that never ends
    registry.begin()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await registry.wait_closed()
    assert (stuck.closes, len(registry)) == (0, 1)


async def test_a_failing_close_is_logged_and_the_others_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()

    async def broken() -> None:
        raise ConnectionResetError("the client is gone")

    registry.register(broken)
    socket = Socket(registry)
    with caplog.at_level(logging.WARNING, logger="voiceapp.drain"):
        registry.begin()
        await settle()
    assert socket.closes == 1
    assert [r.getMessage() for r in caplog.records] == [
        "draining: a socket could not be closed (ConnectionResetError: the client is gone)"
    ]
