"""Live events for operators, sent through the channel layer.

With Redis configured the layer spans processes, so a turn stored by any server process
reaches an operator watching from any other.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

MONITOR_GROUP = "monitor"


def monitor_publish(event: dict[str, Any]) -> None:
    """Send ``event`` (with a ``kind`` key) to every connected monitor socket."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(MONITOR_GROUP, {"type": "monitor.event", "event": event})
