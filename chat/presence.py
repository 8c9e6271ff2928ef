"""Who is online in a room, across every server process.

Each open room socket of a logged-in user is an entry "<username>|<socket id>" scored by
its last heartbeat (wall-clock seconds). A user is online in a room while at least one
of their entries is younger than PRESENCE_TTL. Sockets register on connect and
unregister on disconnect; each process's hub sweep (chat/hub.py) re-stamps the entries of
its own live sockets and removes expired ones, so a process that dies without saying
goodbye drops out within a TTL or so: some surviving process's sweep removes its
entries and tells the room.

With REDIS_URL the entries live in one sorted set per room
(`<PARLEY_REDIS_PREFIX>:presence:<room id>`), changed in MULTI/EXEC blocks so that of
several processes sweeping at once exactly one sees (and announces) a given change.
Without Redis (one process) a dict does the same job.

A change of a room's online set is sent to the room as an ephemeral `presence` event
(chat.events.presence): never stored, never replayed.
"""

import asyncio
import logging
import secrets
import time
import weakref
from typing import TYPE_CHECKING

from django.conf import settings

from chat import events

if TYPE_CHECKING:
    from chat.hub import Hub

log = logging.getLogger(__name__)

# Ephemeral room events skip the sockets of their `user_id`; no user has id 0, so a
# presence frame reaches every socket in the room.
EVERYONE_IN_ROOM = 0


def ttl() -> float:
    """How long a heartbeat counts: a few sweeps, so one slow sweep does not make anyone flicker."""
    return float(getattr(settings, "PARLEY_PRESENCE_TTL", 0) or max(1.0, 4 * settings.PARLEY_SWEEP_SECONDS))


def now() -> float:
    return time.time()


def new_socket_id() -> str:
    return secrets.token_hex(8)


def _member(username: str, socket_id: str) -> str:
    return f"{username}|{socket_id}"


def _usernames(members) -> list[str]:
    names = set()
    for member in members:
        if isinstance(member, bytes):
            member = member.decode()
        names.add(member.rsplit("|", 1)[0])
    return sorted(names)


# Backends ------------------------------------------------------------------------------


class MemoryPresence:
    """One process's presence: room id → username → (newest heartbeat, {socket id: heartbeat}),
    and a version per room. Keeping each user's newest heartbeat makes a join or a leave
    cost the room's number of users, not of sockets: a thousand tabs connecting at once
    stay cheap."""

    def __init__(self):
        self.rooms: dict[int, dict[str, list]] = {}
        self.versions: dict[int, int] = {}

    def _live(self, room_id: int, at: float) -> list[str]:
        cutoff = at - ttl()
        return sorted(user for user, (newest, _) in self.rooms.get(room_id, {}).items() if newest > cutoff)

    def _bump(self, room_id: int) -> int:
        self.versions[room_id] = self.versions.get(room_id, 0) + 1
        return self.versions[room_id]

    def _stamp(self, room_id: int, username: str, socket_id: str, at: float) -> None:
        entry = self.rooms.setdefault(room_id, {}).setdefault(username, [at, {}])
        entry[1][socket_id] = at
        entry[0] = max(entry[0], at)

    def _drop(self, room_id: int, username: str, socket_ids) -> None:
        users = self.rooms.get(room_id, {})
        entry = users.get(username)
        if entry is None:
            return
        for socket_id in socket_ids:
            entry[1].pop(socket_id, None)
        if entry[1]:
            entry[0] = max(entry[1].values())
        else:
            del users[username]
            if not users:
                self.rooms.pop(room_id, None)

    async def online(self, room_id: int) -> tuple[list[str], int]:
        return self._live(room_id, now()), self.versions.get(room_id, 0)

    async def join(self, room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
        at = now()
        entry = self.rooms.get(room_id, {}).get(username)
        was_online = entry is not None and entry[0] > at - ttl()
        self._stamp(room_id, username, socket_id, at)
        return self._live(room_id, at), not was_online, self._bump(room_id)

    async def leave(self, room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
        at = now()
        before = self._live(room_id, at)
        self._drop(room_id, username, [socket_id])
        after = self._live(room_id, at)
        return after, after != before, self._bump(room_id)

    async def refresh(self, local: dict[int, set[str]]) -> dict[int, tuple[list[str], int]]:
        at = now()
        changed = {}
        for room_id, members in local.items():
            before = sorted(self.rooms.get(room_id, {}))
            for member in members:
                username, socket_id = member.rsplit("|", 1)
                self._stamp(room_id, username, socket_id, at)
            for username, (_, sockets) in list(self.rooms.get(room_id, {}).items()):
                expired = [socket_id for socket_id, stamp in sockets.items() if stamp <= at - ttl()]
                if expired:
                    self._drop(room_id, username, expired)
            after = sorted(self.rooms.get(room_id, {}))
            if after != before:
                changed[room_id] = (after, self._bump(room_id))
        return changed


class RedisPresence:
    """Presence shared by every process through one Redis sorted set per room, plus a
    counter per room that numbers the snapshots (so a socket can drop an older one)."""

    def __init__(self, url: str, prefix: str):
        import redis.asyncio as redis

        # Few connections, shared: a burst of connects waits a moment for one instead of
        # opening a connection per socket that then idles in the pool for good.
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=2, timeout=10)
        self.redis = redis.Redis(connection_pool=pool)
        self.prefix = prefix

    def key(self, room_id: int) -> str:
        return f"{self.prefix}:presence:{room_id}"

    def _keep(self) -> int:
        # An abandoned set (every process gone) disappears by itself.
        return max(10, int(ttl() * 4))

    def _version(self, pipe, key: str) -> None:
        pipe.incr(f"{key}:v")
        pipe.expire(f"{key}:v", 86_400)

    async def online(self, room_id: int) -> tuple[list[str], int]:
        key = self.key(room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(key, now() - ttl(), "+inf")
            pipe.get(f"{key}:v")
            members, version = await pipe.execute()
        return _usernames(members), int(version or 0)

    async def join(self, room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
        at, key = now(), self.key(room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(key, at - ttl(), "+inf")
            pipe.zadd(key, {_member(username, socket_id): at})
            pipe.zrangebyscore(key, at - ttl(), "+inf")
            pipe.expire(key, self._keep())
            self._version(pipe, key)
            before, _, after, _, version, _ = await pipe.execute()
        before, after = _usernames(before), _usernames(after)
        return after, after != before, version

    async def leave(self, room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
        at, key = now(), self.key(room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(key, at - ttl(), "+inf")
            pipe.zrem(key, _member(username, socket_id))
            pipe.zrangebyscore(key, at - ttl(), "+inf")
            self._version(pipe, key)
            before, _, after, version, _ = await pipe.execute()
        before, after = _usernames(before), _usernames(after)
        return after, after != before, version

    async def refresh(self, local: dict[int, set[str]]) -> dict[int, tuple[list[str], int]]:
        """Re-stamp this process's sockets and drop expired entries, in the rooms this
        process serves; returns the rooms whose online set this sweep changed."""
        if not local:
            return {}
        at, room_ids = now(), list(local)
        async with self.redis.pipeline(transaction=True) as pipe:
            for room_id in room_ids:
                key = self.key(room_id)
                pipe.zrange(key, 0, -1)
                if local[room_id]:
                    pipe.zadd(key, dict.fromkeys(local[room_id], at))
                else:
                    pipe.zcard(key)  # same number of replies per room
                pipe.zremrangebyscore(key, "-inf", at - ttl())
                pipe.zrange(key, 0, -1)
                pipe.expire(key, self._keep())
                self._version(pipe, key)
            replies = await pipe.execute()
        changed = {}
        for index, room_id in enumerate(room_ids):
            before, _, _, after, _, version, _ = replies[index * 7 : index * 7 + 7]
            before, after = _usernames(before), _usernames(after)
            if after != before:
                changed[room_id] = (after, version)
        return changed


_backends: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()
_memory = MemoryPresence()


def backend():
    """Redis presence (one client per event loop) with REDIS_URL, else this process's dict."""
    if not settings.REDIS_URL:
        return _memory
    loop = asyncio.get_running_loop()
    found = _backends.get(loop)
    if found is None:
        found = _backends[loop] = RedisPresence(settings.REDIS_URL, settings.PARLEY_REDIS_PREFIX)
    return found


def reset() -> None:
    """Forget the in-process entries (tests)."""
    _memory.rooms.clear()
    _memory.versions.clear()


# What sockets and the hub call ----------------------------------------------------------


# A room hears about presence changes at most once per this many seconds from each
# process: a thousand people connecting at once (a restart) make a few snapshots, not a
# thousand full lists sent to a thousand sockets each.
COALESCE_SECONDS = 1.0


class _Coalescer:
    def __init__(self):
        self.pending: set[int] = set()
        self.last: dict[int, float] = {}
        self.tasks: set[asyncio.Task] = set()


_coalescers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Coalescer]" = weakref.WeakKeyDictionary()


def tell_room(room_id: int, slug: str) -> None:
    """Announce the room's online set soon: now if the room heard nothing for
    COALESCE_SECONDS, else once at the end of that interval, with whatever is true then."""
    loop = asyncio.get_running_loop()
    state = _coalescers.get(loop)
    if state is None:
        state = _coalescers[loop] = _Coalescer()
    if room_id in state.pending:
        return
    state.pending.add(room_id)
    wait = max(0.0, state.last.get(room_id, -COALESCE_SECONDS) + COALESCE_SECONDS - loop.time())
    task = loop.create_task(_tell_after(state, room_id, slug, wait))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _tell_after(state: _Coalescer, room_id: int, slug: str, wait: float) -> None:
    try:
        await asyncio.sleep(wait)
    finally:
        state.pending.discard(room_id)
    state.last[room_id] = asyncio.get_running_loop().time()
    try:
        now_online, version = await backend().online(room_id)
        await announce(room_id, slug, now_online, version)
    except Exception:
        log.exception("announcing presence in room %s failed", room_id)


async def announce(
    room_id: int, slug: str, online: list[str], version: int, *, skip_user_id: int = EVERYONE_IN_ROOM
) -> None:
    """Tell the room who is online now (`skip_user_id`'s own sockets excepted). The
    envelope carries the snapshot's version; sockets drop snapshots older than theirs."""
    event = events.ephemeral(events.presence(slug, online), user_id=skip_user_id)
    await events.apublish(
        events.room_group(room_id), {**event, "presence_version": version, "presence_online": online}
    )


class Seen:
    """The last presence snapshot a room socket gave its client (hello's included)."""

    def __init__(self, version: int, online: list[str]):
        self.version = version
        self.online = online

    def is_news(self, event: dict) -> bool:
        """Whether to pass this ephemeral event on: any typing hint, and a presence snapshot
        newer than the last one given that says something else. Snapshots from different
        processes can arrive out of order; an older one would be wrong, and the same list
        again is noise."""
        version = event.get("presence_version")
        if version is None:
            return True
        if version <= self.version:
            return False
        self.version = version
        online = event.get("presence_online")
        if online == self.online:
            return False
        self.online = online
        return True


async def online(room_id: int) -> tuple[list[str], int]:
    return await backend().online(room_id)


async def join(room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
    """Register a socket; returns who is online now (its user included), whether that
    changed, and the snapshot's version. The caller announces a change with `tell_room`,
    after its own hello."""
    return await backend().join(room_id, username, socket_id)


async def leave(room_id: int, slug: str, username: str, socket_id: str, *, user_id: int) -> None:
    """Unregister a socket and tell the room if its user is gone now."""
    try:
        _, changed, _ = await backend().leave(room_id, username, socket_id)
        if changed:
            tell_room(room_id, slug)
    except Exception:
        # The entry expires by itself within a TTL; a sweep then announces it.
        log.exception("unregistering presence in room %s failed", room_id)


async def sweep(hub: "Hub") -> None:
    """Heartbeat this process's room sockets and expire dead entries (called by Hub.sweep)."""
    local: dict[int, set[str]] = {}
    slugs: dict[int, str] = {}
    for room_id, stream in list(hub.rooms.items()):
        members = {
            _member(s.username, s.presence_id)
            for s in tuple(stream.subscribers)
            if s.presence_id and s.username and s.watches_room(room_id)
        }
        # Rooms only user streams (`/ws/`) follow here have nobody to tell: skip them. A
        # room with a socket on any live process is swept by that process.
        if members and stream.ready.is_set():
            local[room_id], slugs[room_id] = members, stream.slug
    try:
        changed = await backend().refresh(local)
        for room_id in changed:
            tell_room(room_id, slugs[room_id])
    except Exception:
        log.exception("presence sweep failed")
