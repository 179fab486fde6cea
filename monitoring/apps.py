from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        # Registered in every process, so that services can queue them by name (config/queue.py).
        from monitoring import tasks  # noqa: F401
