import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("model_factory")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _import_model_libraries(**_: object) -> None:
    """Import skops in the worker's main process, before its pool forks: the import alone takes ~2 s (it
    lists every scikit-learn estimator), which each pool process would otherwise pay on its first model."""
    import skops.io  # noqa: F401
