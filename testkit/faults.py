"""Things to break on purpose: a redis-server of a test's own, and a TCP proxy that can
cut every connection (a database that goes away)."""

import asyncio
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

from testkit.servers import ServerError, ServerProcess, free_port


class PrivateRedis(ServerProcess):
    """A redis-server of this test's own on a free port: killing and restarting it (stop(),
    start()) disturbs nobody."""

    def __init__(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not installed")
        self.dir = tempfile.mkdtemp(prefix="parley-redis-")
        port = free_port()
        super().__init__("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                   "no", "--dir", self.dir],
                         port=port, env=dict(os.environ), stop_signal=signal.SIGKILL, stop_timeout=5)
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def wait_ready(self, timeout: float = 10) -> None:
        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        self._wait(pong, "answering PING", timeout)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def close(self) -> None:
        super().close()
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
