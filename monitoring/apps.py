from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        # Registered in every process, so that services can queue them by name (config/queue.py).
        from monitoring import tasks  # noqa: F401
        from monitoring.selectors import SPARKLINE_DAYS, version_traffic
        from registry.panels import version_panel_register

        # The version page shows the version's summarised traffic from here: the registry does not import
        # monitoring.
        version_panel_register(
            template="monitoring/_version_traffic.html",
            context=lambda version: {"traffic": version_traffic(version=version), "days": SPARKLINE_DAYS},
        )
