"""Presence in a large room on Redis: a join and a leave cost O(1) there (no read of the
room's set or its user list), whatever the room's size, and the list stays right."""

import secrets

import pytest
from django.conf import settings

from chat import presence

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis backend (PostgreSQL + Redis pass)")

WHOLE_SET_READS = {"ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZSCAN", "ZCARD", "HKEYS", "HGETALL", "HVALS", "HLEN",
                   "SMEMBERS", "KEYS", "SCAN"}


@pytest.fixture
def room_id():
    yield 10**12 + secrets.randbelow(10**12)


@pytest.fixture
async def big_room(room_id):
    """A room 2,000 users are online in, registered from another process's point of view."""
    backend = presence.backend()
    others = {presence._member(f"user{i}", f"s{i}") for i in range(2000)}
    await backend.refresh({room_id: others})
    yield backend, room_id
    await backend.redis.delete(*backend.keys(room_id))


def recording(backend, monkeypatch):
    """The Redis commands the backend sends, and the keys and scripts they touch."""
    sent = []
    real = backend.redis.execute_command

    async def execute(*args, **options):
        sent.append(args)
        return await real(*args, **options)

    monkeypatch.setattr(backend.redis, "execute_command", execute)
    return sent


async def test_join_and_leave_in_a_big_room_read_neither_the_set_nor_the_user_list(big_room, monkeypatch):
    backend, room_id = big_room
    online, _ = await backend.online(room_id)  # this process has seen the room's snapshot
    assert len(online) == 2000
    sent = recording(backend, monkeypatch)

    joined, came_online, _ = await backend.join(room_id, "zoe", "z1")
    assert came_online and len(joined) == 2001 and "zoe" in joined
    changed, _ = await backend.leave(room_id, "zoe", "z1")
    assert changed

    # One script call each. The join asked for no list (its last argument): this process's
    # snapshot serves the hello. Inside the scripts the only range read is the expiry's,
    # from -inf to the cutoff: the entries that expired, each read once.
    assert [args[0] for args in sent] == ["EVALSHA", "EVALSHA"]
    assert sent[0][-1] == 0
    for script in (presence._LUA_JOIN.split("if ARGV[5] == '1'")[0], presence._LUA_LEAVE):
        reads = [word for word in WHOLE_SET_READS if f"'{word}'" in script]
        assert reads == ["ZRANGEBYSCORE"] and script.count("ZRANGEBYSCORE', KEYS[1], '-inf', cutoff") == 1


async def test_counts_stay_right_across_two_processes_and_many_tabs(room_id, monkeypatch):
    """Two processes (two backends) join and leave the same users' tabs; a user is online
    while any tab is, and each coming and going is reported exactly once."""
    one = presence.backend()
    two = presence.RedisPresence(settings.REDIS_URL, settings.PARLEY_REDIS_PREFIX)
    try:
        events = []
        for backend, user, tab in [(one, "ann", "a1"), (two, "ann", "a2"), (two, "bob", "b1"), (one, "bob", "b2")]:
            _, came, _ = await backend.join(room_id, user, tab)
            events.append((user, tab, came))
        assert events == [("ann", "a1", True), ("ann", "a2", False), ("bob", "b1", True), ("bob", "b2", False)]
        assert (await two.online(room_id))[0] == ["ann", "bob"]
        assert (await one.leave(room_id, "ann", "a1"))[0] is False  # a2 still open
        assert (await two.leave(room_id, "ann", "a2"))[0] is True
        assert (await one.online(room_id))[0] == ["bob"]
        assert (await one.leave(room_id, "bob", "b2"))[0] is False
        assert (await two.leave(room_id, "bob", "b1"))[0] is True
        assert (await one.online(room_id))[0] == []
        # A leave of a tab already gone changes nothing and reports nothing.
        assert (await one.leave(room_id, "bob", "b1"))[0] is False
    finally:
        await one.redis.delete(*one.keys(room_id))
        await two.redis.aclose()
