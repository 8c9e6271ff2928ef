"""Operational endpoints."""

import asyncio
import time

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


async def _channel_layer_ok() -> bool:
    layer = get_channel_layer()
    channel = await layer.new_channel("health.")
    await layer.send(channel, {"type": "health.ping"})
    return (await asyncio.wait_for(layer.receive(channel), timeout=2))["type"] == "health.ping"


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
