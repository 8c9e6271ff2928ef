"""Settings for the test suite: the real ones, made fast and quiet."""

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PARLEY_SWEEP_SECONDS = 0.5
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
