"""The user stream `/ws/` (SPEC §3): one snapshot of the non-zero unread counts on
connect, counts that never go back to an older state, `room.added` shaped like hello's
room, and rooms followed exactly while the user is a member.

Personas: olivia owns `lobby` (public); mia is a member.
"""

import asyncio
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.db.backends.utils import CursorWrapper

from chat import consumers_user, events, services
from chat.hub import get_hub
from chat.models import Membership, Room
from chat.tests.helpers import open_socket
from chat.tests.test_consumers import no_leftover_socket_counts  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
async def opened():
    socks = []
    yield socks
    for sock in socks:
        try:
            await sock.close()
        except Exception:  # the app already ended: the server closed this socket
            pass


async def connect(opened, path="/ws/", **kwargs):
    sock, accepted = await open_socket(path, **kwargs)
    opened.append(sock)
    assert accepted
    return sock


async def until_pong(sock) -> list[dict]:
    await sock.send({"type": "ping"})
    frames = []
    while (frame := await sock.receive(timeout=5))["type"] != "pong":
        frames.append(frame)
    return frames


async def next_frames(sock, count: int) -> list[dict]:
    """The next `count` frames, then proof that no other comes soon (events may travel
    through Redis: a pong alone does not show they have all come)."""
    frames = [await sock.receive(timeout=5) for _ in range(count)]
    await asyncio.sleep(0.3)
    assert await until_pong(sock) == []
    return frames


def unread(room: str, count: int, last_seq: int) -> dict:
    return {"type": "unread", "room": room, "count": count, "mentions": 0, "last_seq": last_seq}


def post(sender, room, body: str):
    return db(services.message_send)(sender=sender, room=room, body=body)


async def test_a_message_arriving_while_the_stream_reads_its_counts_is_counted_once(opened, lobby, olivia, mia):
    """The badge flickered 0,1,0,1: the connect snapshot raced the live update. Here the
    message commits right after the snapshot was read, and its event reaches the stream
    before the snapshot is applied."""
    real = consumers_user._unread_state
    posted = []

    async def snapshot_then_a_message(user):
        rows = await real(user)
        if user.username == "mia" and not posted:
            posted.append(await post(olivia, lobby, "while mia connects"))
            await asyncio.sleep(0.2)  # the hub hands the event to the half-open stream
        return rows

    with mock.patch.object(consumers_user, "_unread_state", snapshot_then_a_message):
        sock = await connect(opened, user=mia)
        frames = await until_pong(sock)
    assert frames[0]["type"] == "hello"
    # One snapshot (nothing unread when it was read), then the message, counted once.
    assert frames[1:] + await next_frames(sock, 2 - len(frames)) == [unread("lobby", 1, 1)]
    await post(olivia, lobby, "after")
    assert await next_frames(sock, 1) == [unread("lobby", 2, 2)]


async def test_a_read_overtaken_by_a_newer_message_is_recounted_not_forwarded_stale(opened, lobby, olivia, mia):
    sock = await connect(opened, user=mia)
    await until_pong(sock)
    first, _ = await post(olivia, lobby, "one")
    assert await next_frames(sock, 1) == [unread("lobby", 1, 1)]
    held = []

    def hold_the_read(group, event):
        held.append((group, event))  # the read's frame is late, behind the next message

    with mock.patch.object(services.rooms.events, "publish_on_commit", hold_the_read):
        await db(services.room_mark_read)(user=mia, room=await db(Room.objects.get)(pk=lobby.pk), seq=first.seq)
    await post(olivia, lobby, "two")
    assert await next_frames(sock, 1) == [unread("lobby", 2, 2)]
    for group, event in held:
        await events.apublish(group, event)
    # Counted over seq 1 while the stream has seen seq 2: read again, not taken as is.
    assert await next_frames(sock, 1) == [unread("lobby", 1, 2)]


async def test_a_user_stream_in_300_rooms_sends_only_the_nonzero_counts_in_a_fixed_number_of_queries(
    opened, olivia, mia, settings
):
    settings.PARLEY_SWEEP_SECONDS = 3600  # count the connect's queries, not a sweep's
    @db
    def rooms(count: int, start: int):
        made = Room.objects.bulk_create(
            [Room(slug=f"r{n}", name=f"R{n}", kind=Room.Kind.PRIVATE) for n in range(start, start + count)]
        )
        Membership.objects.bulk_create([Membership(room=r, user=mia) for r in made])
        return made

    queries = []

    def counting(execute):
        def wrapped(self, sql, params=None):
            queries.append(sql)
            return execute(self, sql, params)

        return wrapped

    async def connect_counting() -> tuple[list[dict], int]:
        queries.clear()
        with mock.patch.object(CursorWrapper, "execute", counting(CursorWrapper.execute)):
            sock = await connect(opened, user=mia)
            frames = await until_pong(sock)
        await sock.close()
        return frames, len(queries)

    await rooms(3, 0)
    small_frames, small_queries = await connect_counting()
    assert [f["type"] for f in small_frames] == ["hello"]

    many = await rooms(297, 3)
    for room in many[:3]:
        await db(Membership.objects.create)(room=room, user=olivia)
        await post(olivia, room, "hi")
    frames, count = await connect_counting()
    assert [f["type"] for f in frames] == ["hello", "unread", "unread", "unread"]
    assert sorted(f["room"] for f in frames[1:]) == ["r3", "r4", "r5"]
    assert count == small_queries, (count, small_queries, queries)  # not one query per room


async def test_room_added_carries_who_is_online_like_hello(opened, olivia, mia):
    plans = await db(services.room_create)(creator=olivia, slug="plans", name="Plans", kind=Room.Kind.PRIVATE)
    olivias = await connect(opened, "/ws/chat/plans/", user=olivia)
    hello = await olivias.receive()
    stream = await connect(opened, user=mia)
    await until_pong(stream)
    await db(services.room_invite)(by=olivia, room=plans, username="mia")
    added = await stream.receive_type("room.added")
    assert added["room"].keys() == hello["room"].keys()
    assert added["room"]["online"] == ["olivia"]
    assert added["room"]["rev"] == 1 and added["room"]["last_seq"] == 1


async def test_a_stream_closed_while_joining_an_added_room_leaves_nothing_subscribed(opened, olivia, mia):
    plans = await db(services.room_create)(creator=olivia, slug="plans", name="Plans", kind=Room.Kind.PRIVATE)
    stream = await connect(opened, user=mia)
    await until_pong(stream)
    reached, release = asyncio.Event(), asyncio.Event()
    real = consumers_user._recount

    async def slow_recount(user, room_id):
        reached.set()
        await release.wait()
        return await real(user, room_id)

    with mock.patch.object(consumers_user, "_recount", slow_recount):
        await db(services.room_invite)(by=olivia, room=plans, username="mia")
        await asyncio.wait_for(reached.wait(), 3)
        await stream.close()
        release.set()
        await asyncio.sleep(0.1)
    stream_of_plans = get_hub().rooms.get(plans.id)
    assert stream_of_plans is None or not stream_of_plans.subscribers


async def test_leaving_a_public_room_stops_its_unread_counts(opened, lobby, olivia, mia, make_user):
    max_ = await db(make_user)("max")
    await db(services.room_join)(user=max_, room=lobby)
    stream = await connect(opened, user=mia)
    await until_pong(stream)
    await post(olivia, lobby, "one")
    assert await next_frames(stream, 1) == [unread("lobby", 1, 2)]  # after "max joined"

    await db(services.room_leave)(user=mia, room=lobby)
    await post(olivia, lobby, "two")
    # The client hears the room is gone from its list (left in another tab), then nothing.
    assert await next_frames(stream, 1) == [{"type": "room.removed", "room": "lobby"}]
    # Removed rather than left: the same.
    stream_of_max = await connect(opened, user=max_)
    await until_pong(stream_of_max)
    await db(services.room_remove_member)(by=olivia, room=lobby, username="max")
    await post(olivia, lobby, "three")
    assert await next_frames(stream_of_max, 1) == [{"type": "room.removed", "room": "lobby"}]
    assert await stream.nothing(timeout=0.7)  # a sweep passes: still nothing
