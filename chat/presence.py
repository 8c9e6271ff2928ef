"""Who is online in a room, across every server process.

Each open room socket of a logged-in user is an entry "<username>|<socket id>" scored by
its last heartbeat (wall-clock seconds). A user is online in a room while at least one
of their entries is younger than PRESENCE_TTL. Sockets register on connect and
unregister on disconnect; each process's hub sweep (chat/hub.py) re-stamps the entries of
its own live sockets and removes expired ones, so a process that dies without saying
goodbye drops out within a TTL or so: some surviving process's sweep removes its
entries and tells the room.

With REDIS_URL the entries live in one sorted set per room
(`<PARLEY_REDIS_PREFIX>:online:<room id>`) beside a hash of each user's socket count,
changed by Lua scripts so that of several processes sweeping at once exactly one sees
(and announces) a given change, and a join or a leave costs O(1) however big the room.
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


def _names(users) -> list[str]:
    return sorted(user.decode() if isinstance(user, bytes) else user for user in users)


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

    async def leave(self, room_id: int, username: str, socket_id: str) -> tuple[bool, int]:
        at = now()
        before = self._live(room_id, at)
        self._drop(room_id, username, [socket_id])
        return self._live(room_id, at) != before, self._bump(room_id)

    def remember(self, room_id: int, version: int, online: list[str]) -> None:
        """Nothing to learn: this dict is the whole truth."""

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


# Lua run inside Redis, so that a change and what it changed are one atomic step. Every
# script first expires the entries whose heartbeat is older than the cutoff (each entry
# expires once: O(1) amortized), keeping the per-user socket count exact.
_LUA_EXPIRE = """
local function user_of(member) return string.match(member, '^(.*)|[^|]*$') end
local dropped = 0
local function expire(cutoff)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)) do
    redis.call('ZREM', KEYS[1], member)
    local user = user_of(member)
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      dropped = 1
    end
  end
end
local function stamp(at, member)
  if redis.call('ZADD', KEYS[1], at, member) == 1 then
    return redis.call('HINCRBY', KEYS[2], user_of(member), 1) == 1 and 1 or 0
  end
  return 0
end
local function finish(keep)
  redis.call('EXPIRE', KEYS[1], keep)
  redis.call('EXPIRE', KEYS[2], keep)
  local version = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 86400)
  return version
end
"""
# ARGV: member, cutoff, at, keep, want the list (1/0) → {came online, someone dropped, version, users}
_LUA_JOIN = _LUA_EXPIRE + """
expire(ARGV[2])
local came = stamp(ARGV[3], ARGV[1])
local version = finish(ARGV[4])
local users = {}
if ARGV[5] == '1' or dropped == 1 then users = redis.call('HKEYS', KEYS[2]) end
return {came, dropped, version, users}
"""
# ARGV: member, cutoff, keep → {went offline, someone dropped, version}
_LUA_LEAVE = _LUA_EXPIRE + """
expire(ARGV[2])
local gone = 0
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local user = user_of(ARGV[1])
  if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    gone = 1
  end
end
return {gone, dropped, finish(ARGV[3])}
"""
# ARGV: cutoff, at, keep, members... → {changed, version, users (when changed)}. The
# process's own sockets are stamped before anything expires: a late sweep brings its
# sockets back rather than dropping and re-adding them.
_LUA_REFRESH = _LUA_EXPIRE + """
local came = 0
for i = 4, #ARGV do came = math.max(came, stamp(ARGV[2], ARGV[i])) end
expire(ARGV[1])
local version = finish(ARGV[3])
local changed = math.max(came, dropped)
local users = {}
if changed == 1 then users = redis.call('HKEYS', KEYS[2]) end
return {changed, version, users}
"""


class RedisPresence:
    """Presence shared by every process through Redis: per room a sorted set of socket
    entries scored by heartbeat, a hash of each online user's socket count, and a counter
    that numbers the snapshots (so a socket can drop an older one).

    A join or a leave costs O(1) in Redis whatever the room's size: it touches its own
    entry and its user's count, and learns from the count whether the user came or went.
    A socket's hello still needs the online list: it comes from the last snapshot this
    process saw of the room (`remember`: read, or relayed by the hub from the room's
    presence events) plus this process's own changes since, and is read whole at most
    once per PARLEY_SWEEP_SECONDS per room and process.
    """

    def __init__(self, url: str, prefix: str):
        import redis.asyncio as redis

        # Few connections, shared: a burst of connects waits a moment for one instead of
        # opening a connection per socket that then idles in the pool for good.
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=2, timeout=10)
        self.redis = redis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._join = self.redis.register_script(_LUA_JOIN)
        self._leave = self.redis.register_script(_LUA_LEAVE)
        self._refresh = self.redis.register_script(_LUA_REFRESH)
        # room id → (version, online, loop time it was learnt)
        self.snapshots: dict[int, tuple[int, list[str], float]] = {}

    def key(self, room_id: int) -> str:
        return f"{self.prefix}:online:{room_id}"

    def keys(self, room_id: int) -> list[str]:
        key = self.key(room_id)
        return [key, f"{key}:users", f"{key}:v"]

    def _keep(self) -> int:
        # An abandoned set (every process gone) disappears by itself.
        return max(10, int(ttl() * 4))

    def remember(self, room_id: int, version: int, online: list[str]) -> None:
        """A snapshot of the room seen by this process (read, or relayed by the hub)."""
        known = self.snapshots.get(room_id)
        if known is None or version > known[0]:
            self.snapshots[room_id] = (version, online, asyncio.get_running_loop().time())

    def _recent(self, room_id: int) -> tuple[int, list[str], float] | None:
        known = self.snapshots.get(room_id)
        if known is not None and asyncio.get_running_loop().time() - known[2] < settings.PARLEY_SWEEP_SECONDS:
            return known
        self.snapshots.pop(room_id, None)
        return None

    async def online(self, room_id: int) -> tuple[list[str], int]:
        key, _, version_key = self.keys(room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(key, now() - ttl(), "+inf")
            pipe.get(version_key)
            members, version = await pipe.execute()
        online, version = _usernames(members), int(version or 0)
        self.remember(room_id, version, online)
        return online, version

    async def join(self, room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
        at = now()
        known = self._recent(room_id)
        came, dropped, version, users = await self._join(
            keys=self.keys(room_id),
            args=[_member(username, socket_id), at - ttl(), at, self._keep(), 0 if known else 1],
        )
        if known is None or dropped:
            online = _names(users)
            self.snapshots.pop(room_id, None)
            self.remember(room_id, version, online)
            return online, bool(came or dropped), version
        # The last snapshot this process saw, with this user (and this process's own
        # changes since): the announcements of any other change since carry newer
        # versions, so the socket still takes them.
        known_version, known_online, learnt = known
        online = known_online if username in known_online else sorted([*known_online, username])
        self.snapshots[room_id] = (known_version, online, learnt)
        return online, bool(came), known_version

    async def leave(self, room_id: int, username: str, socket_id: str) -> tuple[bool, int]:
        at = now()
        gone, dropped, version = await self._leave(
            keys=self.keys(room_id), args=[_member(username, socket_id), at - ttl(), self._keep()]
        )
        known = self.snapshots.get(room_id)
        if dropped:
            self.snapshots.pop(room_id, None)  # who expired, only a read would say
        elif gone and known is not None and username in known[1]:
            self.snapshots[room_id] = (known[0], [u for u in known[1] if u != username], known[2])
        return bool(gone or dropped), version

    async def refresh(self, local: dict[int, set[str]]) -> dict[int, tuple[list[str], int]]:
        """Re-stamp this process's sockets and drop expired entries, in the rooms this
        process serves; returns the rooms whose online set this sweep changed. Costs the
        number of local sockets and expired entries, not the room's size."""
        if not local:
            return {}
        at = now()
        async with self.redis.pipeline(transaction=False) as pipe:
            for room_id, members in local.items():
                await self._refresh(
                    keys=self.keys(room_id), args=[at - ttl(), at, self._keep(), *sorted(members)], client=pipe
                )
            replies = await pipe.execute()
        changed = {}
        for room_id, (was_changed, version, users) in zip(local, replies, strict=True):
            if was_changed:
                changed[room_id] = (_names(users), version)
                self.snapshots.pop(room_id, None)
                self.remember(room_id, version, changed[room_id][0])
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


def remember(room_id: int, event: dict) -> None:
    """The hub relays a presence snapshot of one of its rooms: later joins start from it."""
    if settings.REDIS_URL:
        backend().remember(room_id, event["presence_version"], event["presence_online"])


async def join(room_id: int, username: str, socket_id: str) -> tuple[list[str], bool, int]:
    """Register a socket; returns who is online now (its user included), whether that
    changed, and the snapshot's version. The caller announces a change with `tell_room`,
    after its own hello."""
    return await backend().join(room_id, username, socket_id)


async def leave(room_id: int, slug: str, username: str, socket_id: str, *, user_id: int) -> None:
    """Unregister a socket and tell the room if its user is gone now."""
    try:
        changed, _ = await backend().leave(room_id, username, socket_id)
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
