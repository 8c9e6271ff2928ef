"""chat.hub.RoomStream hands each event to every socket of the room in this process."""

import logging

from chat.hub import RoomStream


class Socket:
    def __init__(self, user_id, *, broken=False):
        self.user_id, self.broken = user_id, broken
        self.events, self.revoked = [], 0

    def room_event(self, stream, event):
        if self.broken:
            raise RuntimeError("this socket is broken")
        self.events.append(event["rev"])

    def room_revoked(self, stream):
        self.revoked += 1


def _stream(*sockets) -> RoomStream:
    stream = RoomStream(None, 1)
    stream.busy = False
    stream.subscribers = set(sockets)
    return stream


def test_a_socket_that_fails_does_not_cost_the_others_the_event(caplog):
    broken, first, second = Socket(1, broken=True), Socket(2), Socket(3)
    stream = _stream(broken, first, second)
    with caplog.at_level(logging.ERROR, logger="chat.hub"):
        stream.push({"rev": 1, "frame": "{}"})
        stream.push({"rev": 2, "frame": "{}"})
    assert first.events == second.events == [1, 2]
    assert stream.rev == 2
    assert caplog.text.count("a socket failed to take an event") == 2


def test_a_revoking_event_ends_the_revoked_and_reaches_the_rest():
    revoked, kept = Socket(1), Socket(2)
    stream = _stream(revoked, kept)
    stream.push({"rev": 1, "frame": "{}", "revoke": [1]})
    assert (revoked.events, revoked.revoked) == ([], 1)
    assert (kept.events, kept.revoked) == ([1], 0)
