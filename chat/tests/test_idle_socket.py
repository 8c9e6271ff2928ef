"""What an idle socket holds on the server: under uvicorn (the direct path of chat/wire.py)
no outbox queue and no writer task; those are made only for a socket that needs them
(the ASGI path), so a thousand idle sockets do not carry a thousand of each. Nor does it
keep what only the handshake needed: its headers, the session object, a task of its own
beside uvicorn's (core/websocket.py, ParleyConsumer.__call__), uvicorn's parsed request
and response, or an empty asyncio.Queue and Event (core/uvicorn_ws.py)."""

import asyncio
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.selectors import Credential
from chat import consumers
from chat.tests.test_wire import ConnMoved
from core.uvicorn_ws import Flag, Inbox
from testkit.inprocess import InProcessUvicorn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def outboxes(monkeypatch):
    opened = []
    real = consumers.ParleyConsumer._open_outbox

    def counting(self):
        opened.append(self)
        return real(self)

    monkeypatch.setattr(consumers.ParleyConsumer, "_open_outbox", counting)
    return opened


def _until(ws, kind):
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame["type"] == kind:
            return frame


def _talk(server, lobby, olivia, mia):
    tokens = {user: Token.objects.create(user=user).key for user in (olivia, mia)}
    headers = {user: {"Authorization": f"Token {tokens[user]}"} for user in (olivia, mia)}
    url = server.url("/ws/chat/lobby/")
    with connect(url, additional_headers=headers[olivia]) as a, connect(url, additional_headers=headers[mia]) as b:
        _until(a, "hello")
        _until(b, "hello")
        a.send(json.dumps({"type": "message.send", "body": "hi", "client_id": "i-1"}))
        assert _until(a, "ack")["seq"] == _until(b, "message")["seq"]
    # Closed by the server before any frame (no such room): the close still arrives.
    with connect(server.url("/ws/chat/nowhere/"), additional_headers=headers[mia]) as c:
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=10)
    return closed.value.rcvd.code


def test_sockets_on_uvicorn_make_no_outbox_and_still_get_every_frame_and_close(outboxes, lobby, olivia, mia):
    with InProcessUvicorn() as server:
        code = _talk(server, lobby, olivia, mia)
    assert code == 4404
    assert outboxes == []


def test_sockets_on_the_asgi_path_get_their_outbox_when_the_first_frame_goes_out(outboxes, lobby, olivia, mia):
    with InProcessUvicorn(ws=ConnMoved) as server:
        code = _talk(server, lobby, olivia, mia)
    assert code == 4404
    assert len(outboxes) == 2  # the two sockets that were sent frames; the refused one none


@pytest.fixture
def connected(monkeypatch):
    """Every consumer that got as far as websocket_connect."""
    seen = []
    real = consumers.ParleyConsumer.websocket_connect

    async def recording(self, message):
        seen.append(self)
        return await real(self, message)

    monkeypatch.setattr(consumers.ParleyConsumer, "websocket_connect", recording)
    return seen


def _in_loop(server, function):
    async def call():
        return function()

    return asyncio.run_coroutine_threadsafe(call(), server.loop).result(timeout=10)


def test_an_idle_socket_keeps_no_handshake_headers_no_session_object_and_no_task_of_its_own(connected, lobby, mia):
    browser = Client()
    browser.login(username="mia", password="correct horse battery")
    session_key = browser.cookies["sessionid"].value
    cookie = {"Cookie": f"sessionid={session_key}"}
    with InProcessUvicorn() as server:
        url = server.url("/ws/chat/lobby/")
        with connect(url, additional_headers=cookie) as a, connect(url, additional_headers=cookie) as b:
            _until(a, "hello")
            _until(b, "hello")
            tasks = _in_loop(server, lambda: [task.get_coro().__qualname__ for task in asyncio.all_tasks()])
            # uvicorn's one task per connection (its ASGI call), and none waiting on receive beside it.
            assert tasks.count("WebSocketsSansIOProtocol.run_asgi") == 2
            assert [name for name in tasks if name.endswith(".receive")] == []
            socket = connected[-1]
            assert "headers" not in socket.scope and "session" not in socket.scope
            assert socket.scope["session_key"] == session_key
            assert socket.credential == Credential("session", session_key, mia.id)
            assert type(socket.user) is get_user_model() and socket.user.id == mia.id
            # uvicorn's side of it (core/uvicorn_ws.py): the handshake's leftovers gone, and
            # no asyncio.Queue or Event sitting empty.
            protocol = socket.scope["parley.asgi_send"].__self__
            assert protocol.request is None and protocol.response is None and protocol.scope["headers"] == []
            assert isinstance(protocol.queue, Inbox) and isinstance(protocol.writable, Flag)
