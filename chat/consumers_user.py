"""The user stream `/ws/` (SPEC §3): unread counts for every room the user is in, rooms they
are added to, announcements. Built on chat.consumers.ParleyConsumer."""

import logging

from channels.db import database_sync_to_async

from chat import consumers, events, presence, selectors, services
from chat.consumers import Frame, ParleyConsumer
from chat.hub import RoomStream
from chat.models import Room
from chat.serializers import room_to_dict
from core.errors import AuthRequired, NotFound

log = logging.getLogger(__name__)


@database_sync_to_async
def _blocked_ids(user) -> set[int]:
    return selectors.blocked_ids(user=user)


@database_sync_to_async
def _unread_state(user) -> list[selectors.UnreadRow]:
    return selectors.unread_rows(user=user)


@database_sync_to_async
def _member_room_ids(user) -> list[int]:
    return selectors.member_room_ids(user=user)


@database_sync_to_async
def _room_by_slug(user, slug: str) -> Room:
    return selectors.room_get_for_user(user=user, slug=slug)


@database_sync_to_async
def _recount(user, room_id: int) -> selectors.UnreadRow | None:
    rows = selectors.unread_rows(user=user, room_id=room_id)
    return rows[0] if rows else None


class RoomCount:
    """What the user stream knows of one of the user's rooms: its count, and the room's
    revision and last seq that count reflects. While `waiting` is a list the count is
    being read again, and the room's changes wait there for it."""

    __slots__ = ("slug", "rev", "last_seq", "last_read", "count", "mentions", "waiting", "again")

    def __init__(self, row: selectors.UnreadRow | None = None):
        self.slug, self.rev, self.last_seq, self.last_read, self.count, self.mentions = "", 0, 0, 0, 0, 0
        self.waiting: list[dict] | None = None if row else []
        self.again = False
        if row is not None:
            self.take(row)

    def take(self, row: selectors.UnreadRow) -> None:
        self.slug, self.rev, self.last_seq = row.slug, row.rev, row.last_seq
        self.last_read, self.count, self.mentions = row.last_read_seq, row.count, row.mentions


class UserConsumer(ParleyConsumer):
    """`/ws/`: the user's stream — unread counts for every room they are in, rooms they
    are added to, announcements. Messages themselves flow on per-room sockets.

    On connect: `hello`, then one `unread` per room whose count is not zero (a room without
    one has none: GET /api/rooms/ says so too), then changes. Counts move live with each
    change (selectors.unread_change); where a change may have moved the read marker or a
    gap was filled, the count is read again from the database.
    """

    needs_membership = True
    handlers = {
        "message.send": "on_send",
        "message.recall": "on_recall",
        "message.delete": "on_delete",
        "message.edit": "on_edit",
        "reaction.add": "on_react",
        "reaction.remove": "on_unreact",
        "read": "on_read",
        "ping": "on_ping",
    }

    async def open(self) -> None:
        if self.user_id is None:
            raise AuthRequired()
        self.rooms: dict[int, RoomCount] = {}
        self.blocked: set[int] = set()  # whom the user blocks: their mentions do not count
        # Subscribe first, read the counts second; what arrives in between waits here and
        # is then taken for what it is: covered by the counts or newer than them (by rev).
        self.early: list[tuple] | None = []
        await self.subscribe_topics()
        self.joining = set(await _member_room_ids(self.user))
        self.blocked = await _blocked_ids(self.user)
        await self.hub.join_rooms(self.joining, self)
        if self.closing:
            return self.hub.leave_rooms(self.joining, self)
        # Rooms joined meanwhile come with their own `room.added`; rooms left meanwhile go.
        rows = [row for row in await _unread_state(self.user) if row.room_id in self.joining]
        self.rooms = {row.room_id: RoomCount(row) for row in rows}
        joined, self.joining = self.joining, set()
        self.hub.leave_rooms(joined - self.rooms.keys(), self)
        if self.closing:
            return self.hub.leave_rooms(joined, self)
        self.send_frame(events.hello(self.user_dict))
        self.send_announcement()
        for state in self.rooms.values():
            if state.count or state.mentions:
                self._send_count(state)
        early, self.early = self.early, None
        for handler, args in early:
            handler(*args)

    def hub_unsubscribe(self) -> None:
        super().hub_unsubscribe()
        self.hub.leave_rooms({*getattr(self, "rooms", ()), *getattr(self, "joining", ())}, self)

    def _send_count(self, state: RoomCount) -> None:
        self.send_frame(events.unread(state.slug, count=state.count, last_seq=state.last_seq, mentions=state.mentions))

    # Room changes ------------------------------------------------------------------------

    def room_event(self, stream: RoomStream, event: dict) -> None:
        if self.early is not None:
            self.early.append((self.room_event, (stream, event)))
        elif not event.get("ephemeral"):
            self._count(stream.room_id, event)

    def _count(self, room_id: int, event: dict) -> None:
        state = self.rooms.get(room_id)
        if state is None:
            return
        if state.waiting is not None:
            state.waiting.append(event)
            return
        if event["rev"] <= state.rev:
            return  # the count already holds it
        state.rev = event["rev"]
        meta = event["meta"]
        if meta["created"]:
            state.last_seq = max(state.last_seq, meta["seq"])
        before = meta.get("mentions_before")
        if before is not None and selectors.mentioned(before, username=self.username) != selectors.mentioned(
            meta, username=self.username
        ):
            self._recount_soon(room_id)  # an edit added or took away a mention of this user
            return
        if meta["sender_id"] in self.blocked and not meta["created"]:
            # A recall or deletion by someone the user blocks: a mention of theirs never
            # counted (selectors._mentioning), so no live arithmetic; the database knows.
            self._recount_soon(room_id)
            return
        if meta["from_database"] or meta["sender_id"] == self.user_id:
            # A filled gap may hide anything, and one's own change may move one's own read
            # marker (sending does): ask the database rather than guess.
            self._recount_soon(room_id)
            return
        delta = selectors.unread_change(meta, user_id=self.user_id, last_read_seq=state.last_read)
        if delta:
            state.count = max(0, state.count + delta)
            if selectors.mentioned(meta, username=self.username):
                state.mentions = max(0, state.mentions + delta)
            self._send_count(state)

    def _recount_soon(self, room_id: int) -> None:
        state = self.rooms.get(room_id)
        if state is None:
            return
        if state.waiting is not None:
            state.again = True  # a read already under way may predate what asked for this one
            return
        state.waiting = []
        self.hub.spawn(self._recount(room_id))

    async def _recount(self, room_id: int, *, added: Room | None = None) -> None:
        """Read the room's count again; its changes wait meanwhile and follow, in order.
        `added`: the room just came (room.added goes first, with the room as now)."""
        try:
            while True:
                state = self.rooms.get(room_id)
                if state is None or self.closing:
                    return
                state.again = False
                row = await _recount(self.user, room_id)
                state = self.rooms.get(room_id)
                if state is None or self.closing:
                    return
                if row is None:  # no longer a member
                    self._drop_room(room_id)
                    return
                if not state.again:
                    break
        except Exception:
            log.exception("recounting room %s for user %s failed", room_id, self.user_id)
            state = self.rooms.get(room_id)
            if state is not None and not state.slug:
                self._drop_room(room_id)  # never counted: nothing to carry on from
            elif state is not None:  # carry on from the count it had
                waiting, state.waiting = state.waiting or [], None
                for event in waiting:
                    self._count(room_id, event)
            return
        shown = (state.count, state.mentions) if state.slug else (0, 0)
        state.take(row)
        if added is not None:
            online = await self._online(room_id)
            if self.closing or self.rooms.get(room_id) is not state:
                return
            self.send_frame(events.room_added(room_to_dict(added, online=online)))
        if (state.count, state.mentions) != shown:
            self._send_count(state)
        waiting, state.waiting = state.waiting, None
        for event in waiting:
            self._count(room_id, event)

    async def _online(self, room_id: int) -> list[str]:
        try:
            return (await presence.online(room_id))[0]
        except Exception:
            log.exception("presence unavailable for room %s", room_id)
            return self.hub.local_users(room_id)

    def _drop_room(self, room_id: int) -> None:
        state = self.rooms.pop(room_id, None)
        if state is not None:
            self.hub.leave_room(room_id, self)
            if state.slug and not self.closing:
                self.send_frame(events.room_removed(state.slug))  # the client drops it from its list

    def room_revoked(self, stream: RoomStream) -> None:
        self._drop_room(stream.room_id)

    # The user's own events ---------------------------------------------------------------

    def topic_event(self, group: str, event: dict) -> None:
        if self.early is not None:
            self.early.append((self.topic_event, (group, event)))
        else:
            super().topic_event(group, event)

    def user_event(self, event: dict) -> None:
        control = event.get("control")
        if control == "room.added":
            self.hub.spawn(self._room_added(event["room_id"]))
        elif control == "room.left":
            self._recount_soon(event["room_id"])  # drops the room unless they are back already
        elif control == "recount":  # the user blocked or unblocked someone: their mentions (un)count
            self.blocked = set(event.get("blocked", ()))
            for room_id in tuple(self.rooms):
                self._recount_soon(room_id)
        elif control is None and event["meta"].get("type") == "unread":
            self._read_moved(event)
        elif control is None:
            self.deliver(event["frame"], event)

    def _read_moved(self, event: dict) -> None:
        """The read marker moved (on any of the user's sockets, or over REST)."""
        meta = event["meta"]
        state = self.rooms.get(meta["room_id"])
        if state is None or meta["last_read_seq"] < state.last_read:
            return  # not followed, or an older read overtaken by a newer one
        if state.waiting is None and meta["rev"] == state.rev:
            # Counted over exactly the changes this stream has: take it, frame and all.
            state.last_read = meta["last_read_seq"]
            state.count, state.mentions = meta["count"], meta["mentions"]
            self.deliver(event["frame"], event)
        else:
            self._recount_soon(meta["room_id"])

    async def _room_added(self, room_id: int) -> None:
        if self.closing:
            return
        try:
            room = await consumers._fresh_room(self.user, room_id)
        except NotFound:
            return
        if self.closing:
            return
        if room_id in self.rooms:
            # Followed already (it came while this stream connected): say so all the same.
            online = await self._online(room_id)
            if not self.closing:
                self.send_frame(events.room_added(room_to_dict(room, online=online)))
            self._recount_soon(room_id)
            return
        # In `rooms` before joining, so a close meanwhile leaves it with the rest.
        state = self.rooms[room_id] = RoomCount()
        await self.hub.join_rooms([room_id], self)
        if self.closing or self.rooms.get(room_id) is not state:
            self.hub.leave_room(room_id, self)
            return
        await self._recount(room_id, added=room)

    # Frames --------------------------------------------------------------------------------

    async def on_send(self, frame: Frame) -> None:
        await self.send_message(await _room_by_slug(self.user, frame.text("room", required=True)), frame)

    async def on_read(self, frame: Frame) -> None:
        room = await _room_by_slug(self.user, frame.text("room", required=True))
        await events.run_service(services.room_mark_read, user=self.user, room=room, seq=frame.integer("seq"))
