"""Settings for the test suite: the normal settings with test-only conveniences.

The database and Redis still come from the environment, so the same tests run against
SQLite and, in the integration stage of ``make test``, against PostgreSQL and Redis.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# Tests make many requests quickly; the throttling tests set their own, lower rates.
for _scope in ("API_THROTTLE_ANON", "API_THROTTLE_USER", "CHATBOT_THROTTLE"):
    os.environ.setdefault(_scope, "100000/minute")

from voiceapp.settings import *  # noqa: E402, F403

# Hashing passwords with the real algorithm makes every user fixture slow.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
MEDIA_ROOT = BASE_DIR / "var" / "test-media"  # noqa: F405
# Serve static files straight from the apps and static/ without collectstatic.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# A file, not memory: tests that start real server processes share the test database.
if DATABASES["default"]["ENGINE"] == "voiceapp.sqlite":  # noqa: F405
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405
    # One file per test run, so two runs on one machine never share a database.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
