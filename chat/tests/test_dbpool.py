"""Services called from sockets run on several database threads on PostgreSQL
(chat/dbpool.py) and on one on SQLite; either way numbering stays gap-free."""

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async

from chat import dbpool, events, services
from chat.models import Membership, Message

SENDERS = 8
PER_SENDER = 25


@pytest.fixture
def busy(make_user, olivia):
    room = services.room_create(creator=olivia, slug="busy", name="Busy")
    users = [make_user(f"sender{i}") for i in range(SENDERS)]
    for user in users:  # no "joined" messages: the room's numbering starts with the sends
        Membership.objects.create(room=room, user=user)
    return room, users


def recording_threads():
    """Which threads message_send ran on, and how many ran at the same moment at most."""
    seen = {"threads": set(), "running": 0, "most": 0}
    lock = threading.Lock()
    real = services.message_send

    def send(**kwargs):
        with lock:
            seen["threads"].add(threading.current_thread().name)
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
        try:
            return real(**kwargs)
        finally:
            with lock:
                seen["running"] -= 1

    return send, seen


async def send_all(send, room, users):
    async def sender(i):
        seqs = []
        for n in range(PER_SENDER):
            message, _ = await events.run_service(
                send, sender=users[i], room=room, body=f"{i}:{n}", client_id=f"{i}-{n}"
            )
            seqs.append(message.seq)  # the answer comes after the commit
        return seqs

    return await asyncio.gather(*(sender(i) for i in range(SENDERS)))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_eight_concurrent_senders_on_postgres_overlap_and_get_seq_1_to_n_without_gaps(busy):
    room, users = busy
    send, seen = recording_threads()
    try:
        returned = await send_all(send, room, users)
    finally:
        await database_sync_to_async(dbpool.shutdown)()  # the next test starts a fresh pool
    total = SENDERS * PER_SENDER
    assert sorted(seq for seqs in returned for seq in seqs) == list(range(1, total + 1))
    for seqs in returned:  # each sender's own messages keep their order
        assert seqs == sorted(seqs)
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(room=room).values_list("seq", "body")))()
    assert sorted(seq for seq, _ in rows) == list(range(1, total + 1))
    # Commit order is seq order: within one sender, a later body has a later seq.
    last = {}
    for _seq, body in sorted(rows):
        sender, n = map(int, body.split(":"))
        assert n > last.get(sender, -1)
        last[sender] = n
    # The sends did not queue behind one thread.
    assert dbpool.threads() == 4
    assert all(name.startswith("parley-db") for name in seen["threads"])
    assert seen["most"] > 1


@pytest.mark.django_db(transaction=True)
async def test_on_sqlite_every_service_call_stays_on_one_thread(busy):
    if dbpool.connections["default"].vendor != "sqlite":
        pytest.skip("the SQLite configuration")
    room, users = busy
    send, seen = recording_threads()
    returned = await send_all(send, room, users)
    assert sorted(seq for seqs in returned for seq in seqs) == list(range(1, SENDERS * PER_SENDER + 1))
    assert dbpool.threads() == 1
    assert len(seen["threads"]) == 1 and seen["most"] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_a_pool_connection_that_broke_is_replaced_checked_after_a_pause(monkeypatch):
    """Within HEALTHY_FOR_SECONDS of its last answer a pool connection is used without a
    health check: one that broke meanwhile fails that call, and the next call has a new
    one. After a pause the health check runs first, and nothing fails."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import OperationalError, connections

    monkeypatch.setattr(dbpool, "HEALTHY_FOR_SECONDS", 0.2)
    executor = ThreadPoolExecutor(max_workers=1)

    def call(function):
        return dbpool._PoolCall(function, thread_sensitive=False, executor=executor)()

    def query():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0]

    def break_it():
        connections["default"].connection.close()  # behind Django's back, as a server restart would

    try:
        assert await call(query) == 1
        await call(break_it)
        with pytest.raises(OperationalError):
            await call(query)  # answered a moment ago: not checked first
        assert await call(query) == 1  # a new connection
        await call(break_it)
        await asyncio.sleep(0.3)
        assert await call(query) == 1  # checked after the pause, replaced before use
    finally:
        await call(connections.close_all)
        executor.shutdown()


def prepared_statements() -> list[str]:
    """The statements this thread's connection holds prepared."""
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "PARLEY_DB_PREPARE-off"])
async def test_a_pool_connection_prepares_what_it_runs_again_and_no_other_does(busy, settings, prepare):
    """PostgreSQL parses and plans a prepared statement once, not at every send."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    settings.PARLEY_DB_PREPARE = prepare
    room, users = busy
    executor = ThreadPoolExecutor(max_workers=1, initializer=dbpool._mark_pool_thread)

    def in_pool(function, **kwargs):
        return dbpool._PoolCall(function, thread_sensitive=False, executor=executor)(**kwargs)

    try:
        for n in range(3):
            await in_pool(services.message_send, sender=users[0], room=room, body=f"pool {n}")
            await database_sync_to_async(services.message_send)(sender=users[1], room=room, body=f"main {n}")
        in_the_pool = await in_pool(prepared_statements)
        elsewhere = await database_sync_to_async(prepared_statements)()
    finally:
        await in_pool(connections.close_all)
        executor.shutdown()
    inserts = [sql for sql in in_the_pool if sql.startswith('INSERT INTO "chat_message"')]
    assert len(inserts) == (1 if prepare else 0)
    assert elsewhere == []
    seqs = await database_sync_to_async(lambda: list(Message.objects.filter(room=room).values_list("seq", flat=True)))()
    assert sorted(seqs) == list(range(1, 7))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_a_pool_connection_prepares_one_statement_for_small_and_large_numbers(settings):
    """psycopg types a number by its size: one statement run with ids and seqs below and
    above 32,768 was prepared once for each mix. On a pool connection it is one."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    settings.PARLEY_DB_PREPARE = True
    executor = ThreadPoolExecutor(max_workers=1, initializer=dbpool._mark_pool_thread)

    def run_and_list() -> tuple[list, list[str]]:
        answers = []
        with connections["default"].cursor() as cursor:
            for value in (5, 40_000, 5, 40_000, 5, 40_000, 2**40):
                cursor.execute("SELECT %s::bigint + %s", [value, value])
                answers.append(cursor.fetchone()[0])
        return answers, [sql for sql in prepared_statements() if "::bigint" in sql]

    try:
        answers, prepared = await dbpool._PoolCall(run_and_list, thread_sensitive=False, executor=executor)()
    finally:
        await dbpool._PoolCall(connections.close_all, thread_sensitive=False, executor=executor)()
        executor.shutdown()
    assert answers == [10, 80_000, 10, 80_000, 10, 80_000, 2**41]  # beyond int4: still right
    assert prepared == ["SELECT $1::bigint + $2"]
