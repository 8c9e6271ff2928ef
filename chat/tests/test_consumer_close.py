"""A socket closed by the server (too slow, logged out) closes after its queued frames;
the task doing that must stop when its event loop shuts down, not write on."""

import asyncio

from chat.consumers import ParleyConsumer


class _Hub:
    def leave_topic(self, group, consumer):
        pass


def _consumer_with_a_stuck_writer() -> tuple[ParleyConsumer, list]:
    consumer = ParleyConsumer()
    consumer.closing, consumer.topics, consumer.hub, consumer.user_id = False, [], _Hub(), None
    consumer.direct = None
    closes = []

    async def close(code=None, reason=None):
        closes.append(code)

    async def send(text_data=None, bytes_data=None, close=False):
        await asyncio.Event().wait()  # a client that never reads

    consumer.close, consumer.send = close, send
    consumer.outbox, consumer.writer = None, None
    consumer._open_outbox().put_nowait('{"type": "x"}')
    return consumer, closes


async def test_a_closing_socket_closes_after_its_writer_gives_up():
    consumer, closes = _consumer_with_a_stuck_writer()
    await asyncio.sleep(0)  # the writer takes the frame and hangs on it
    consumer.close_with(4008)
    await asyncio.sleep(0)
    consumer.writer.cancel()  # as a disconnect does
    await asyncio.wait_for(consumer.closer, timeout=2)
    assert closes == [4008]


async def test_a_closing_socket_stops_when_its_loop_cancels_it():
    consumer, closes = _consumer_with_a_stuck_writer()
    await asyncio.sleep(0)
    consumer.close_with(4008)
    await asyncio.sleep(0)  # waiting for the stuck writer
    consumer.closer.cancel()
    await asyncio.wait([consumer.closer], timeout=2)
    assert consumer.closer.cancelled()
    assert consumer.writer.cancelled()
    assert closes == []
