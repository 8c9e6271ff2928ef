"""Per-user allowances: sending (a burst of PARLEY_RATE_BURST, then one per
PARLEY_RATE_INTERVAL s) and changing one's avatar (PARLEY_AVATAR_PER_HOUR).
(TokenBucket, at the end, is the per-socket allowance for everything else a socket sends.)

A generic cell rate algorithm (a token bucket kept as one timestamp per key). With
REDIS_URL set the state lives in Redis and is updated by one Lua script on Redis's own
clock, so every process shares one limit; otherwise it lives in this process.

The test is "how far ahead of now is the bucket" against "how far it may be ahead before
this hit" (window - interval), never `tat + interval - now > window`: with a full bucket
and a burst of 1 that sum is interval vs. interval, and float rounding of `now + interval`
(whenever it crosses a power of two) refused the first send of a fresh user.
"""

import logging
import threading
import time

from django.conf import settings

from core.errors import RateLimited

log = logging.getLogger(__name__)

# KEYS: the keys, each taking one in turn (a key twice takes two); ARGV: interval, burst
# window (interval x burst), both in seconds. Returns per key '0' when allowed, else the
# seconds to wait. Several keys in one call: a group commit's sends take their allowances
# in one round trip (chat.services.messages.message_send_together).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local waits = {}
local taken = {}  -- a key met again: its exact time, not the one rounded by tostring
for i, key in ipairs(KEYS) do
  local tat = taken[key] or tonumber(redis.call('GET', key) or now)
  local ahead = math.max(tat - now, 0)
  if ahead > window - interval then
    waits[i] = tostring(ahead - (window - interval))
  else
    local next_tat = now + ahead + interval
    taken[key] = next_tat
    redis.call('SET', key, tostring(next_tat), 'PX', math.ceil((ahead + interval) * 1000) + 1)
    waits[i] = '0'
  end
end
return waits
"""


class _LocalLimiter:
    def __init__(self):
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def hit(self, key: str, interval: float, window: float) -> float:
        return self.hit_many([key], interval, window)[0]

    def hit_many(self, keys: list[str], interval: float, window: float) -> list[float]:
        with self._lock:
            return [self._hit(key, interval, window) for key in keys]

    def _hit(self, key: str, interval: float, window: float) -> float:
        now = time.monotonic()
        ahead = max(self._tat.get(key, now) - now, 0.0)
        if ahead > window - interval:
            return ahead - (window - interval)
        self._tat[key] = now + ahead + interval
        if len(self._tat) > 100_000:  # forget idle users; their buckets are full again
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return 0.0

    def clear(self) -> None:
        with self._lock:
            self._tat.clear()


class _RedisLimiter:
    def __init__(self, url: str, prefix: str):
        import redis

        self._errors = (redis.RedisError, OSError)
        self._prefix = f"{prefix}:rate:"
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_GCRA)
        # While Redis is away (a restart), each process limits on its own rather than
        # refusing every message: the database, not Redis, is what a send needs.
        self._fallback = _LocalLimiter()

    def hit(self, key: str, interval: float, window: float) -> float:
        return self.hit_many([key], interval, window)[0]

    def hit_many(self, keys: list[str], interval: float, window: float) -> list[float]:
        try:
            waits = self._script(keys=[self._prefix + key for key in keys], args=[interval, window])
            return [float(wait) for wait in waits]
        except self._errors:
            log.warning("rate limiting in this process only: Redis is unavailable")
            return self._fallback.hit_many(keys, interval, window)

    def clear(self) -> None:
        self._fallback.clear()
        try:
            keys = list(self._client.scan_iter(self._prefix + "*"))
            if keys:
                self._client.delete(*keys)
        except self._errors:
            log.warning("could not clear rate limits: Redis is unavailable")


_limiter = None
_limiter_lock = threading.Lock()


def _get_limiter():
    global _limiter
    with _limiter_lock:
        if _limiter is None:
            _limiter = _RedisLimiter(settings.REDIS_URL, settings.PARLEY_REDIS_PREFIX) if settings.REDIS_URL else _LocalLimiter()
        return _limiter


def _take(key: str, interval: float, burst: int) -> float:
    """Take one from the allowance under `key`: 0 when allowed, else the seconds to wait."""
    return _get_limiter().hit(key, interval, interval * burst)


def send_waits(user_ids: list[int]) -> list[float]:
    """Take one send from each user's allowance, in order (a user twice takes two), in one
    call: 0 where granted, else the seconds to wait (nothing is taken then)."""
    interval = float(settings.PARLEY_RATE_INTERVAL)
    keys = [f"send:{user_id}" for user_id in user_ids]
    return _get_limiter().hit_many(keys, interval, interval * settings.PARLEY_RATE_BURST)


def check_avatar_rate(user_id: int) -> None:
    """Take one avatar change from the user's allowance: PARLEY_AVATAR_PER_HOUR at once,
    then one per hour / PARLEY_AVATAR_PER_HOUR. Every upload counts, refused ones too:
    decoding is the cost being limited."""
    per_hour = settings.PARLEY_AVATAR_PER_HOUR
    wait = _take(f"avatar:{user_id}", 3600 / per_hour, per_hour)
    if wait > 0:
        seconds = RateLimited(retry_after=wait).retry_after
        raise RateLimited(retry_after=wait, detail=f"You are changing your avatar too often; try again in {seconds} s.")


def reset() -> None:
    """Forget every allowance (tests; an operator lifting a mistaken limit)."""
    _get_limiter().clear()


# Allowances other than sends (room creations, joins): same bucket, their own keys. ------


def check_rate(key: str, *, per_hour: float, burst: int | None = None, detail: str | None = None) -> None:
    """Take one from the allowance `key`: a burst of `burst` (default: an hour's worth),
    then `per_hour` spread evenly over the hour. Raises RateLimited with retry_after;
    `detail` may name the wait as {seconds}."""
    interval = 3600.0 / per_hour
    burst = burst if burst is not None else max(1, int(per_hour))
    wait = _get_limiter().hit(key, interval, interval * burst)
    if wait > 0:
        limited = RateLimited(retry_after=wait)
        if detail:
            limited = RateLimited(retry_after=wait, detail=detail.format(seconds=limited.retry_after))
        raise limited


def check_guest_address_rate(address: str | None) -> None:
    """Take one message from what every website-widget guest at `address` may send
    together (PARLEY_WIDGET_MESSAGES_PER_HOUR): a visitor who makes many guests still
    shares one allowance. On top of each guest's own send allowance."""
    check_rate(
        f"widget-sends:{address or '-'}",
        per_hour=settings.PARLEY_WIDGET_MESSAGES_PER_HOUR,
        detail="Too many messages from your address; try again in {seconds} s.",
    )


class TokenBucket:
    """An allowance held by one object in one process (a socket's frames): `burst` at
    once, refilled at `rate` per second. No lock and no Redis: it is checked on every
    frame, so it must cost next to nothing."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self, count: float = 1) -> float:
        """Take `count` tokens (at most `burst`): 0 when allowed, else the seconds until
        they are there; nothing is taken then."""
        count = min(count, self.burst)
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= count:
            self.tokens -= count
            return 0.0
        return (count - self.tokens) / self.rate
