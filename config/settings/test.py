"""Test settings: fast hashing, eager Celery unless a test starts a real worker."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import DATA_DIR, DATABASES, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"},
}
MF_PREDICTION_LOG = "sync"
MF_RETRAINING_PACKAGES = ["demo", "tests"]
MF_PRODUCTION_REFRESH_SECONDS = 0.0
MF_CONSUMER_TOKEN_CACHE_SECONDS = 0.0
MF_USER_TOKEN_CACHE_SECONDS = 0.0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file rather than memory, so a real worker process can share the test database; one per
    # test process, so that two suites running at once do not destroy each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
# pytest-django's live server serves static files from the finders, by their plain names.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
