"""Project package: settings, ASGI routing, URLs and the Celery app (``voiceapp.celery``,
loaded when Django starts, by the knowledge app that owns the tasks)."""
