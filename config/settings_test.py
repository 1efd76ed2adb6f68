"""Settings for the test suite: production settings with what a test client needs."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-key-not-used-anywhere-else-0123456789")
os.environ.setdefault("DEBUG", "0")

from config.settings import *  # noqa: E402,F403
from config.settings import REDIS_URL, VAR_DIR  # noqa: E402

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
TEST_VAR_DIR = VAR_DIR / "test"
TEST_VAR_DIR.mkdir(parents=True, exist_ok=True)
WHITENOISE_AUTOREFRESH = True  # serve from the finders; tests never run collectstatic
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory: the live server thread and a real Celery worker process must
    # see the same test database.
    DATABASES["default"]["NAME"] = TEST_VAR_DIR / "firebreak.sqlite3"  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_VAR_DIR / "test-firebreak.sqlite3")}  # noqa: F405
# A Celery worker started by a test runs in its own process and must use the test
# database that pytest-django created, whose name only the test process knows.
if os.environ.get("FIREBREAK_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["FIREBREAK_DB_NAME"]  # noqa: F405
if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = "firebreak-test"  # noqa: F405
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
TIMELINE_POLL_SECONDS = 1
