"""The chatbot-server endpoints at the paths its clients call, with or without the slash.

The old server declared them with a trailing slash and answered the bare form with a
redirect, which a POST does not survive in every client; here both forms answer.
"""

from django.urls import URLPattern, URLResolver, re_path

from conversations import chatbot

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^processText/?$", chatbot.process_text, name="chatbot-process-text"),
    re_path(r"^processAudioFile/?$", chatbot.process_audio_file, name="chatbot-process-audio"),
    re_path(r"^queryAssistant/?$", chatbot.query_assistant, name="chatbot-query-assistant"),
    re_path(r"^clearCache/?$", chatbot.clear_cache, name="chatbot-clear-cache"),
]
