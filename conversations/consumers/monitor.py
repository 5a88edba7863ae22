"""A read-only live feed of stored turns for operators (``/ws/monitor``)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from conversations.events import MONITOR_GROUP
from voiceapp import metrics

CLOSE_FORBIDDEN = 4403


class MonitorConsumer(metrics.CountedSocket, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    metrics_socket = "monitor"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await self._can_view(user):
            # Accept first so the client receives the documented close code rather than
            # a bare HTTP 403 from the handshake.
            metrics.error("monitor.forbidden")
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(MONITOR_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(MONITOR_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"type": "error", "message": "this socket is read-only"})

    async def monitor_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    @staticmethod
    async def _can_view(user: Any) -> bool:
        from channels.db import database_sync_to_async

        return bool(await database_sync_to_async(user.has_perm)("conversations.view_conversation"))
