"""What an idle socket holds on the server: under uvicorn (the direct path of chat/wire.py)
no outbox queue and no writer task; those are made only for a socket that needs them
(the ASGI path), so a thousand idle sockets do not carry a thousand of each."""

import json

import pytest
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chat import consumers
from chat.tests.test_wire import ConnMoved
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
