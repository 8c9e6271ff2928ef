"""core/uvicorn_ws.py's stand-ins behave as the asyncio.Queue and asyncio.Event uvicorn's
protocol uses them: messages in order, a receive that waits until one comes and can be
cancelled, sends held while the transport is paused and released when it resumes (or the
connection is lost). The protocol itself is covered by every socket test (make run's flags)."""

import asyncio

import pytest

from core.uvicorn_ws import Flag, Inbox

pytestmark = pytest.mark.dbless


async def test_inbox_hands_messages_over_in_order_and_waits_for_the_next():
    inbox = Inbox()
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "1"})
    assert not inbox.empty()
    assert await inbox.get() == {"type": "websocket.connect"}
    assert await inbox.get() == {"type": "websocket.receive", "text": "1"}
    assert inbox.empty()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await waiting == {"type": "websocket.disconnect", "code": 1000}


async def test_a_cancelled_receive_leaves_the_inbox_usable():
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put_nowait("next")
    assert await asyncio.wait_for(inbox.get(), timeout=1) == "next"


async def test_flag_holds_senders_while_down_and_releases_them_all():
    flag = Flag()
    assert await flag.wait()  # writable from the start
    flag.clear()
    senders = [asyncio.ensure_future(flag.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(sender.done() for sender in senders)
    flag.set()
    assert await asyncio.gather(*senders) == [True, True]
    assert flag.waiters is None
