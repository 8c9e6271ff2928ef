import pytest

from chat import services
from chat.tests.helpers import open_room

pytestmark = pytest.mark.django_db(transaction=True)


async def test_two_members_chat(olivia, mia):
    from channels.db import database_sync_to_async

    room = await database_sync_to_async(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    a, hello = await open_room("lobby", user=olivia)
    b, _ = await open_room("lobby", user=mia)
    await a.send({"type": "message.send", "body": "hi", "client_id": "c1"})
    got_a = [await a.receive(), await a.receive()]
    got_b = await b.receive_type("message")
    assert {f["type"] for f in got_a} == {"ack", "message"}
    assert got_b["body"] == "hi" and got_b["seq"] == 1
    await a.close()
    await b.close()
    assert room.slug == "lobby" and hello["room"]["rev"] == 0
