"""Settings for the benchmarks: production settings, on the bench's own PostgreSQL database
and Redis database, served over plain HTTP on 127.0.0.1.

The bench never touches the development or test databases: DATABASE_URL and REDIS_URL are
taken from BENCH_DATABASE_URL / BENCH_REDIS_URL (defaults below), whatever else is set.
"""

import os
import warnings

os.environ.setdefault("SECRET_KEY", "bench-only-key-not-used-anywhere-else-0123456789abcdef")
os.environ["DEBUG"] = "0"  # production shape; DEBUG=1 would also record every query
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/firebreak_bench"
)
os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
os.environ.pop("CELERY_BROKER_URL", None)  # the broker follows REDIS_URL
os.environ.setdefault("LOG_LEVEL", "WARNING")

from config.settings import *  # noqa: E402,F403
from config.settings import CACHES  # noqa: E402

ROOT_URLCONF = "bench.urls"
MACHINE_ENDPOINT_PREFIXES = [*MACHINE_ENDPOINT_PREFIXES, "/bench/bare-insert/"]  # noqa: F405
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
CACHES["default"]["KEY_PREFIX"] = "firebreak-bench"
# Logging in is not what is measured; a fast hasher keeps setup short.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collectstatic step: {% static %} resolves without a manifest (an in-memory lookup
# either way, so it does not change what is measured).
warnings.filterwarnings("ignore", message="No directory at")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
