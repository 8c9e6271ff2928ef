"""The room socket `/ws/chat/<slug>/` (SPEC §3): one room's live messages, sends,
resume, typing and presence. Built on chat.consumers.ParleyConsumer, which owns the
outbox, the limits and the frames every socket takes; the database reads it awaits are
chat.consumers' helpers (looked up there, so a test can stand in for one)."""

import asyncio
import logging

from django.conf import settings

from chat import consumers, events, limits, presence, services
from chat.consumers import Frame, ParleyConsumer
from chat.hub import RoomStream
from chat.models import Room
from chat.serializers import room_to_dict
from core.errors import AuthRequired, InvalidInput, NotFound, RateLimited

log = logging.getLogger(__name__)


class RoomConsumer(ParleyConsumer):
    """`/ws/chat/<slug>/`: one room's live messages, sends, resume, typing."""

    handlers = {
        "message.send": "on_send",
        "message.recall": "on_recall",
        "message.delete": "on_delete",
        "message.edit": "on_edit",
        "reaction.add": "on_react",
        "reaction.remove": "on_unreact",
        "resume": "on_resume",
        "read": "on_read",
        "typing": "on_typing",
        "ping": "on_ping",
    }
    guest_refused = NotFound("No such room.")

    async def open(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        self.room = await consumers._readable_room(self.user, slug)
        # Events that arrive between subscribing and knowing the revision hello describes
        # wait here (as during a resume); hello goes first, then only what it does not cover.
        self.replaying: list[dict] | None = []
        self.last_typing = 0.0
        # Hints (typing, presence) that come before hello are dropped: hello's `online` covers them.
        self.greeted = False
        await self.subscribe_topics()
        await self.hub.join_rooms([self.room.id], self)
        if self.closing:
            return self.hub.leave_room(self.room.id, self)
        # Read the room after subscribing: nothing committed in between can be missed.
        self.room = await consumers._fresh_room(self.user, self.room.id)
        self.rev = self.room.rev
        online, came_online, version = await self._presence_join()
        self.presence_seen = presence.Seen(version, online)
        self.send_frame(events.hello(self.user_dict, room=room_to_dict(self.room, online=online)))
        self.greeted = True
        self.send_announcement()
        self._end_replay()
        if came_online:
            presence.tell_room(self.room.id, self.room.slug)

    async def _presence_join(self) -> tuple[list[str], bool, int]:
        """Register this socket in the room's presence (logged-in users only): who is
        online now, whether this socket's user just came online, the snapshot's version."""
        try:
            if self.username is None:
                online, version = await presence.online(self.room.id)
                return online, False, version
            self.presence_id = presence.new_socket_id()
            return await presence.join(self.room.id, self.username, self.presence_id)
        except Exception:
            # Presence is a hint: the socket works without it, and the sweep registers it.
            log.exception("presence unavailable for room %s", self.room.id)
            return self.hub.local_users(self.room.id), False, 0

    def hub_unsubscribe(self) -> None:
        super().hub_unsubscribe()
        room = getattr(self, "room", None)
        if room is not None:
            self.hub.leave_room(room.id, self)
        presence_id, self.presence_id = getattr(self, "presence_id", None), None
        if presence_id is not None:
            self.hub.spawn(presence.leave(room.id, room.slug, self.username, presence_id, user_id=self.user_id))

    def watches_room(self, room_id: int) -> bool:
        return room_id == self.room.id

    def room_event(self, stream: RoomStream, event: dict) -> None:
        if event.get("ephemeral"):
            if self.greeted and event.get("user_id") != self.user_id and self.presence_seen.is_news(event):
                self.deliver(event["frame"], event)
            return
        if self.replaying is not None:
            self.replaying.append(event)
        elif event["rev"] > self.rev:
            self.rev = event["rev"]
            self.deliver(event["frame"], event)

    def room_revoked(self, stream: RoomStream) -> None:
        self.close_with(consumers.CLOSE_NOT_FOUND if stream.gone else consumers.CLOSE_FORBIDDEN)

    def _room_of(self, frame: Frame) -> Room:
        slug = frame.text("room")
        if slug is not None and slug != self.room.slug:
            raise InvalidInput(f"This socket is for room {self.room.slug!r}.")
        return self.room

    async def on_send(self, frame: Frame) -> None:
        await self.send_message(self._room_of(frame), frame)

    # One replay at a time per socket; the one running is written by its own task, so the
    # socket keeps answering (ping, sends) while a long replay drains to the client.
    replay: asyncio.Task | None = None

    async def on_resume(self, frame: Frame) -> None:
        self._room_of(frame)
        rev = frame.integer("rev")
        if self.replay is not None and not self.replay.done():
            raise RateLimited(retry_after=1, detail="A resume is already running on this socket; wait for `resumed`.")
        # Before the database: the changes this socket can have missed bound the replay's size.
        self.frame_guard.charge(min(max(0, self.rev - rev), settings.PARLEY_RESUME_LIMIT) // limits.CHANGES_PER_TOKEN)
        # Live events that arrive while the replay is read and written wait, so none slips between.
        self.replaying = []
        try:
            room, frames, truncated = await consumers._replay(self.user, self.room.id, rev)
        except BaseException:
            self._end_replay()
            raise
        self.replay = asyncio.ensure_future(self._write_replay(room, frames, truncated))

    async def _write_replay(self, room: Room, frames: list[str], truncated: bool) -> None:
        # In chunks that wait for the client (chat/limits.py): a long replay to a client
        # that reads never meets the slow-client bound of deliver().
        try:
            for text in frames:
                if not await limits.reader_caught_up(self):
                    return
                self.deliver(text)
            self.rev = max(self.rev, room.rev)
            self.send_frame(events.resumed(room.slug, rev=self.rev, truncated=truncated))
        finally:
            self._end_replay()

    def _end_replay(self) -> None:
        waiting, self.replaying = self.replaying or [], None
        for event in waiting:
            self.room_event(None, event)

    async def on_read(self, frame: Frame) -> None:
        self._room_of(frame)
        seq = frame.integer("seq")
        # A fresh row, not self.room from connect time: the service caps `seq` at the room's
        # last_seq, and a stale one would keep the marker from ever moving forward.
        room = await consumers._fresh_room(self.user, self.room.id)
        await events.run_service(services.room_mark_read, user=self.user, room=room, seq=seq)

    async def on_typing(self, frame: Frame) -> None:
        self._room_of(frame)
        if self.user_id is None:
            raise AuthRequired()
        now = asyncio.get_running_loop().time()
        if now - self.last_typing < consumers.TYPING_INTERVAL:
            return  # hints are best effort; a flood of them is just dropped
        self.last_typing = now
        await consumers._fresh_room(self.user, self.room.id)  # still allowed to be here?
        await events.apublish(
            events.room_group(self.room.id),
            events.ephemeral(events.typing(self.room.slug, self.username), user_id=self.user_id),
        )
