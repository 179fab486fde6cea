from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self) -> None:
        # tasks: registered in every process, so that services can queue them by name (config/queue.py).
        from registry.panels import model_panel_register, version_panel_register
        from scoring import tasks  # noqa: F401
        from scoring.selectors import model_sql_runs, version_sql_runs, version_usage

        # The version page shows real-time usage from here: the registry does not import scoring.
        version_panel_register(
            template="scoring/_version_usage.html",
            context=lambda version: {"usage": version_usage(version=version)},
        )
        version_panel_register(
            template="scoring/_version_sql.html",
            context=lambda version: {"runs": version_sql_runs(version=version)},
        )
        model_panel_register(
            template="scoring/_model_sql.html", context=lambda model: {"runs": model_sql_runs(model=model)}
        )
