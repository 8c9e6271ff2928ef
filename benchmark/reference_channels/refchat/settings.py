"""A minimal Django + Channels project in the style of the Channels tutorial.

The yardstick for Parley's benchmark: one consumer that stores each message with the ORM
and `group_send`s it through the in-memory channel layer (tutorial defaults), served by
daphne. SQLite gets the same pragmas as Parley's so the comparison is about the
application, not about fsync.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("REFCHAT_SECRET_KEY", "benchmark-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "refchat",
]
MIDDLEWARE = []
ROOT_URLCONF = "refchat.urls"
ASGI_APPLICATION = "refchat.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REFCHAT_DB", str(BASE_DIR / "refchat.sqlite3")),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
