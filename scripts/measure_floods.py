"""Measure two cheap floods against a real Parley server (not part of `make test`).

1. An anonymous socket sends 40 `resume` frames of 25 bytes (`{"type":"resume","rev":0}`)
   in a public room holding 500 messages of --body-chars Chinese characters, and reads
   whatever comes back for as long as it comes: bytes received, replays, close code.
2. A logged-in socket sends `read` frames for --seconds, reconnecting whenever it is
   closed (as an attacker would): paced (batches of 100, each followed by a ping, as fast
   as the server answers), then blind (written as fast as the socket takes them, answers
   never read). CPU-seconds of the server process and of the PostgreSQL backends serving
   it (for the blind flood, until the server is idle again), and the ack time (p95) of
   another user who sends a message every 100 ms, before and during.

Starts its own uvicorn (the `make run` flags) from --repo (default: this checkout; give an
export of another commit to compare) on a scratch PostgreSQL database on this host, which
is dropped and created again, with the in-memory channel layer (one process):

    .venv/bin/python scripts/measure_floods.py [--repo DIR] [--body-chars 4000] [--seconds 10]
        [--no-reconnect] [--database-url postgres://postgres@127.0.0.1:5432/parley_measure_floods]

Talks only to 127.0.0.1 and the database given; stops by itself.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.measure_unread import recreate_database  # noqa: E402
from testkit.servers import free_port  # noqa: E402

SEED = """
import json, os
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from chat import services
from chat.models import Message, Room
body = ("天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏" * 400)[: int(os.environ["MEASURE_BODY_CHARS"])]
User = get_user_model()
olivia = User.objects.create_user("olivia", password="correct horse battery")
mia = User.objects.create_user("mia", password="correct horse battery")
bob = User.objects.create_user("bob", password="correct horse battery")
room = services.room_create(creator=olivia, slug="flood", name="Flood")
services.room_join(user=mia, room=room)
services.room_join(user=bob, room=room)
Message.objects.bulk_create(Message(room=room, seq=n, rev=n, sender=olivia, body=body) for n in range(1, 501))
Room.objects.filter(pk=room.pk).update(last_seq=500, rev=500)
print("SEED " + json.dumps({u.username: Token.objects.create(user=u).key for u in (olivia, mia, bob)}))
"""


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Database:
    """The CPU of the PostgreSQL backends serving the scratch database (on this host)."""

    def __init__(self, url: str):
        import psycopg

        base, self.name = url.rsplit("/", 1)
        self.conn = psycopg.connect(f"{base}/postgres", autocommit=True)

    def sample(self) -> dict[int, float]:
        pids = [row[0] for row in self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.name])]
        return {pid: cpu_seconds(pid) for pid in pids}

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def start_server(repo: Path, database_url: str, body_chars: int) -> tuple[subprocess.Popen, int, dict, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "DJANGO_"))}
    for name in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        SECRET_KEY="measure-floods-" + "x" * 40,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        MEDIA_ROOT=tempfile.mkdtemp(prefix="parley-measure-media-"),
        PARLEY_RATE_BURST="100000",  # the ack prober sends 10 a second
        PARLEY_RATE_INTERVAL="0.001",
        LOG_LEVEL="WARNING",
    )
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=repo, env=env, check=True)
    seeded = subprocess.run(
        [python, "manage.py", "shell", "-c", SEED], cwd=repo, env={**env, "MEASURE_BODY_CHARS": str(body_chars)},
        check=True, capture_output=True, text=True,
    )
    tokens = json.loads(next(line for line in seeded.stdout.splitlines() if line.startswith("SEED "))[5:])
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="parley-measure-", suffix=".log")[1])
    process = subprocess.Popen(
        [python, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--ws", "core.uvicorn_ws:ParleyWebSocketProtocol", "--ws-max-size", "65536", "--ws-per-message-deflate", "false", "--proxy-headers", "--no-access-log"],
        cwd=repo, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return process, port, tokens, log


def connect(port: int, token: str | None = None):
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Token {token}"} if token else {}
    return connect(f"ws://127.0.0.1:{port}/ws/chat/flood/", additional_headers=headers, open_timeout=10,
                   max_size=2**22, close_timeout=2)


async def hello(ws) -> None:
    while json.loads(await ws.recv())["type"] != "hello":
        pass


async def resume_flood(port: int) -> dict:
    from websockets.exceptions import ConnectionClosed

    size = replays = refused = 0
    code = None
    started = time.monotonic()
    async with connect(port) as ws:
        await hello(ws)
        for _ in range(40):
            await ws.send('{"type":"resume","rev":0}')
        try:
            while True:
                text = await asyncio.wait_for(ws.recv(), timeout=3)
                size += len(text.encode())
                frame = json.loads(text)
                replays += frame["type"] == "resumed"
                refused += frame.get("code") == "rate_limited"
        except TimeoutError:
            pass
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
    return {"bytes": size, "replays": replays, "refused": refused, "close": code, "seconds": time.monotonic() - started}


async def ack_prober(port: int, token: str, stop: asyncio.Event, times: list[float]) -> None:
    async with connect(port, token) as ws:
        await hello(ws)
        n = 0
        while not stop.is_set():
            n += 1
            client_id = f"p{time.monotonic_ns()}-{n}"
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "message.send", "body": f"probe {n}", "client_id": client_id}))
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "ack" and frame.get("client_id") == client_id:
                    times.append(time.perf_counter() - sent)
                    break
            await asyncio.sleep(0.1)


async def read_flood(port: int, token: str, seconds: float, reconnect: bool) -> dict:
    """`read` frames in batches of 100, each followed by a ping: as fast as the server
    gets through them, and nothing left queued when the time is up."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    batch = ['{"type":"read","seq":500}'] * 100 + ['{"type":"ping"}']
    sent = connections = refused = 0
    closes: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (reconnect or not connections):
        try:
            async with connect(port, token) as ws:
                connections += 1
                await hello(ws)
                while time.monotonic() < deadline:
                    for frame in batch:
                        await ws.send(frame)
                    sent += len(batch)
                    with contextlib.suppress(TimeoutError):  # a refused ping gets no pong
                        async with asyncio.timeout(2):
                            while True:
                                answer = json.loads(await ws.recv())
                                refused += answer.get("code") == "rate_limited"
                                if answer["type"] == "pong":
                                    break
        except (ConnectionClosed, InvalidStatus, OSError) as error:
            code = str(getattr(getattr(error, "rcvd", None), "code", None) or type(error).__name__)
            closes[code] = closes.get(code, 0) + 1
    return {"sent": sent, "connections": connections, "refused": refused, "closes": closes}


def run_read_flood(port: int, token: str, seconds: float, reconnect: bool) -> dict:
    """In a process of its own, so the flooder does not slow the ack prober down."""
    return asyncio.run(read_flood(port, token, seconds, reconnect))


def blind_read_flood(port: int, token: str, seconds: float, reconnect: bool) -> dict:
    """`read` frames written as fast as the socket takes them, answers never read, a new
    connection whenever the server closes one: whatever the server accepted it may still
    be working through when the time is up."""
    import base64
    import socket

    payload = b'{"type":"read","seq":500}'
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    chunk = frame * 200
    handshake = (
        "GET /ws/chat/flood/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Token {token}\r\n\r\n"
    ).encode()
    sent = connections = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (reconnect or not connections):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                sock.sendall(handshake)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                connections += 1
                while time.monotonic() < deadline:
                    sock.sendall(chunk)
                    sent += 200
            except OSError:
                pass
    return {"sent": sent, "connections": connections}


def settle(pid: int, limit: float = 120.0) -> float:
    """Wait until the server has been idle for a second; the seconds it took."""
    started = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - started < limit:
        time.sleep(1)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            break
        last = now
    return time.monotonic() - started


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] * 1000 if len(values) >= 20 else float("nan")


async def measure(port: int, pid: int, tokens: dict, seconds: float, reconnect: bool, database: Database) -> None:
    resumed = await resume_flood(port)
    print(f"40 resumes from an anonymous socket: {resumed['bytes'] / 2**20:.1f} MiB back in {resumed['seconds']:.1f} s "
          f"({resumed['replays']} replays, {resumed['refused']} refused, close {resumed['close']})", flush=True)

    baseline: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.ensure_future(ack_prober(port, tokens["mia"], stop, baseline))
    await asyncio.sleep(5)
    stop.set()
    await prober

    during: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.ensure_future(ack_prober(port, tokens["mia"], stop, during))
    server_before, db_before = cpu_seconds(pid), database.sample()
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        flood = await asyncio.get_running_loop().run_in_executor(
            pool, run_read_flood, port, tokens["olivia"], seconds, reconnect
        )
    server = cpu_seconds(pid) - server_before
    db_cpu = Database.used(db_before, database.sample())
    stop.set()
    await prober
    print(f"paced read flood for {seconds:.0f} s: {server:.1f} CPU-s in the server + {db_cpu:.1f} in PostgreSQL; "
          f"{flood['sent']} frames sent over {flood['connections']} connection(s), "
          f"{flood['refused']} refused, closes {flood['closes']}; another user's ack p95 "
          f"{p95(baseline):.0f} ms before, {p95(during):.0f} ms during", flush=True)

    await asyncio.to_thread(settle, pid)
    during = []
    stop = asyncio.Event()
    prober = asyncio.ensure_future(ack_prober(port, tokens["mia"], stop, during))
    server_before, db_before = cpu_seconds(pid), database.sample()
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        flood = await asyncio.get_running_loop().run_in_executor(
            pool, blind_read_flood, port, tokens["bob"], seconds, reconnect  # a flooder of its own
        )
    stop.set()
    await prober
    busy = await asyncio.to_thread(settle, pid)
    server = cpu_seconds(pid) - server_before
    db_cpu = Database.used(db_before, database.sample())
    print(f"blind read flood for {seconds:.0f} s: {server:.1f} CPU-s in the server + {db_cpu:.1f} in PostgreSQL, "
          f"busy {busy:.0f} s after it stopped; {flood['sent']} frames written over {flood['connections']} "
          f"connection(s); another user's ack p95 {p95(during):.0f} ms during", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/parley_measure_floods")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose server is measured")
    parser.add_argument("--body-chars", type=int, default=4000, help="characters per message in the room")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the read flood")
    parser.add_argument("--no-reconnect", action="store_true", help="the flooder stops when its socket is closed")
    args = parser.parse_args()
    recreate_database(args.database_url)
    process, port, tokens, log = start_server(args.repo.resolve(), args.database_url, args.body_chars)
    try:
        asyncio.run(measure(port, process.pid, tokens, args.seconds, not args.no_reconnect, Database(args.database_url)))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
