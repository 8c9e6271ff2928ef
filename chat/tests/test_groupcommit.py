"""Sends from sockets into one room that arrive together are committed as one transaction
(chat/groupcommit.py): each still answered after that commit, numbered gap-free, and a
refused send fails alone. Runs in both passes: on PostgreSQL the batches run on the
database pool, on SQLite on Channels' one database thread."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext

from chat import dbpool, events, groupcommit, services
from chat.models import Membership, Message, MessageSearch, Room
from chat.tests.test_dbpool import PER_SENDER, SENDERS, busy  # noqa: F401 (fixture)
from core.errors import TooLarge

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def senders_with_rooms(busy):  # noqa: F811
    """The busy room's 8 members, each holding their own copy of it as a socket does."""
    room, users = busy
    return room, [(user, Room.objects.get(pk=room.pk)) for user in users]


@pytest.fixture
def batches(monkeypatch):
    """The size of each batch committed, in order."""
    sizes = []
    real = groupcommit._commit

    def commit(*, sends):
        sizes.append(len(sends))
        return real(sends=sends)

    monkeypatch.setattr(groupcommit, "_commit", commit)
    return sizes


@pytest.fixture
def published(monkeypatch):
    """What run_service published from the event loop, in order: (group, frame)."""
    sent = []

    async def publish_all(pending):
        for group, event in pending:
            await asyncio.sleep(0.01)  # a round trip to the layer, as with Redis
            sent.append((group, json.loads(event["frame"])))

    monkeypatch.setattr(events, "publish_all", publish_all)
    return sent


@pytest.fixture
async def fresh_pool():
    yield
    await database_sync_to_async(dbpool.shutdown)()  # the next test starts a fresh pool


@pytest.fixture
def commits(monkeypatch):
    """How many transactions committed, on any thread."""
    done = []
    real = BaseDatabaseWrapper.commit

    def commit(self):
        real(self)
        done.append(1)

    monkeypatch.setattr(BaseDatabaseWrapper, "commit", commit)
    return done


@pytest.mark.parametrize("grouped", [True, False], ids=["group-commit", "one-per-send"])
async def test_eight_concurrent_senders_are_acked_after_commit_with_seq_1_to_n(
    senders_with_rooms, batches, commits, published, settings, grouped, fresh_pool
):
    settings.PARLEY_GROUP_COMMIT = grouped
    room, senders = senders_with_rooms

    async def sender(user, own_room, i):
        acks = []
        for n in range(PER_SENDER):
            message, created = await groupcommit.run_send(
                sender=user, room=own_room, body=f"{i}:{n}", client_id=f"{i}-{n}"
            )
            assert created
            acks.append((message.id, message.seq))
        return acks

    acked = await asyncio.gather(*(sender(user, own_room, i) for i, (user, own_room) in enumerate(senders)))

    total = SENDERS * PER_SENDER
    stored = await database_sync_to_async(lambda: dict(Message.objects.filter(room=room).values_list("id", "seq")))()
    assert sorted(stored.values()) == list(range(1, total + 1))
    assert {ack for acks in acked for ack in acks} == set(stored.items())
    for acks in acked:  # each sender's own messages keep their order
        assert [seq for _, seq in acks] == sorted(seq for _, seq in acks)
    if grouped:
        assert sum(batches) == total
        assert max(batches) > 1 and len(batches) < total
    else:
        assert batches == []
    if grouped and connection.vendor == "postgresql":
        assert commits == []  # each batch is one statement that commits by itself
    else:
        assert len(commits) == (len(batches) if grouped else total)


async def test_batches_are_announced_in_seq_order_while_the_next_commits(
    lobby, mia, olivia, batches, published, settings, fresh_pool
):
    """A batch's events go out while the next batch commits, never after its events."""
    settings.PARLEY_GROUP_COMMIT_MAX = 3
    sends = [
        groupcommit.run_send(sender=sender, room=lobby, body=f"{n}", client_id=f"{sender.username}-{n}")
        for n in range(12)
        for sender in (mia, olivia)
    ]

    results = await asyncio.gather(*sends)

    assert sorted(message.seq for message, _ in results) == list(range(1, 25))
    assert len(batches) >= 8
    assert [frame["seq"] for _, frame in published] == list(range(1, 25))


async def test_a_refused_send_fails_alone_and_a_repeated_client_id_gets_the_first_message(
    lobby, mia, olivia, batches, published, monkeypatch, settings, fresh_pool
):
    real_announce = services.messages.announce

    def announce(room, message, **kwargs):
        real_announce(room, message, **kwargs)
        if message.body == "boom":  # fails after the send took its numbers and queued its event
            raise RuntimeError("boom")

    real_mentions_for = services.messages.mentions_for

    def mentions_for(*, sender, room, body):
        if body == "bad query":  # a database error before the send's own transaction
            with connection.cursor() as cursor:  # on PostgreSQL it aborts the transaction it is in
                cursor.execute("SELECT * FROM no_such_table")
        return real_mentions_for(sender=sender, room=room, body=body)

    monkeypatch.setattr(services.messages, "announce", announce)
    monkeypatch.setattr(services.messages, "mentions_for", mentions_for)
    answered = []

    async def send(sender, body, client_id=None):
        try:
            result = await groupcommit.run_send(sender=sender, room=lobby, body=body, client_id=client_id)
        except Exception as error:
            result = error
        answered.append(len(published))  # events published by the time this send is answered
        return result

    first, too_long, repeated, boom, bad_query, last = await asyncio.gather(
        send(mia, "first", "a"),
        send(mia, "x" * (settings.PARLEY_MAX_BODY + 1)),
        send(mia, "again", "a"),
        send(mia, "boom"),
        send(olivia, "bad query"),
        send(olivia, "last"),
    )

    assert batches == [6]
    assert first[1] is True and first[0].seq == 1
    assert isinstance(too_long, TooLarge)
    assert repeated == (first[0], False)  # models compare by id
    assert isinstance(boom, RuntimeError)
    assert isinstance(bad_query, DatabaseError)
    assert last[1] is True and last[0].seq == 2
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(room=lobby).values_list("seq", "body")))()
    assert sorted(rows) == [(1, "first"), (2, "last")]
    lobby_row = await database_sync_to_async(Room.objects.get)(pk=lobby.pk)
    assert (lobby_row.last_seq, lobby_row.rev) == (2, 2)
    # Only the stored messages are announced (a rolled-back savepoint drops its
    # after-commit callbacks), in seq order, before any send is answered.
    assert [(frame["type"], frame["seq"], frame["body"]) for _, frame in published] == [
        ("message", 1, "first"),
        ("message", 2, "last"),
    ]
    assert answered == [2] * 6


async def test_a_failed_commit_fails_every_send_of_the_batch_and_announces_nothing(
    lobby, mia, olivia, batches, published, monkeypatch, fresh_pool
):
    failures = []

    def fail_once(real):
        def fail(*args, **kwargs):
            if not failures:
                failures.append(DatabaseError("could not flush the WAL"))
                raise failures[0]
            return real(*args, **kwargs)

        return fail

    if connection.vendor == "postgresql":
        # The batch is one statement that commits by itself: a failed flush is its error.
        monkeypatch.setattr(services.messages, "_store_numbered", fail_once(services.messages._store_numbered))
    else:
        monkeypatch.setattr(BaseDatabaseWrapper, "_commit", fail_once(BaseDatabaseWrapper._commit))

    results = await asyncio.gather(
        *(groupcommit.run_send(sender=sender, room=lobby, body="hello") for sender in (mia, olivia, mia)),
        return_exceptions=True,
    )

    assert batches == [3]
    assert results == [failures[0]] * 3
    assert published == []
    assert not await database_sync_to_async(Message.objects.filter(room=lobby).exists)()
    message, _ = await groupcommit.run_send(sender=mia, room=lobby, body="later")
    assert message.seq == 1


async def test_a_send_failing_after_it_wrote_sends_the_batch_one_by_one_charging_nobody_twice(
    lobby, mia, olivia, batches, published, commits, monkeypatch, settings, fresh_pool
):
    """The batch has no savepoints: a send that fails after writing rolls it all back, and
    each send runs again in its own transaction. Sends stored before the failure are not
    charged a second send of their allowance for it. (A mention makes it a batch with a
    transaction on PostgreSQL too, where plain sends alone are one statement.)"""
    settings.PARLEY_RATE_BURST = 2  # mia's two sends use up her allowance
    real_enqueue = services.messages.enqueue_for_message

    def enqueue_for_message(room, message, **kwargs):
        if message.body == "@mia boom":  # after the message row is written
            raise RuntimeError("boom")
        return real_enqueue(room, message, **kwargs)

    monkeypatch.setattr(services.messages, "enqueue_for_message", enqueue_for_message)

    one, two, boom = await asyncio.gather(
        groupcommit.run_send(sender=mia, room=lobby, body="one", client_id="m-1"),
        groupcommit.run_send(sender=mia, room=lobby, body="two", client_id="m-2"),
        groupcommit.run_send(sender=olivia, room=lobby, body="@mia boom"),
        return_exceptions=True,
    )

    assert batches == [3]
    assert (one[0].seq, one[1]) == (1, True) and (two[0].seq, two[1]) == (2, True)
    assert isinstance(boom, RuntimeError)
    assert len(commits) == 2  # one transaction each for the stored ones; the batch's rolled back
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(room=lobby).values_list("seq", "body")))()
    assert sorted(rows) == [(1, "one"), (2, "two")]
    assert [(frame["seq"], frame["body"]) for _, frame in published] == [(1, "one"), (2, "two")]


def _statements(sends: list[dict]) -> tuple[list, int, list[str]]:
    """The outcomes, how many queries, and the SQL of each statement as sent (with its
    placeholders, not its values)."""
    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(_recorded(sql := [])):
        outcomes = services.message_send_together(sends)
    return outcomes, len(queries.captured_queries), sql


def _recorded(statements: list):
    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    return record


def test_a_batch_costs_the_same_few_statements_whatever_its_size(busy):  # noqa: F811
    room, users = busy
    _, two, two_sql = _statements([{"sender": user, "room": room, "body": "hello"} for user in users[:2]])
    outcomes, eight, eight_sql = _statements(
        [{"sender": user, "room": room, "body": f"hi {i}"} for i, user in enumerate(users)]
    )

    assert [result[0].seq for result, _ in outcomes] == list(range(3, 11))
    assert two == eight <= 7  # standing, BEGIN, numbers, messages, search, read markers, COMMIT
    if connection.vendor == "postgresql":
        # Standing, then one statement that commits by itself; the very same two, values
        # apart, whatever the size: PostgreSQL plans each once.
        assert two == 2 and two_sql == eight_sql


def test_a_batchs_messages_are_each_indexed_under_their_own_row(busy):  # noqa: F811
    """On PostgreSQL the rows, their search documents and the read markers are one
    statement: each document must still land on its own message."""
    room, users = busy
    outcomes, _, statements = _statements(
        [{"sender": users[i % 3], "room": room, "body": f"apple{i} pear"} for i in range(7)]
    )

    messages = [result[0] for result, _ in outcomes]
    found = MessageSearch.objects.values_list("message_id", "room_id", "sender_id", "created_at", "doc")
    indexed = {row[0]: row[1:] for row in found}
    assert set(indexed) == {message.pk for message in messages}
    for i, message in enumerate(messages):
        assert indexed[message.pk][:3] == (room.pk, users[i % 3].pk, message.created_at)
        assert f"apple{i}" in indexed[message.pk][3]
    stored = dict(Message.objects.filter(room=room).values_list("pk", "seq"))
    assert [stored[message.pk] for message in messages] == [message.seq for message in messages] == list(range(1, 8))
    markers = dict(Membership.objects.filter(room=room, user__in=users[:3]).values_list("user_id", "last_read_seq"))
    assert markers == {users[0].pk: 7, users[1].pk: 5, users[2].pk: 6}
    if connection.vendor == "postgresql":
        assert len(statements) == 2  # standing, and the rest in one


def test_a_batch_keeps_each_senders_order_and_moves_each_marker_to_their_last(lobby, olivia, mia, oscar):
    outcomes = services.message_send_together([
        {"sender": olivia, "room": lobby, "body": "one"},
        {"sender": mia, "room": lobby, "body": "two"},
        {"sender": oscar, "room": lobby, "body": "hello, I am new"},  # joins by sending: not a plain send
        {"sender": mia, "room": lobby, "body": "three"},
    ])

    assert [(result[0].seq, result[0].body) for result, _ in outcomes] == [
        (1, "one"), (2, "two"), (4, "hello, I am new"), (5, "three"),
    ]
    assert list(Message.objects.filter(room=lobby).values_list("seq", "body")) == [
        (1, "one"), (2, "two"), (3, "oscar joined"), (4, "hello, I am new"), (5, "three"),
    ]
    markers = dict(lobby.memberships.values_list("user__username", "last_read_seq"))
    assert markers == {"olivia": 1, "mia": 5, "oscar": 4}
    assert lobby.last_seq == 5 and Room.objects.get(pk=lobby.pk).rev == 5


async def test_a_batch_published_together_arrives_as_group_send_sends_it():
    """events.publish_all sends a batch in one go, with the layer's internals (a pipeline
    on channels_redis's pub/sub layer, the in-memory layer's `send` without a task per
    channel): what arrives must be what group_send sends."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel("test.")
    groups = ["chat.room.901", "chat.room.902"]
    for group in groups:
        await layer.group_add(group, channel)
    pending = [(groups[0], {"type": "hub.event", "n": 1}), (groups[1], {"type": "hub.event", "n": 2}),
               (groups[0], {"type": "hub.event", "n": 3, "text": "你好"})]
    try:
        await events.publish_all(pending)
        got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in pending]
        await layer.group_send(groups[1], {"type": "hub.event", "n": 4})
        alone = await asyncio.wait_for(layer.receive(channel), 5)
    finally:
        for group in groups:
            await layer.group_discard(group, channel)
    assert got == [{**event, "group": group} for group, event in pending]
    assert alone == {"type": "hub.event", "n": 4}  # group_send's own, for comparison


def test_a_batch_checked_against_a_kind_its_room_no_longer_has_is_sent_one_by_one(lobby, olivia, mia):
    """Each socket holds its own copy of its room. If the room went private since, nothing
    is stored under the kind the sends were checked against: each is checked again alone,
    and each socket's copy learns the room's kind."""
    mias_copy = Room.objects.get(pk=lobby.pk)
    Room.objects.filter(pk=lobby.pk).update(kind=Room.Kind.PRIVATE)

    outcomes = services.message_send_together([
        {"sender": olivia, "room": lobby, "body": "one"},
        {"sender": mia, "room": mias_copy, "body": "two"},
    ])

    assert [(result[0].seq, result[1]) for result, _ in outcomes] == [(1, True), (2, True)]
    assert list(Message.objects.filter(room=lobby).values_list("seq", "body")) == [(1, "one"), (2, "two")]
    assert lobby.kind == mias_copy.kind == Room.Kind.PRIVATE
    assert (mias_copy.last_seq, Room.objects.get(pk=lobby.pk).rev) == (2, 2)


def test_a_refused_first_send_does_not_hand_its_older_copy_of_the_room_to_the_others(lobby, olivia, mia, settings):
    """The batch's numbers are shared through the first send's copy of the room: when that
    send is refused and its copy is older, the others' copies still end up right."""
    older = Room.objects.get(pk=lobby.pk)
    Room.objects.filter(pk=lobby.pk).update(kind=Room.Kind.PRIVATE)
    olivias, mias = Room.objects.get(pk=lobby.pk), Room.objects.get(pk=lobby.pk)

    outcomes = services.message_send_together([
        {"sender": mia, "room": older, "body": "x" * (settings.PARLEY_MAX_BODY + 1)},
        {"sender": olivia, "room": olivias, "body": "one"},
        {"sender": mia, "room": mias, "body": "two"},
    ])

    assert isinstance(outcomes[0][1], TooLarge)
    assert [result[0].seq for result, _ in outcomes[1:]] == [1, 2]
    assert olivias.kind == mias.kind == Room.Kind.PRIVATE
    assert (olivias.last_seq, mias.last_seq) == (2, 2)
