"""chat/wire.py: frames due to one socket in one turn of the event loop leave in one
write (one send syscall), in order; nothing follows a close frame."""

import asyncio
from types import SimpleNamespace

from websockets.frames import Opcode
from websockets.protocol import State

from chat import wire


class Transport:
    def __init__(self):
        self.writes: list[bytes] = []

    def write(self, data):
        self.writes.append(data)

    def is_closing(self):
        return False

    def get_write_buffer_size(self):
        return 0

    def pause_reading(self):
        pass

    def close(self):
        pass


def writer() -> tuple[wire.DirectWriter, Transport, SimpleNamespace]:
    transport = Transport()
    protocol = SimpleNamespace(
        transport=transport, handshake_complete=True, close_sent=False, disconnected=False,
        conn=SimpleNamespace(state=State.OPEN),
    )
    return wire.DirectWriter(protocol), transport, protocol


async def test_frames_of_one_turn_leave_in_one_write_per_socket_in_order():
    (a, ta, _), (b, tb, _) = writer(), writer()
    frames = [wire.text_frame(f"m{n}") for n in range(3)]
    for frame in frames:
        a.write(frame)
        b.write(frame)
    assert ta.writes == tb.writes == []  # not before the turn ends...
    assert a.backlog() == sum(map(len, frames))  # ...but counted as unsent (slow readers, replays)
    await asyncio.sleep(0)
    assert ta.writes == tb.writes == [b"".join(frames)]
    assert a.backlog() == 0
    a.write(frames[0])
    await asyncio.sleep(0)
    a.write(frames[1])
    await asyncio.sleep(0)
    assert ta.writes[1:] == [frames[0], frames[1]]  # one turn each: one write each


async def test_a_closed_socket_gets_nothing_after_its_close_frame():
    a, transport, _ = writer()
    a.write(wire.text_frame("before the close"))
    a.hang_up(4429)  # writes what waited, then the close frame
    a.write(wire.text_frame("after"))
    await asyncio.sleep(0)
    assert transport.writes[0] == wire.text_frame("before the close")
    # The second write is the close frame, and nothing follows it.
    assert transport.writes[1][0] & 0x0F == Opcode.CLOSE.value and len(transport.writes) == 2
