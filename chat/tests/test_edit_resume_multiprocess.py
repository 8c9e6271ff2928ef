"""Edits, reactions and replies across two real worker processes (PostgreSQL + Redis).

mia holds message M (and N) on worker A and drops off. On worker B olivia edits M, reacts
to it, answers it, then recalls it, and edits and reacts to N. mia comes back on worker B
and resumes from the last rev she saw: every message that changed comes once, in `rev`
order, as its current state, and applying the frames as a client does gives exactly what
a fresh `GET` of the history says. olivia, connected throughout, saw each change live,
in `rev` order, as its own event.

Runs in the PostgreSQL + Redis pass (make test-postgres).
"""

import asyncio
import json
import os
import secrets

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect

from chat import services
from chat.models import Membership
from chat.tests.test_edit_frames import apply
from testkit.servers import http_get, running_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SLUG = "edits"


@pytest.fixture
def workers(transactional_db):
    far_ids()
    prefix = f"parley-edits-{secrets.token_hex(4)}"
    env = worker_env(REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), PARLEY_REDIS_PREFIX=prefix)
    with running_workers(env, names=("worker-a", "worker-b")) as started:
        yield started


@db
def _people() -> dict[str, str]:
    User = get_user_model()
    olivia, mia = User.objects.create_user(username="olivia"), User.objects.create_user(username="mia")
    room = services.room_create(creator=olivia, slug=SLUG, name="Edits")
    Membership.objects.create(room=room, user=mia)  # no "joined" message: the history is what the test sends
    return {user.username: Token.objects.create(user=user).key for user in (olivia, mia)}


def _open(server, token: str):
    return connect(server.url(f"/ws/chat/{SLUG}/"), additional_headers={"Authorization": f"Token {token}"},
                   open_timeout=10, close_timeout=2)


async def _next(ws, *kinds: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] in kinds:
                return frame


async def _history(server, token: str) -> list[dict]:
    status, _, body = await asyncio.to_thread(
        http_get, server.port, f"/api/rooms/{SLUG}/messages/", headers={"Authorization": f"Token {token}"}
    )
    assert status == 200, body
    # `blocked` is the reader's own (REST only, docs/api.md): frames do not carry it.
    return [{k: v for k, v in m.items() if k != "blocked"} for m in json.loads(body)]


ROOM_CHANGES = ("message", "message.edited", "message.reactions", "message.recalled", "message.deleted")


async def test_resume_on_another_worker_brings_edits_reactions_replies_and_the_recall(workers):
    a, b = workers
    tokens = await _people()
    state: dict[int, dict] = {}

    async with _open(b, tokens["olivia"]) as olivia, _open(a, tokens["mia"]) as mia:
        await _next(olivia, "hello")
        await _next(mia, "hello")
        for n, body in enumerate(("M: teh plan", "N: lunch at 12?")):
            await olivia.send(json.dumps({"type": "message.send", "body": body, "client_id": f"c{n}"}))
            apply(state, await _next(mia, "message"))
        m_id, n_id = sorted(state)
        seen_rev = max(m["rev"] for m in state.values())
        live_before = [await _next(olivia, "message") for _ in range(2)]
        assert [f["id"] for f in live_before] == [m_id, n_id]

    async with _open(b, tokens["olivia"]) as olivia:
        await _next(olivia, "hello")
        for frame in (
            {"type": "message.edit", "id": m_id, "body": "M: the **plan**"},
            {"type": "reaction.add", "id": m_id, "emoji": "👍"},
            {"type": "message.send", "body": "sounds good", "client_id": "reply", "reply_to": m_id},
            {"type": "message.edit", "id": n_id, "body": "N: lunch at 12:30?"},
            {"type": "reaction.add", "id": n_id, "emoji": "🍜"},
            {"type": "message.recall", "id": m_id},
        ):
            await olivia.send(json.dumps(frame))
            await asyncio.sleep(0.05)  # one after the other, as a person would
        live = [await _next(olivia, *ROOM_CHANGES) for _ in range(6)]
        assert [f["type"] for f in live] == [
            "message.edited", "message.reactions", "message", "message.edited", "message.reactions", "message.recalled"
        ]
        assert [f["rev"] for f in live] == list(range(seen_rev + 1, seen_rev + 7))

        async with _open(b, tokens["mia"]) as mia:
            await _next(mia, "hello")
            await mia.send(json.dumps({"type": "resume", "room": SLUG, "rev": seen_rev}))
            replayed = []
            while (frame := await _next(mia, *ROOM_CHANGES, "resumed"))["type"] != "resumed":
                replayed.append(frame)
            resumed = frame

    # One frame per message that changed, at its latest rev, in rev order.
    assert [f["rev"] for f in replayed] == sorted(f["rev"] for f in replayed)
    assert len({f["id"] for f in replayed}) == len(replayed) == 3
    by_id = {f["id"]: f for f in replayed}
    assert by_id[m_id]["type"] == "message.recalled"
    assert by_id[n_id]["type"] == "message" and by_id[n_id]["edited_at"] is not None
    assert by_id[n_id]["reactions"] == [{"emoji": "🍜", "count": 1, "users": ["olivia"]}]
    reply = next(f for f in replayed if f["id"] not in (m_id, n_id))
    assert reply["reply_to"]["id"] == m_id
    assert resumed["rev"] == seen_rev + 6 and resumed["truncated"] is False

    for frame in replayed:
        apply(state, frame)
    history = await _history(a, tokens["mia"])
    assert sorted(state.values(), key=lambda m: m["seq"]) == history
    recalled = next(m for m in history if m["id"] == m_id)
    assert (recalled["recalled"], recalled["body"], recalled["reactions"]) == (True, "", [])
    assert next(m for m in history if m["id"] == reply["id"])["reply_to"]["excerpt"] is None
