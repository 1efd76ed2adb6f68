"""Firebreak settings.

Everything that differs between a laptop and production comes from the environment.
The defaults are the embedded ones (SQLite, local-memory cache, a filesystem broker) so
`make run` works on a machine with no services; DATABASE_URL and REDIS_URL switch to
PostgreSQL and Redis, the production shape.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FIREBREAK_VAR_DIR", str(BASE_DIR / "var")))
# Celery beat keeps its schedule file here whatever the database; a fresh checkout on
# PostgreSQL and Redis has no other reason to create it. (Unwritable: beat says so.)
with contextlib.suppress(OSError):
    VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on-" + "x" * 20

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "guardian",
    "oncall",
    "incidents",
    "postmortems",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "incidents.statuspages.caching.StatusPageCacheMiddleware",  # public pages before sessions
    "incidents.alerting.middleware.MachineEndpointMiddleware",  # alert intake, likewise
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "oncall.middleware.HtmxSignInMiddleware",
    "oncall.middleware.ViewerTimezoneMiddleware",
]

# Where views marked machine_endpoint (alert intake, heartbeat pings) live: called ahead of
# the browser's middleware (incidents/alerting/middleware.py).
MACHINE_ENDPOINT_PREFIXES = ["/integrations/"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            # template_partials' loader lets a view render "page.html#fragment".
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        (
                            "django.template.loaders.cached.Loader",
                            [
                                "django.template.loaders.filesystem.Loader",
                                "django.template.loaders.app_directories.Loader",
                            ],
                        )
                    ],
                )
            ],
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "incidents.context_processors.incident_permissions",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # The same backend with a health check that needs no round trip (see its module).
        DATABASES["default"]["ENGINE"] = "config.postgresql"
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "firebreak.sqlite3",
            # The web server and the Celery worker write to the same file: WAL lets readers
            # carry on during a write, IMMEDIATE transactions queue writers instead of failing
            # them with "database is locked" on lock upgrade.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Alert intake's per-alert statement goes as a prepared statement (incidents/alerting/
# prepared.py). 0 for a pooler in transaction mode that cannot follow them.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
# ...and keep one generic plan each (config/postgresql). A session setting: 0 behind a pooler
# in transaction mode, which should set plan_cache_mode on the role instead.
DB_GENERIC_PLANS = env_bool("DB_GENERIC_PLANS", DB_PREPARED_STATEMENTS)

# --- Cache and broker -----------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "firebreak",
        }
    }
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
else:
    CACHES = {
        "default": {
            # Shared between the web server and the worker without a server process.
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")

CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    (CELERY_BROKER_FOLDER / "out").mkdir(parents=True, exist_ok=True)
    (CELERY_BROKER_FOLDER / "processed").mkdir(parents=True, exist_ok=True)
    (CELERY_BROKER_FOLDER / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "out"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "out"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
else:
    # No ETA/countdown in Firebreak outlives this: the database decides what is due.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "stakeholder-update-reminders": {
        "task": "incidents.tasks.stakeholder_update_reminders_sweep",
        "schedule": float(env_int("UPDATE_REMINDER_SWEEP_SECONDS", 30)),
    },
    # The paging heartbeat: starts due escalation steps and hands due notifications to
    # workers. Work is also enqueued the moment it is created; this catches anything a
    # lost message or a killed worker left behind.
    "oncall-tick": {
        "task": "oncall.tasks.oncall_tick",
        "schedule": float(env_int("ONCALL_TICK_SECONDS", 2)),
    },
    "handoff-notices": {
        "task": "oncall.tasks.handoff_notices_sweep",
        "schedule": float(env_int("HANDOFF_SWEEP_SECONDS", 60)),
    },
    # Creates required postmortems that are missing and reminds owners of late ones.
    "postmortem-policy": {
        "task": "postmortems.tasks.postmortem_policy_sweep",
        "schedule": float(env_int("POSTMORTEM_SWEEP_SECONDS", 300)),
    },
    # Daily digests of due-soon/overdue action items, once per owner per day.
    "action-item-reminders": {
        "task": "postmortems.tasks.action_item_reminders_sweep",
        "schedule": float(env_int("ACTION_ITEM_SWEEP_SECONDS", 900)),
    },
    # Missed heartbeat pings raise alerts; old resolved alerts' payloads are cleared.
    "heartbeats": {
        "task": "incidents.alerting.tasks.heartbeats_sweep",
        "schedule": float(env_int("HEARTBEAT_SWEEP_SECONDS", 30)),
    },
    # Alerts a maintenance window held back that still fire when it ends are routed then.
    "alert-maintenance-release": {
        "task": "incidents.alerting.routing_tasks.alerts_maintenance_release",
        "schedule": float(env_int("MAINTENANCE_RELEASE_SECONDS", 30)),
    },
    # Alert arrivals whose gathering was lost (a web process died mid-request).
    "alert-arrivals-overdue": {
        "task": "incidents.alerting.routing_tasks.alerts_arrivals_overdue",
        "schedule": 30.0,
    },
    "alert-payload-retention": {
        "task": "incidents.alerting.tasks.alert_payloads_expire",
        "schedule": 3600.0,
    },
    # Scheduled maintenance starts/completes on time; status-page deliveries a lost
    # message or a killed worker left behind are handed out again.
    "status-tick": {
        "task": "incidents.statuspages.tasks.status_tick",
        "schedule": float(env_int("STATUS_TICK_SECONDS", 30)),
    },
}

# Database sessions read through the cache; signing in keeps working while Redis is down.
SESSION_ENGINE = "config.sessions"

# --- Auth and permissions -------------------------------------------------------------
AUTH_USER_MODEL = "oncall.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; pages need a login.
GUARDIAN_RAISE_403 = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Internationalisation and time ----------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG and not env_str("EMAIL_HOST")
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Firebreak <firebreak@localhost>")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Security -------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
# Load balancers probe /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", [])

# --- Paging ---------------------------------------------------------------------------
# SMS through any HTTP gateway: the body template gets {to} and {text} (JSON-escaped).
SMS_GATEWAY_URL = env_str("SMS_GATEWAY_URL", "")
SMS_GATEWAY_AUTH_HEADER = env_str("SMS_GATEWAY_AUTH_HEADER", "")  # "Authorization: Bearer …"
SMS_GATEWAY_BODY_TEMPLATE = env_str("SMS_GATEWAY_BODY_TEMPLATE", '{"to": "{to}", "text": "{text}"}')
NOTIFIER_TIMEOUT_SECONDS = env_int("NOTIFIER_TIMEOUT_SECONDS", 5)
# At most this many notifications per contact method per window; the rest are bundled.
NOTIFY_THROTTLE_COUNT = env_int("NOTIFY_THROTTLE_COUNT", 5)
NOTIFY_THROTTLE_WINDOW_SECONDS = env_int("NOTIFY_THROTTLE_WINDOW_SECONDS", 600)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 5)
ACK_LINK_MAX_AGE_HOURS = env_int("ACK_LINK_MAX_AGE_HOURS", 24)
HANDOFF_NOTICE_MINUTES = env_int("HANDOFF_NOTICE_MINUTES", 60)

# --- Alerts ---------------------------------------------------------------------------
# A new alert on a service joins that service's open incident if one of its alerts was
# seen within this many minutes; otherwise it opens a new incident.
ALERT_GROUPING_WINDOW_MINUTES = env_int("ALERT_GROUPING_WINDOW_MINUTES", 10)
# Requests per minute one integration may send, counted across all web processes (0: off).
ALERT_RATE_LIMIT_PER_MINUTE = env_int("ALERT_RATE_LIMIT_PER_MINUTE", 1800)
# Stored payloads of alerts resolved longer ago than this are cleared (the alert stays).
ALERT_PAYLOAD_RETENTION_DAYS = env_int("ALERT_PAYLOAD_RETENTION_DAYS", 30)

# --- Status page subscribers and maintenance -------------------------------------------
STATUS_SUBSCRIBE_WINDOW_SECONDS = env_int("STATUS_SUBSCRIBE_WINDOW_SECONDS", 600)
STATUS_SUBSCRIBE_PER_IP = env_int("STATUS_SUBSCRIBE_PER_IP", 10)  # per window
STATUS_SUBSCRIBE_PER_ADDRESS = env_int("STATUS_SUBSCRIBE_PER_ADDRESS", 3)  # per window
STATUS_CONFIRMATION_RESEND_MINUTES = env_int("STATUS_CONFIRMATION_RESEND_MINUTES", 15)
STATUS_CONFIRMATION_MAX_AGE_HOURS = env_int("STATUS_CONFIRMATION_MAX_AGE_HOURS", 48)
STATUS_DELIVERY_BATCH = env_int("STATUS_DELIVERY_BATCH", 50)  # deliveries per Celery task
STATUS_DELIVERY_SWEEP_LIMIT = env_int("STATUS_DELIVERY_SWEEP_LIMIT", 10000)
STATUS_DELIVERY_MAX_ATTEMPTS = env_int("STATUS_DELIVERY_MAX_ATTEMPTS", 6)
STATUS_DELIVERY_BACKOFF_SECONDS = env_int("STATUS_DELIVERY_BACKOFF_SECONDS", 10)
STATUS_MAINTENANCE_NOTICE_MINUTES = env_int("STATUS_MAINTENANCE_NOTICE_MINUTES", 60)

# --- Postmortems and action items -------------------------------------------------------
ACTION_ITEM_DUE_SOON_DAYS = env_int("ACTION_ITEM_DUE_SOON_DAYS", 7)
ACTION_ITEM_ESCALATE_AFTER_DAYS = env_int("ACTION_ITEM_ESCALATE_AFTER_DAYS", 7)
ACTION_ITEM_DIGEST_HOUR = env_int("ACTION_ITEM_DIGEST_HOUR", 8)  # recipient's local time

# --- Firebreak ------------------------------------------------------------------------
TIMELINE_POLL_SECONDS = env_int("TIMELINE_POLL_SECONDS", 3)
TIMELINE_PAGE_SIZE = env_int("TIMELINE_PAGE_SIZE", 100)
INCIDENTS_PAGE_SIZE = env_int("INCIDENTS_PAGE_SIZE", 25)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secret_paths": {"()": "config.log_redaction.RedactSecretPaths"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_secret_paths"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # One handler (the root's), so nothing is logged twice; 4xx answers are expected
        # traffic, 5xx are errors.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"level": "ERROR"},
        "django.security": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        # The paging tick runs every few seconds: log what it does, not that it ran.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},  # "Task … received", every 2 s
        "celery.beat": {"level": "WARNING"},
    },
}
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
