"""WebSocket routes of the conversations app.

Browser-facing sockets check the Origin header against ALLOWED_HOSTS. The Hume CLM socket
is opened by Hume's servers, which send no browser Origin: it is protected by the agent's
token instead.
"""

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from conversations.consumers.chat import ChatConsumer
from conversations.consumers.clm import ClmConsumer
from conversations.consumers.monitor import MonitorConsumer
from conversations.consumers.voice import VoiceConsumer

websocket_urlpatterns = [
    path("llm", ClmConsumer.as_asgi()),
    path("llm/<slug:slug>", ClmConsumer.as_asgi()),
    path("conversation", AllowedHostsOriginValidator(VoiceConsumer.as_asgi())),
    path("conversation/websocket", AllowedHostsOriginValidator(VoiceConsumer.as_asgi())),
    path("agents/<slug:slug>/conversation", AllowedHostsOriginValidator(VoiceConsumer.as_asgi())),
    path("chat", AllowedHostsOriginValidator(ChatConsumer.as_asgi())),
    path("agents/<slug:slug>/chat", AllowedHostsOriginValidator(ChatConsumer.as_asgi())),
    path("ws/monitor", AllowedHostsOriginValidator(MonitorConsumer.as_asgi())),
]
