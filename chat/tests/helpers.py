"""Helpers for protocol tests: sockets opened through the real ASGI application."""

import asyncio
import json

from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from config.asgi import application

# What a browser on `make run`'s page sends: the page's origin, and the Host it connected to.
ORIGIN = b"http://127.0.0.1:8000"
HOST = b"127.0.0.1:8000"


@database_sync_to_async
def session_cookie(user) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "accounts.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


class Socket:
    """A WebsocketCommunicator that speaks JSON frames and remembers what it has read."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator

    async def send(self, frame) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, timeout: float = 3) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_type(self, kind: str, timeout: float = 3) -> dict:
        """The next frame of `kind`, skipping others (presence, unread, ...)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.receive(timeout=max(0.05, deadline - loop.time()))
            if frame["type"] == kind:
                return frame

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def closed_with(self, timeout: float = 3) -> int:
        while True:
            output = await self.communicator.receive_output(timeout=timeout)
            if output["type"] == "websocket.close":
                return output.get("code")

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_socket(path: str, *, user=None, token: str | None = None, origin: bytes | None = ORIGIN,
                      host: bytes = HOST, session_key: str | None = None):
    """Connect; returns (socket, accepted). `user` logs in with a fresh session cookie."""
    headers = [(b"host", host)]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None and session_key is None:
        session_key = await session_cookie(user)
    if session_key is not None:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    if token is not None:
        headers.append((b"authorization", f"Token {token}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    accepted, _ = await communicator.connect(timeout=5)
    return Socket(communicator), accepted


async def open_room(slug: str, **kwargs) -> tuple[Socket, dict]:
    """Connect to a room socket and read its hello."""
    sock, accepted = await open_socket(f"/ws/chat/{slug}/", **kwargs)
    assert accepted
    hello = await sock.receive()
    assert hello["type"] == "hello", hello
    return sock, hello
