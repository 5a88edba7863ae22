"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceapp.settings")
# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from conversations import warmup  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402
from voiceapp.body_limit import BodyLimit  # noqa: E402

if settings.VOICE_LOAD_MODELS_AT_START:
    warmup.start()

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(django_asgi_app, settings.HTTP_MAX_BODY_BYTES),
        # Each route checks the Origin itself where it faces browsers (see the routing).
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
