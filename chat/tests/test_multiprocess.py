"""Several real server processes behind one PostgreSQL database and one Redis (SPEC §1, §3).

Two `uvicorn config.asgi:application` processes serve the same room. Clients speak the
real WebSocket protocol to them with the `websockets` library. What is checked is SPEC §3
guarantees 1 and 3 across processes: every member on every process gets every message
once, in seq order, and a client that drops and resumes on the other process ends up with
the complete sequence; plus the hub's healing of a lost channel-layer event.

Runs only in the PostgreSQL + Redis pass (make test-postgres).
"""

import asyncio
import json
import os
import time

import pytest
from websockets.asyncio.client import connect

from chat import events, services
from chat.models import Membership, Message, Room
from testkit.servers import Uvicorn, running_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SLUG = "townhall"
SWEEP_SECONDS = 1.0


# Servers ------------------------------------------------------------------------------


@pytest.fixture
def servers(transactional_db):
    """Two ASGI processes on the test database and Redis; stopped (and their logs printed,
    which pytest shows for failing tests) however the test ends."""
    env = worker_env(
        REDIS_URL=os.environ["REDIS_URL"],
        PARLEY_SWEEP_SECONDS=str(SWEEP_SECONDS),
        PARLEY_MAX_SOCKETS_PER_USER="50",
    )
    with running_workers(env, names=("A", "B")) as started:
        yield started


def _assert_no_tracebacks(servers: list[Uvicorn]) -> None:
    for server in servers:
        output = server.output()
        assert "Traceback" not in output and " ERROR " not in output, f"server {server.name} logged errors:\n{output}"


# Data ---------------------------------------------------------------------------------


@db
def _make_room(usernames: list[str]) -> dict[str, str]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    far_ids()
    User = get_user_model()
    users = {name: User.objects.create_user(username=name, password="correct horse battery") for name in usernames}
    room = services.room_create(creator=users[usernames[0]], slug=SLUG, name="Town hall")
    # Members from the start: joining (or sending unjoined) adds a "joined" message of its
    # own, and this test counts exactly the messages it sends.
    for user in list(users.values())[1:]:
        Membership.objects.create(room=room, user=user)
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


@db
def _stored() -> list[tuple[int, int, int]]:
    return list(Message.objects.filter(room__slug=SLUG).order_by("seq").values_list("id", "seq", "rev"))


@db
def _room_state() -> tuple[int, int]:
    room = Room.objects.get(slug=SLUG)
    return room.last_seq, room.rev


# Client helpers -----------------------------------------------------------------------


def _open(server: Uvicorn, token: str):
    return connect(
        server.url(f"/ws/chat/{SLUG}/"), additional_headers={"Authorization": f"Token {token}"}, open_timeout=10, close_timeout=3
    )


async def _frame(ws, deadline: float) -> dict:
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise TimeoutError
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))


async def _hello(ws, timeout: float = 10) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await _frame(ws, deadline)
        if frame["type"] == "hello":
            return frame


# 1. Four senders, three receivers, two processes, one reconnect ------------------------

SENDERS = 4
PER_SENDER = 125
TOTAL = SENDERS * PER_SENDER
WINDOW = 4  # sends in flight per sender
DISCONNECT_AFTER = 150
HOLD_SENDS_AT = 400  # senders wait here until the reconnecting client has asked to resume
RUN_TIMEOUT = 60


async def test_500_messages_over_two_processes_reach_everyone_in_order(servers):
    a, b = servers
    senders = [f"sender{i}" for i in range(SENDERS)]
    receivers = ["reader0", "reader1", "roamer"]
    tokens = await _make_room(senders + receivers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RUN_TIMEOUT
    all_received = asyncio.Event()
    resume_sent = asyncio.Event()
    started = time.monotonic()

    async def collect(ws, into: list[dict], *, until=TOTAL) -> None:
        """Read message frames into `into` until seq `until` has arrived (or the deadline)."""
        while not any(m["seq"] == until for m in into):
            frame = await _frame(ws, deadline)
            if frame["type"] == "message":
                into.append(frame)
            elif frame["type"] == "error":
                raise AssertionError(f"unexpected error frame: {frame}")

    # Receivers: reader0 on A, reader1 on B; the roamer starts on A and comes back on B.
    steady: dict[str, list[dict]] = {}

    async def steady_reader(name: str, server: Uvicorn, ready: asyncio.Event) -> None:
        got = steady[name] = []
        async with _open(server, tokens[name]) as ws:
            hello = await _hello(ws)
            assert hello["room"]["rev"] == 0 and hello["room"]["slug"] == SLUG
            ready.set()
            await collect(ws, got)

    roam: dict[str, object] = {"before": [], "pre_resumed": [], "after_resumed": []}

    async def roamer(ready: asyncio.Event) -> None:
        before: list[dict] = roam["before"]
        async with _open(a, tokens["roamer"]) as ws:
            await _hello(ws)
            ready.set()
            while len(before) < DISCONNECT_AFTER:
                frame = await _frame(ws, deadline)
                if frame["type"] == "message":
                    before.append(frame)
        last_rev = roam["last_rev"] = before[-1]["rev"]
        await asyncio.sleep(0.3)  # away for a moment while the others keep sending
        async with _open(b, tokens["roamer"]) as ws:
            hello = await _hello(ws)
            roam["hello_rev"] = hello["room"]["rev"]
            await ws.send(json.dumps({"type": "resume", "room": SLUG, "rev": last_rev}))
            resume_sent.set()
            # Live frames may come between hello and the replay; then the replay, then `resumed`.
            while True:
                frame = await _frame(ws, deadline)
                if frame["type"] == "resumed":
                    roam["resumed"] = frame
                    break
                if frame["type"] == "message":
                    roam["pre_resumed"].append(frame)
            seen = {m["seq"] for m in before + roam["pre_resumed"]}
            if TOTAL not in seen:
                await collect(ws, roam["after_resumed"])

    # Senders: 0 and 2 on A, 1 and 3 on B, a few sends in flight each, waiting for acks.
    acks: dict[str, list[dict]] = {}
    sender_views: dict[str, list[dict]] = {}
    sent_total = 0
    senders_ready: list[str] = []

    async def sender(index: int) -> None:
        nonlocal sent_total
        name = senders[index]
        server = servers[index % 2]
        got_acks = acks[name] = []
        seen = sender_views[name] = []
        window = asyncio.Semaphore(WINDOW)
        async with _open(server, tokens[name]) as ws:
            hello = await _hello(ws)
            assert hello["room"]["rev"] == 0
            senders_ready.append(name)
            # Nobody sends before every sender is connected: each must see message 1 live.
            while len(senders_ready) < SENDERS:
                await asyncio.sleep(0.01)
                if loop.time() > deadline:
                    raise TimeoutError("senders did not all connect")

            async def read() -> None:
                while len(got_acks) < PER_SENDER or not any(m["seq"] == TOTAL for m in seen):
                    frame = await _frame(ws, deadline)
                    if frame["type"] == "ack":
                        got_acks.append(frame)
                        window.release()
                    elif frame["type"] == "message":
                        seen.append(frame)
                    elif frame["type"] == "error":
                        raise AssertionError(f"{name} got an error: {frame}")

            reader = asyncio.ensure_future(read())
            try:
                for n in range(PER_SENDER):
                    await asyncio.wait_for(window.acquire(), timeout=max(0.01, deadline - loop.time()))
                    if sent_total >= HOLD_SENDS_AT and not resume_sent.is_set():
                        await asyncio.wait_for(resume_sent.wait(), timeout=max(0.01, deadline - loop.time()))
                    sent_total += 1
                    body = f"{name} message {n} — ünïcödé ✓"
                    await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": f"{name}-{n}"}))
                    if reader.done():
                        break
                await reader
            finally:
                reader.cancel()

    async def run() -> None:
        ready = [asyncio.Event() for _ in range(3)]
        readers = [
            asyncio.ensure_future(steady_reader("reader0", a, ready[0])),
            asyncio.ensure_future(steady_reader("reader1", b, ready[1])),
            asyncio.ensure_future(roamer(ready[2])),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), timeout=15)
        await asyncio.gather(*readers, *(sender(i) for i in range(SENDERS)))
        all_received.set()

    try:
        await asyncio.wait_for(run(), timeout=RUN_TIMEOUT + 5)
    finally:
        elapsed = time.monotonic() - started
        print(
            f"\nmultiprocess run: {elapsed:.1f}s; steady={ {k: len(v) for k, v in steady.items()} } "
            f"senders={ {k: len(v) for k, v in sender_views.items()} } acks={ {k: len(v) for k, v in acks.items()} } "
            f"roamer: before={len(roam['before'])} pre_resumed={[m['seq'] for m in roam['pre_resumed']][:3]}..."
            f"({len(roam['pre_resumed'])}) after_resumed={len(roam['after_resumed'])} "
            f"last_rev={roam.get('last_rev')} hello_rev={roam.get('hello_rev')} resumed={roam.get('resumed')}"
        )

    # The database: exactly 500 messages, seq 1..500, rev == seq (nothing else changed).
    stored = await _stored()
    assert [seq for _, seq, _ in stored] == list(range(1, TOTAL + 1))
    assert all(rev == seq for _, seq, rev in stored)
    assert await _room_state() == (TOTAL, TOTAL)
    id_of_seq = {seq: message_id for message_id, seq, _ in stored}

    # Every sender got one ack per send, and the acks cover 1..500 once.
    assert sorted(ack["seq"] for got in acks.values() for ack in got) == list(range(1, TOTAL + 1))

    # Every connected member, on either process, saw 1..500 exactly once and in order.
    for name, got in {**steady, **sender_views}.items():
        assert [m["seq"] for m in got] == list(range(1, TOTAL + 1)), f"{name} saw a wrong sequence"
        assert all(id_of_seq[m["seq"]] == m["id"] for m in got), name
        foreign = [m for m in got if m["room"] != SLUG]
        assert not foreign, f"{name} got frames of another room: {foreign[:3]}"

    # The roamer: in order before leaving; after coming back, perhaps a few live frames,
    # then the replay from last_rev + 1 up to `resumed`, then live frames in order after it.
    before, pre, after = roam["before"], roam["pre_resumed"], roam["after_resumed"]
    resumed = roam["resumed"]
    assert resumed["truncated"] is False and resumed["room"] == SLUG, resumed
    assert [m["seq"] for m in before] == list(range(1, DISCONNECT_AFTER + 1))
    runs = [[pre[0]]] if pre else []
    for frame in pre[1:]:
        if frame["seq"] > runs[-1][-1]["seq"]:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    assert len(runs) in (1, 2), [[m["seq"] for m in run] for run in runs]
    replay = runs[-1]
    assert [m["rev"] for m in replay] == list(range(roam["last_rev"] + 1, resumed["rev"] + 1)), "replay has a gap"
    assert [m["seq"] for m in after] == list(range(resumed["rev"] + 1, TOTAL + 1)), "live frames after resumed"
    kept: dict[int, dict] = {}
    for frame in before + pre + after:
        kept.setdefault(frame["id"], frame)
    assert sorted(m["seq"] for m in kept.values()) == list(range(1, TOTAL + 1))
    assert all(id_of_seq[m["seq"]] == m["id"] for m in kept.values())
    _assert_no_tracebacks(servers)


# 2. A lost channel-layer event is healed by the hub -----------------------------------


async def test_lost_event_is_healed_on_both_processes(servers, monkeypatch):
    a, b = servers
    tokens = await _make_room(["writer", "watcher_a", "watcher_b"])
    loop = asyncio.get_running_loop()

    @db
    def send_unannounced(body: str) -> int:
        """Store a message as a server would, but lose its published event."""
        from django.contrib.auth import get_user_model

        with monkeypatch.context() as patch:
            patch.setattr(events, "publish", lambda group, event: None)
            message, created = services.message_send(
                sender=get_user_model().objects.get(username="writer"),
                room=Room.objects.get(slug=SLUG),
                body=body,
                client_id=f"lost-{body}",
            )
        assert created
        return message.seq

    async def next_message(ws, timeout: float) -> dict:
        deadline = loop.time() + timeout
        while True:
            frame = await _frame(ws, deadline)
            if frame["type"] == "message":
                return frame

    async def send_live(ws, body: str) -> int:
        await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": f"live-{body}"}))
        deadline = loop.time() + 10
        while True:
            frame = await _frame(ws, deadline)
            if frame["type"] == "ack":
                return frame["seq"]
            assert frame["type"] != "error", frame

    async with (
        _open(a, tokens["writer"]) as writer,
        _open(a, tokens["watcher_a"]) as watcher_a,
        _open(b, tokens["watcher_b"]) as watcher_b,
    ):
        for ws in (writer, watcher_a, watcher_b):
            await _hello(ws)
        watchers = {"A": watcher_a, "B": watcher_b}
        got = {"A": [], "B": []}

        # 1: an ordinary send on A reaches the watcher on B.
        assert await send_live(writer, "one") == 1
        for key, ws in watchers.items():
            got[key].append(await next_message(ws, 5))

        # 2: its event is lost, and nothing follows it: only the sweep can heal that.
        assert await send_unannounced("two") == 2
        started = loop.time()
        for key, ws in watchers.items():
            got[key].append(await next_message(ws, SWEEP_SECONDS * 3 + 3))
        healed_after = loop.time() - started

        # 3 lost, 4 sent on A right after: the hubs see rev 4 early and fill rev 3 first.
        assert await send_unannounced("three") == 3
        assert await send_live(writer, "four") == 4
        for key, ws in watchers.items():
            got[key].append(await next_message(ws, 5))
            got[key].append(await next_message(ws, 5))
        print(f"\nlost last event healed after {healed_after:.2f}s (sweep every {SWEEP_SECONDS}s)")

        for key, frames in got.items():
            assert [(m["seq"], m["body"]) for m in frames] == [(1, "one"), (2, "two"), (3, "three"), (4, "four")], key
        # And nothing more: no repeats arrive afterwards.
        for ws in watchers.values():
            with pytest.raises(TimeoutError):
                await next_message(ws, SWEEP_SECONDS * 1.5)

    stored = await _stored()
    assert [seq for _, seq, _ in stored] == [1, 2, 3, 4]
    _assert_no_tracebacks(servers)
