"""uvicorn's WebSocket protocol (websockets-sansio), holding less for an idle connection.

Per connection uvicorn keeps an asyncio.Queue for what the client sends (three deques
and an Event, ~3 KiB, empty almost always: reading pauses after each message), an
asyncio.Event for write back-pressure (~0.8 KiB, set almost always), and after the
handshake the parsed request (~2.5 KiB of headers), the response it sent and the
handshake's headers in the ASGI scope, which nothing reads once the socket is open.
Here the queue and the event are one-reader, list-based stand-ins that make a future
only while someone waits, and the handshake's leftovers go once the accept is sent.

`make run` and deploy/parley@.service serve with `--ws core.uvicorn_ws:ParleyWebSocketProtocol`;
chat/wire.py's direct write path sees uvicorn's own class (this is a subclass) and its
check of uvicorn's internals covers this one (chat/tests/test_wire.py).
"""

import asyncio

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class Inbox:
    """What asyncio.Queue offers uvicorn's protocol (put_nowait, get, empty) for the one
    task that reads: the connection's ASGI receive."""

    __slots__ = ("items", "waiter")

    def __init__(self):
        self.items: list = []
        self.waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self.items

    async def get(self):
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


class Flag:
    """What asyncio.Event offers uvicorn's protocol (set, clear, wait), with no deque of
    waiters while no one waits."""

    __slots__ = ("up", "waiters")

    def __init__(self):
        self.up = True
        self.waiters: list[asyncio.Future] | None = None

    def set(self) -> None:
        self.up = True
        waiters, self.waiters = self.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self.up = False

    async def wait(self) -> bool:
        if self.up:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = []
        self.waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self.waiters is not None and waiter in self.waiters:
                self.waiters.remove(waiter)


class ParleyWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue = Inbox()
        self.writable = Flag()

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # Its headers are in the scope now. websockets' parser keeps the request in its
        # generator's frame for as long as the connection lasts: emptied, it costs little.
        self.request = None
        event.headers.clear()

    async def send(self, message) -> None:
        opening = not self.handshake_complete
        await super().send(message)
        if opening and self.handshake_complete:
            # Accepted (or refused): the handshake's response and headers have done
            # their work. The app had them at connect; Parley's consumers keep a scope
            # of their own without them (core/websocket.py).
            self.response = None
            self.scope["headers"] = []
