"""Settings for Model Factory.

Everything has an embedded default (SQLite, a file-system Celery broker, files under ./var) so a
fresh clone runs with no server; DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly
from celery.schedules import crontab
from csp.constants import NONE, SELF, UNSAFE_INLINE

from config.env import env_bool, env_hosts, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env_str("MF_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    configured = env_str("DJANGO_SECRET_KEY", "")
    if configured:
        return configured
    # Development default: one random key per data directory, so sessions survive restarts and
    # every process (web, worker, beat) agrees on it.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    # User API tokens: stored as hashes, expiring, revocable (DRF's authtoken keeps keys in plain text).
    "knox",
    # Failed logins (pages, admin and the API token endpoint) are counted and locked out.
    "axes",
    "csp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "registry",
    "monitoring",
    "scoring",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A NUL character in the URL is a 404 or 400 (config/middleware.py): PostgreSQL would refuse it with a 500.
    "config.middleware.RefuseNulInUrlMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.PagesLoginRequiredMiddleware",
    # A signed-in account with no role gets 403 on every page (config/access.py).
    "config.access.RoleRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database or broker that is down answers 503 with Retry-After (config/errors.py), not 500.
    "config.errors.DependencyUnavailableMiddleware",
    # Last, as axes asks: it turns a lockout flagged during authentication into the 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "registry.context_processors.navigation",
            ],
        },
    },
]

_SQLITE_OPTIONS = {
    # The web server, the worker and beat write to the same file: WAL lets readers proceed while
    # one writes, IMMEDIATE takes the write lock up front instead of failing mid-transaction.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    # Health checks: a connection kept from before a database restart is replaced, not used and failed.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # An unreachable database fails a request within seconds (a 503), not after the OS's TCP timeout.
        DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
            "MF_DATABASE_CONNECT_TIMEOUT_SECONDS", 3, minimum=1
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "db.sqlite3"),
            "OPTIONS": _SQLITE_OPTIONS,
        }
    }
# Databases that batch jobs may read with a SQL query: MF_SCORING_DATABASES="warehouse=postgres://…".
# Each gets a connection of its own; a job names one of them, never the app's own database.
MF_SCORING_DATABASES: dict[str, str] = {}
for _name, _, _url in (item.partition("=") for item in env_list("MF_SCORING_DATABASES", [])):
    DATABASES[f"scoring_{_name}"] = dj_database_url.parse(_url)
    MF_SCORING_DATABASES[_name] = f"scoring_{_name}"
# Server-side batch inputs are read from this folder only.
MF_BATCH_INPUT_DIR = Path(env_str("MF_BATCH_INPUT_DIR", str(DATA_DIR / "batch-inputs")))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# AxesStandaloneBackend refuses a locked-out username/address before ModelBackend checks the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_REDIRECT_URL = "registry:model-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
# plotly.js comes from the plotly package, at the version the charts are built for.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
MEDIA_ROOT = Path(env_str("MF_ARTIFACT_DIR", str(DATA_DIR / "artifacts"))).resolve()
STORAGES = {
    # Artifacts are served only through views that check access, never from a public URL.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The prediction archive (scoring/archive): logged predictions and actuals as Parquet, compacted hourly.
# A local directory by default; MF_ARCHIVE_URL="s3://bucket/prefix" (or any pyarrow/fsspec URL) for
# object storage. The hot table keeps MF_PREDICTION_HOT_DAYS of rows for lookups and reproduction;
# archive files older than MF_PREDICTION_ARCHIVE_DAYS are deleted (0, the default, keeps them forever).
MF_ARCHIVE_URL = env_str("MF_ARCHIVE_URL", str(MEDIA_ROOT / "archive"))
MF_PREDICTION_HOT_DAYS = env_int("MF_PREDICTION_HOT_DAYS", 14, minimum=1)
MF_PREDICTION_ARCHIVE_DAYS = env_int("MF_PREDICTION_ARCHIVE_DAYS", 0, minimum=0)
# Real-time usage counters (scoring.models.ScoringStats) are written per minute and rolled up hourly by
# beat: minutes older than MF_USAGE_MINUTES_HOURS become hours, hours older than MF_USAGE_HOURS_DAYS days.
MF_USAGE_MINUTES_HOURS = env_int("MF_USAGE_MINUTES_HOURS", 48, minimum=1)
MF_USAGE_HOURS_DAYS = env_int("MF_USAGE_HOURS_DAYS", 30, minimum=1)

# Upload limit for one file; the default suits scikit-learn artifacts and reference samples.
MF_MAX_UPLOAD_BYTES = env_int("MF_MAX_UPLOAD_MB", 500, minimum=1) * 1024 * 1024
# Zip uploads (MLflow model directories, skops files) are refused before any member is read when
# they would expand past this size or by more than this ratio (decompression bombs).
MF_ZIP_MAX_UNCOMPRESSED_BYTES = env_int("MF_ZIP_MAX_UNCOMPRESSED_MB", 2048, minimum=1) * 1024 * 1024
MF_ZIP_MAX_COMPRESSION_RATIO = env_int("MF_ZIP_MAX_COMPRESSION_RATIO", 200, minimum=2)
# Importing versions from MLflow tracking servers (registry/mlflow_import.py). Model Factory fetches
# only from the hosts listed here (host, host:port or .domain), so that nobody can make it request an
# internal address; empty, imports are refused. Credentials come from MLflow's own variables, sent to
# those hosts only and never stored: a bearer token, or a username and password (basic auth).
MF_MLFLOW_ALLOWED_HOSTS = env_hosts("MF_MLFLOW_ALLOWED_HOSTS")
MLFLOW_TRACKING_TOKEN = env_str("MLFLOW_TRACKING_TOKEN", "")
MLFLOW_TRACKING_USERNAME = env_str("MLFLOW_TRACKING_USERNAME", "")
MLFLOW_TRACKING_PASSWORD = env_str("MLFLOW_TRACKING_PASSWORD", "")
# Per request to the tracking server (connecting, and each wait for data while downloading).
MF_MLFLOW_TIMEOUT_SECONDS = env_int("MF_MLFLOW_TIMEOUT_SECONDS", 10, minimum=1)
FILE_UPLOAD_HANDLERS = [
    "registry.uploads.LimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "uploads")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "cache"),
    },
    # Rate-limit counters are checked on every prediction: kept in memory, per process.
    "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"},
}

# --- scoring ------------------------------------------------------------------------------------
# scikit-learn models are compiled to ONNX at registration and serve with onnxruntime once the
# "Compiled model agrees" check has verified the graph; off: no compilation, the native model serves.
MF_COMPILE_MODELS = env_bool("MF_COMPILE_MODELS", True)
# How long a web process trusts its idea of the production version before asking the database.
MF_PRODUCTION_REFRESH_SECONDS = float(env_str("MF_PRODUCTION_REFRESH_SECONDS", "1.0"))
# "buffered": predictions are written by a background thread every MF_PREDICTION_LOG_FLUSH_SECONDS
# (off the request path); "sync": in the request (tests).
MF_PREDICTION_LOG = env_str("MF_PREDICTION_LOG", "buffered")
MF_PREDICTION_LOG_FLUSH_SECONDS = float(env_str("MF_PREDICTION_LOG_FLUSH_SECONDS", "1.0"))
MF_CONSUMER_RATE_LIMIT = env_str("MF_CONSUMER_RATE_LIMIT", "500/s")
# A revoked or rotated consumer token stops working within this many seconds.
MF_CONSUMER_TOKEN_CACHE_SECONDS = float(env_str("MF_CONSUMER_TOKEN_CACHE_SECONDS", "10"))
# A revoked user token, or a user's removed role, stops working in other web processes within this many seconds.
MF_USER_TOKEN_CACHE_SECONDS = float(env_str("MF_USER_TOKEN_CACHE_SECONDS", "10"))
# A consumer token expires this many days after it is issued, unless its owner sets another date.
MF_CONSUMER_TOKEN_DAYS = env_int("MF_CONSUMER_TOKEN_DAYS", 365, minimum=1)
# A failed webhook delivery is retried after this many seconds, then after twice as long each time.
MF_WEBHOOK_BACKOFF_SECONDS = env_int("MF_WEBHOOK_BACKOFF_SECONDS", 30, minimum=0)

EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "model-factory@localhost")

# --- security -----------------------------------------------------------------------------------
# Headers on every response, whatever the settings module; production.py adds HSTS and cookie flags.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# No inline script, style or event handler runs on any page (notebooks and Markdown included): every
# script and stylesheet is a static file. data: images are the notebooks' embedded plots (the
# sanitiser lets only raster data: URLs through). Views with other needs (Swagger UI, Evidently's
# sandboxed report) set their own policy.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        # Two hashes for plotly.js, and no other inline CSS: it creates an empty <style> element (the
        # hash of "") and fills it through the CSSOM, which CSP does not restrict; and it injects
        # maplibre's fixed stylesheet (".maplibregl-map{...}") as one <style>. A plotly upgrade that
        # changes that text shows up as a violation in tests/e2e/test_content_security_policy.py.
        "style-src": [
            SELF,
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
            "'sha256-gG0b4ixT/IQUp7JJLbyKcpYcYDjq2Wp8NGv3f+aasqo='",
        ],
        # Style attributes set by plotly.js (e.g. image-rendering on heatmaps, which blur without it).
        # They cannot run script; <style> elements stay limited to the two hashes above.
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Failed logins: after MF_LOGIN_FAILURE_LIMIT failures for one username from one address, that pair
# is locked out for MF_LOGIN_COOLOFF_MINUTES (a page says so; the API answers 429). Counting the pair,
# not the username alone, keeps an attacker from locking real users out from elsewhere.
AXES_FAILURE_LIMIT = env_int("MF_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("MF_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The lockout runs from the failure that caused it; more tries while locked out do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "config.middleware.login_lockout_response"
# The client address is REMOTE_ADDR unless a trusted proxy is configured: an X-Forwarded-For sent
# by the client itself would otherwise give an attacker a fresh address, and fresh tries, per request.
AXES_IPWARE_META_PRECEDENCE_ORDER = env_list("MF_CLIENT_IP_HEADERS", ["REMOTE_ADDR"])
AXES_IPWARE_PROXY_COUNT = env_int("MF_TRUSTED_PROXY_COUNT", 0, minimum=0) or None

# User API tokens (POST /api/auth/token/): knox stores a SHA-512 of each token, one per login, expiring
# after MF_API_TOKEN_TTL_HOURS; POST /api/auth/token/revoke/ (and revoke-all/) deletes them.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_int("MF_API_TOKEN_TTL_HOURS", 24, minimum=1)),
    # Tells a user token from a consumer token (mfc_) at a glance, and to secret scanners.
    "TOKEN_PREFIX": "mfu_",
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.authentication.UserTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Signed in with a role, or a consumer token where a view accepts one (config/access.py).
    "DEFAULT_PERMISSION_CLASSES": ["config.access.HasRole"],
    # DRF's three, refusing as a 400 what would fail further on: JSON too deep, NUL characters, 1e400...
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "config.parsers.FormParser",
        "config.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"consumer": MF_CONSUMER_RATE_LIMIT},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Model Factory API",
    "DESCRIPTION": (
        "Registry, governance, scoring and monitoring of machine-learning models. "
        "Authenticate with `Authorization: Token <token>` (POST /api/auth/token/; tokens expire, "
        "POST /api/auth/token/revoke/ ends one)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" of their own; each enum gets a name that says whose it is.
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "registry.choices.VersionStatus",
        "CheckRunStatusEnum": "registry.models.CheckRun.Status",
        "WebhookDeliveryStatusEnum": "registry.models.WebhookDelivery.Status",
        "BatchRunStatusEnum": "scoring.models.BatchRun.Status",
        "BatchChunkStatusEnum": "scoring.models.BatchChunk.Status",
        "ReportStatusEnum": "monitoring.models.Report.Status",
        "AlertStatusEnum": "monitoring.models.Alert.Status",
        "RetrainingRunStatusEnum": "monitoring.models.RetrainingRun.Status",
    },
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Bodies are documented as JSON (and multipart where a view says so); the form parsers still accept
    # browsers' posts, but one body offered in three encodings makes generated clients send all three.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A task a killed worker had taken is handed out again once this long has passed unacknowledged;
    # longer than any task's time limit, so that a slow task is never run twice at once.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("MF_BROKER_VISIBILITY_TIMEOUT_SECONDS", 3900, minimum=1)
    }
# Tasks go to (and workers read) this queue: instances sharing one broker keep to their own.
CELERY_TASK_DEFAULT_QUEUE = env_str("MF_CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged only when it has finished, so a worker killed mid-task hands it to another.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("MF_TASK_TIME_LIMIT_SECONDS", 3600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_TASK_ALWAYS_EAGER = env_bool("MF_CELERY_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queuing a task while the broker is unreachable fails within seconds (a 503), instead of waiting on TCP.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("MF_BROKER_CONNECT_TIMEOUT_SECONDS", 2, minimum=1)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Packages whose functions may be retraining recipes (workers run them), comma-separated. None by default:
# no code may run as a recipe until an operator lists its package (`make run` lists the demo's).
MF_RETRAINING_PACKAGES = env_list("MF_RETRAINING_PACKAGES", [])
# A batch run none of whose chunks has finished for this long has its remaining chunks queued again
# (longer than a chunk's time limit, so a slow chunk is not mistaken for a lost one).
MF_BATCH_STALL_MINUTES = env_int("MF_BATCH_STALL_MINUTES", 20, minimum=16)
# Evidently's own HTML report of a window is built by a worker from a uniform random sample of at most this
# many of the window's rows (and as many of the baseline's): Evidently needs seconds and about a gigabyte
# per million rows, and a sample of this size gives its charts and verdicts at a fixed cost.
MF_EVIDENTLY_SAMPLE_ROWS = env_int("MF_EVIDENTLY_SAMPLE_ROWS", 50_000, minimum=100)
# Compaction archives hours that ended a grace ago (scoring/archive/lifecycle.py), so 5 minutes past the
# hour finds the last hour complete; the other runs catch up after an outage sooner.
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-batch-chunks": {"task": "scoring.tasks.requeue_stalled_chunks", "schedule": 300.0},
    "archive-predictions": {"task": "scoring.tasks.archive_predictions", "schedule": crontab(minute="5-59/15")},
    "archive-actuals": {"task": "monitoring.tasks.archive_actuals", "schedule": crontab(minute="5-59/15")},
    "summarise-archived-hours": {
        "task": "monitoring.tasks.summarise_archived_hours",
        "schedule": crontab(minute="10-59/15"),
    },
    "roll-up-usage-counters": {"task": "scoring.tasks.roll_up_usage", "schedule": 3600.0},
}
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("MF_LOG_LEVEL", "INFO")},
}
