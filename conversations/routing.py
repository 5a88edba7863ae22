"""WebSocket routes of the conversations app."""

from django.urls import path

from conversations.consumers.monitor import MonitorConsumer

websocket_urlpatterns = [
    path("ws/monitor", MonitorConsumer.as_asgi()),
]
