"""Project package: settings, ASGI routing, URLs and the Celery app."""

from voiceapp.celery import app as celery_app

__all__ = ["celery_app"]
