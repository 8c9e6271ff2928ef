"""Live sockets obey revocation (SPEC §3 guarantees 5 and 6): when the right a socket was
opened with ends — deactivation, a password change, a revoked token, a room made private
or deleted — the socket ends too, at once when the change says so and within one sweep
(PARLEY_SWEEP_SECONDS, 0.5 s in tests) when it was made behind the services' back.

Personas: olivia owns `lobby` (public), mia is a member, oscar an outsider who reads it.
"""

import asyncio
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import selectors as account_selectors
from chat.models import Room
from chat.tests.helpers import open_socket, session_cookie
from chat.tests.test_consumers import no_leftover_socket_counts  # noqa: F401 (autouse fixture)

db = database_sync_to_async
User = get_user_model()


@pytest.fixture
async def sockets():
    opened = []

    async def open_(path: str, **kwargs):
        sock, accepted = await open_socket(path, **kwargs)
        opened.append(sock)
        assert accepted
        assert (await sock.receive())["type"] == "hello"
        return sock

    yield open_
    for sock in opened:
        try:
            await sock.close()
        except Exception:  # the app already ended: the server closed this socket
            pass


async def alive(sock) -> bool:
    await sock.send({"type": "ping"})
    return (await sock.receive_type("pong"))["type"] == "pong"


async def mia_everywhere(sockets, mia):
    """mia's room socket and user stream, by session and by token; and her token."""
    token = (await db(Token.objects.create)(user=mia)).key
    return token, [
        await sockets("/ws/chat/lobby/", user=mia),
        await sockets("/ws/", user=mia),
        await sockets("/ws/chat/lobby/", token=token, origin=None),
        await sockets("/ws/", token=token, origin=None),
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_deactivated_users_sockets_close_4401_within_a_sweep(sockets, lobby, mia, olivia):
    _, mias = await mia_everywhere(sockets, mia)
    olivias = await sockets("/ws/chat/lobby/", user=olivia)
    # Behind the services' back (no signal): only the sweep can notice.
    await db(User.objects.filter(pk=mia.pk).update)(is_active=False)
    for sock in mias:
        assert await sock.closed_with(timeout=2) == 4401
    assert await alive(olivias)


@pytest.mark.django_db(transaction=True)
async def test_a_deactivation_saved_through_the_model_closes_sockets_at_once(sockets, lobby, mia, settings):
    settings.PARLEY_SWEEP_SECONDS = 30  # no sweep will come: the save itself must do it
    _, mias = await mia_everywhere(sockets, mia)

    @db
    def deactivate():
        user = User.objects.get(pk=mia.pk)
        user.is_active = False
        user.save()

    await deactivate()
    for sock in mias:
        assert await sock.closed_with(timeout=2) == 4401


@pytest.mark.django_db(transaction=True)
async def test_a_password_change_closes_the_other_sessions_and_token_sockets_4401(sockets, lobby, mia):
    _, mias = await mia_everywhere(sockets, mia)

    @db
    def change_password():
        user = User.objects.get(pk=mia.pk)
        user.set_password("a whole new horse battery")
        user.save()
        return user

    changed = await change_password()
    for sock in mias:
        assert await sock.closed_with(timeout=2) == 4401
    # A session made with the new password (as update_session_auth_hash keeps the
    # changing one) goes on living, sweep after sweep.
    fresh = await sockets("/ws/chat/lobby/", session_key=await session_cookie(changed))
    for _ in range(3):
        assert await fresh.nothing(timeout=0.4)
        assert await alive(fresh)


@pytest.mark.django_db(transaction=True)
async def test_a_revoked_token_closes_its_sockets_4401_and_the_session_ones_stay(sockets, lobby, mia):
    token, (room_session, stream_session, room_token, stream_token) = await mia_everywhere(sockets, mia)

    @db
    def revoke():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client.delete("/api/auth/token/").status_code

    assert await revoke() == 204
    assert await room_token.closed_with(timeout=2) == 4401
    assert await stream_token.closed_with(timeout=2) == 4401
    assert await room_session.nothing(timeout=0.7)  # a sweep passed
    assert await alive(room_session) and await alive(stream_session)


@pytest.mark.django_db(transaction=True)
async def test_a_token_deleted_behind_the_services_back_is_caught_by_the_sweep(sockets, lobby, mia):
    token, (_, _, room_token, stream_token) = await mia_everywhere(sockets, mia)
    # A queryset delete sends no signal: only the sweep can notice.
    await db(lambda: Token.objects.filter(key=token)._raw_delete(Token.objects.db))()
    assert await room_token.closed_with(timeout=2) == 4401
    assert await stream_token.closed_with(timeout=2) == 4401


@pytest.mark.django_db(transaction=True)
async def test_a_public_room_made_private_closes_outsiders_and_anonymous_readers_within_a_sweep(
    sockets, lobby, mia, oscar
):
    member = await sockets("/ws/chat/lobby/", user=mia)
    outsider = await sockets("/ws/chat/lobby/", user=oscar)
    anonymous = await sockets("/ws/chat/lobby/")
    # An admin edit of the kind: no event, no system message.
    await db(Room.objects.filter(pk=lobby.pk).update)(kind=Room.Kind.PRIVATE)
    assert await outsider.closed_with(timeout=2) == 4403
    assert await anonymous.closed_with(timeout=2) == 4403
    assert await member.nothing(timeout=0.7)
    assert await alive(member)


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_rooms_sockets_close_4404(sockets, lobby, mia):
    room_sock = await sockets("/ws/chat/lobby/", user=mia)
    stream = await sockets("/ws/", user=mia)
    await db(Room.objects.filter(pk=lobby.pk).delete)()
    assert await room_sock.closed_with(timeout=2) == 4404
    # The user stream stops counting it, and tells the client to drop it from its list.
    assert await stream.receive_type("room.removed") == {"type": "room.removed", "room": "lobby"}
    assert await stream.nothing(timeout=0.7)
    assert await alive(stream)


@pytest.mark.django_db(transaction=True)
async def test_a_socket_opened_while_the_sweep_reads_access_is_not_closed(sockets, lobby, mia):
    from chat import hub

    await sockets("/ws/chat/lobby/", user=mia)
    real = hub._room_access
    arrived = []

    async def a_reader_arrives_meanwhile(*args, **kwargs):
        if not arrived:
            arrived.append(await sockets("/ws/chat/lobby/"))
        return await real(*args, **kwargs)

    with mock.patch.object(hub, "_room_access", a_reader_arrives_meanwhile):
        for _ in range(50):
            if arrived:
                break
            await asyncio.sleep(0.1)
        assert arrived
        assert await arrived[0].nothing(timeout=0.7)  # the sweep that was reading passed
    assert await alive(arrived[0])


@pytest.mark.django_db
def test_credentials_are_checked_in_a_fixed_number_of_queries(make_user, django_assert_num_queries):
    from django.contrib.sessions.backends.db import SessionStore

    users = [make_user(f"u{n}") for n in range(12)]
    credentials = set()
    for user in users:
        session = SessionStore()
        session.update({"_auth_user_id": str(user.pk), "_auth_user_hash": user.get_session_auth_hash()})
        session.create()
        credentials.add(account_selectors.Credential("session", session.session_key, user.pk))
        credentials.add(account_selectors.Credential("token", Token.objects.create(user=user).key, user.pk))
    User.objects.filter(pk=users[0].pk).update(is_active=False)
    Token.objects.filter(user=users[1]).delete()
    users[2].set_password("changed and then some")
    User.objects.filter(pk=users[2].pk).update(password=users[2].password)
    wrong_user = account_selectors.Credential("session", next(c.key for c in credentials if c.user_id == users[3].pk
                                                       and c.kind == "session"), users[4].pk)

    with django_assert_num_queries(3):  # tokens, sessions, users: however many sockets
        valid = account_selectors.credentials_valid(credentials | {wrong_user})

    ended = {(c.user_id, c.kind) for c in credentials - valid}
    assert ended == {(users[0].pk, "session"), (users[0].pk, "token"), (users[1].pk, "token"), (users[2].pk, "session")}
    assert wrong_user not in valid
