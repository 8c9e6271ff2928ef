"""Many writers at once on PostgreSQL: numbering stays gap-free and client_id stays unique.

Runs in the PostgreSQL + Redis pass only (SQLite serializes writers anyway).
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from chat import selectors, services
from chat.models import Membership, Message, Room
from core.errors import NotFound

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8
PER_THREAD = 50


def run_together(count: int, work):
    """Run work(i) in `count` threads released at the same moment; each closes its connection."""
    barrier = threading.Barrier(count)

    def thread(i):
        try:
            barrier.wait(timeout=10)
            return work(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(thread, range(count)))


@pytest.fixture
def senders(make_user, olivia):
    room = services.room_create(creator=olivia, slug="busy", name="Busy")
    users = [make_user(f"sender{i}") for i in range(THREADS)]
    for user in users:  # members already, without "joined" messages: numbering starts with the sends
        Membership.objects.create(room=room, user=user)
    return room, users


def test_concurrent_sends_number_messages_without_gaps(senders):
    room, users = senders

    def send_all(i):
        local_room = Room.objects.get(pk=room.pk)
        return [
            services.message_send(sender=users[i], room=local_room, body=f"{i}:{n}", client_id=f"{i}-{n}")[0].seq
            for n in range(PER_THREAD)
        ]

    returned = run_together(THREADS, send_all)

    total = THREADS * PER_THREAD
    rows = list(Message.objects.filter(room=room).values_list("seq", "rev", "body"))
    assert sorted(seq for seq, _, _ in rows) == list(range(1, total + 1))
    assert sorted(rev for _, rev, _ in rows) == list(range(1, total + 1))
    assert sorted(seq for seqs in returned for seq in seqs) == list(range(1, total + 1))
    for seqs in returned:  # each sender's own messages keep their order
        assert seqs == sorted(seqs)
    room.refresh_from_db()
    assert (room.last_seq, room.rev) == (total, total)
    # Numbers follow commit order: within one sender, a later body has a later seq.
    by_sender = {}
    for _seq, _, body in sorted(rows):
        sender, n = body.split(":")
        by_sender.setdefault(sender, []).append(int(n))
    assert all(ns == list(range(PER_THREAD)) for ns in by_sender.values())


def test_concurrent_duplicates_store_one_message(senders, mia):
    room, _ = senders

    def send(i):
        local_room = Room.objects.get(pk=room.pk)
        message, created = services.message_send(sender=mia, room=local_room, body=f"try {i}", client_id="same")
        return message.id, created

    results = run_together(THREADS, send)

    assert Message.objects.filter(sender=mia).count() == 1
    assert len({message_id for message_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    # mia was not a member: the first send joined her, once, whoever raced it.
    assert list(Message.objects.filter(room=room, kind=Message.Kind.SYSTEM).values_list("body", flat=True)) == [
        "mia joined"
    ]
    assert Membership.objects.filter(room=room, user=mia).count() == 1
    room.refresh_from_db()
    assert room.last_seq == 2 and room.rev == 2


def test_concurrent_first_sends_join_once_and_all_get_through(senders, mia):
    """Sending joins a public room (docs/api.md): racing first sends of a non-member, with
    no client_id to fall back on, each store their message and join her once."""
    room, _ = senders

    def send(i):
        return services.message_send(sender=mia, room=Room.objects.get(pk=room.pk), body=f"hi {i}")[1]

    assert all(run_together(THREADS, send))
    assert Message.objects.filter(room=room, sender=mia).count() == THREADS
    assert Message.objects.filter(room=room, kind=Message.Kind.SYSTEM, body="mia joined").count() == 1
    assert Membership.objects.filter(room=room, user=mia).count() == 1


def test_concurrent_duplicates_across_rooms_store_one_message(olivia, mia):
    rooms = [services.room_create(creator=olivia, slug=f"room{i}", name=f"Room {i}") for i in range(THREADS)]
    for room in rooms:  # no "joined" messages: only the send counts in last_seq
        Membership.objects.create(room=room, user=mia)

    def send(i):
        message, created = services.message_send(sender=mia, room=rooms[i], body="hello", client_id="same")
        return message.id, created

    results = run_together(THREADS, send)

    assert Message.objects.filter(sender=mia).count() == 1
    assert len({message_id for message_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert sum(Room.objects.filter(pk__in=[r.pk for r in rooms]).values_list("last_seq", flat=True)) == 1


def test_concurrent_deletes_tombstone_a_message_once_and_announce_it_once(olivia, mia, monkeypatch):
    """Defect: message_delete did not re-read the message under the room lock, so racing
    deletes each took a rev and each announced it (unread badges dropped twice)."""
    room = services.room_create(creator=olivia, slug="racy", name="Racy")
    Membership.objects.create(room=room, user=mia)  # no "joined" message: the send is rev 1
    message, _ = services.message_send(sender=mia, room=room, body="delete me")
    published = []
    monkeypatch.setattr("chat.events.publish", lambda group, event: published.append(event))
    # Both deleters pass the visibility check before either takes the room lock: the
    # interleaving the bug needs, every time rather than most times.
    checked = threading.Barrier(2)
    original = selectors.message_get_for_user

    def check_then_wait(**kwargs):
        found = original(**kwargs)
        checked.wait(timeout=10)
        return found

    monkeypatch.setattr(selectors, "message_get_for_user", check_then_wait)

    def delete(i):
        try:
            services.message_delete(user=(mia, olivia)[i], message_id=message.id)  # sender, room owner
            return "deleted"
        except NotFound:
            return "not_found"

    results = run_together(2, delete)

    assert sorted(results) == ["deleted", "not_found"]
    room.refresh_from_db()
    assert room.rev == 2  # the send, then one deletion
    assert [json.loads(e["frame"])["type"] for e in published] == ["message.deleted"]
    assert Message.objects.get(pk=message.pk).rev == 2
