from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        # tasks: registered in every process, so that services can queue them by name (config/queue.py).
        from registry import roles, tasks  # noqa: F401

        post_migrate.connect(roles.ensure_roles_after_migrate, sender=self)
