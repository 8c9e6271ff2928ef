"""What one client may hold and send over sockets (SPEC §6.4 "Limits").

Sockets: at most PARLEY_MAX_SOCKETS_PER_USER per logged-in user and
PARLEY_MAX_SOCKETS_PER_IP per client address (`scope["client"]`, anonymous sockets
included); the socket over a cap is closed with 4429. Each admitted socket holds a lease.
With REDIS_URL the leases are entries in one sorted set per user and per address
(`<PARLEY_REDIS_PREFIX>:sockets:user:<id>`, `…:sockets:ip:<address>`) scored by their
last heartbeat, so the caps hold across every process. Admission is one Lua script:
drop entries older than the TTL, count, and add the socket only if every count is under
its cap. Each process re-stamps its own leases every PARLEY_SWEEP_SECONDS, so the sockets
of a process killed without closing them stop counting after a TTL (the presence TTL,
chat/presence.py). Without Redis, or while Redis is unreachable (a restart must not lock
everyone out), sockets are counted in this process.

Frames: every frame but a send (which has its per-user limit, core/ratelimit.py) takes a
token from its socket's bucket, PARLEY_FRAME_BURST at once then PARLEY_FRAME_RATE per
second, in memory: it is checked before a frame does any work. A frame without a token is
refused `rate_limited` with `retry_after`; a socket that keeps sending regardless is
closed with 4429, and its user's (or address's) next sockets start with an empty bucket.
A `resume` also pays for the replay it asks for, a token per CHANGES_PER_TOKEN changes it
may send: a fresh socket can resume in full at once, a socket asking for the same long
replay over and over gets it about once every few seconds.
"""

import asyncio
import logging
import secrets
import time
import weakref

from django.conf import settings

from chat import presence
from core.errors import RateLimited
from core.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# Refused frames a socket may send before it is closed, forgiven at one per second: a
# client that waits out retry_after never comes near it (a few frames already in flight
# when the first refusal arrives are fine), one that ignores it is gone within a second.
REFUSALS_BEFORE_CLOSE = 20
# What a replay costs on top of its frame: up to PARLEY_RESUME_LIMIT (500) changes, 50 tokens.
CHANGES_PER_TOKEN = 10
# After a socket is closed for flooding, the next sockets of its user (or, anonymous, its
# address) in this process start with an empty allowance for this long: reconnecting does
# not buy a fresh burst.
PENALTY_SECONDS = 60.0

_penalties: dict[str, float] = {}


class KeepsGoing(Exception):
    """A socket went on sending after being refused: close it (4429)."""


class FrameGuard:
    """One socket's allowance of frames other than sends. `key` names whom a close for
    flooding penalizes (see PENALTY_SECONDS)."""

    __slots__ = ("frames", "refusals", "key")

    def __init__(self, key: str | None = None):
        self.key = key
        self.frames = TokenBucket(settings.PARLEY_FRAME_RATE, settings.PARLEY_FRAME_BURST)
        self.refusals = TokenBucket(1.0, REFUSALS_BEFORE_CLOSE)
        if key is not None and _penalties.get(key, 0.0) > time.monotonic():
            self.frames.tokens = 0.0

    def check(self) -> None:
        """Take a frame's token; raise RateLimited when there is none, KeepsGoing when
        the socket has ignored too many refusals."""
        wait = self.frames.take()
        if not wait:
            return
        if self.refusals.take():
            if self.key is not None:
                _penalize(self.key)
            raise KeepsGoing()
        raise RateLimited(retry_after=wait, detail="Too many frames on this socket; slow down.")

    def charge(self, tokens: int) -> None:
        """Take more for a frame that costs more (a long replay), or raise RateLimited.
        Never more than a fresh socket has left after the frame itself."""
        tokens = min(tokens, self.frames.burst - 1)
        if tokens > 0:
            wait = self.frames.take(tokens)
            if wait:
                raise RateLimited(retry_after=wait, detail="Too many frames on this socket; slow down.")


def _penalize(key: str) -> None:
    now = time.monotonic()
    if len(_penalties) > 10_000:
        for stale in [k for k, until in _penalties.items() if until <= now]:
            del _penalties[stale]
    _penalties[key] = now + PENALTY_SECONDS


def guard_key(user_id: int | None, address: str | None) -> str | None:
    return f"user:{user_id}" if user_id is not None else (f"ip:{address}" if address else None)


# Long replays --------------------------------------------------------------------------------

# A replay is written in chunks: past REPLAY_HIGH_BYTES unsent (in the socket's buffer, for
# direct writes, or its outbox) it waits until the client has taken all but
# REPLAY_LOW_BYTES, so a long replay to a client that reads never meets the slow-client
# bound (chat/wire.py MAX_BUFFERED_BYTES). A client that does not catch up within
# REPLAY_STALL_SECONDS stopped reading (4408): the replay's memory is not held for a
# client that trickles.
REPLAY_HIGH_BYTES = 1024 * 1024
REPLAY_LOW_BYTES = 256 * 1024
REPLAY_HIGH_FRAMES = 250
REPLAY_STALL_SECONDS = 10.0
CLOSE_TOO_SLOW = 4408


def _unsent(socket) -> tuple[int, int]:
    direct, outbox = socket.direct, socket.outbox  # the outbox exists once a frame needed it
    return (direct.backlog() if direct is not None else 0), (outbox.qsize() if outbox is not None else 0)


async def reader_caught_up(socket) -> bool:
    """Before the next frame of a replay: if the client is behind, wait until it has taken
    most of what it was sent. False when the socket closed meanwhile or the client did not
    catch up in time (then it is closed 4408)."""
    unsent, queued = _unsent(socket)
    if unsent < REPLAY_HIGH_BYTES and queued < REPLAY_HIGH_FRAMES:
        return not socket.closing
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLAY_STALL_SECONDS
    while not socket.closing:
        # Polling, only while a replay waits: the same for direct writes and the outbox.
        await asyncio.sleep(0.005)
        unsent, queued = _unsent(socket)
        if unsent <= REPLAY_LOW_BYTES and queued <= REPLAY_HIGH_FRAMES // 4:
            return not socket.closing
        if loop.time() > deadline:
            log.info("closing a socket of user %s that stopped reading", socket.user_id)
            socket.close_with(CLOSE_TOO_SLOW)
    return False


# Sockets ----------------------------------------------------------------------------------

# KEYS: the sets to count in; ARGV: now, ttl, seconds to keep an idle set, the socket's
# member, then one cap per key. Returns 0 when admitted (and added to every set), else the
# 1-based index of the key whose cap is reached.
_ADMIT = """
local now = tonumber(ARGV[1])
local cutoff = now - tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  if redis.call('ZCARD', key) >= tonumber(ARGV[4 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('EXPIRE', key, tonumber(ARGV[3]))
end
return 0
"""


class Lease:
    __slots__ = ("keys", "member", "backend")

    def __init__(self, keys: list[str], member: str, backend):
        self.keys = keys
        self.member = member
        self.backend = backend


class MemorySockets:
    """This process's count of sockets per key."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def admit(self, caps: dict[str, int]) -> bool:
        if any(self.counts.get(key, 0) >= cap for key, cap in caps.items()):
            return False
        for key in caps:
            self.counts[key] = self.counts.get(key, 0) + 1
        return True

    def release(self, lease: Lease) -> None:
        for key in lease.keys:
            left = self.counts.get(key, 0) - 1
            if left > 0:
                self.counts[key] = left
            else:
                self.counts.pop(key, None)


def _keep() -> int:
    # An abandoned set (every process gone) disappears by itself.
    return max(10, int(presence.ttl() * 4))


class RedisSockets:
    """Leases in Redis for the sockets of one event loop, and their heartbeat."""

    def __init__(self, url: str, prefix: str):
        import redis
        import redis.asyncio as aredis

        self.errors = (redis.RedisError, OSError, TimeoutError)
        pool = aredis.BlockingConnectionPool.from_url(url, max_connections=2, timeout=10)
        self.redis = aredis.Redis(connection_pool=pool)
        self.prefix = f"{prefix}:sockets:"
        self.script = self.redis.register_script(_ADMIT)
        self.leases: set[Lease] = set()
        self.heartbeat: asyncio.Task | None = None
        self.tasks: set[asyncio.Task] = set()

    async def admit(self, caps: dict[str, int], member: str) -> bool:
        refused = await self.script(
            keys=[self.prefix + key for key in caps],
            args=[presence.now(), presence.ttl(), _keep(), member, *caps.values()],
        )
        return not int(refused)

    def hold(self, lease: Lease) -> None:
        self.leases.add(lease)
        if self.heartbeat is None:
            self.heartbeat = asyncio.ensure_future(self._heartbeat_forever())

    def release(self, lease: Lease) -> None:
        self.leases.discard(lease)
        task = asyncio.ensure_future(self._remove(lease))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _remove(self, lease: Lease) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in lease.keys:
                    pipe.zrem(self.prefix + key, lease.member)
                await pipe.execute()
        except self.errors:
            log.warning("could not release a socket lease (it expires by itself): Redis is unavailable")

    async def _heartbeat_forever(self) -> None:
        while self.leases:
            await asyncio.sleep(settings.PARLEY_SWEEP_SECONDS)
            try:
                await self.refresh()
            except self.errors:
                log.warning("could not refresh socket leases: Redis is unavailable")
        self.heartbeat = None

    async def refresh(self) -> None:
        """Re-stamp the leases of this loop's open sockets."""
        at, stamps = presence.now(), {}
        for lease in tuple(self.leases):
            for key in lease.keys:
                stamps.setdefault(self.prefix + key, {})[lease.member] = at
        if not stamps:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, members in stamps.items():
                pipe.zadd(key, members)
                pipe.expire(key, _keep())
            await pipe.execute()


_memory = MemorySockets()
_backends: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisSockets]" = weakref.WeakKeyDictionary()


def _redis() -> RedisSockets:
    loop = asyncio.get_running_loop()
    found = _backends.get(loop)
    if found is None:
        found = _backends[loop] = RedisSockets(settings.REDIS_URL, settings.PARLEY_REDIS_PREFIX)
    return found


def client_address(scope) -> str | None:
    """The client's address as the server gives it (uvicorn --proxy-headers: the proxy's
    X-Forwarded-For from a trusted proxy, else the peer); None when there is none."""
    client = scope.get("client")
    return str(client[0]) if client and client[0] else None


async def admit(user_id: int | None, address: str | None) -> Lease | None:
    """A lease for a new socket, or None when its user or address is at its cap."""
    caps = {}
    if user_id is not None:
        caps[f"user:{user_id}"] = settings.PARLEY_MAX_SOCKETS_PER_USER
    if address is not None:
        caps[f"ip:{address}"] = settings.PARLEY_MAX_SOCKETS_PER_IP
    lease = Lease(list(caps), secrets.token_hex(8), _memory)
    if settings.REDIS_URL and caps:
        backend = _redis()
        try:
            if not await backend.admit(caps, lease.member):
                return None
        except backend.errors:
            log.warning("counting sockets in this process only: Redis is unavailable")
        else:
            lease.backend = backend
            backend.hold(lease)
            return lease
    return lease if _memory.admit(caps) else None


def release(lease: Lease) -> None:
    """The socket closed: it no longer counts (in Redis, a moment later)."""
    lease.backend.release(lease)


def reset() -> None:
    """Forget every count and penalty (tests)."""
    _memory.counts.clear()
    _penalties.clear()
    _backends.clear()
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            keys = list(client.scan_iter(f"{settings.PARLEY_REDIS_PREFIX}:sockets:*"))
            if keys:
                client.delete(*keys)
        except (redis.RedisError, OSError):
            log.warning("could not clear socket counts: Redis is unavailable")
        finally:
            client.close()
