from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "knowledge"

    def ready(self) -> None:
        # The tasks here are sent through the project's Celery app: load it with Django,
        # so a web process never sends them through Celery's unconfigured default app.
        import voiceapp.celery  # noqa: F401
