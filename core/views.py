"""Operational endpoints."""

import asyncio
import time
import weakref

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import close_old_connections, connection
from django.http import JsonResponse


def _database_ok() -> bool:
    # This runs in a pool thread that no request signal reaches: drop a connection that
    # broke (the database restarted) or outlived CONN_MAX_AGE here, or the check would
    # fail on the dead one forever after the database came back.
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    finally:
        close_old_connections()


class _LayerProbe:
    """Round trips through the channel layer on one channel per process (and event loop).

    A channel per check would stay subscribed for the life of the process: channels_redis
    drops a channel only when a receive on it is cancelled, so each /healthz used to leave
    a `health.*` pub/sub channel behind. Here one receive runs for as long as the probe
    lives and is never cancelled; each check sends a numbered ping and waits for its own
    number, so concurrent checks and late replies to timed-out ones cannot confuse it.
    """

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.waiting: dict[int, asyncio.Future] = {}
        self.sent = 0
        self._starting = asyncio.Lock()
        self._receiver: asyncio.Task | None = None

    async def _ensure_started(self) -> None:
        async with self._starting:
            if self.channel is None:
                self.channel = await self.layer.new_channel("health.")
            # A receiver that died of an error would make every later check time out.
            if self._receiver is None or self._receiver.done():
                self._receiver = asyncio.ensure_future(self._receive_forever())

    async def _receive_forever(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            waiter = self.waiting.pop(message.get("n"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def round_trip(self) -> bool:
        await self._ensure_started()
        self.sent += 1
        number = self.sent
        # Held here too: the reply may arrive (and be popped) while send() is still awaited.
        reply = self.waiting[number] = asyncio.get_running_loop().create_future()
        try:
            await self.layer.send(self.channel, {"type": "health.ping", "n": number})
            await reply
        finally:
            self.waiting.pop(number, None)
        return True

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()


_probes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LayerProbe]" = weakref.WeakKeyDictionary()


async def _channel_layer_ok() -> bool:
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    probe = _probes.get(loop)
    if probe is None or probe.layer is not layer:  # tests swap the layer between runs
        if probe is not None:
            probe.stop()
        probe = _probes[loop] = _LayerProbe(layer)
    async with asyncio.timeout(2):
        return await probe.round_trip()


async def healthz(request):
    """200 when the database and the channel layer both answer, 503 otherwise."""
    started = time.monotonic()
    checks = {}
    try:
        checks["database"] = await sync_to_async(_database_ok, thread_sensitive=False)()
    except Exception as error:
        checks["database"] = False
        checks["database_error"] = type(error).__name__
    try:
        checks["channel_layer"] = await _channel_layer_ok()
    except Exception as error:
        checks["channel_layer"] = False
        checks["channel_layer_error"] = type(error).__name__
    healthy = checks["database"] and checks["channel_layer"]
    body = {"status": "ok" if healthy else "unavailable", **checks, "ms": round((time.monotonic() - started) * 1000, 1)}
    return JsonResponse(body, status=200 if healthy else 503)


def favicon(request):
    """/favicon.ico (SPEC §6.7): the app's icon, wherever static files are served from."""
    from django.shortcuts import redirect
    from django.templatetags.static import static

    return redirect(static("chat/favicon.svg"))
