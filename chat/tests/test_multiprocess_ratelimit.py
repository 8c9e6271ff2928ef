"""The send rate limit is one limit per user across server processes (SPEC §2), because
its state lives in Redis (core/ratelimit.py).

Two real `uvicorn` processes share PostgreSQL, Redis and PARLEY_REDIS_PREFIX, with a
burst of 3 and one message per 60 s after it: two sends on one process and two on the
other leave the fourth refused. Runs only in the PostgreSQL + Redis pass.
"""

import asyncio
import contextlib
import json
import os
import tempfile

import pytest

from chat.tests.test_multiprocess import SLUG, Server, _db, _frame, _hello, _make_room, _open, _test_database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def limited_servers(transactional_db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "PARLEY_REDIS_PREFIX": os.environ.get("PARLEY_REDIS_PREFIX", "parley"),
        "SECRET_KEY": "ratelimit-test-secret-key-not-for-production-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "false",
        "PARLEY_RATE_BURST": "3",
        "PARLEY_RATE_INTERVAL": "60",
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="parley-media-"),
    }
    started = []
    try:
        for name in ("A", "B"):
            started.append(Server(name, env))
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.stop()
        for server in started:
            print(f"\n===== server {server.name} (port {server.port}) output =====\n{server.output()}")
            with contextlib.suppress(OSError):
                os.unlink(server.log.name)


@_db
def _stored_bodies() -> list[str]:
    from chat.models import Message

    return list(Message.objects.filter(room__slug=SLUG).order_by("seq").values_list("body", flat=True))


async def test_two_processes_share_one_rate_limit(limited_servers):
    a, b = limited_servers
    tokens = await _make_room(["sender"])
    loop = asyncio.get_running_loop()

    async def answer(ws, client_id: str) -> dict:
        deadline = loop.time() + 10
        while True:
            frame = await _frame(ws, deadline)
            if frame["type"] in ("ack", "error") and frame.get("client_id") == client_id:
                return frame

    async with _open(a, tokens["sender"]) as on_a, _open(b, tokens["sender"]) as on_b:
        await _hello(on_a)
        await _hello(on_b)
        answers = []
        for ws, client_id in ((on_a, "a1"), (on_a, "a2"), (on_b, "b1"), (on_b, "b2")):
            await ws.send(json.dumps({"type": "message.send", "body": client_id, "client_id": client_id}))
            answers.append(await answer(ws, client_id))

    assert [f["type"] for f in answers] == ["ack", "ack", "ack", "error"], answers
    assert answers[3]["code"] == "rate_limited" and 1 <= answers[3]["retry_after"] <= 60
    assert await _stored_bodies() == ["a1", "a2", "b1"]
