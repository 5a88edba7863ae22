from django.contrib import admin
from django.urls import include, path

from agents import views as agent_views
from conversations import views as conversation_views
from voiceapp import accounts, health, metrics

admin.site.site_header = "Voice agents"
admin.site.site_title = "Voice agents"
admin.site.index_title = "Agents, conversations and knowledge"

urlpatterns = [
    path("", agent_views.home, name="home"),
    path("agents/<slug:slug>/", agent_views.agent_chat, name="agent-chat"),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path(
        "accounts/password_reset/",
        accounts.PasswordResetView.as_view(),
        name="password_reset",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("voiceapp.api_urls")),
    # The chatbot-server endpoints this project replaces, at the paths its clients call.
    path("", include("conversations.chatbot_urls")),
    # Hume custom-LLM over SSE (the WebSocket form is in conversations/routing.py).
    path(
        "llm/chat/completions",
        conversation_views.clm_chat_completions,
        name="clm-sse-default",
    ),
    path(
        "llm/<slug:slug>/chat/completions",
        conversation_views.clm_chat_completions,
        name="clm-sse",
    ),
]

# The site's own 404 page (500.html is a template Django renders by itself).
handler404 = "voiceapp.errors.not_found"
