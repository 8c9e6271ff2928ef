"""The send rate limit is one limit per user across server processes (SPEC §2), because
its state lives in Redis (core/ratelimit.py).

Two real `uvicorn` processes share PostgreSQL, Redis and PARLEY_REDIS_PREFIX, with a
burst of 3 and one message per 60 s after it: two sends on one process and two on the
other leave the fourth refused. Runs only in the PostgreSQL + Redis pass.
"""

import asyncio
import json
import os

import pytest

from chat.tests.test_multiprocess import SLUG, _frame, _hello, _make_room, _open
from testkit.servers import running_workers
from testkit.testdb import db, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def limited_servers(transactional_db):
    env = worker_env(REDIS_URL=os.environ["REDIS_URL"], PARLEY_RATE_BURST="3", PARLEY_RATE_INTERVAL="60")
    with running_workers(env, names=("A", "B")) as started:
        yield started


@db
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
