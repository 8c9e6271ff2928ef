"""Faults injected into real workers on PostgreSQL + Redis, and connection churn.

1. Redis (a private redis-server on a free port: the shared one is never touched) is
   killed and started again while clients send and read on two workers: every acked
   message reaches every client, live or through `resume` after a reconnect; none twice.
2. PostgreSQL goes away behind a TCP proxy the test controls: sends get `error`
   `server_error` (no ack) and store nothing; when the proxy comes back the worker
   recovers by itself, seqs stay gap-free and every stored message is delivered.
3. 2,000 connect/disconnect cycles: the worker's file descriptors, Redis clients, Redis
   memory and pub/sub subscriptions come back to their baseline.

A worker killed with SIGKILL mid-stream (clients move to the other worker, resume, and end
with every message once) is deploy/tests/test_nginx.py::test_clients_survive_a_killed_worker_through_nginx.

Runs in the PostgreSQL + Redis pass (make test-postgres).
"""

import asyncio
import json
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat import services
from chat.models import Membership, Message, Room
from testkit.faults import PausableProxy, PrivateRedis
from testkit.servers import Uvicorn, http_get, running
from testkit.testdb import database_url, db, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SLUG = "faults"
PREFIX = "faulttest"


@pytest.fixture
def redis_server():
    server = PrivateRedis()
    yield server
    server.close()


@pytest.fixture
def workers(transactional_db, redis_server):
    started: list[Uvicorn] = []

    def start(name: str, **env: str) -> Uvicorn:
        env = {"REDIS_URL": redis_server.url, "PARLEY_REDIS_PREFIX": PREFIX, **env}
        server = Uvicorn(name, worker_env(**env))
        started.append(server)
        return server.start()

    with running(started):
        yield start


@db
def _people(names: list[str]) -> dict[str, str]:
    User = get_user_model()
    users = {name: User.objects.create_user(username=name) for name in names}
    room = services.room_create(creator=users[names[0]], slug=SLUG, name="Faults")
    for user in list(users.values())[1:]:  # members, without "joined" messages: seqs start with the sends
        Membership.objects.create(room=room, user=user)
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


@db
def _stored() -> list[tuple[int, int, str]]:
    return list(Message.objects.filter(room__slug=SLUG).order_by("seq").values_list("id", "seq", "client_id"))


class Peer:
    """A client that stays in the room whatever happens: reconnects (to any of `servers`),
    resumes from the last rev it saw, resends unacked sends with the same client_id."""

    def __init__(self, name: str, token: str, servers: list[Uvicorn]):
        self.name, self.token, self.servers = name, token, servers
        self.rev = None
        self.got: dict[int, int] = {}  # message id -> times seen live
        self.duplicates = 0
        self.unacked: dict[str, str] = {}
        self.acked: dict[str, int] = {}
        self.errors: list[str] = []
        self.reconnects = 0
        self.ws = None
        self.connected = asyncio.Event()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            server = self.servers[attempt % len(self.servers)]
            attempt += 1
            try:
                async with connect(server.url(f"/ws/chat/{SLUG}/"), open_timeout=5, close_timeout=1,
                                   additional_headers={"Authorization": f"Token {self.token}"}) as ws:
                    await self.session(ws)
            except (OSError, TimeoutError, ConnectionClosed, InvalidStatus):
                pass
            self.ws = None
            self.connected.clear()
            if not self.stop.is_set():
                self.reconnects += 1
                await asyncio.sleep(0.3)

    async def session(self, ws) -> None:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        replaying = self.rev is not None
        if replaying:
            await ws.send(json.dumps({"type": "resume", "rev": self.rev}))
        else:
            self.rev = hello["room"]["rev"]
        for client_id, body in list(self.unacked.items()):
            await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": client_id}))
        self.ws = ws
        self.connected.set()
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                recv = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait([recv, stop], return_when=asyncio.FIRST_COMPLETED)
                if recv not in done:
                    recv.cancel()
                    return
                frame = json.loads(recv.result())
                if frame["type"] == "message":
                    if frame["id"] in self.got and not replaying:
                        self.duplicates += 1
                    self.got[frame["id"]] = self.got.get(frame["id"], 0) + 1
                    self.rev = max(self.rev, frame["rev"])
                elif frame["type"] == "resumed":
                    replaying = False
                    assert not frame["truncated"]
                    self.rev = max(self.rev, frame["rev"])
                elif frame["type"] == "ack":
                    self.unacked.pop(frame["client_id"], None)
                    self.acked[frame["client_id"]] = frame["id"]
                elif frame["type"] == "error":
                    self.errors.append(frame["code"])
        finally:
            stop.cancel()

    async def send(self, client_id: str) -> None:
        body = f"{self.name} {client_id}"
        self.unacked[client_id] = body
        ws = self.ws
        if ws is not None:
            try:
                await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": client_id}))
            except ConnectionClosed:
                pass  # resent after the reconnect

    async def resend_unacked(self) -> None:
        ws = self.ws
        for client_id, body in list(self.unacked.items()):
            if ws is not None:
                try:
                    await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": client_id}))
                except ConnectionClosed:
                    return


async def _settle(peers: list[Peer], expect: int, timeout: float) -> None:
    """Until every sender's sends are acked and every peer has `expect` messages."""
    deadline = time.monotonic() + timeout
    last_resend = 0.0
    while time.monotonic() < deadline:
        if all(not p.unacked for p in peers) and all(len(p.got) >= expect for p in peers):
            return
        if time.monotonic() - last_resend > 2:
            last_resend = time.monotonic()
            for peer in peers:
                await peer.resend_unacked()  # an answer lost in the fault (server_error): retry
        await asyncio.sleep(0.1)


# 1. Redis restarted -----------------------------------------------------------------------


async def test_redis_restart_loses_no_acked_message(workers, redis_server):
    a, b = workers("A"), workers("B")
    names = ["s_a", "s_b", "r_a", "r_b"]
    tokens = await _people(names)
    peers = {
        "s_a": Peer("s_a", tokens["s_a"], [a, b]),
        "s_b": Peer("s_b", tokens["s_b"], [b, a]),
        "r_a": Peer("r_a", tokens["r_a"], [a, b]),
        "r_b": Peer("r_b", tokens["r_b"], [b, a]),
    }
    runners = [asyncio.ensure_future(p.run()) for p in peers.values()]
    try:
        for peer in peers.values():
            await asyncio.wait_for(peer.connected.wait(), 10)
        senders = [peers["s_a"], peers["s_b"]]
        per_phase = 20
        sent = 0

        async def phase(label: str) -> None:
            nonlocal sent
            for n in range(per_phase):
                for sender in senders:
                    await sender.send(f"{sender.name}-{label}-{n}")
                    sent += 1
                await asyncio.sleep(0.02)

        await phase("before")
        redis_server.stop()
        await phase("down")  # Redis is gone: rate limit and publish fail
        await asyncio.sleep(1)
        redis_server.start()  # empty: no groups, no subscriptions
        await phase("after")
        await _settle(list(peers.values()), expect=sent, timeout=30)
    finally:
        for peer in peers.values():
            peer.stop.set()
        await asyncio.wait(runners, timeout=10)

    stored = await _stored()
    acked = {cid: mid for s in senders for cid, mid in s.acked.items()}
    delivered = {name: len(p.got) for name, p in peers.items()}
    print(f"\nredis restart: sent {sent}, acked {len(acked)}, stored {len(stored)}, delivered {delivered}, "
          f"duplicates {[p.duplicates for p in peers.values()]}, errors {[p.errors.count('server_error') for p in senders]}, "
          f"reconnects {[p.reconnects for p in peers.values()]}; acked by phase "
          f"{ {ph: sum('-' + ph + '-' in cid for cid in acked) for ph in ('before', 'down', 'after')} }")
    assert [seq for _, seq, _ in stored] == list(range(1, len(stored) + 1)), "seq has a gap"
    assert len(acked) == sent and {mid for _, mid in acked.items()} == {mid for mid, _, _ in stored}
    for name, peer in peers.items():
        assert set(peer.got) == {mid for mid, _, _ in stored}, f"{name} missed {len(stored) - len(peer.got)}"
        assert peer.duplicates == 0, name


# 2. PostgreSQL unavailable ------------------------------------------------------------------


async def test_database_outage_gives_server_errors_and_heals(workers):
    from django.conf import settings

    proxy = PausableProxy(int(settings.DATABASES["default"].get("PORT") or 5432))
    try:
        w = workers("W", DATABASE_URL=database_url(port=proxy.port))
        direct = workers("D")  # a second worker, straight to PostgreSQL
        tokens = await _people(["sender", "reader_w", "reader_d"])
        sender = Peer("sender", tokens["sender"], [w])
        readers = [Peer("reader_w", tokens["reader_w"], [w]), Peer("reader_d", tokens["reader_d"], [direct])]
        everyone = [sender, *readers]
        runners = [asyncio.ensure_future(p.run()) for p in everyone]
        try:
            for peer in everyone:
                await asyncio.wait_for(peer.connected.wait(), 10)
            for n in range(5):
                await sender.send(f"up-{n}")
            await _settle(everyone, expect=5, timeout=10)

            proxy.cut()
            assert (await asyncio.to_thread(http_get, w.port, "/healthz"))[0] == 503
            errors_before = len(sender.errors)
            for n in range(5):
                await sender.send(f"down-{n}")
                await asyncio.sleep(0.1)
            deadline = time.monotonic() + 10
            while len(sender.errors) - errors_before < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            outage_errors = sender.errors[errors_before:]
            outage_acks = [cid for cid in sender.acked if cid.startswith("down-")]
            half_stored = [cid for _, _, cid in await _stored() if cid.startswith("down-")]
            await asyncio.sleep(1.5)  # a sweep or two fail meanwhile; nothing may break for good

            proxy.restore()
            deadline = time.monotonic() + 15
            while (await asyncio.to_thread(http_get, w.port, "/healthz"))[0] != 200:
                assert time.monotonic() < deadline, "the worker did not recover by itself"
                await asyncio.sleep(0.2)
            for n in range(5):
                await sender.send(f"again-{n}")
            await _settle(everyone, expect=15, timeout=20)  # the down-* sends are retried, same ids
        finally:
            for peer in everyone:
                peer.stop.set()
            await asyncio.wait(runners, timeout=10)
    finally:
        proxy.close()

    stored = await _stored()
    print(f"\ndatabase outage: outage errors {outage_errors}, acks during outage {outage_acks}, "
          f"stored during outage {half_stored}; after: stored {len(stored)}, acked {len(sender.acked)}, "
          f"delivered {[len(r.got) for r in readers]}, duplicates {[r.duplicates for r in readers]}")
    assert outage_errors == ["server_error"] * 5, outage_errors
    assert outage_acks == [] and half_stored == []
    assert [seq for _, seq, _ in stored] == list(range(1, 16))
    assert sorted(cid for _, _, cid in stored) == sorted(sender.acked)
    for reader in readers:
        assert set(reader.got) == {mid for mid, _, _ in stored}, reader.name
        assert reader.duplicates == 0


# 3. Churn -----------------------------------------------------------------------------------

CYCLES = 2000
BATCH = 100


def _resources(worker: Uvicorn, redis, room_id: int) -> dict[str, int]:
    return {
        "fds": worker.fds(),
        "redis_clients": len(redis.client_list()),
        "redis_memory": int(redis.info("memory")["used_memory"]),
        "room_subscribers": redis.pubsub_numsub(f"{PREFIX}__group__chat.room.{room_id}")[0][1],
        "prefix_channels": len(redis.pubsub_channels(f"{PREFIX}*")),
    }


async def test_connection_churn_returns_to_baseline(workers, redis_server):
    w = workers("W")
    tokens = await _people(["owner", *[f"churn{i}" for i in range(10)]])
    room_id = await db(lambda: Room.objects.get(slug=SLUG).id)()
    redis = redis_server.client()
    url = w.url(f"/ws/chat/{SLUG}/")

    async def cycle(token: str | None) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        # Generous timeouts: on a slow machine with the other test pass beside it, a batch
        # of 100 handshakes keeps both ends' loops busy for seconds.
        async with connect(url, additional_headers=headers, open_timeout=30, close_timeout=30) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"

    # The watcher reads nothing during the churn, which sends it a presence frame per
    # cycle: with websockets' flow control it would stop reading after 16, miss the
    # server's keepalive ping and be closed (1011) once the churn lasts over 20 s.
    headers = {"Authorization": f"Token {tokens['owner']}"}
    async with connect(url, additional_headers=headers, max_queue=None) as watcher:
        await watcher.recv()
        for _ in range(20):  # warm up: lazily made connections and caches exist before the baseline
            await cycle(tokens["churn0"])
        await asyncio.sleep(1.5)
        before = _resources(w, redis, room_id)
        started = time.monotonic()
        users = [tokens[f"churn{i}"] for i in range(10)] + [None]  # anonymous readers too
        for start in range(0, CYCLES, BATCH):
            await asyncio.gather(*(cycle(users[n % len(users)]) for n in range(start, start + BATCH)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(2.5)  # closing handshakes, group_discard, one sweep
        after = _resources(w, redis, room_id)
        await watcher.send(json.dumps({"type": "ping"}))
        # The churn came and went as `presence` frames (chat/presence.py); the pong follows them.
        while (frame := json.loads(await watcher.recv()))["type"] == "presence":
            pass
        assert frame["type"] == "pong"
    print(f"\nchurn: {CYCLES} cycles in {elapsed:.1f}s; before {before}; after {after}")
    for key in ("room_subscribers", "prefix_channels"):
        assert after[key] == before[key], (key, before, after)
    assert before["room_subscribers"] == 1
    for key in ("fds", "redis_clients", "redis_memory"):
        assert abs(after[key] - before[key]) <= max(2, 0.1 * before[key]), (key, before, after)
    assert "Traceback" not in w.output()
