"""Settings for the voice-agent platform, driven by environment variables.

With nothing set this is the embedded profile: SQLite, the in-memory channel layer,
Celery tasks run eagerly, ELIZA and local speech models. Setting ``DATABASE_URL`` and
``REDIS_URL`` switches to the production profile (Postgres, Redis channel layer, Celery
workers). Every variable is documented in the README's table.
"""

from __future__ import annotations

import re
from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from voiceapp.env import Env

# Lets admin and form classes be written with type parameters (ModelAdmin[Agent]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = Env()

DEBUG = env.flag("DEBUG", default=False)
SECRET_KEY = env.text("SECRET_KEY")
# The embedded profile: `make run` keeps a generated key in var/secret_key, and every
# manage.py command on this machine uses the same one. Production sets SECRET_KEY.
_KEPT_KEY = Path(env.text("SECRET_KEY_FILE", str(VAR_DIR / "secret_key")))
if not SECRET_KEY and _KEPT_KEY.is_file():
    SECRET_KEY = _KEPT_KEY.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when DEBUG is off, or SECRET_KEY_FILE name a file "
            f"holding it (`make run` generates {_KEPT_KEY}, which manage.py then uses too)"
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env.items("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.items("CSRF_TRUSTED_ORIGINS", [])
# Other sites whose pages may open the browser sockets (voice, chat), as
# scheme://host[:port]; this site's own pages always may.
ALLOWED_ORIGINS = env.items("ALLOWED_ORIGINS", [])
for _origin in ALLOWED_ORIGINS:
    if not re.fullmatch(r"https?://[^/\s:]+(:[0-9]{1,5})?", _origin):
        raise ImproperlyConfigured(
            f"ALLOWED_ORIGINS: {_origin!r} is not an origin like https://app.example.org:8443"
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (no CDN)
    "agents",
    "conversations",
    "knowledge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "voiceapp.urls"
ASGI_APPLICATION = "voiceapp.asgi.application"

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
            ],
        },
    },
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.database("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, with kept connections replaced after errors (voiceapp/sqlite).
    DATABASES["default"]["ENGINE"] = "voiceapp.sqlite"
    # Several ASGI threads write at once: WAL lets readers proceed during a write, and
    # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Opening a SQLite file is cheap but not free, and every socket's database work
    # runs through the same thread: keep its connection.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    # ... but check, once per request or socket call, that it is still usable (no error
    # since, still the file at the path): otherwise it is replaced.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["CONN_MAX_AGE"] = env.number("DATABASE_CONN_MAX_AGE", 60, minimum=0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.text("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.text("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end libraries come from npm (`npm ci`, package-lock.json) and are served as
    # they ship: the browser ES-module build, under static/vendor/.
    ("vendor/msgpack", BASE_DIR / "node_modules" / "@msgpack" / "msgpack" / "dist.esm"),
]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.text("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Redis: channel layer and Celery broker -------------------------------------------
REDIS_URL = env.redis_url("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Throttling counters (and anything else cached) are shared by every process through Redis.
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.text("CELERY_BROKER_URL", REDIS_URL or "memory://")
# Without a broker there is no worker to hand tasks to: run them in-process instead.
CELERY_TASK_ALWAYS_EAGER = env.flag(
    "CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL == "memory://"
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
# A task whose worker died (acks_late) goes back to the queue once it has been unacknowledged
# this long; keep it above the longest task, or a slow task also runs twice.
_VISIBILITY_S = env.number("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_S,
    # Workers look for such tasks every few seconds (a third of the timeout, at most 10 s),
    # not every 100 s as the transport would by default.
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_S // 3)),
    "unacked_restore_throttle": 1,
}

# --- Security -------------------------------------------------------------------------
# HTTPS=true is for deployments behind TLS: secure cookies, HSTS and redirects. It stays
# off by default so the embedded profile works on http://127.0.0.1 with DEBUG off.
HTTPS = env.flag("HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env.number("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# The admin's inline player streams stored audio from the same origin.
SECURE_REFERRER_POLICY = "same-origin"

# --- Live channels --------------------------------------------------------------------
# Hume sends the whole history on every payload, so multi-MB frames are normal.
CLM_MAX_FRAME_BYTES = env.number("CLM_MAX_FRAME_BYTES", 8 * 1024 * 1024, minimum=1024)

# --- Knowledge ------------------------------------------------------------------------
KNOWLEDGE_MAX_DOCUMENT_BYTES = env.number("KNOWLEDGE_MAX_DOCUMENT_MB", 20, minimum=1) * 1024 * 1024
# How long a running OpenAI sync holds its agent's store; renewed as it works, so it only
# matters when a worker dies mid-sync: the next sync may start once it lapses.
KNOWLEDGE_SYNC_LEASE_SECONDS = env.number("KNOWLEDGE_SYNC_LEASE_SECONDS", 300, minimum=1)
# Celery beat: every this many seconds, every open provider conversation starts afresh on
# its next turn (0: never).
CONVERSATION_RESET_INTERVAL_SECONDS = env.number(
    "CONVERSATION_RESET_INTERVAL_SECONDS", 0, minimum=0
)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
if CONVERSATION_RESET_INTERVAL_SECONDS:
    CELERY_BEAT_SCHEDULE["reset-provider-conversations"] = {
        "task": "knowledge.tasks.conversations_reset",
        "schedule": float(CONVERSATION_RESET_INTERVAL_SECONDS),
    }

# Realtime voice (the Echo-compatible audio socket).
SPEECH_DEVICE = env.choice("SPEECH_DEVICE", "cpu", ("cpu", "cuda"))
SPEECH_COMPUTE_TYPE = env.text(
    "SPEECH_COMPUTE_TYPE", "int8" if SPEECH_DEVICE == "cpu" else "float16"
)
SPEECH_CPU_THREADS = env.number("SPEECH_CPU_THREADS", 1, minimum=1)
# More Piper voices and faster-whisper models than the bundled ones: the agent editor
# offers what it finds here.
SPEECH_MODELS_DIR = Path(env.text("SPEECH_MODELS_DIR", str(VAR_DIR / "speech-models")))
# The environment variables an agent may name as its API key: exact names, or prefixes
# ending in "*". Anything else (SECRET_KEY, DATABASE_URL, ...) is refused on save and on use.
AGENT_KEY_VARIABLES = env.items("AGENT_KEY_VARIABLES", ["OPENAI_API_KEY", "AGENT_KEY_*"])
VOICE_MAX_FRAME_BYTES = env.number("VOICE_MAX_FRAME_BYTES", 64 * 1024, minimum=1024)
VOICE_MAX_SESSION_SECONDS = env.number("VOICE_MAX_SESSION_SECONDS", 3600, minimum=10)
VOICE_MAX_SESSIONS_PER_CLIENT = env.number("VOICE_MAX_SESSIONS_PER_CLIENT", 4, minimum=1)
VOICE_STORE_AUDIO = env.flag("VOICE_STORE_AUDIO", default=False)
VOICE_SPECULATIVE_STT = env.flag("VOICE_SPECULATIVE_STT", default=True)
VOICE_LOAD_MODELS_AT_START = env.flag("VOICE_LOAD_MODELS_AT_START", default=True)
VOICE_LINK_MAX_AGE_SECONDS = env.number("VOICE_LINK_MAX_AGE_SECONDS", 86_400, minimum=60)

# --- HTTP API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Programs send "Authorization: Token <key>"; the page and the admin use the session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.rate("API_THROTTLE_ANON", "60/minute"),
        "user": env.rate("API_THROTTLE_USER", "1200/minute"),
        # The chatbot-server endpoints are public, as they were: per client address.
        "chatbot": env.rate("CHATBOT_THROTTLE", "60/minute"),
    },
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "voiceapp.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Voice agents API",
    "DESCRIPTION": "Agents, prompt versions, conversations, documents, and the "
    "chatbot-server endpoints.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Three models have a "status" with different choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "conversations.models.ConversationStatus",
        "TurnStatusEnum": "conversations.models.TurnStatus",
        "DocumentStatusEnum": "knowledge.models.Status",
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "conversations.chatbot_schema.add_chatbot_paths",
        "voiceapp.api_schema.add_shared_errors",
    ],
}
# Largest upload to /processAudioFile/ (bytes); bigger ones are refused with 413.
CHATBOT_MAX_AUDIO_BYTES = env.number("CHATBOT_MAX_AUDIO_MB", 25, minimum=1) * 1024 * 1024
# Any HTTP body bigger than the largest thing an endpoint accepts (plus room for multipart
# framing) is refused with 413 from its Content-Length, before it is read (voiceapp.asgi).
HTTP_MAX_BODY_BYTES = (
    max(CHATBOT_MAX_AUDIO_BYTES, KNOWLEDGE_MAX_DOCUMENT_BYTES, CLM_MAX_FRAME_BYTES) + 1024 * 1024
)
# Hume's SSE requests carry the whole history in a JSON body read into memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = CLM_MAX_FRAME_BYTES + 64 * 1024

# --- Email (password reset) ---------------------------------------------------------------
# Unset EMAIL_HOST: no mail is sent, and the reset pages say to ask an administrator.
EMAIL_HOST = env.text("EMAIL_HOST")
EMAIL_PORT = env.number("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env.text("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env.text("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env.flag("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.text("DEFAULT_FROM_EMAIL", "voice-agents@localhost")

# --- Logging --------------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
# plain: "<time> <LEVEL> <logger> [conv=<id>] <message>"; json: one object per line
# (time, level, logger, message, conversation_id, exc_info) for a log collector. Both
# redact tokens, keys and passwords (voiceapp/logs.py).
LOG_FORMAT = env.choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "conversation": {"()": "voiceapp.logs.ConversationFilter"},
        "client_errors": {"()": "voiceapp.logs.ClientErrorFilter"},
        "one_line": {"()": "voiceapp.logs.OneLineFilter"},
    },
    "formatters": {
        "plain": {"()": "voiceapp.logs.PlainFormatter"},
        "json": {"()": "voiceapp.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["conversation", "client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's own handlers (console when DEBUG, mail_admins) would write a second,
        # unformatted copy: its records go through the root handler like all others.
        "django": {"handlers": [], "propagate": True},
        # A password-reset mail that cannot be sent: one line, not a traceback.
        "django.contrib.auth": {"filters": ["one_line"]},
        # Uvicorn's handlers would bypass the format and the redaction, and its lines
        # carry request paths with their query strings (?token=…). Levels stay uvicorn's.
        "uvicorn": {"handlers": ["console"], "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
    },
}
# Celery workers log through LOGGING too, instead of replacing the root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Health and metrics -----------------------------------------------------------------
# /metrics needs "Authorization: Bearer <METRICS_TOKEN>" when set (from any address);
# unset, it answers loopback and private addresses only (voiceapp/metrics.py).
METRICS_TOKEN = env.text("METRICS_TOKEN")
# Several server processes: each writes its metrics to files here and /metrics sums them.
# prometheus_client reads the variable itself; it is checked here so that a typo stops
# start-up. Empty the directory whenever the processes start.
PROMETHEUS_MULTIPROC_DIR = env.text("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a directory; create it "
        "(empty) before starting the server processes"
    )
# Probes and scrapers speak plain HTTP to the process: a redirect to HTTPS would read as
# success to a probe (any 3xx passes) whatever the checks said.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
