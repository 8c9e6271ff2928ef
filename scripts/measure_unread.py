"""Measure the unread counts and the room list for a user in many busy rooms.

Builds (bulk_create, a few seconds) a scratch PostgreSQL database with one user who is a
member of ROOMS rooms holding MESSAGES messages in all (other people's, the user's own,
system messages, recalled and deleted ones, read markers all over), then times
`GET /api/unread/` and `GET /api/rooms/` through Django's test client and prints the
query count, the median/max time and the plan of the unread query.

    .venv/bin/python scripts/measure_unread.py [--rooms 200] [--messages 100000]
        [--database-url postgres://postgres@127.0.0.1:5432/parley_measure] [--runs 20]

The database named in the URL is dropped and created again: point it at a scratch name.
Talks only to the database given; stops by itself.
"""

import argparse
import os
import random
import statistics
import sys
import time
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


def build(rooms: int, messages: int, seed: int = 7) -> tuple[object, float]:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from chat.models import Membership, Message, Room

    rng = random.Random(seed)
    User = get_user_model()
    started = time.perf_counter()
    with transaction.atomic():
        me = User.objects.create_user("measured")
        others = [User.objects.create_user(f"other{i}") for i in range(5)]
        room_rows = Room.objects.bulk_create(
            [
                Room(slug=f"room-{i}", name=f"Room {i}", kind=Room.Kind.PUBLIC if i % 2 else Room.Kind.PRIVATE)
                for i in range(rooms)
            ]
        )
        per_room = messages // rooms
        now = timezone.now()
        batch: list[Message] = []
        memberships = []
        for room in room_rows:
            for seq in range(1, per_room + 1):
                roll = rng.random()
                sender = None if roll < 0.02 else (me if roll < 0.12 else rng.choice(others))
                batch.append(
                    Message(
                        room=room,
                        seq=seq,
                        rev=seq,
                        sender=sender,
                        kind=Message.Kind.SYSTEM if sender is None else Message.Kind.TEXT,
                        body=f"message {seq} in {room.slug}",
                        created_at=now,
                        recalled=rng.random() < 0.02,
                        deleted=rng.random() < 0.02,
                    )
                )
            room.last_seq = room.rev = per_room
            memberships.append(Membership(room=room, user=me, last_read_seq=rng.randint(0, per_room)))
            memberships.extend(Membership(room=room, user=other) for other in others)
            if len(batch) >= 20_000:
                Message.objects.bulk_create(batch, batch_size=5_000)
                batch = []
        Message.objects.bulk_create(batch, batch_size=5_000)
        Room.objects.bulk_update(room_rows, ["last_seq", "rev"], batch_size=1_000)
        Membership.objects.bulk_create(memberships, batch_size=5_000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return me, time.perf_counter() - started


def measure(user, path: str, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.force_authenticate(user)
    client.get(path)  # warm up (connection, caches)
    times, queries = [], 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:200]
        queries = len(captured.captured_queries)
    return {
        "path": path,
        "queries": queries,
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "rows": len(response.json()),
    }


def unread_plan(user) -> str:
    from django.db import connection

    from chat import selectors

    sql, params = selectors.memberships_with_unread(user=user).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/parley_measure")
    parser.add_argument("--plan", action="store_true", help="print the unread query's EXPLAIN ANALYZE")
    args = parser.parse_args()

    recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    user, seconds = build(args.rooms, args.messages)
    print(f"built {args.rooms} rooms, {args.messages} messages in {seconds:.1f}s ({settings.DATABASES['default']['NAME']})")
    for path in ("/api/unread/", "/api/rooms/"):
        result = measure(user, path, args.runs)
        print(
            f"GET {result['path']:<14} {result['queries']} queries, median {result['median_ms']:.1f} ms, "
            f"max {result['max_ms']:.1f} ms over {args.runs} runs ({result['rows']} rows)"
        )
    plan = unread_plan(user)
    if args.plan:
        print(plan)
    else:
        print("unread query plan:", " | ".join(line.strip() for line in plan.splitlines() if "Scan" in line or "Execution" in line))


if __name__ == "__main__":
    main()
