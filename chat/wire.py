"""Writing the same frame to many sockets cheaply.

A room event goes to every local socket as the same text. Through ASGI each socket
costs a task switch and a chain of awaits; when the server is uvicorn's
websockets-sansio protocol and the connection negotiated no compression, the frame is
serialized once per event and written straight to each socket's transport — what
`websockets.broadcast` does. Any other server (daphne, the test communicator) or a
compressed connection takes the ordinary ASGI path; so does everything while a socket
has ASGI sends queued, so frames never overtake each other.

Frames due to the same socket in the same turn of the event loop (a burst of events that
queued while the loop was busy) go out as one write, one send syscall: writes are
collected per socket and flushed together when the turn's callbacks have run, before
any ASGI send of the socket (`flush`).

What it reads of uvicorn's protocol object is not uvicorn's public API: direct_writer
checks at connect that every piece is there, of the type expected, and otherwise logs
once and leaves the socket to the ASGI path (chat/tests/test_wire.py turns red when the
pinned uvicorn no longer passes the check).
"""

import asyncio
import logging
import weakref

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # another ASGI server: every socket takes the ASGI path
    WebSocketsSansIOProtocol = None

log = logging.getLogger(__name__)
_warned = False

# Bytes a socket may have waiting in its kernel-side buffer before it counts as a
# client that stopped reading.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024


def text_frame(text: str) -> bytes:
    """An unmasked, uncompressed, final text frame, as a server sends it."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def event_frame(event: dict) -> bytes:
    """The event's frame bytes, built by the first socket that needs them."""
    data = event.get("wire")
    if data is None:
        data = event["wire"] = text_frame(event["frame"])
    return data


class _Turn:
    """The writers with frames waiting in this turn of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.writers: list[DirectWriter] = []

    def flush(self) -> None:
        writers, self.writers = self.writers, []
        for writer in writers:
            writer.flush()


_turns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turn]" = weakref.WeakKeyDictionary()


def _turn() -> _Turn:
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = _Turn(loop)
    return turn


class DirectWriter:
    def __init__(self, protocol):
        self._protocol = protocol
        self._transport = protocol.transport
        self._turn = _turn()
        self._waiting: list[bytes] | None = None
        self._waiting_bytes = 0

    def open(self) -> bool:
        protocol = self._protocol
        return (
            protocol.handshake_complete
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.conn.state is State.OPEN
            and not self._transport.is_closing()
        )

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel: the transport's buffer and what
        waits for the end of this turn."""
        return self._transport.get_write_buffer_size() + self._waiting_bytes

    def write(self, frame: bytes) -> bool:
        """Queue `frame` for the end of this turn; False, and nothing queued, when the
        backlog is over MAX_BUFFERED_BYTES already (a client that stopped reading)."""
        waiting_bytes = self._waiting_bytes
        if waiting_bytes + self._transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:  # backlog(), inline
            return False
        waiting = self._waiting
        if waiting is None:
            self._waiting = [frame]
            turn = self._turn  # _Turn.add, inline: this runs once per socket per event
            if not turn.writers:
                turn.loop.call_soon(turn.flush)
            turn.writers.append(self)
        else:
            waiting.append(frame)
        self._waiting_bytes = waiting_bytes + len(frame)
        return True

    def flush(self) -> None:
        """Write what waits now (the turn's end, or before an ASGI send or close)."""
        waiting, self._waiting = self._waiting, None
        self._waiting_bytes = 0
        if waiting and self.open():  # after a close frame, nothing more
            self._transport.write(waiting[0] if len(waiting) == 1 else b"".join(waiting))

    def hang_up(self, code: int) -> None:
        """Close at once a connection whose client floods. After an ASGI close uvicorn
        reads (and parses) whatever the client sends until it answers or for 10 s; here
        the close frame goes out, reading stops, and the connection is dropped a second
        later (dropping it at once, with the flood unread, would reset it and could lose
        the close frame). The app hears websocket.disconnect as usual."""
        self.flush()
        protocol = self._protocol
        protocol.close_sent = True  # uvicorn drops what it has already read
        self._transport.write(Frame(Opcode.CLOSE, Close(code, "").serialize()).serialize(mask=False))
        self._transport.pause_reading()
        protocol.read_paused = False  # or the app's next receive() would resume reading
        asyncio.get_running_loop().call_later(1.0, self._transport.close)


def moved_internals(protocol) -> str | None:
    """The first thing DirectWriter uses that `protocol` lacks (or has as another type),
    or None when everything is there."""
    for flag in ("handshake_complete", "close_sent", "disconnected"):
        if not isinstance(getattr(protocol, flag, None), bool):
            return flag
    transport = getattr(protocol, "transport", None)
    for method in ("write", "is_closing", "get_write_buffer_size"):  # uvloop's transports are no asyncio.Transport
        if not callable(getattr(transport, method, None)):
            return f"transport.{method}"
    conn = getattr(protocol, "conn", None)
    if not isinstance(conn, Protocol):
        return "conn"
    if not isinstance(getattr(conn, "state", None), State):
        return "conn.state"
    if not isinstance(getattr(conn, "extensions", None), list):
        return "conn.extensions"
    return None


def direct_writer(asgi_send) -> DirectWriter | None:
    """A writer straight to the socket behind `asgi_send`, when that is safe; else None
    (the ASGI path). Called once per socket, after the accept."""
    global _warned
    protocol = getattr(asgi_send, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    missing = moved_internals(protocol)
    if missing is not None:
        if not _warned:
            _warned = True
            log.warning("uvicorn's WebSocket protocol has no usable %r (uvicorn changed?): "
                        "broadcast frames take the slower ASGI path", missing)
        return None
    if protocol.conn.extensions:
        return None  # per-message compression: each socket's bytes differ
    return DirectWriter(protocol)
