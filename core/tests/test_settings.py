"""config/settings.py reads booleans and numbers strictly: a typo stops start-up, naming
the variable, instead of quietly meaning false (or a bare ValueError)."""

import runpy

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

pytestmark = pytest.mark.dbless

SETTINGS = str(django_settings.BASE_DIR / "config" / "settings.py")

BOOLEANS = ["DEBUG", "PARLEY_HTTPS", "AXES_ENABLED", "PARLEY_ANONYMOUS_READ"]
NUMBERS = [
    "CONN_MAX_AGE", "AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", "PARLEY_RATE_BURST", "PARLEY_RATE_INTERVAL",
    "PARLEY_RECALL_SECONDS", "PARLEY_MAX_BODY", "PARLEY_IMAGE_MAX_BYTES", "PARLEY_UPLOAD_MAX_BYTES",
    "PARLEY_MAX_SOCKETS_PER_USER", "PARLEY_SWEEP_SECONDS", "PARLEY_PRESENCE_TTL", "PARLEY_TOMBSTONE_SECONDS",
    "PARLEY_PURGE_SECONDS",
]


@pytest.fixture
def load(monkeypatch):
    """load(**variables) -> the settings module's namespace read with those variables set."""
    # CONN_MAX_AGE is only read for a database server (nothing connects here).
    monkeypatch.setenv("DATABASE_URL", "postgres://parley@127.0.0.1:5432/parley")
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    for name in BOOLEANS + NUMBERS:
        monkeypatch.delenv(name, raising=False)

    def read(**variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(SETTINGS)

    return read


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("typo", ["ture", "flase", "enabled", "2", ""])
def test_misspelt_boolean_stops_start_up_naming_the_variable(load, name, typo):
    with pytest.raises(ImproperlyConfigured, match=name):
        load(**{name: typo})


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("typo", ["five", "10s", "", "nan"])
def test_malformed_number_stops_start_up_naming_the_variable(load, name, typo):
    with pytest.raises(ImproperlyConfigured, match=name):
        load(**{name: typo})


@pytest.mark.parametrize(
    ("value", "meaning"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("on", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False)],
)
def test_every_documented_boolean_spelling_is_understood(load, value, meaning):
    namespace = load(PARLEY_HTTPS=value, PARLEY_ANONYMOUS_READ=value)
    assert namespace["PARLEY_HTTPS"] is meaning and namespace["SESSION_COOKIE_SECURE"] is meaning
    assert namespace["PARLEY_ANONYMOUS_READ"] is meaning


def test_numbers_and_defaults_still_read(load):
    namespace = load(PARLEY_RATE_BURST=" 7 ", PARLEY_RATE_INTERVAL="0.5", CONN_MAX_AGE="0")
    assert (namespace["PARLEY_RATE_BURST"], namespace["PARLEY_RATE_INTERVAL"]) == (7, 0.5)
    assert namespace["DATABASES"]["default"]["CONN_MAX_AGE"] == 0
    assert (namespace["DEBUG"], namespace["AXES_ENABLED"], namespace["PARLEY_MAX_BODY"]) == (False, True, 4000)
