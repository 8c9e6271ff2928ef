"""Mention counts across two real server processes (PostgreSQL + Redis pass): mia's
`/ws/` stream on process A counts what olivia sends, recalls and reads through process B,
and the counts it shows equal the database's (REST on either process)."""

import asyncio
import json
import os
from urllib.request import Request, urlopen

import pytest
from websockets.asyncio.client import connect

from chat import services
from testkit.servers import running_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def servers(transactional_db):
    env = worker_env(REDIS_URL=os.environ["REDIS_URL"])
    with running_workers(env, names=("A", "B")) as started:
        yield started


@db
def _setup() -> dict[str, str]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    far_ids()
    User = get_user_model()
    olivia = User.objects.create_user(username="olivia", password="correct horse battery")
    mia = User.objects.create_user(username="mia", password="correct horse battery")
    room = services.room_create(creator=olivia, slug="lobby", name="Lobby")
    services.room_join(user=mia, room=room)
    return {"olivia": Token.objects.create(user=olivia).key, "mia": Token.objects.create(user=mia).key}


def _rest(server, token, method, path, body=None):
    request = Request(
        server.base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10) as response:
        data = response.read()
        return json.loads(data) if data else None


async def _counts(ws, expected: tuple[int, int], timeout: float = 10) -> None:
    """Read `unread` frames until one shows `expected` (count, mentions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.01, deadline - loop.time())))
        if frame["type"] == "unread" and (frame["count"], frame["mentions"]) == expected:
            return


async def test_mention_counts_follow_changes_made_on_the_other_process(servers):
    a, b = servers
    tokens = await _setup()
    async with connect(a.url("/ws/"), additional_headers={"Authorization": f"Token {tokens['mia']}"}) as ws:
        while json.loads(await ws.recv())["type"] != "hello":
            pass
        ids = []
        for body in ("@mia one", "plain", "@all everyone"):
            ids.append(await asyncio.to_thread(_rest, b, tokens["olivia"], "POST", "/api/rooms/lobby/messages/", {"body": body}))
        await _counts(ws, (3, 2))
        await asyncio.to_thread(_rest, b, tokens["olivia"], "POST", f"/api/messages/{ids[0]['id']}/recall/")
        await _counts(ws, (2, 1))
        for server in (a, b):
            row = next(r for r in await asyncio.to_thread(_rest, server, tokens["mia"], "GET", "/api/rooms/") if r["slug"] == "lobby")
            assert (row["unread_count"], row["mention_count"]) == (2, 1)
        await asyncio.to_thread(_rest, b, tokens["mia"], "POST", "/api/rooms/lobby/read/", {"seq": ids[2]["seq"]})
        await _counts(ws, (0, 0))
        mentions = await asyncio.to_thread(_rest, a, tokens["mia"], "GET", "/api/mentions/")
        assert mentions == []
