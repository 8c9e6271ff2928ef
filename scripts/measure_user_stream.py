"""Measure what connecting the user stream `/ws/` costs a user who is in many rooms.

Builds (bulk_create) a scratch SQLite database with one user who is a member of ROOMS
private rooms, UNREAD of which hold a message from someone else; starts one uvicorn
worker on it (the `make run` flags, in-memory channel layer); then connects `/ws/` RUNS
times with a token and reports, per connect, the worker's CPU seconds (from /proc) and the
wall time from opening the socket until a `ping` sent right after `hello` is answered,
and the frames the client received by then. The worker's sweep is held off meanwhile
(PARLEY_SWEEP_SECONDS=3600) so it does not land inside a connect. The first connect also
starts the worker's hub and opens its database connection.

With --sweep N, a second worker sweeping every N seconds holds one such socket open for
20 s and the script reports its CPU seconds per sweep (what following the user's rooms
costs the process while nothing happens).

    .venv/bin/python scripts/measure_user_stream.py [--rooms 20000] [--unread 200] [--runs 3] [--sweep 2]

Uses a temporary directory for the database and removes it; talks only to 127.0.0.1;
stops the worker and itself.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(rooms: int, unread: int) -> str:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from chat.models import Membership, Message, Room

    User = get_user_model()
    with transaction.atomic():
        me = User.objects.create_user("measured")
        other = User.objects.create_user("other")
        room_rows = Room.objects.bulk_create(
            [Room(slug=f"room-{i}", name=f"Room {i}", kind=Room.Kind.PRIVATE) for i in range(rooms)], batch_size=2000
        )
        Membership.objects.bulk_create([Membership(room=r, user=me) for r in room_rows], batch_size=2000)
        Message.objects.bulk_create(
            [Message(room=r, seq=1, rev=1, sender=other, body="hi") for r in room_rows[:unread]], batch_size=2000
        )
        Room.objects.filter(pk__in=[r.pk for r in room_rows[:unread]]).update(last_seq=1, rev=1)
        return Token.objects.create(user=me).key


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_worker(port: int, env: dict[str, str]):
    from testkit.servers import Uvicorn, clean_env

    return Uvicorn("user-stream", clean_env(**env), port=port).start()


async def sweep_cost(port: int, token: str, pid: int, every: float) -> float:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ws/", additional_headers={"Authorization": f"Token {token}"},
                       open_timeout=120, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 120))["type"] != "pong":
            pass
        await asyncio.sleep(every)
        cpu = cpu_seconds(pid)
        await asyncio.sleep(20)
        return (cpu_seconds(pid) - cpu) / (20 / every)


async def connect_once(port: int, token: str, pid: int) -> tuple[float, float, dict[str, int]]:
    from websockets.asyncio.client import connect

    cpu, wall = cpu_seconds(pid), time.perf_counter()
    frames: dict[str, int] = {}
    async with connect(f"ws://127.0.0.1:{port}/ws/", additional_headers={"Authorization": f"Token {token}"},
                       open_timeout=120, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
            frames[frame["type"]] = frames.get(frame["type"], 0) + 1
            if frame["type"] == "pong":
                break
        wall = time.perf_counter() - wall
        await asyncio.sleep(0.5)  # let the worker finish what the connect started
        cpu = cpu_seconds(pid) - cpu
    return cpu, wall, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=20_000)
    parser.add_argument("--unread", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sweep", type=float, default=0, help="also measure a sweep every this many seconds")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="parley-measure-")
    env = {
        "DATABASE_URL": f"sqlite:///{scratch}/db.sqlite3",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "measure-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "PARLEY_MAX_SOCKETS_PER_USER": "1000",
        "LOG_LEVEL": "WARNING",
        "PARLEY_SWEEP_SECONDS": "3600",
    }
    os.environ.pop("REDIS_URL", None)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from testkit.servers import free_port

    worker = None
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        token = build(args.rooms, args.unread)
        print(f"built {args.rooms} rooms ({args.unread} with an unread message) in {time.perf_counter() - started:.1f} s")
        port = free_port()
        worker = start_worker(port, env)

        async def runs():
            return [await connect_once(port, token, worker.pid) for _ in range(args.runs)]

        results = asyncio.run(runs())
        for n, (cpu, wall, frames) in enumerate(results, 1):
            print(f"connect {n}: {cpu:.2f} CPU-s, {wall:.2f} s wall, {sum(frames.values())} frames {frames}")
        later = results[1:] or results
        print(f"median of connects 2..{args.runs}: {statistics.median(r[0] for r in later):.2f} CPU-s, "
              f"{statistics.median(r[1] for r in later):.2f} s wall")
        if args.sweep:
            worker.close()
            worker = start_worker(port, {**env, "PARLEY_SWEEP_SECONDS": str(args.sweep)})
            per_sweep = asyncio.run(sweep_cost(port, token, worker.pid, args.sweep))
            print(f"sweeping every {args.sweep:g} s with the socket open: {per_sweep:.2f} CPU-s per sweep")
    finally:
        if worker is not None:
            worker.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
