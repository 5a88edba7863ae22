"""WebSocket routes of the conversations app.

Browser-facing sockets check the Origin header against ALLOWED_HOSTS. The Hume CLM socket
is opened by Hume's servers, which send no browser Origin: it is protected by the agent's
token instead.
"""

from django.urls import path

from conversations.access import SiteOriginValidator
from conversations.consumers.chat import ChatConsumer
from conversations.consumers.clm import ClmConsumer
from conversations.consumers.monitor import MonitorConsumer
from conversations.consumers.voice import VoiceConsumer

websocket_urlpatterns = [
    path("llm", ClmConsumer.as_asgi()),
    path("llm/<slug:slug>", ClmConsumer.as_asgi()),
    path("conversation", SiteOriginValidator(VoiceConsumer.as_asgi())),
    path("conversation/websocket", SiteOriginValidator(VoiceConsumer.as_asgi())),
    path("agents/<slug:slug>/conversation", SiteOriginValidator(VoiceConsumer.as_asgi())),
    path("chat", SiteOriginValidator(ChatConsumer.as_asgi())),
    path("agents/<slug:slug>/chat", SiteOriginValidator(ChatConsumer.as_asgi())),
    path("ws/monitor", SiteOriginValidator(MonitorConsumer.as_asgi())),
]
