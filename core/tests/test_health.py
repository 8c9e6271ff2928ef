"""GET /healthz: 200 while the database and the channel layer answer, 503 otherwise, and
nothing left behind per call (it is polled every few seconds for the life of a worker)."""

import asyncio

import pytest
from django.conf import settings as django_settings
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_kept_connections(monkeypatch):
    """The database check runs in pool threads, whose kept connections would stop
    pytest-django from dropping the PostgreSQL test database."""
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)


async def _healthz(client: AsyncClient) -> tuple[int, dict]:
    response = await client.get("/healthz")
    return response.status_code, response.json()


async def test_concurrent_healthz_calls_all_answer_200():
    """They share one reply channel: each must still get its own answer, not time out."""
    client = AsyncClient()
    answers = await asyncio.gather(*(_healthz(client) for _ in range(20)))
    assert [status for status, _ in answers] == [200] * 20, answers[0]
    assert all(body["channel_layer"] is True for _, body in answers)


@pytest.mark.postgres
async def test_healthz_does_not_leave_a_redis_channel_subscribed_per_call():
    import redis.asyncio as redis

    client = AsyncClient()
    pattern = f"{django_settings.PARLEY_REDIS_PREFIX}health.*"
    server = redis.from_url(django_settings.REDIS_URL)
    try:
        assert (await _healthz(client))[0] == 200
        before = len(await server.pubsub_channels(pattern))
        for _ in range(50):
            assert (await _healthz(client))[0] == 200
        after = len(await server.pubsub_channels(pattern))
    finally:
        await server.aclose()
    assert before <= 1
    assert after == before, f"{after - before} health channels left subscribed by 50 calls"


@pytest.mark.services
async def test_healthz_answers_503_while_redis_is_down_and_recovers(settings):
    from testkit.faults import PrivateRedis

    redis_server = await asyncio.to_thread(PrivateRedis)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_server.url], "prefix": "health-test"},
        }
    }
    client = AsyncClient()
    try:
        assert (await _healthz(client))[0] == 200
        await asyncio.to_thread(redis_server.stop)
        status, body = await _healthz(client)
        assert status == 503 and body["channel_layer"] is False and body["database"] is True
        await asyncio.to_thread(redis_server.start)
        deadline = asyncio.get_running_loop().time() + 20
        while (await _healthz(client))[0] != 200:
            assert asyncio.get_running_loop().time() < deadline, "still 503 20 s after Redis came back"
            await asyncio.sleep(0.2)
        with redis_server.client() as check:
            assert len(check.pubsub_channels("health-test*")) == 1
    finally:
        await asyncio.to_thread(redis_server.stop)
