from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self) -> None:
        # Registered in every process, so that services can queue them by name (config/queue.py).
        from scoring import tasks  # noqa: F401
