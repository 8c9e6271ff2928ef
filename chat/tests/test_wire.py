"""chat/wire.py against the real uvicorn pinned in requirements.lock.

Parley's application runs in-process under `uvicorn.Server` (testkit.inprocess: a thread
with its own event loop, uvloop as `make run` gets it and plain asyncio, the `make run`
flags); real WebSocket clients talk to it.

- With uvicorn as pinned, room frames take the direct path: an upgrade of uvicorn that
  renames or retypes what wire.py reads turns this red instead of silently slowing
  every broadcast down.
- When those internals are missing (simulated by a protocol subclass that hides them),
  wire.py says so once in the log, and frames take the ASGI path and still arrive.
"""

import json
import re
from importlib.metadata import version

import pytest
import uvicorn
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from chat import wire
from core.uvicorn_ws import ParleyWebSocketProtocol
from testkit.inprocess import InProcessUvicorn
from testkit.servers import REPO

pytestmark = pytest.mark.django_db(transaction=True)


class Forwarding:
    """Stands for an object uvicorn might use instead of the one wire.py knows: forwards
    every attribute but `hidden`, and is not of the original's type."""

    def __init__(self, target, hidden=()):
        self._target, self._hidden = target, set(hidden)

    def __getattr__(self, name):
        if name in self._hidden:
            raise AttributeError(name)
        return getattr(self._target, name)


class ConnMoved(ParleyWebSocketProtocol):
    """The websockets connection object became something else."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conn = Forwarding(self.conn)


class TransportMoved(ParleyWebSocketProtocol):
    """The transport no longer tells its write buffer size."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.transport = Forwarding(transport, hidden={"get_write_buffer_size"})


@pytest.fixture
def spy(monkeypatch):
    """What direct_writer answered for each socket, and how many frames DirectWriter wrote."""
    seen = {"writers": [], "why_not": [], "direct_frames": 0}
    direct_writer, write = wire.direct_writer, wire.DirectWriter.write

    def recording_direct_writer(asgi_send):
        writer = direct_writer(asgi_send)
        seen["writers"].append(writer)
        seen["why_not"].append(wire.moved_internals(getattr(asgi_send, "__self__", None)))
        return writer

    def counting_write(self, frame):
        seen["direct_frames"] += 1
        return write(self, frame)

    monkeypatch.setattr(wire, "direct_writer", recording_direct_writer)
    monkeypatch.setattr(wire.DirectWriter, "write", counting_write)
    monkeypatch.setattr(wire, "_warned", False)
    return seen


def _until(ws, kind: str) -> dict:
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame["type"] == kind:
            return frame


def _open(server: InProcessUvicorn, token: str):
    return connect(server.url("/ws/chat/lobby/"), additional_headers={"Authorization": f"Token {token}"},
                   open_timeout=10, close_timeout=2)


def _chat(server: InProcessUvicorn, lobby, olivia, mia) -> tuple[dict, dict]:
    """olivia says something in the lobby: (her ack, the message as mia got it)."""
    tokens = {user: Token.objects.create(user=user).key for user in (olivia, mia)}
    with _open(server, tokens[olivia]) as sender, _open(server, tokens[mia]) as reader:
        _until(sender, "hello")
        _until(reader, "hello")
        sender.send(json.dumps({"type": "message.send", "body": "straight to the socket ✓", "client_id": "w-1"}))
        return _until(sender, "ack"), _until(reader, "message")


def test_uvicorn_is_the_version_pinned_in_requirements_lock():
    pinned = re.search(r"^uvicorn==(\S+)$", (REPO / "requirements.lock").read_text(), re.MULTILINE).group(1)
    assert version("uvicorn") == pinned


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_pinned_uvicorn_takes_the_direct_path(spy, lobby, olivia, mia, loop, caplog):
    with InProcessUvicorn(loop=loop) as server:
        ack, message = _chat(server, lobby, olivia, mia)
    assert message["body"] == "straight to the socket ✓" and message["seq"] == ack["seq"]
    assert len(spy["writers"]) == 2
    assert all(isinstance(writer, wire.DirectWriter) for writer in spy["writers"]), (
        f"uvicorn {uvicorn.__version__} no longer has what chat/wire.py writes through: {spy['why_not']}"
    )
    assert spy["direct_frames"] >= 2  # at least the message to each socket
    assert "ASGI path" not in caplog.text


@pytest.mark.parametrize("protocol", [ConnMoved, TransportMoved], ids=["conn", "transport"])
def test_moved_uvicorn_internals_fall_back_to_asgi_and_still_deliver(spy, lobby, olivia, mia, protocol, caplog):
    with InProcessUvicorn(ws=protocol) as server:
        ack, message = _chat(server, lobby, olivia, mia)
    assert message["body"] == "straight to the socket ✓" and message["seq"] == ack["seq"]
    assert spy["writers"] == [None, None]
    assert spy["why_not"] == [{ConnMoved: "conn", TransportMoved: "transport.get_write_buffer_size"}[protocol]] * 2
    assert spy["direct_frames"] == 0
    warnings = [r for r in caplog.records if r.name == "chat.wire"]
    assert len(warnings) == 1 and "ASGI path" in warnings[0].getMessage(), caplog.text
