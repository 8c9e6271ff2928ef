"""Settings for the test suite: the real ones, made fast and quiet."""

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PARLEY_SWEEP_SECONDS = 0.5
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Tests send quickly; the rate-limit tests set their own allowance.
PARLEY_RATE_BURST = 10_000
# Look static files up per request instead of indexing STATIC_ROOT for every test client
# (each new client builds the middleware again: ~0.1 s once `collectstatic` has run).
WHITENOISE_AUTOREFRESH = True
# django-axes needs the request to count a login, and the test client's login() passes
# none: off here, on in the tests that exercise lockouts (accounts/tests/test_security.py).
AXES_ENABLED = False
