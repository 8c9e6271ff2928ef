"""Presence across real server processes (PostgreSQL + Redis pass only).

Two `uvicorn` processes serve one room. A user on each sees the other online; a socket
that closes normally drops out at once; and when one process is SIGKILLed (no goodbye, no
disconnect handlers), the other process's sockets get a `presence` frame without its user
within a few sweep intervals, because heartbeats expire.
"""

import asyncio
import contextlib
import json
import os
import time

import pytest
from websockets.asyncio.client import connect

from chat import services
from testkit.servers import Uvicorn, running_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SWEEP_SECONDS = 0.5
SLUG = "porch"


@pytest.fixture
def servers(transactional_db):
    env = worker_env(REDIS_URL=os.environ["REDIS_URL"], PARLEY_SWEEP_SECONDS=str(SWEEP_SECONDS))
    with running_workers(env, names=("A", "B")) as started:
        yield started


@db
def _make_room(usernames: list[str]) -> dict[str, str]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    far_ids()
    User = get_user_model()
    users = {name: User.objects.create_user(username=name, password="correct horse battery") for name in usernames}
    services.room_create(creator=users[usernames[0]], slug=SLUG, name="Porch")
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


def _open(server: Uvicorn, token: str):
    return connect(server.url(f"/ws/chat/{SLUG}/"), additional_headers={"Authorization": f"Token {token}"},
                   open_timeout=10, close_timeout=1)


async def _next_presence(ws, timeout: float, want=None) -> dict:
    """The next `presence` frame (for which `want(online)` holds, if given)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no presence frame matching within {timeout}s")
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))
        if frame["type"] == "presence" and (want is None or want(frame["online"])):
            return frame


async def _hello(ws) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if frame["type"] == "hello":
            return frame


async def test_presence_survives_a_killed_process(servers):
    a, b = servers
    tokens = await _make_room(["ann", "ben", "cat"])
    async with _open(b, tokens["ben"]) as ben:
        assert (await _hello(ben))["room"]["online"] == ["ben"]
        ann = await _open(a, tokens["ann"]).__aenter__()
        hello = await _hello(ann)
        assert hello["room"]["online"] == ["ann", "ben"]  # ben is on the other process
        assert (await _next_presence(ben, 5))["online"] == ["ann", "ben"]

        # A normal goodbye on A is announced at once.
        async with _open(a, tokens["cat"]) as cat:
            await _hello(cat)
            assert (await _next_presence(ben, 5, lambda o: "cat" in o))["online"] == ["ann", "ben", "cat"]
        started = time.monotonic()
        assert (await _next_presence(ben, 5, lambda o: "cat" not in o))["online"] == ["ann", "ben"]
        goodbye = time.monotonic() - started

        # A dies without a word: ben's process notices when ann's heartbeats stop.
        a.kill()
        started = time.monotonic()
        frame = await _next_presence(ben, SWEEP_SECONDS * 10, lambda o: "ann" not in o)
        expired = time.monotonic() - started
        assert frame == {"type": "presence", "room": SLUG, "online": ["ben"]}
        print(f"\npresence: goodbye announced after {goodbye:.2f}s, killed process after {expired:.2f}s "
              f"(sweep {SWEEP_SECONDS}s)")
        assert expired < SWEEP_SECONDS * 8

        # Someone arriving on the surviving process sees the truth in hello.
        async with _open(b, tokens["cat"]) as cat:
            assert (await _hello(cat))["room"]["online"] == ["ben", "cat"]
        with contextlib.suppress(Exception):
            await ann.close()
    output = b.output()
    assert "Traceback" not in output, output
