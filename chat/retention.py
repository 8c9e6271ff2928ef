"""Retention across every room, once or periodically, from any number of processes.

`purge_all` runs chat.services.room_purge for every room with a retention policy. It
takes a cross-process lock first — a Redis lock when REDIS_URL is set, else a PostgreSQL
advisory lock, else none (SQLite: one machine, and its writers queue anyway) — so several
hosts running `manage.py purge_messages --every N` do the work once per interval rather
than side by side. The lock only saves effort: room_purge locks each room row and is
correct even when two runs overlap.
"""

import contextlib
import logging
import zlib

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat import services

log = logging.getLogger(__name__)

LOCK_NAME = "purge-messages"
# How long a Redis lock outlives a run that died without releasing it.
LOCK_TIMEOUT = 3600


@contextlib.contextmanager
def exclusive():
    """Yield True when this process holds the purge lock, False when another one does."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        lock = client.lock(f"{settings.PARLEY_REDIS_PREFIX}:lock:{LOCK_NAME}", timeout=LOCK_TIMEOUT)
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception):
                    lock.release()
            client.close()
    elif connection.vendor == "postgresql":
        key = zlib.crc32(LOCK_NAME.encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    else:
        yield True


def purge_all(*, now=None, progress=None) -> dict[str, tuple[int, int]] | None:
    """Enforce retention in every room that has a policy; {slug: (tombstoned, dropped)},
    or None when another process holds the lock. `progress(slug, tombstoned, dropped)`
    is called as batches complete."""
    with exclusive() as acquired:
        if not acquired:
            return None
        now = now or timezone.now()
        results = {}
        for room in services.rooms_with_retention().order_by("id"):
            def report(tombstoned, dropped, slug=room.slug):
                if progress:
                    progress(slug, tombstoned, dropped)

            results[room.slug] = services.room_purge(room=room, now=now, progress=report)
        return results
