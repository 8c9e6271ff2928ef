"""Fixtures shared by every app's tests.

Personas (one place, relationship written down): olivia owns the rooms, mia is a member,
oscar is an outsider, stan is staff.
"""

import os
import socket
from urllib.parse import urlsplit

import pytest
from channels.layers import channel_layers
from django.conf import settings

REQUIRE_SERVICES = os.environ.get("PARLEY_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true"


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session):
    if os.environ.get("PARLEY_TEST_PASS") != "postgres":
        return
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not reachable(os.environ[name])]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not reachable ({', '.join(os.environ[m] for m in missing)})"
    if REQUIRE_SERVICES:
        pytest.exit(f"FAILED: the PostgreSQL + Redis pass is required here, but {reason}", returncode=1)
    pytest.exit(f"skipped the PostgreSQL + Redis pass: {reason}", returncode=0)


# (django_db_setup alone makes the test database but gives a test no access to it.)
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "live_server"}


def pytest_collection_modifyitems(config, items):
    vendor = settings.DATABASES["default"]["ENGINE"]
    on_postgres = vendor.endswith("postgresql")
    for item in items:
        if not on_postgres and ("postgres" in item.keywords or "services" in item.keywords):
            item.add_marker(pytest.mark.skip(reason="runs in the PostgreSQL + Redis pass (make test-postgres)"))
        if "dbless" in item.keywords and (
            item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        ):
            raise pytest.UsageError(f"{item.nodeid} is marked dbless but uses the test database")
    if on_postgres:
        # The same code against the same inputs as in the SQLite pass: running it again
        # here would prove nothing new about PostgreSQL or Redis.
        once = [item for item in items if "dbless" in item.keywords]
        if once:
            config.hook.pytest_deselected(items=once)
            items[:] = [item for item in items if "dbless" not in item.keywords]


def pytest_fixture_post_finalizer(fixturedef, request):
    """After each fixture's teardown, and so before the test database's flush: let database
    work queued by a test's sockets finish. Sockets still open when a test's event loop
    closes are closed then, and the hub writes presence as a user's last socket goes. That
    work runs on asgiref's one thread for thread-sensitive calls; on SQLite it would lock
    the tables the flush empties."""
    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor.submit(lambda: None).result(timeout=30)


@pytest.fixture(autouse=True)
def fresh_channel_layer(settings, tmp_path):
    """Each test gets its own channel layer (they hold loop-bound queues) and media folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Users' send allowances start full in every test (ids repeat between tests)."""
    from core import ratelimit

    ratelimit.reset()
    yield
    ratelimit.reset()


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, *, staff: bool = False, password: str = "correct horse battery"):
        return django_user_model.objects.create_user(username=username, password=password, is_staff=staff)

    return make


@pytest.fixture
def olivia(make_user):
    return make_user("olivia")


@pytest.fixture
def mia(make_user):
    return make_user("mia")


@pytest.fixture
def oscar(make_user):
    return make_user("oscar")


@pytest.fixture
def stan(make_user):
    return make_user("stan", staff=True)


@pytest.fixture(scope="session")
def browser_server(tmp_path_factory):
    """The server of the browser tests (chat/tests/test_browser.py), started once: migrating
    and collecting static files for each module cost more than most of its tests."""
    from testkit.servers import browser_server

    with browser_server(tmp_path_factory.mktemp("parley-browser"), "browser") as worker:
        yield worker
