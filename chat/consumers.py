"""The WebSocket door (SPEC §3): what every socket shares. The room socket
`/ws/chat/<slug>/` is in chat/consumers_room.py, the user stream `/ws/` in
chat/consumers_user.py.

Consumers parse frames, call one service each and answer; what happens to a message is
decided in chat.services. Outgoing frames are written straight to the socket where the
server allows it (chat/wire.py), else through one bounded outbox per socket, written by one
task made at first need (an idle socket costs neither): frames keep their order, and a
client that stops reading is closed (4408) instead of growing the server's memory.
"""

import asyncio
import json
import logging
from collections import deque

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts import selectors as account_selectors
from chat import events, groupcommit, limits, selectors, services, wire
from chat.hub import get_hub
from chat.models import Room
from chat.serializers import user_to_dict
from core.errors import AppError, InvalidInput, NotAllowed, RateLimited

log = logging.getLogger(__name__)

OUTBOX_FRAMES = 1000
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_MANY = 4429
CLOSE_TOO_LARGE = 1009
TYPING_INTERVAL = 2.0
MAX_INTEGER = 2**63 - 1  # ids, seqs and revs are 64-bit columns
# Sends of one socket being stored at once (queued for their group commit, not answered
# yet); past this the socket reads no further frame until they are answered.
SENDS_IN_FLIGHT = 16


class Frame:
    """Field access on a client frame that turns wrong types into InvalidInput."""

    def __init__(self, data: dict):
        self.data = data

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise InvalidInput(f"{name} is required.")
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string.")
        return value

    def integer(self, name: str) -> int:
        value = self.data.get(name)
        # Bounded to what the database columns hold: a bigger number would fail in the
        # query as a server error rather than be refused as bad input.
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INTEGER:
            raise InvalidInput(f"{name} must be a non-negative integer.")
        return value


_NOT_JSON = object()


class ParleyConsumer(AsyncWebsocketConsumer):
    """What both sockets share: auth, the outbox, frame parsing, errors, per-user caps."""

    handlers: dict[str, str] = {}
    # What the hub knows of a socket (chat.hub.Subscriber).
    credential: account_selectors.Credential | None = None
    presence_id: str | None = None
    needs_membership = False
    # The socket's sends queued and not answered yet, oldest first, and the task answering
    # them in that order (send_message); None until the socket first sends.
    sends_pending: deque | None = None
    answering_sends: asyncio.Task | None = None
    # What a widget guest's token gets on this socket: 4403 here, 4404 on a room socket.
    guest_refused: AppError = NotAllowed("Guests of the website widget use /ws/widget/<room>/.")

    async def __call__(self, scope, receive, send):
        # No per-socket channel-layer channel: the process's hub fans events out
        # (chat/hub.py). Channels' own loop (await_many_dispatch) would wait on the client
        # in a task of its own; awaiting the one receive directly spares an idle socket
        # that task and its wait's futures (~2.5 KiB).
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        # Channels closes old DB connections before every frame (a thread hop each);
        # database_sync_to_async already does that around every query we make.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # Connection ---------------------------------------------------------------------

    async def websocket_connect(self, message):
        self.user = self.scope.get("user")
        self.user_id = self.user.id if self.user is not None and self.user.is_authenticated else None
        self.username = self.user.username if self.user_id else None
        self.credential = _credential(self.scope, self.user_id)
        self.hub = get_hub()
        self.outbox: asyncio.Queue[str | None] | None = None
        self.writer: asyncio.Task | None = None
        self.closing = False
        self.topics: list[str] = []
        address = limits.client_address(self.scope)
        self.frame_guard = limits.FrameGuard(limits.guard_key(self.user_id, address))
        # Counted before any database work: a socket over a cap costs one Redis call.
        self.lease = await limits.admit(self.user_id, address)
        if self.lease is None:
            self.closing = True
            await self.accept()
            return await self.close(CLOSE_TOO_MANY)
        try:
            self.user_dict, self.announcement = await _connect_state(self.user if self.user_id else None)
            await self.accept()
        except BaseException:
            # No disconnect may follow to give the lease back: a crashed consumer's is gone.
            limits.release(self.lease)
            self.lease = None
            raise
        self.direct = wire.direct_writer(self.scope.get("parley.asgi_send"))
        self.sending = False
        try:
            if self.user_id is not None and account_selectors.is_guest(self.user):
                # A widget guest's token opens its own socket only (chat/consumers_widget.py).
                raise self.guest_refused
            await self.open()
        except AppError as error:
            self.close_with(_close_code_for(error))
        except Exception:
            log.exception("opening a socket failed")
            self.close_with(1011)

    async def open(self) -> None:
        raise NotImplementedError

    async def websocket_disconnect(self, message):
        self.closing = True
        self.hub_unsubscribe()
        lease, self.lease = getattr(self, "lease", None), None
        if lease is not None:
            limits.release(lease)
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.cancel()
        await super().websocket_disconnect(message)

    def hub_unsubscribe(self) -> None:
        for group in self.topics:
            self.hub.leave_topic(group, self)
        self.topics = []

    async def subscribe_topics(self) -> None:
        for group in [events.EVERYONE] + ([events.user_group(self.user_id)] if self.user_id else []):
            self.topics.append(group)
            await self.hub.join_topic(group, self)
            if self.closing:  # closed meanwhile: hub_unsubscribe has run already
                self.hub.leave_topic(group, self)
                return

    # Outgoing -----------------------------------------------------------------------

    def deliver(self, text: str, event: dict | None = None) -> None:
        """Queue a frame for the client. Written at once, straight to the socket, when
        the server allows it and nothing queued would be overtaken (chat/wire.py)."""
        if self.closing:
            return
        direct = self.direct
        outbox = self.outbox
        if direct is not None and (outbox is None or (not self.sending and outbox.empty())):
            # Whether the socket is still open is asked when the turn's frames are written
            # (DirectWriter.flush), once per socket, not here once per frame.
            if not direct.write(wire.event_frame(event) if event is not None else wire.text_frame(text)):
                if not direct.open():
                    return  # closing: the disconnect that follows cleans up
                log.info("closing a socket of user %s that stopped reading", self.user_id)
                self.close_with(CLOSE_TOO_SLOW)
            return
        try:
            (outbox or self._open_outbox()).put_nowait(text)
        except asyncio.QueueFull:
            log.info("closing a socket of user %s that stopped reading", self.user_id)
            self.close_with(CLOSE_TOO_SLOW)

    def send_frame(self, frame: dict) -> None:
        self.deliver(events.dumps(frame))

    def send_announcement(self) -> None:
        if self.announcement is not None:
            self.send_frame(self.announcement)

    def send_error(self, error: AppError, *, client_id=None) -> None:
        self.send_frame(events.error(error, client_id=client_id))

    def _open_outbox(self) -> asyncio.Queue:
        self.outbox = asyncio.Queue(maxsize=OUTBOX_FRAMES)
        self.writer = asyncio.ensure_future(self._write_forever())
        return self.outbox

    async def _write_forever(self) -> None:
        while True:
            text = await self.outbox.get()
            if text is None:
                return
            self.sending = True
            try:
                await self.send(text_data=text)
            finally:
                self.sending = False

    def close_with(self, code: int) -> None:
        """Close after the frames already queued; nothing more is queued after this."""
        if self.closing:
            return
        self.closing = True
        self.hub_unsubscribe()
        # Held here: the loop keeps only a weak reference to a task.
        self.closer = asyncio.ensure_future(self._close_after_outbox(code))

    async def _close_after_outbox(self, code: int) -> None:
        if self.outbox is None:
            pass  # nothing ever queued: everything went straight to the socket
        elif self.outbox.full():
            self.writer.cancel()  # a reader this slow gets no more frames, just the close
        else:
            self.outbox.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self.writer), timeout=5)
            except TimeoutError:
                self.writer.cancel()
            except asyncio.CancelledError:
                self.writer.cancel()
                if asyncio.current_task().cancelling():
                    raise  # this task was cancelled (its loop is closing), not the writer: stop
        direct = getattr(self, "direct", None)
        if direct is not None:
            direct.flush()  # the frames of this turn go before the close frame
        await self.close(code)

    # Hub callbacks --------------------------------------------------------------------

    def topic_event(self, group: str, event: dict) -> None:
        control = event.get("control")
        if control == "logout":
            credential = self.credential
            if credential is not None and credential.kind == "session" and event.get("session_key") == credential.key:
                self.close_with(CLOSE_UNAUTHENTICATED)
        elif group == events.EVERYONE:
            self.deliver(event["frame"], event)
        else:
            self.user_event(event)

    def user_event(self, event: dict) -> None:
        """An event addressed to this user (unread counts, room.added); per-room sockets ignore them."""

    def session_ended(self) -> None:
        self.close_with(CLOSE_UNAUTHENTICATED)

    def watches_room(self, room_id: int) -> bool:
        return False

    # Incoming -----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:
            return
        raw = text_data if text_data is not None else bytes_data
        if raw is not None and len(raw if isinstance(raw, bytes) else raw.encode()) > settings.PARLEY_MAX_FRAME_BYTES:
            return self.close_with(CLOSE_TOO_LARGE)
        try:
            data = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):
            # RecursionError: "[[[[..." nested deeper than the parser goes fits in 64 KB and
            # would otherwise end the consumer instead of answering with an error.
            data = _NOT_JSON
        kind = data.get("type") if isinstance(data, dict) else None
        if kind is None and isinstance(data, dict) and "message" in data:
            kind = "message.send"  # the legacy {"message": "..."} send
            data = {"body": data["message"], "client_id": data.get("client_id")}
        # Before any other work. Sends have their own per-user limit (core/ratelimit.py);
        # every other frame, junk included, takes a token of this socket's allowance.
        if kind != "message.send" and not self._frame_allowed():
            return
        if data is _NOT_JSON:
            return self.send_error(InvalidInput("Frames must be JSON text."))
        if not isinstance(data, dict):
            return self.send_error(InvalidInput("A frame must be a JSON object."))
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        client_id = data.get("client_id") if isinstance(data.get("client_id"), str) else None
        # Every frame is answered after the sends before it: only sends run on meanwhile.
        if kind != "message.send" or handler is None:
            await self.sends_answered()
        if handler is None:
            return self.send_error(InvalidInput(f"Unknown frame type {kind!r}."), client_id=client_id)
        try:
            await getattr(self, handler)(Frame(data))
        except AppError as error:
            await self.sends_answered()
            self.send_error(error, client_id=client_id if kind == "message.send" else None)
        except Exception:
            log.exception("handling a %s frame failed", kind)
            await self.sends_answered()
            self.send_error(AppError(), client_id=client_id if kind == "message.send" else None)

    def _frame_allowed(self) -> bool:
        try:
            self.frame_guard.check()
        except limits.KeepsGoing:
            log.info("closing a socket of user %s that kept sending over its frame limit", self.user_id)
            if self.direct is not None and self.direct.open():
                # Not a polite close: the client is still flooding, and nothing is owed to it.
                self.closing = True
                self.hub_unsubscribe()
                self.direct.hang_up(CLOSE_TOO_MANY)
            else:
                self.close_with(CLOSE_TOO_MANY)
            return False
        except RateLimited as error:
            self.send_error(error)
            return False
        return True

    async def on_ping(self, frame: Frame) -> None:
        self.send_frame(events.pong())

    async def send_message(self, room: Room, frame: Frame) -> None:
        """Store a message and ack it. With group commit, the socket reads its next frames
        while the send waits for its batch: a client that sends several messages in a row
        (or a busy bot) gets them committed together, not one per batch. They are stored
        and answered in the order sent."""
        kwargs = {
            "sender": self.user,
            "room": room,
            "body": frame.data.get("body"),
            "client_id": frame.data.get("client_id"),
            "reply_to": frame.data.get("reply_to"),
        }
        if not settings.PARLEY_GROUP_COMMIT:
            message, _ = await groupcommit.run_send(**kwargs)
            self.send_frame(events.ack(message))
            return
        if self.sends_pending is None:
            self.sends_pending = deque()
        self.sends_pending.append((groupcommit.queue_send(**kwargs), kwargs["client_id"]))
        if self.answering_sends is None or self.answering_sends.done():
            self.answering_sends = asyncio.ensure_future(self._answer_sends())
        if len(self.sends_pending) >= SENDS_IN_FLIGHT:
            await self.sends_answered()

    async def _answer_sends(self) -> None:
        pending = self.sends_pending
        while pending:
            outcome, client_id = pending[0]
            try:
                message, _ = await outcome
            except AppError as error:
                self.send_error(error, client_id=client_id if isinstance(client_id, str) else None)
            except Exception:
                log.exception("handling a message.send frame failed")
                self.send_error(AppError(), client_id=client_id if isinstance(client_id, str) else None)
            else:
                self.send_frame(events.ack(message))
            pending.popleft()

    async def sends_answered(self) -> None:
        """Until every send queued so far is answered."""
        if self.answering_sends is not None and not self.answering_sends.done():
            await asyncio.wait([self.answering_sends])  # not cancelled if this socket's reader is

    async def on_recall(self, frame: Frame) -> None:
        await events.run_service(services.message_recall, user=self.user, message_id=frame.integer("id"))

    async def on_delete(self, frame: Frame) -> None:
        await events.run_service(services.message_delete, user=self.user, message_id=frame.integer("id"))

    async def on_edit(self, frame: Frame) -> None:
        await events.run_service(
            services.message_edit, user=self.user, message_id=frame.integer("id"), body=frame.text("body", required=True)
        )

    async def on_react(self, frame: Frame) -> None:
        await events.run_service(
            services.reaction_add, user=self.user, message_id=frame.integer("id"), emoji=frame.text("emoji", required=True)
        )

    async def on_unreact(self, frame: Frame) -> None:
        await events.run_service(
            services.reaction_remove,
            user=self.user,
            message_id=frame.integer("id"),
            emoji=frame.text("emoji", required=True),
        )


def _credential(scope, user_id: int | None) -> account_selectors.Credential | None:
    """What the socket logged in with, for the hub to check it still holds."""
    if user_id is None:
        return None
    if scope.get("auth_method") == "token":
        return account_selectors.Credential("token", scope["auth_token"], user_id)
    key = scope.get("session_key")
    return account_selectors.Credential("session", key, user_id) if key else None


@database_sync_to_async
def _connect_state(user) -> tuple[dict | None, dict | None]:
    """Who the socket belongs to, and the announcement to show if one is set."""
    announcement = events.announcement(selectors.announcement_get())
    return user_to_dict(user), announcement if announcement["text"] or announcement["image"] else None


def _close_code_for(error: AppError) -> int:
    return {"auth_required": CLOSE_UNAUTHENTICATED, "forbidden": CLOSE_FORBIDDEN}.get(error.code, CLOSE_NOT_FOUND)


@database_sync_to_async
def _readable_room(user, slug: str) -> Room:
    return selectors.room_get_for_user(user=user, slug=slug)


@database_sync_to_async
def _fresh_room(user, room_id: int) -> Room:
    return selectors.room_get_by_id_for_user(user=user, room_id=room_id)


@database_sync_to_async
def _replay(user, room_id: int, rev: int) -> tuple[Room, list[str], bool]:
    """The frames a client at `rev` missed, oldest first, and whether more were left out."""
    room = selectors.room_get_by_id_for_user(user=user, room_id=room_id)
    limit = settings.PARLEY_RESUME_LIMIT
    changes = selectors.message_changes_since(room_id=room.id, rev=rev, limit=limit + 1)
    truncated = len(changes) > limit or rev < room.horizon_rev
    frames = [events.dumps(events.message_frame(m, room_slug=room.slug)) for m in changes[:limit]]
    if not truncated and changes:
        # A change committed between reading the room and reading its changes is in the
        # replay: count it as sent, so it is neither sent again live nor ahead of `resumed`.
        room.rev = max(room.rev, changes[-1].rev)
    return room, frames, truncated
