"""chat/wire.py against the real uvicorn pinned in requirements.lock.

Parley's application runs in-process under `uvicorn.Server` (in a thread with its own
event loop: uvloop, as `make run` gets it, and plain asyncio), configured with the
`make run` flags; real WebSocket clients talk to it.

- With uvicorn as pinned, room frames take the direct path: an upgrade of uvicorn that
  renames or retypes what wire.py reads turns this red instead of silently slowing
  every broadcast down.
- When those internals are missing (simulated by a protocol subclass that hides them),
  wire.py says so once in the log, and frames take the ASGI path and still arrive.
"""

import asyncio
import json
import re
import threading
from importlib.metadata import version

import pytest
import uvicorn
import uvloop
from asgiref.sync import sync_to_async
from django.db import connections
from rest_framework.authtoken.models import Token
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.sync.client import connect

from chat import wire
from config.asgi import application
from testkit.servers import REPO, free_port, make_run_flags

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


class ConnMoved(WebSocketsSansIOProtocol):
    """The websockets connection object became something else."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conn = Forwarding(self.conn)


class TransportMoved(WebSocketsSansIOProtocol):
    """The transport no longer tells its write buffer size."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.transport = Forwarding(transport, hidden={"get_write_buffer_size"})


def make_run_config(port: int, ws=None) -> uvicorn.Config:
    """uvicorn.Config for Parley with the WebSocket and proxy options of `make run` (and
    another WebSocket protocol class, if given)."""
    params = uvicorn.main.make_context("uvicorn", ["config.asgi:application", *make_run_flags()]).params
    options = {name: params[name] for name in ("ws_max_size", "ws_per_message_deflate", "proxy_headers", "server_header")}
    return uvicorn.Config(application, host="127.0.0.1", port=port, ws=ws or params["ws"], lifespan="off",
                          log_config=None, access_log=False, timeout_graceful_shutdown=2, **options)


class InProcessServer:
    """Parley under uvicorn.Server in a thread with its own event loop."""

    def __init__(self, ws=None, loop="uvloop"):
        self.port = free_port()
        self.server = uvicorn.Server(make_run_config(self.port, ws))
        self.loop = uvloop.new_event_loop() if loop == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.serve(),), daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            assert self.thread.is_alive(), "uvicorn did not start"
            threading.Event().wait(0.05)
        raise AssertionError("uvicorn did not start within 10 s")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()
        # The consumers' database thread keeps its connection (CONN_MAX_AGE), and
        # pytest-django could not drop the test database.
        self.loop.run_until_complete(sync_to_async(connections.close_all)())
        self.loop.close()

    def open(self, token: str):
        return connect(f"ws://127.0.0.1:{self.port}/ws/chat/lobby/", additional_headers={"Authorization": f"Token {token}"},
                       open_timeout=10, close_timeout=2)


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


def _chat(server: InProcessServer, lobby, olivia, mia) -> tuple[dict, dict]:
    """olivia says something in the lobby: (her ack, the message as mia got it)."""
    tokens = {user: Token.objects.create(user=user).key for user in (olivia, mia)}
    with server.open(tokens[olivia]) as sender, server.open(tokens[mia]) as reader:
        _until(sender, "hello")
        _until(reader, "hello")
        sender.send(json.dumps({"type": "message.send", "body": "straight to the socket ✓", "client_id": "w-1"}))
        return _until(sender, "ack"), _until(reader, "message")


def test_uvicorn_is_the_version_pinned_in_requirements_lock():
    pinned = re.search(r"^uvicorn==(\S+)$", (REPO / "requirements.lock").read_text(), re.MULTILINE).group(1)
    assert version("uvicorn") == pinned


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_pinned_uvicorn_takes_the_direct_path(spy, lobby, olivia, mia, loop, caplog):
    with InProcessServer(loop=loop) as server:
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
    with InProcessServer(ws=protocol) as server:
        ack, message = _chat(server, lobby, olivia, mia)
    assert message["body"] == "straight to the socket ✓" and message["seq"] == ack["seq"]
    assert spy["writers"] == [None, None]
    assert spy["why_not"] == [{ConnMoved: "conn", TransportMoved: "transport.get_write_buffer_size"}[protocol]] * 2
    assert spy["direct_frames"] == 0
    warnings = [r for r in caplog.records if r.name == "chat.wire"]
    assert len(warnings) == 1 and "ASGI path" in warnings[0].getMessage(), caplog.text
