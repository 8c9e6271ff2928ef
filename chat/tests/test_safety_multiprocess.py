"""Bans and suspensions across real server processes (PostgreSQL + Redis pass only).

Two uvicorn workers share Redis and the database. A ban made on worker A closes the
user's socket on worker B (at once through Redis; a ban written behind the services'
back within one sweep); a suspension made on A refuses the user's token on both and
closes their sockets on both; a ban survives a restart of the workers and ends when its
time comes (the clock is the database's `until`, moved into the past here: the servers
run on the real clock).
"""

import os
import secrets
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chat import services
from chat.models import Room, RoomBan
from chat.tests.test_revocation_multiprocess import _alive, _closed_with, _hello, _open
from testkit.servers import Uvicorn, http_get, running, start_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SWEEP_SECONDS = 1.0


@pytest.fixture
def env(transactional_db):
    return worker_env(
        REDIS_URL=os.environ["REDIS_URL"],
        PARLEY_REDIS_PREFIX=os.environ.get("PARLEY_REDIS_PREFIX", "parley-test") + secrets.token_hex(4),
        PARLEY_SWEEP_SECONDS=str(SWEEP_SECONDS),
    )


def _people() -> dict[str, str]:
    far_ids()
    User = get_user_model()
    users = {n: User.objects.create_user(username=n, password="correct horse battery") for n in ("olivia", "tom", "mia")}
    users["stan"] = User.objects.create_user(username="stan", password="correct horse battery", is_staff=True)
    lobby = services.room_create(creator=users["olivia"], slug="lobby", name="Lobby")
    back = services.room_create(creator=users["olivia"], slug="back", name="Back")
    for name in ("tom", "mia"):
        services.room_join(user=users[name], room=lobby)
        services.room_join(user=users[name], room=back)
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


def _api(server, token: str, path: str, *, method="GET", body=None) -> int:
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    return http_get(server.port, path, method=method, headers=headers, body=body)[0]


async def test_a_ban_and_a_suspension_on_worker_a_reach_worker_b(env):
    with running(start_workers(env, names=("safety-A", "safety-B"))) as (a, b):
        tokens = await db(_people)()
        async with (
            _open(b, tokens["tom"]) as tom_lobby, _open(b, tokens["tom"], "/ws/chat/back/") as tom_back,
            _open(a, tokens["tom"], "/ws/") as tom_stream, _open(b, tokens["mia"]) as mia_lobby,
        ):
            for ws in (tom_lobby, tom_back, tom_stream, mia_lobby):
                await _hello(ws)

            # Banned over REST on A: tom's socket on B closes with 4403.
            body = b'{"username": "tom", "minutes": 30}'
            assert _api(a, tokens["olivia"], "/api/rooms/lobby/bans/", method="POST", body=body) == 201
            code, _ = await _closed_with(tom_lobby, within=SWEEP_SECONDS + 2)
            assert code == 4403
            assert _api(b, tokens["tom"], "/api/rooms/lobby/messages/") == 404
            assert await _alive(mia_lobby)

            # A ban written behind the services' back (no event): B's sweep finds it.
            @db
            def ban_quietly():
                users = get_user_model().objects
                RoomBan.objects.create(room=Room.objects.get(slug="back"), user=users.get(username="tom"), until=None)

            await ban_quietly()
            code, _ = await _closed_with(tom_back, within=2 * SWEEP_SECONDS + 2)
            assert code == 4403

            # Suspended by staff on A: the token is refused on both, the stream on A closes 4401.
            assert _api(a, tokens["stan"], "/api/users/mia/suspend/", method="POST", body=b"{}") == 200
            code, _ = await _closed_with(mia_lobby, within=SWEEP_SECONDS + 2)
            assert code == 4401
            assert (_api(a, tokens["mia"], "/api/me/"), _api(b, tokens["mia"], "/api/me/")) == (401, 401)
            assert await _alive(tom_stream)  # tom is banned from rooms, not suspended


async def test_a_ban_survives_a_restart_and_ends_on_time(env):
    with running(start_workers(env, names=("safety-before",))) as (before,):
        tokens = await db(_people)()
        body = b'{"username": "tom", "minutes": 60}'
        assert _api(before, tokens["olivia"], "/api/rooms/lobby/bans/", method="POST", body=body) == 201
        assert _api(before, tokens["tom"], "/api/rooms/lobby/messages/") == 404

    after = Uvicorn("safety-after", env)
    with running([after.start()]):
        assert _api(after, tokens["tom"], "/api/rooms/lobby/messages/") == 404
        assert _api(after, tokens["tom"], "/api/rooms/lobby/join/", method="POST") == 404

        # Its hour passes.
        await db(RoomBan.objects.filter(user__username="tom").update)(until=timezone.now() - timedelta(seconds=1))
        assert _api(after, tokens["tom"], "/api/rooms/lobby/messages/") == 200
        assert _api(after, tokens["tom"], "/api/rooms/lobby/join/", method="POST") == 200
