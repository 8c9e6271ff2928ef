"""Soak: many clients for many minutes, then every client's view checked against the database.

    python -m benchmark.soak                       # 200 clients, 10 minutes, SQLite
    python -m benchmark.soak --clients 50 --minutes 1 --database postgres
    make soak SOAK_CLIENTS=200 SOAK_MINUTES=10

Starts its own Parley (uvicorn with the `make run` flags) on a fresh database (a temporary
SQLite file, or a fresh PostgreSQL database with --database postgres, Redis channel layer
with --redis), seeds users, tokens and rooms, and runs the clients: every client holds a
per-room socket; half of them send (each send has a client_id and is resent with the same
id after a reconnect until acked); every client drops its connection now and then and
comes back with `resume`; senders sometimes recall their own message. When the time is
up, sending stops, the clients drain (unacked sends retried) and settle (each waits, at
most --settle seconds, for its room's last revision), and each client's view is compared
with the rows:

    sent        distinct client_ids a client tried to send
    acked       sends the server acknowledged
    stored      rows in the database with those client_ids (acked and not stored: lost)
    delivered   (message, revision) changes a client received
    lost        changes a client should have seen (committed while it was a member
                reader) and never did, latest state included (a recall seen as recalled)
    duplicated  the same change delivered twice outside a resume replay
    reordered   a change older than one already delivered, outside a resume replay

Exits non-zero if anything was lost, duplicated or reordered, or an ack was not stored.
Talks only to 127.0.0.1 and stops by itself.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from testkit.servers import ServerError, Uvicorn, clean_env, manage

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

SEED = """
import json, sys
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from chat import services
clients, rooms = int(sys.argv[1]), int(sys.argv[2])
User = get_user_model()
users = [User.objects.create_user(username=f"soak{i}") for i in range(clients)]  # token only
made = [services.room_create(creator=users[r], slug=f"soak-{r}", name=f"Soak {r}") for r in range(rooms)]
for i, user in enumerate(users[rooms:], start=rooms):
    services.room_join(user=user, room=made[i % rooms])
print("SOAK_SEED " + json.dumps({"tokens": [Token.objects.create(user=u).key for u in users],
                                 "rooms": [r.slug for r in made]}))
"""

CHECK = """
import json, sys
from chat.models import Message, Room
out = {}
for room in Room.objects.filter(slug__startswith="soak-"):
    rows = list(Message.objects.filter(room=room).order_by("seq").values_list("id", "seq", "rev", "recalled", "client_id", "kind"))
    out[room.slug] = {"rev": room.rev, "last_seq": room.last_seq, "rows": rows}
print("SOAK_DB " + json.dumps(out))
"""


def run_django(code: str, env: dict, *args: str) -> dict:
    done = subprocess.run([PYTHON, "-c", "import django; django.setup()\n" + code, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"django script failed:\n{done.stderr}")
    line = next(text for text in done.stdout.splitlines() if text.startswith("SOAK_"))
    return json.loads(line.split(" ", 1)[1])


class Client:
    """One soak client: a per-room socket that sends, drops, resumes and recalls."""

    def __init__(self, index: int, token: str, room: str, port: int, sender: bool, args, stats: Counter):
        self.index, self.token, self.room, self.port = index, token, room, port
        self.sender, self.args, self.stats = sender, args, stats
        self.rng = random.Random(index)
        self.first_rev: int | None = None  # the room's revision at the first hello
        self.last_rev = 0
        self.seen: dict[tuple[int, int], int] = {}  # (id, rev) -> times delivered
        self.latest: dict[int, tuple[int, bool]] = {}  # id -> (rev, recalled)
        self.unacked: dict[str, str] = {}  # client_id -> body
        self.sent: set[str] = set()
        self.acked: dict[str, int] = {}  # client_id -> message id
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.duplicated = self.reordered = self.reconnects = self.recalls = 0
        self.errors: Counter = Counter()
        self.counter = 0
        self.stop_sending = asyncio.Event()
        self.stop_all = asyncio.Event()

    def record(self, frame: dict, *, replaying: bool) -> None:
        key = (frame["id"], frame["rev"])
        again = key in self.seen
        self.seen[key] = self.seen.get(key, 0) + 1
        if again and not replaying:
            self.duplicated += 1
        if not replaying and not again and frame["rev"] <= self.last_rev:
            self.reordered += 1
        if not again:
            self.last_rev = max(self.last_rev, frame["rev"])
            current = self.latest.get(frame["id"])
            if current is None or current[0] < frame["rev"]:
                self.latest[frame["id"]] = (frame["rev"], bool(frame["recalled"]) or bool(frame.get("deleted")))

    async def run(self) -> None:
        import websockets
        from websockets.asyncio.client import connect

        url = f"ws://127.0.0.1:{self.port}/ws/chat/{self.room}/"
        while not self.stop_all.is_set():
            try:
                async with connect(url, additional_headers={"Authorization": f"Token {self.token}"},
                                   open_timeout=20, close_timeout=2, max_queue=None) as ws:
                    await self.session(ws)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as error:
                self.errors[f"connection: {type(error).__name__}"] += 1
                await asyncio.sleep(0.5 + self.rng.random())
            if not self.stop_all.is_set():
                self.reconnects += 1
                await asyncio.sleep(self.rng.uniform(0.1, 1.0))

    async def session(self, ws) -> None:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        replaying = False
        if self.first_rev is None:
            self.first_rev = self.last_rev = hello["room"]["rev"]
        else:
            replaying = True
            await ws.send(json.dumps({"type": "resume", "rev": self.last_rev}))
        # Resend what was never acked, with the same client_id: stored once whatever happened.
        for client_id, body in list(self.unacked.items()):
            await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": client_id}))
        loop = asyncio.get_running_loop()
        leave_at = loop.time() + self.rng.uniform(*self.args.reconnect_every)
        reader = asyncio.ensure_future(self.read(ws, replaying))
        tasks = [reader]
        if self.sender:
            tasks.append(asyncio.ensure_future(self.send_loop(ws)))
        try:
            timeout = max(0.0, leave_at - loop.time())
            stop = asyncio.ensure_future(self.stop_all.wait())
            # The session ends at its time, at the stop, or when the socket does (the reader
            # ends; a send that fails on a closed socket ends it too): not when sending
            # stops, or a sender that reconnected after that would leave every session at
            # once, before its resume replay arrived.
            await asyncio.wait([reader, stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()

    async def read(self, ws, replaying: bool) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "message":
                self.record(frame, replaying=replaying)
                if frame.get("client_id") in self.sent_at and frame["sender"] and frame["sender"]["username"] == f"soak{self.index}":
                    self.latencies.append(time.monotonic() - self.sent_at.pop(frame["client_id"]))
            elif kind in ("message.recalled", "message.deleted"):
                self.record({"recalled": True, **frame}, replaying=replaying)
            elif kind == "resumed":
                replaying = False
                if frame["truncated"]:
                    self.errors["resume truncated"] += 1
                self.last_rev = max(self.last_rev, frame["rev"])
            elif kind == "ack":
                self.unacked.pop(frame["client_id"], None)
                self.acked[frame["client_id"]] = frame["id"]
            elif kind == "error":
                self.errors[frame["code"]] += 1
                if frame["code"] == "rate_limited" and frame.get("client_id"):
                    pass  # stays unacked: resent after the next reconnect

    async def send_loop(self, ws) -> None:
        while not self.stop_sending.is_set():
            await asyncio.sleep(self.rng.uniform(*self.args.send_every))
            if self.stop_sending.is_set():
                return
            if self.acked and self.rng.random() < self.args.recall_share:
                message_id = list(self.acked.values())[-1]  # the latest: inside the recall window
                await ws.send(json.dumps({"type": "message.recall", "id": message_id}))
                self.recalls += 1
                continue
            self.counter += 1
            client_id = f"soak{self.index}-{self.counter}"
            body = f"soak message {self.counter} from client {self.index} ✓"
            self.unacked[client_id] = body
            self.sent.add(client_id)
            self.sent_at[client_id] = time.monotonic()
            await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": client_id}))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


ROOM_REVS = """
import json
from chat.models import Room
print("SOAK_REVS " + json.dumps(dict(Room.objects.filter(slug__startswith="soak-").values_list("slug", "rev"))))
"""


async def settle(clients: list[Client], room_revs, seconds: float) -> float:
    """Wait until every client has seen its room's last revision as stored, for at most
    `seconds`: under load the last changes may still be on their way (a client mid-
    reconnect, a dropped event the sweep re-reads) when sending stops. Whatever has not
    arrived by then counts as lost. Returns how long it took."""
    started = time.monotonic()
    revs = await asyncio.get_running_loop().run_in_executor(None, room_revs)
    while time.monotonic() - started < seconds:
        if all(c.last_rev >= revs[c.room] for c in clients):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def drive(args, port: int, seed: dict, room_revs) -> list[Client]:
    stats: Counter = Counter()
    rooms = seed["rooms"]
    clients = [
        Client(i, token, rooms[i % len(rooms)], port, sender=i % 2 == 0, args=args, stats=stats)
        for i, token in enumerate(seed["tokens"])
    ]
    runners = []
    for client in clients:  # connect in a gentle ramp, not all in the same millisecond
        runners.append(asyncio.ensure_future(client.run()))
        await asyncio.sleep(0.01)
    started = time.monotonic()
    end = started + args.minutes * 60
    while time.monotonic() < end:
        await asyncio.sleep(min(30, max(0.1, end - time.monotonic())))
        sent = sum(len(c.sent) for c in clients)
        acked = sum(len(c.acked) for c in clients)
        print(f"  {time.monotonic() - started:6.0f}s  sent {sent}  acked {acked}  "
              f"reconnects {sum(c.reconnects for c in clients)}", flush=True)
    for client in clients:
        client.stop_sending.set()
    # Drain: keep reading (and reconnecting) until every unacked send is retried and acked.
    drain_end = time.monotonic() + args.drain
    while time.monotonic() < drain_end and any(c.unacked for c in clients):
        await asyncio.sleep(1)
    took = await settle(clients, room_revs, args.settle)
    print(f"  every client at its room's last revision after {took:.1f} s (at most {args.settle:.0f} s)", flush=True)
    for client in clients:
        client.stop_all.set()
    await asyncio.wait(runners, timeout=30)
    return clients


def report(clients: list[Client], db: dict, elapsed: float) -> int:
    rows_by_cid = {}
    rows_by_room = {}
    for slug, room in db.items():
        live = {}
        for message_id, seq, rev, recalled, client_id, kind in room["rows"]:
            live[message_id] = (seq, rev, recalled, kind)
            if client_id:
                rows_by_cid[client_id] = message_id
        rows_by_room[slug] = live
    seqs_ok = all(
        [seq for seq, *_ in sorted(rows.values())] == list(range(1, len(rows) + 1)) for rows in rows_by_room.values()
    )
    sent = sum(len(c.sent) for c in clients)
    acked = sum(len(c.acked) for c in clients)
    stored = sum(1 for c in clients for cid in c.sent if cid in rows_by_cid)
    acked_not_stored = sum(1 for c in clients for cid in c.acked if cid not in rows_by_cid)
    never_acked = sum(len(c.unacked) for c in clients)
    expected = delivered = lost = 0
    for client in clients:
        rows = rows_by_room[client.room]
        for message_id, (_seq, rev, recalled, _kind) in rows.items():
            if rev <= (client.first_rev or 0):
                continue  # committed before this client arrived
            expected += 1
            got = client.latest.get(message_id)
            if got is None or got[1] != bool(recalled):
                lost += 1
                if lost <= 20:  # what was missed, to find why
                    print(
                        f"lost: client {client.index} in {client.room} (first rev {client.first_rev}, last rev"
                        f" {client.last_rev}): message {message_id} seq {_seq} rev {rev} recalled {bool(recalled)}"
                        f" kind {_kind}; the client has {got}",
                        file=sys.stderr,
                    )
        delivered += len(client.seen)
    duplicated = sum(c.duplicated for c in clients)
    reordered = sum(c.reordered for c in clients)
    latencies = [x for c in clients for x in c.latencies]
    errors = sum((c.errors for c in clients), Counter())
    table = [
        ("clients", len(clients)),
        ("rooms", len(db)),
        ("minutes run", f"{elapsed / 60:.1f}"),
        ("sent (distinct client_ids)", sent),
        ("acked", acked),
        ("stored (rows for those client_ids)", stored),
        ("acked but not stored", acked_not_stored),
        ("never acked", never_acked),
        ("rows in the database", sum(len(r) for r in rows_by_room.values())),
        ("seq gap-free in every room", "yes" if seqs_ok else "NO"),
        ("recalls asked", sum(c.recalls for c in clients)),
        ("reconnects (each with resume)", sum(c.reconnects for c in clients)),
        ("changes expected at clients", expected),
        ("changes delivered (distinct)", delivered),
        ("lost (expected, never seen in final state)", lost),
        ("duplicated (outside a replay)", duplicated),
        ("reordered (outside a replay)", reordered),
        ("send -> own echo p50 / p95 / p99 ms", f"{pct(latencies, .5):.0f} / {pct(latencies, .95):.0f} / {pct(latencies, .99):.0f}"),
        ("messages/s stored", f"{stored / elapsed:.1f}"),
        ("error frames", dict(errors) or "none"),
    ]
    width = max(len(name) for name, _ in table)
    print("\n| figure" + " " * (width - 6) + " | value |\n|" + "-" * (width + 2) + "|-------|")
    for name, value in table:
        print(f"| {name.ljust(width)} | {value} |")
    bad = lost or duplicated or reordered or acked_not_stored or not seqs_ok or never_acked
    print("\nRESULT:", "FAIL" if bad else "OK")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=int(os.environ.get("SOAK_CLIENTS", 200)))
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 10)))
    parser.add_argument("--rooms", type=int, default=0, help="default: one room per 20 clients")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default=os.environ.get("SOAK_DATABASE", "sqlite"))
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="server for --database postgres")
    parser.add_argument("--redis", default=os.environ.get("SOAK_REDIS", ""), help="REDIS_URL for the channel layer")
    parser.add_argument("--drain", type=float, default=30)
    parser.add_argument("--settle", type=float, default=30, help="seconds for the last changes to arrive, at most")
    args = parser.parse_args()
    args.send_every = (2.0, 6.0)
    args.reconnect_every = (30.0, 120.0)
    args.recall_share = 0.05
    rooms = args.rooms or max(1, args.clients // 20)

    workdir = Path(tempfile.mkdtemp(prefix="parley-soak-"))
    env = clean_env()
    dbname = None
    if args.database == "postgres":
        dbname = f"parley_soak_{os.getpid()}_{int(time.time())}"
        import psycopg

        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        env["DATABASE_URL"] = f"{args.postgres}/{dbname}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'soak.sqlite3'}"
    if args.redis:
        env["REDIS_URL"] = args.redis
        env["PARLEY_REDIS_PREFIX"] = f"soak-{os.getpid()}"
    env.update(
        SECRET_KEY="soak-" + "x" * 50,
        MEDIA_ROOT=str(workdir / "media"),
        STATIC_ROOT=str(workdir / "static"),
        LOG_LEVEL="WARNING",
        PARLEY_RATE_BURST="10",
        PARLEY_RATE_INTERVAL="1",
        PARLEY_MAX_SOCKETS_PER_USER="5",
        PARLEY_MAX_SOCKETS_PER_IP="100000",  # every client is 127.0.0.1
    )
    print(f"soak: {args.clients} clients in {rooms} rooms for {args.minutes} min on {args.database}"
          f"{' + redis' if args.redis else ''}; workdir {workdir}", flush=True)
    manage(env, "migrate", "--noinput", "-v0")
    seed = run_django(SEED, env, str(args.clients), str(rooms))
    server = Uvicorn("soak", env, "--no-access-log", graceful=8, log=workdir / "server.log")
    try:
        try:
            server.start()
        except ServerError as error:
            raise SystemExit(f"server did not start:\n{error}") from error
        started = time.monotonic()
        clients = asyncio.run(drive(args, server.port, seed, lambda: run_django(ROOM_REVS, env)))
        elapsed = time.monotonic() - started
        db = run_django(CHECK, env)
        status = report(clients, db, elapsed)
        server_log = (workdir / "server.log").read_text(errors="replace")
        tracebacks = server_log.count("Traceback")
        print(f"server log: {tracebacks} tracebacks ({workdir / 'server.log'})")
        return status or (1 if tracebacks else 0)
    finally:
        server.stop()
        if dbname:
            import psycopg

            with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if os.environ.get("SOAK_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
