"""Revocation across real server processes (PostgreSQL + Redis pass only): a user's
sockets on every uvicorn worker end when the right they were opened with ends.

Two workers share Redis. A room made private behind the services' back closes an
outsider's socket within a sweep; a token revoked over REST on one worker closes its
sockets on both at once (the `recheck` event crosses Redis); a user deactivated behind the
services' back is caught by each worker's sweep.
"""

import asyncio
import json
import os
import secrets
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import services
from chat.models import Room
from testkit.servers import Uvicorn, http_get, running_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SWEEP_SECONDS = 1.0


@pytest.fixture
def workers(transactional_db):
    env = worker_env(
        REDIS_URL=os.environ["REDIS_URL"],
        PARLEY_REDIS_PREFIX=os.environ.get("PARLEY_REDIS_PREFIX", "parley-test") + secrets.token_hex(4),
        PARLEY_SWEEP_SECONDS=str(SWEEP_SECONDS),
    )
    with running_workers(env, names=("revocation-A", "revocation-B")) as started:
        yield started


def _people() -> dict[str, str]:
    far_ids()
    User = get_user_model()
    users = {n: User.objects.create_user(username=n, password="correct horse battery") for n in ("olivia", "mia", "max", "oscar")}
    lobby = services.room_create(creator=users["olivia"], slug="lobby", name="Lobby")
    for name in ("mia", "max"):
        services.room_join(user=users[name], room=lobby)
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


def _open(server: Uvicorn, token: str, path: str = "/ws/chat/lobby/"):
    return connect(server.url(path), additional_headers={"Authorization": f"Token {token}"}, open_timeout=10,
                   close_timeout=2)


async def _hello(ws) -> None:
    async with asyncio.timeout(10):
        while json.loads(await ws.recv())["type"] != "hello":
            pass


async def _closed_with(ws, within: float) -> tuple[int, float]:
    """The close code, and how long it took to come."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except ConnectionClosed:
        return ws.close_code, time.monotonic() - started
    raise AssertionError("still open")


async def _alive(ws) -> bool:
    await ws.send(json.dumps({"type": "ping"}))
    async with asyncio.timeout(5):
        while json.loads(await ws.recv())["type"] != "pong":
            pass
    return True


async def test_revocation_reaches_the_users_sockets_on_every_process(workers):
    a, b = workers
    tokens = await db(_people)()
    async with (
        _open(a, tokens["mia"]) as mia_room, _open(b, tokens["mia"], "/ws/") as mia_stream,
        _open(a, tokens["max"]) as max_room, _open(b, tokens["max"], "/ws/") as max_stream,
        _open(b, tokens["oscar"]) as oscar_room,
    ):
        for ws in (mia_room, mia_stream, max_room, max_stream, oscar_room):
            await _hello(ws)

        # An admin makes the public room private: the outsider goes, the members stay.
        await db(Room.objects.filter(slug="lobby").update)(kind=Room.Kind.PRIVATE)
        code, took = await _closed_with(oscar_room, within=2 * SWEEP_SECONDS + 2)
        assert code == 4403, code
        assert await _alive(max_room) and await _alive(mia_room)

        # mia revokes her token on worker A: her sockets on both workers close at once.
        revoked = time.monotonic()
        status = http_get(a.port, "/api/auth/token/", method="DELETE", headers={"Authorization": f"Token {tokens['mia']}"})[0]
        assert status == 204
        for ws in (mia_room, mia_stream):
            code, _ = await _closed_with(ws, within=SWEEP_SECONDS + 2)
            assert code == 4401, code
        print(f"\nrevoked token: both workers' sockets closed {time.monotonic() - revoked:.2f} s after the request")

        # max deactivated behind the services' back: each worker's sweep finds out.
        await db(get_user_model().objects.filter(username="max").update)(is_active=False)
        for ws in (max_room, max_stream):
            code, took = await _closed_with(ws, within=2 * SWEEP_SECONDS + 2)
            assert code == 4401, code
