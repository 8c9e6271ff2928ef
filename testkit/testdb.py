"""Workers on the test database pytest-django made: its URL, the workers' environment,
and database calls from async tests. Needs Django's settings (tests only)."""

import functools
import os
import secrets
import tempfile
from urllib.parse import quote

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, connections

from testkit.servers import clean_env


def database_url(*, host: str | None = None, port: int | None = None) -> str:
    """The test database as a URL for a worker (through another host or port if given)."""
    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "postgres", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = host or db.get("HOST") or "127.0.0.1"
    port = port or db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{quote(db['NAME'], safe='')}"


def worker_env(**overrides: str) -> dict[str, str]:
    """Settings for workers on the test database: production-like (DEBUG off), limits out
    of the way, their own media folder. No REDIS_URL unless given (the in-memory channel
    layer); the run's PARLEY_REDIS_PREFIX is kept, so runs sharing a Redis stay apart."""
    env = clean_env(
        DATABASE_URL=database_url(),
        SECRET_KEY="real-server-test-" + "k" * 40,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        MEDIA_ROOT=tempfile.mkdtemp(prefix="parley-media-"),
        PARLEY_RATE_BURST="100000",
        PARLEY_RATE_INTERVAL="0.001",
        PARLEY_SWEEP_SECONDS="1",
        PARLEY_MAX_SOCKETS_PER_USER="100",
        LOG_LEVEL="INFO",
    )
    if "PARLEY_REDIS_PREFIX" in os.environ:
        env["PARLEY_REDIS_PREFIX"] = os.environ["PARLEY_REDIS_PREFIX"]
    env.update(overrides)
    return env


def db(function):
    """database_sync_to_async that closes the thread's connection afterwards (CONN_MAX_AGE
    would keep it open, and pytest-django could not drop the test database)."""

    @functools.wraps(function)
    def closing(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return database_sync_to_async(closing)


def far_ids() -> None:
    """Start user and room ids far from other runs': Redis channel names, presence keys
    and rate-limit keys carry ids, which restart at 1 in every test database, and other
    test runs may share the Redis."""
    base = 10**9 + secrets.randbelow(10**9)
    with connection.cursor() as cursor:
        for table in ("auth_user", "chat_room"):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, base])
