"""Measure the room lists with many public rooms: the app shell `GET /`, the first page of
`GET /api/rooms/`, a search `GET /api/rooms/?q=`, and how many rooms one user may create
in a row.

Builds (bulk_create, a few seconds) a scratch PostgreSQL database with PUBLIC public rooms
and one user who is a member of MINE of them, then times the pages through Django's test
client and prints bytes, query count and the median/max time.

    .venv/bin/python scripts/measure_room_lists.py [--public 20200] [--mine 20]
        [--database-url postgres://postgres@127.0.0.1:5432/parley_measure_rooms] [--runs 5]

The database named in the URL is dropped and created again: point it at a scratch name.
Talks only to the database given; stops by itself. Not part of `make test`.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to recreate database {name!r}: give a scratch database name")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def build(public: int, mine: int):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from chat.models import Membership, Room

    User = get_user_model()
    started = time.perf_counter()
    now = timezone.now()
    with transaction.atomic():
        me = User.objects.create_user("measured")
        rooms = Room.objects.bulk_create(
            [
                Room(slug=f"room-{i:05d}", name=f"Room number {i}", kind=Room.Kind.PUBLIC)
                for i in range(public)
            ],
            batch_size=5_000,
        )
        # Spread the activity out, so "most recently active" has something to sort.
        for i, room in enumerate(rooms):
            room.last_activity_at = now - timedelta(seconds=i)
        Room.objects.bulk_update(rooms, ["last_activity_at"], batch_size=5_000)
        Membership.objects.bulk_create([Membership(room=room, user=me) for room in rooms[::max(1, public // max(1, mine))][:mine]])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return me, time.perf_counter() - started


def measure(user, path: str, runs: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    client.get(path)  # warm up (connection, templates)
    times, queries, size = [], 0, 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:200]
        queries, size = len(captured.captured_queries), len(response.content)
    return {"path": path, "bytes": size, "queries": queries, "median_ms": statistics.median(times), "max_ms": max(times)}


def creations(user, attempts: int) -> tuple[int, int, float]:
    """(created, refused, seconds) for `attempts` room creations in a row through the API."""
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.force_authenticate(user)
    created = refused = 0
    started = time.perf_counter()
    for i in range(attempts):
        status = client.post("/api/rooms/", {"slug": f"made-{i}", "name": f"Made {i}"}, format="json").status_code
        created += status == 201
        refused += status == 429
    return created, refused, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--public", type=int, default=20_200)
    parser.add_argument("--mine", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--creations", type=int, default=200)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/parley_measure_rooms")
    args = parser.parse_args()

    recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import logging

    import django

    django.setup()
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the refused creations are the point
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    settings.DEBUG = False
    # Pages link static files: look them up in place instead of needing `collectstatic`.
    storages = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    override_settings(STORAGES=storages).enable()
    call_command("migrate", verbosity=0)
    user, seconds = build(args.public, args.mine)
    print(f"built {args.public} public rooms ({args.mine} joined) in {seconds:.1f}s")
    for path in ("/", "/api/rooms/", "/api/rooms/?q=number%2019999"):
        r = measure(user, path, args.runs)
        print(
            f"GET {r['path']:<30} {r['bytes']:>10,} bytes, {r['queries']:>3} queries, "
            f"median {r['median_ms']:.1f} ms, max {r['max_ms']:.1f} ms over {args.runs} runs"
        )
    created, refused, spent = creations(user, args.creations)
    print(f"POST /api/rooms/ x{args.creations} by one user: {created} created, {refused} refused (429) in {spent:.1f}s")


if __name__ == "__main__":
    main()
