"""Real processes for the hardening tests: uvicorn workers with chosen flags and settings,
a private redis-server, and a pausable TCP proxy in front of PostgreSQL.

Workers run `uvicorn config.asgi:application` with the `make run` flags (no compression,
64 KB frames) on the test database pytest-django made; whatever else a test needs
(another Redis, the proxy's port, --forwarded-allow-ips) comes as arguments.
"""

import asyncio
import contextlib
import functools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, connections

from deploy.tests.support import base_env, free_port, http_get, make_run_uvicorn_flags

REPO = Path(__file__).resolve().parents[2]


def database_url(*, host: str | None = None, port: int | None = None) -> str:
    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "postgres", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = host or db.get("HOST") or "127.0.0.1"
    port = port or db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{quote(db['NAME'], safe='')}"


def db(function):
    """database_sync_to_async that closes the thread's connection afterwards (so
    pytest-django can drop the test database)."""

    @functools.wraps(function)
    def closing(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return database_sync_to_async(closing)


def far_ids() -> None:
    """Start user and room ids far from other runs': Redis channel names and rate-limit
    keys carry ids, and other test runs may share a Redis."""
    base = 10**9 + secrets.randbelow(10**9)
    with connection.cursor() as cursor:
        for table in ("auth_user", "chat_room"):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, base])


def worker_env(**overrides: str) -> dict[str, str]:
    env = base_env(
        DATABASE_URL=database_url(),
        SECRET_KEY="hardening-test-" + "k" * 40,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        MEDIA_ROOT=tempfile.mkdtemp(prefix="parley-media-"),
        PARLEY_RATE_BURST="100000",
        PARLEY_RATE_INTERVAL="0.001",
        PARLEY_SWEEP_SECONDS="1",
        PARLEY_MAX_SOCKETS_PER_USER="100",
        LOG_LEVEL="INFO",
    )
    env.pop("PARLEY_REDIS_PREFIX", None)
    env.update(overrides)
    return env


class Uvicorn:
    def __init__(self, name: str, env: dict[str, str], *extra_flags: str):
        self.name = name
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"parley-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), *make_run_uvicorn_flags(), "--timeout-graceful-shutdown", "2", *extra_flags],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.output()}")
            with contextlib.suppress(OSError):
                if http_get(self.port, "/healthz")[0] == 200:
                    break
            assert time.monotonic() < deadline, f"{name} not healthy:\n{self.output()}"
            time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def rss(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        print(f"\n===== {self.name} (port {self.port}) =====\n{self.output()}")
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


class PrivateRedis:
    """A redis-server of this test's own on a free port: restarting it disturbs nobody."""

    def __init__(self):
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="parley-redis-")
        self.process = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PausableProxy:
    """A TCP forwarder to 127.0.0.1:<target> in its own thread. `cut()` drops every
    connection and refuses new ones (the database is gone); `restore()` lets them in again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self.connections: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _handle(self, reader, writer) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.connections.update((writer, up_writer))

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.connections.discard(writer)
        self.connections.discard(up_writer)

    def cut(self) -> None:
        def do():
            self.open = False
            for writer in list(self.connections):
                transport = writer.transport
                if transport is not None:
                    transport.abort()
            self.connections.clear()

        self.loop.call_soon_threadsafe(do)
        time.sleep(0.1)

    def restore(self) -> None:
        self.loop.call_soon_threadsafe(setattr, self, "open", True)
        time.sleep(0.05)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
