"""chat.layers: the embedded configuration's in-memory channel layer."""

import asyncio

import pytest
from django.conf import settings

from chat.layers import InMemoryChannelLayer


@pytest.mark.dbless  # the SQLite pass: the embedded configuration's settings
def test_the_embedded_configuration_uses_it():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "chat.layers.InMemoryChannelLayer"


async def test_expired_messages_still_go_but_at_most_one_sweep_per_interval():
    layer = InMemoryChannelLayer(expiry=-1)  # every message has expired when it is sent
    layer.SWEEP_SECONDS = 0.2
    await layer.group_add("g", "a")
    await layer.send("a", {"type": "x"})
    await layer.group_send("g", {"type": "y"})  # sweeps: a's messages expired, a leaves g
    assert "a" not in layer.channels and "a" not in layer.groups.get("g", {})
    await layer.group_add("g", "b")
    await layer.send("b", {"type": "x"})
    await layer.group_send("g", {"type": "y"})  # within the interval: no sweep
    assert "b" in layer.channels
    await asyncio.sleep(0.25)
    await layer.group_send("g", {"type": "y"})
    assert "b" not in layer.channels
