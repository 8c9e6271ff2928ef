"""Presence (chat/presence.py): who is online in a room, from expiring heartbeats.

Backend tests drive whichever backend the pass configures (the in-process dict on the
SQLite pass, Redis sorted sets on the PostgreSQL + Redis pass) with a fake clock.
"""

import asyncio
import secrets

import pytest
from channels.db import database_sync_to_async

from chat import limits, presence, services
from chat.models import Membership, Message, Room
from chat.tests.helpers import open_room

db = database_sync_to_async


@pytest.fixture
def clock(monkeypatch):
    """presence.now() under the test's control."""
    state = {"now": 1_000_000.0}
    monkeypatch.setattr(presence, "now", lambda: state["now"])
    return state


@pytest.fixture
def room_id():
    # Redis keys outlive a test database; an id no other test run uses keeps them apart.
    presence.reset()
    yield 10**12 + secrets.randbelow(10**12)
    presence.reset()


async def test_join_leave_and_the_online_set(clock, room_id, settings):
    backend = presence.backend()
    assert await backend.online(room_id) == ([], 0)

    async def join(user, sock):
        online, changed, _ = await backend.join(room_id, user, sock)
        return online, changed

    async def leave(user, sock):
        changed, _ = await backend.leave(room_id, user, sock)
        return (await backend.online(room_id))[0], changed

    assert await join("mia", "s1") == (["mia"], True)
    assert await join("mia", "s2") == (["mia"], False)  # a second tab: no change
    assert await join("olivia", "s3") == (["mia", "olivia"], True)
    online, version = await backend.online(room_id)
    assert online == ["mia", "olivia"] and version == 3
    assert await leave("mia", "s1") == (["mia", "olivia"], False)  # still one tab open
    assert await leave("mia", "s2") == (["olivia"], True)
    assert await leave("olivia", "s3") == ([], True)


async def test_heartbeats_keep_entries_and_silence_expires_them(clock, room_id):
    backend = presence.backend()
    ttl = presence.ttl()
    await backend.join(room_id, "mia", "here")
    await backend.join(room_id, "oscar", "gone")  # his process dies: no leave, no heartbeat
    clock["now"] += ttl * 0.6
    # Mia's process sweeps: her entry is re-stamped; nothing has expired yet.
    assert await backend.refresh({room_id: {"mia|here"}}) == {}
    clock["now"] += ttl * 0.6
    assert (await backend.online(room_id))[0] == ["mia"]  # oscar no longer counts...
    # ...and the next sweep removes him and reports the change (a newer snapshot), once.
    changed = await backend.refresh({room_id: {"mia|here"}})
    assert list(changed) == [room_id] and changed[room_id][0] == ["mia"]
    assert changed[room_id][1] > 2
    assert await backend.refresh({room_id: {"mia|here"}}) == {}
    clock["now"] += ttl * 0.9
    assert (await backend.online(room_id))[0] == ["mia"]
    await backend.leave(room_id, "mia", "here")


async def test_a_sweep_brings_back_a_socket_whose_entry_was_expired(clock, room_id):
    """A process that was too slow to heartbeat has its sockets counted again at its next sweep."""
    backend = presence.backend()
    await backend.join(room_id, "mia", "slow")
    clock["now"] += presence.ttl() * 2
    # Another process, serving the room without mia's socket, expires her entry...
    assert [v[0] for v in (await backend.refresh({room_id: set()})).values()] == [[]]
    # ...and her own process, sweeping late, stamps it again: she is back.
    assert [v[0] for v in (await backend.refresh({room_id: {"mia|slow"}})).values()] == [["mia"]]
    await backend.leave(room_id, "mia", "slow")


def test_an_older_snapshot_is_not_passed_on():
    seen = presence.Seen(5, ["ann"])
    assert seen.is_news({"type": "hub.event"})  # typing: no version
    assert not seen.is_news({"presence_version": 4, "presence_online": ["bob"]})
    assert not seen.is_news({"presence_version": 5, "presence_online": ["bob"]})
    assert seen.is_news({"presence_version": 7, "presence_online": ["ann", "bob"]})
    assert not seen.is_news({"presence_version": 6, "presence_online": ["ann"]})


def test_the_same_list_again_is_not_passed_on():
    seen = presence.Seen(5, ["ann", "bob"])
    assert not seen.is_news({"presence_version": 6, "presence_online": ["ann", "bob"]})
    assert seen.is_news({"presence_version": 7, "presence_online": ["ann"]})


def test_ttl_follows_the_sweep(settings):
    settings.PARLEY_SWEEP_SECONDS = 3.0
    assert presence.ttl() == 12.0
    settings.PARLEY_PRESENCE_TTL = 5
    assert presence.ttl() == 5.0


# Over the sockets ------------------------------------------------------------------------------



@pytest.fixture
def fresh_presence():
    limits.reset()
    yield
    limits.reset()


@pytest.fixture
def lobby(olivia, mia):
    room = services.room_create(creator=olivia, slug=f"lobby-{secrets.token_hex(4)}", name="Lobby")
    Membership.objects.create(room=room, user=mia)  # no "joined" message: the history starts empty
    return room


async def presence_frames(sock, count: int, timeout: float = 5) -> list[list[str]]:
    got = []
    while len(got) < count:
        frame = await sock.receive(timeout=timeout)
        if frame["type"] == "presence":
            got.append(frame["online"])
    return got


async def no_presence_frame(sock, wait: float = 0.4) -> None:
    await asyncio.sleep(wait)
    await sock.send({"type": "ping"})
    while (frame := await sock.receive())["type"] != "pong":
        assert frame["type"] != "presence", frame


@pytest.mark.django_db(transaction=True)
async def test_presence_frames_as_people_come_and_go(fresh_presence, lobby, olivia, mia):
    slug = lobby.slug
    m, hello = await open_room(slug, user=mia)
    assert hello["room"]["online"] == ["mia"]
    o1, hello = await open_room(slug, user=olivia)
    assert hello["room"]["online"] == ["mia", "olivia"]
    assert await presence_frames(m, 1) == [["mia", "olivia"]]
    try:
        # A second tab changes nobody's list; an anonymous reader is not listed.
        o2, hello = await open_room(slug, user=olivia)
        anon, hello = await open_room(slug)
        assert hello["room"]["online"] == ["mia", "olivia"]
        await no_presence_frame(m)
        await o1.close()
        await no_presence_frame(m)
        await o2.close()
        assert await presence_frames(m, 1) == [["mia"]]
        assert await presence_frames(anon, 1) == [["mia"]]
        await anon.close()
    finally:
        await m.close()


@pytest.mark.django_db(transaction=True)
async def test_a_silent_socket_expires_and_the_room_hears_it(fresh_presence, lobby, mia, settings):
    settings.PARLEY_PRESENCE_TTL = 1.0
    # "ghost" registered from a process that then died: no goodbye, no more heartbeats.
    await presence.backend().join(lobby.id, "ghost", "lost-socket")
    m, hello = await open_room(lobby.slug, user=mia)
    try:
        assert hello["room"]["online"] == ["ghost", "mia"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await presence_frames(m, 1, timeout=5) == [["mia"]]
        assert loop.time() - started < 1.0 + 3 * settings.PARLEY_SWEEP_SECONDS
        # mia's own heartbeats keep her listed well past the TTL.
        await asyncio.sleep(1.5)
        assert (await presence.backend().online(lobby.id))[0] == ["mia"]
    finally:
        await m.close()


@pytest.mark.django_db(transaction=True)
async def test_typing_hints_are_never_stored_nor_replayed(fresh_presence, lobby, olivia, mia, api):
    o, _ = await open_room(lobby.slug, user=olivia)
    m, _ = await open_room(lobby.slug, user=mia)
    try:
        await o.send({"type": "typing"})
        assert await m.receive_type("typing") == {"type": "typing", "room": lobby.slug, "user": "olivia"}
        assert await db(Message.objects.count)() == 0
        assert (await db(Room.objects.get)(pk=lobby.id)).rev == 0
        history = await db(lambda: api(mia).get(f"/api/rooms/{lobby.slug}/messages/?since_rev=0").json())()
        assert history == []
        # A reconnecting client's replay has nothing to give either.
        again, _ = await open_room(lobby.slug, user=mia)
        await again.send({"type": "resume", "rev": 0})
        frames = []
        while (frame := await again.receive())["type"] != "resumed":
            frames.append(frame)
        assert [f for f in frames if f["type"] not in ("presence",)] == []
        assert frame["rev"] == 0
        await again.close()
    finally:
        await o.close()
        await m.close()


@pytest.mark.django_db(transaction=True)
async def test_a_crowd_arriving_at_once_makes_a_few_snapshots_not_one_each(fresh_presence, lobby, mia, make_user):
    watcher, _ = await open_room(lobby.slug, user=mia)
    crowd = [await database_sync_to_async(make_user)(f"guest{n}") for n in range(12)]
    sockets = [(await open_room(lobby.slug, user=guest))[0] for guest in crowd]
    try:
        await asyncio.sleep(presence.COALESCE_SECONDS + 0.5)
        await watcher.send({"type": "ping"})
        snapshots = []
        while (frame := await watcher.receive())["type"] != "pong":
            if frame["type"] == "presence":
                snapshots.append(frame["online"])
        assert 1 <= len(snapshots) <= 3, snapshots
        assert snapshots[-1] == sorted(["mia", *(guest.username for guest in crowd)])
    finally:
        for sock in sockets:
            await sock.close()
        await watcher.close()
