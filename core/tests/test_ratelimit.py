"""The send allowance: a burst, then one per interval; kept in Redis when configured."""

from types import SimpleNamespace

import pytest

from core import ratelimit
from core.errors import RateLimited


def _sends(user_id: int, count: int) -> list[str]:
    outcome = []
    for _ in range(count):
        wait = ratelimit.send_waits([user_id])[0]
        outcome.append("ok" if wait == 0 else f"wait {RateLimited(retry_after=wait).retry_after}")
    return outcome


def test_a_burst_then_one_per_interval(settings):
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 3, 2
    assert _sends(7, 5) == ["ok", "ok", "ok", "wait 2", "wait 2"]
    assert _sends(8, 1) == ["ok"]  # everyone has an allowance of their own


def test_a_fresh_user_may_send_at_any_clock_reading_with_a_burst_of_one(settings, monkeypatch):
    # At this reading `now + 60 - now` is 60.000000000000114 (the sum crosses 1024), and a
    # full bucket of one refused its first send: how test_a_rate_limited_image_stores_nothing
    # failed. The monotonic clock is the machine's uptime, and on a young machine "less than
    # a minute below a power of two" is often true.
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 1, 60
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: 979.3041415443653))
    assert _sends(7, 2) == ["ok", "wait 60"]


def test_without_redis_each_process_still_limits(settings, monkeypatch):
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 2, 60
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    monkeypatch.setattr(ratelimit, "_limiter", None)
    assert _sends(7, 3) == ["ok", "ok", "wait 60"]


@pytest.mark.postgres
def test_the_allowance_lives_in_redis_when_configured(settings):
    assert isinstance(ratelimit._get_limiter(), ratelimit._RedisLimiter)
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 2, 60
    assert _sends(7, 3) == ["ok", "ok", "wait 60"]


def _together(user_ids: list[int]) -> list[str]:
    return ["ok" if wait == 0 else f"wait {round(wait)}" for wait in ratelimit.send_waits(user_ids)]


def test_sends_taken_together_count_as_many_one_after_the_other(settings):
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 2, 60
    assert _together([7, 8, 7, 7, 8]) == ["ok", "ok", "ok", "wait 60", "ok"]
    assert _sends(7, 1) == ["wait 60"]  # the same allowance as one send at a time


@pytest.mark.postgres
def test_sends_taken_together_in_redis_count_as_many(settings):
    assert isinstance(ratelimit._get_limiter(), ratelimit._RedisLimiter)
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 2, 60
    # Two of one user in one call: the second sees the first's exact time, not Redis's
    # rounded copy of it (which refused it).
    assert _together([7, 8, 7, 7, 8]) == ["ok", "ok", "ok", "wait 60", "ok"]
    assert _sends(7, 1) == ["wait 60"]
