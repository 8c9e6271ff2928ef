"""Parley's settings, read from environment variables (and `.env` if present).

Development defaults are safe: DEBUG off, SQLite and the in-memory channel layer under
var/. Production sets DATABASE_URL, REDIS_URL and PARLEY_HTTPS=true (docs/configuration.md).
Malformed values raise ImproperlyConfigured at start-up instead of misbehaving later.
"""

import math
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

VAR_DIR.mkdir(exist_ok=True)
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _local_secret_key() -> str:
    """A key generated once per checkout, so sessions survive a restart of `make run`."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _setting(name: str, default):
    """The variable `name` read as the type of `default` (bool, int or float).

    Stricter than django-environ, which reads any word it does not know as false (so
    `PARLEY_HTTPS=ture` would quietly turn HTTPS off) and lets a bad number escape as a
    bare ValueError that does not say which variable was wrong.
    """
    raw = env.ENVIRON.get(name)  # not env.str(): that reads an empty value as unset
    if raw is None:
        return default
    if isinstance(default, bool):
        word = raw.strip().lower()
        if word not in _BOOLEANS:
            raise ImproperlyConfigured(f"{name} must be one of true/false, 1/0, yes/no, on/off; got {raw!r}")
        return _BOOLEANS[word]
    kind = "a whole number" if isinstance(default, int) else "a number"
    try:
        value = type(default)(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf"
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}")
    return value


def _positive(name: str, default):
    value = _setting(name, default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value!r}")
    return value


# HTTPS: the documented production configuration. Off by default so plain
# http://127.0.0.1 (make run) can still log in.
PARLEY_HTTPS = _setting("PARLEY_HTTPS", False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if PARLEY_HTTPS:
        # Production runs several workers, maybe on several hosts: a key made up per
        # checkout would make each of them reject the others' sessions.
        raise ImproperlyConfigured("SECRET_KEY must be set when PARLEY_HTTPS is true.")
    SECRET_KEY = _local_secret_key()
DEBUG = _setting("DEBUG", False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "core",
    "accounts",
    "chat",
    "projects",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: turns a login refused for too many failures into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite unless DATABASE_URL says otherwise. IMMEDIATE transactions make concurrent
# writers queue on the lock instead of failing with "database is locked" mid-transaction.
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Keep connections open: closing the last one checkpoints the WAL to disk, which
    # would cost every message a flush.
    DATABASES["default"]["CONN_MAX_AGE"] = None
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", _setting("CONN_MAX_AGE", 60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Parameters bound by PostgreSQL, not pasted into the SQL by psycopg: what lets the
    # services called from sockets keep their statements prepared (PARLEY_DB_PREPARE).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("server_side_binding", True)
# PostgreSQL: threads per process that run services from sockets, each with its own
# connection (chat/dbpool.py), so commits overlap instead of queueing. A process holds up
# to this many connections plus one (Channels' database thread); SQLite always uses one.
PARLEY_DB_THREADS = _positive("PARLEY_DB_THREADS", 4)
# PostgreSQL: those threads' connections prepare a statement the second time they run it,
# so PostgreSQL stops parsing and planning the sends' few statements over and over.
# Off behind a connection pooler in transaction mode that does not track prepared
# statements (PgBouncer before 1.21).
PARLEY_DB_PREPARE = _setting("PARLEY_DB_PREPARE", True)
# Sends from sockets into one room that arrive while its previous send commits are
# committed together, up to PARLEY_GROUP_COMMIT_MAX in one transaction (chat/groupcommit.py).
PARLEY_GROUP_COMMIT = _setting("PARLEY_GROUP_COMMIT", True)
PARLEY_GROUP_COMMIT_MAX = _positive("PARLEY_GROUP_COMMIT_MAX", 32)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Keeps deployments (or test runs) that share one Redis apart: pub/sub channels and keys
# all start with it.
PARLEY_REDIS_PREFIX = env.str("PARLEY_REDIS_PREFIX", default="parley")
if REDIS_URL:
    # The pub/sub layer publishes a group message once; each process receives it once.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": PARLEY_REDIS_PREFIX},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": PARLEY_REDIS_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layers.InMemoryChannelLayer",
            # One hub channel per process carries every room's traffic (chat/hub.py).
            "CONFIG": {"capacity": 10_000},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Brute-force protection (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one
# username from one address, logins for that pair are refused for AXES_COOLOFF_TIME hours
# (the HTML login page and POST /api/auth/token/ alike; accounts/lockout.py answers).
# Attempts are counted in the database, so every worker shares them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's, refusing suspended users (SPEC §6.4).
    "accounts.backends.ModelBackend",
]
AXES_ENABLED = _setting("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = _positive("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = _positive("AXES_COOLOFF_TIME", 0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no start-up banner in the logs
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文"), ("zh-hant", "繁體中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# With DEBUG on, files are served straight from the apps; otherwise from collectstatic's
# hashed copies (make run collects them).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# HTTPS (PARLEY_HTTPS, read at the top).
SESSION_COOKIE_SECURE = PARLEY_HTTPS
CSRF_COOKIE_SECURE = PARLEY_HTTPS
SECURE_SSL_REDIRECT = PARLEY_HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if PARLEY_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PARLEY_HTTPS
SECURE_HSTS_PRELOAD = PARLEY_HTTPS
if PARLEY_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        # https: for the icons of webhook bots (SPEC §6.5), which the server never fetches.
        "img-src": ["'self'", "data:", "blob:", "https:"],
        "connect-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header turns "not logged in" into a 401.
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.ObjectJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Rooms, messages, direct messages and projects. Realtime frames: docs/realtime-protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.schema.add_error_responses"],
}

# Parley's own knobs (SPEC §1).
PARLEY_RATE_BURST = _positive("PARLEY_RATE_BURST", 5)
PARLEY_RATE_INTERVAL = _positive("PARLEY_RATE_INTERVAL", 2.0)
PARLEY_RECALL_SECONDS = _positive("PARLEY_RECALL_SECONDS", 30)
# How long after sending the sender may edit a message; 0: any time.
PARLEY_EDIT_SECONDS = env.int("PARLEY_EDIT_SECONDS", default=0)
if PARLEY_EDIT_SECONDS < 0:
    raise ImproperlyConfigured(f"PARLEY_EDIT_SECONDS must not be negative, got {PARLEY_EDIT_SECONDS!r}")
PARLEY_MAX_BODY = _positive("PARLEY_MAX_BODY", 4000)
PARLEY_IMAGE_MAX_BYTES = _positive("PARLEY_IMAGE_MAX_BYTES", 204_800)
PARLEY_UPLOAD_MAX_BYTES = _positive("PARLEY_UPLOAD_MAX_BYTES", 10_485_760)
# Files (messages of kind `file`, SPEC §6.4): the largest one, within the upload limit, and
# how much a user's live files may hold in all (413 `quota_exceeded` past it).
PARLEY_FILE_MAX_BYTES = _positive("PARLEY_FILE_MAX_BYTES", 10_485_760)
if PARLEY_FILE_MAX_BYTES > PARLEY_UPLOAD_MAX_BYTES:
    raise ImproperlyConfigured("PARLEY_FILE_MAX_BYTES must not be above PARLEY_UPLOAD_MAX_BYTES.")
PARLEY_USER_QUOTA_BYTES = _positive("PARLEY_USER_QUOTA_BYTES", 104_857_600)
# Decoding a picture can cost 200 MB and a CPU-second (core/images.py): how many one
# process decodes at once (others wait up to 10 s, then get 429), and how many avatar
# uploads a user may make in an hour.
PARLEY_IMAGE_DECODES_AT_ONCE = _positive("PARLEY_IMAGE_DECODES_AT_ONCE", 2)
PARLEY_AVATAR_PER_HOUR = _positive("PARLEY_AVATAR_PER_HOUR", 10)
PARLEY_ANONYMOUS_READ = _setting("PARLEY_ANONYMOUS_READ", True)
PARLEY_MAX_SOCKETS_PER_USER = _positive("PARLEY_MAX_SOCKETS_PER_USER", 20)
# Open sockets per client address (scope["client"], i.e. after --proxy-headers), anonymous
# ones included. Both socket caps count across processes when REDIS_URL is set (chat/limits.py).
PARLEY_MAX_SOCKETS_PER_IP = _positive("PARLEY_MAX_SOCKETS_PER_IP", 200)
# Frames other than sends, per socket: a burst, then this many per second (chat/limits.py).
PARLEY_FRAME_RATE = _positive("PARLEY_FRAME_RATE", 20.0)
PARLEY_FRAME_BURST = _positive("PARLEY_FRAME_BURST", 100)
# How often each process re-checks the rooms it serves against the database, healing
# anything the (at-most-once) channel layer dropped.
PARLEY_SWEEP_SECONDS = _positive("PARLEY_SWEEP_SECONDS", 3.0)
# Seconds a socket's presence heartbeat counts (chat/presence.py); 0: four sweep intervals.
PARLEY_PRESENCE_TTL = _setting("PARLEY_PRESENCE_TTL", 0.0)
if PARLEY_PRESENCE_TTL < 0:
    raise ImproperlyConfigured(f"PARLEY_PRESENCE_TTL must not be negative, got {PARLEY_PRESENCE_TTL!r}")
PARLEY_RESUME_LIMIT = 500
PARLEY_MAX_FRAME_BYTES = 65_536
# Retention (chat.services.room_purge): how long a deletion tombstone is kept so that
# reconnecting clients learn of it before it is dropped (resuming from before a dropped
# tombstone reports `truncated`), and how often `manage.py purge_messages --every` runs.
PARLEY_TOMBSTONE_SECONDS = _positive("PARLEY_TOMBSTONE_SECONDS", 86_400)
PARLEY_PURGE_SECONDS = _positive("PARLEY_PURGE_SECONDS", 300)
# Behind nginx: the `internal` location that serves MEDIA_ROOT (e.g. /protected-media/).
# When set, Django checks access to a private image and nginx sends the file
# (X-Accel-Redirect); when empty, Django streams it itself.
PARLEY_MEDIA_ACCEL_PREFIX = env.str("PARLEY_MEDIA_ACCEL_PREFIX", default="")
# Per-user allowances for rooms (core.ratelimit.check_rate): a burst of an hour's worth,
# then evenly spread. Creations and joins each add to every list and sidebar.
PARLEY_ROOM_CREATE_PER_HOUR = _positive("PARLEY_ROOM_CREATE_PER_HOUR", 20)
PARLEY_ROOM_JOIN_PER_HOUR = _positive("PARLEY_ROOM_JOIN_PER_HOUR", 120)
# Searches per user (or anonymous address) per minute, a minute's worth at once (chat/api_search.py).
PARLEY_SEARCH_PER_MINUTE = _positive("PARLEY_SEARCH_PER_MINUTE", 30)
# Web Push (chat/webpush.py, chat/services/push.py): the VAPID key (empty: made once and
# kept in the database), the contact sent with it, whether plain-http or private push
# endpoints are accepted (tests' local push service), whether pushes carry message text,
# how long a process's presence row counts unrenewed (a user whose last socket closes is
# pushed to at once; this covers a process that died without saying so), and whether the push
# worker runs inside the server process (the embedded default; `manage.py push_worker`
# runs it on its own).
PARLEY_VAPID_PRIVATE_KEY = env.str("PARLEY_VAPID_PRIVATE_KEY", default="")
PARLEY_PUSH_SUBJECT = env.str("PARLEY_PUSH_SUBJECT", default="mailto:admin@localhost")
PARLEY_PUSH_ALLOW_INSECURE = _setting("PARLEY_PUSH_ALLOW_INSECURE", False)
PARLEY_PUSH_PREVIEW = _setting("PARLEY_PUSH_PREVIEW", True)
PARLEY_PUSH_AWAY_SECONDS = _setting("PARLEY_PUSH_AWAY_SECONDS", 30.0)
PARLEY_PUSH_WORKER_EMBEDDED = _setting("PARLEY_PUSH_WORKER_EMBEDDED", True)
# New website-widget guests (conversations) per client address per hour (SPEC §6.6).
PARLEY_WIDGET_GUESTS_PER_HOUR = _positive("PARLEY_WIDGET_GUESTS_PER_HOUR", 10)
# Messages all widget guests at one client address may send an hour, together.
PARLEY_WIDGET_MESSAGES_PER_HOUR = _positive("PARLEY_WIDGET_MESSAGES_PER_HOUR", 600)
# At most one "you have an answer" email per widget conversation in this many minutes.
PARLEY_WIDGET_EMAIL_MINUTES = _positive("PARLEY_WIDGET_EMAIL_MINUTES", 15)

# Email (optional): set EMAIL_BACKEND to one of Django's backends to turn it on (`make run`
# uses the console backend). Widget guests who left an address then hear of answers.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
PARLEY_EMAIL_ENABLED = bool(env.str("EMAIL_BACKEND", default=""))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="parley@localhost")

DATA_UPLOAD_MAX_MEMORY_SIZE = PARLEY_UPLOAD_MAX_BYTES + 1_048_576
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# LOG_FORMAT=plain (development): readable lines on stderr. LOG_FORMAT=json (production):
# one JSON object per line on stdout (core/jsonlog.py), uvicorn's error and access logs
# included, for journald / `docker compose logs` / a log collector.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.jsonlog.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"}
        if LOG_FORMAT == "plain"
        else {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
if LOG_FORMAT == "json":
    # uvicorn set up its own plain handlers before loading Django; route them through ours.
    for _name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        LOGGING["loggers"][_name] = {"handlers": [], "propagate": True}
