"""The per-process hub between the channel layer and this process's sockets.

Each process has one hub (per event loop) holding one channel-layer channel. It joins a
room's group once, however many local sockets watch the room, so a room event crosses
the layer once per process and its JSON text, built once by the sender, is handed to
every local socket as is.

The channel layer is at-most-once: it drops messages when a channel is full or Redis
restarts, and different processes' events can arrive out of order. The hub therefore
keeps, per room, the last revision it delivered and only ever hands its sockets the next
one. An event from the future means something went missing: the hub fills the gap from
the database before going on, and drops late repeats. A sweep every
PARLEY_SWEEP_SECONDS compares each room's revision in the database with the delivered
one (healing a lost *last* message), renews group memberships (they expire, and vanish
when Redis restarts), and re-checks that every socket still may read its room and that
its session still exists.
"""

import asyncio
import logging
import weakref
from collections.abc import Iterable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from chat import events, presence, selectors
from chat.models import Membership, Message, Room

log = logging.getLogger(__name__)

FILL_PAGE = 500


class RoomStream:
    """One room as this process sees it: its subscribers and the last revision delivered."""

    def __init__(self, hub: "Hub", room_id: int):
        self.hub = hub
        self.room_id = room_id
        self.slug = ""
        self.public = True
        self.rev = 0
        self.subscribers: set = set()
        self.pending: list[dict] = []
        self.busy = True  # until the starting revision is known
        self.ready = asyncio.Event()

    def start(self, *, slug: str, public: bool, rev: int) -> None:
        self.slug, self.public, self.rev = slug, public, rev
        self.busy = False
        self.ready.set()
        self._drain_pending()

    def push(self, event: dict) -> None:
        if event.get("ephemeral"):
            for subscriber in tuple(self.subscribers):
                _notify(subscriber.room_event, self, event)
            return
        if self.busy:
            self.pending.append(event)
            return
        rev = event["rev"]
        if rev <= self.rev:
            return  # already delivered, from the database or an earlier copy
        if rev == self.rev + 1:
            self._deliver(event)
        else:
            self.pending.append(event)
            self.hub.spawn(self.fill())

    def _deliver(self, event: dict) -> None:
        self.rev = event["rev"]
        revoked = set(event.get("revoke") or ())
        if "public" in event:  # the room changed kind with this event (services.room_update)
            self.public = event["public"]
        # A room gone members-only: everyone else (anonymous readers too) loses it now.
        keep = set(event["keep"]) if event.get("keep") is not None else None
        for subscriber in tuple(self.subscribers):
            if subscriber.user_id in revoked or (keep is not None and subscriber.user_id not in keep):
                _notify(subscriber.room_revoked, self)
            else:
                _notify(subscriber.room_event, self, event)

    def _drain_pending(self) -> bool:
        """Deliver what can be delivered in order; True when a gap is still open."""
        pending, self.pending = sorted(self.pending, key=lambda e: e["rev"]), []
        for index, event in enumerate(pending):
            if event["rev"] <= self.rev:
                continue
            if event["rev"] != self.rev + 1:
                self.pending = pending[index:]
                return True
            self._deliver(event)
        return False

    async def fill(self, *, known_rev: int | None = None) -> None:
        """Bring the room up to date from the database, then go on with what arrived meanwhile."""
        if self.busy:
            return
        self.busy = True
        try:
            while True:
                changes, self.public = await _changes_since(self.room_id, self.slug, self.rev)
                if changes and not self.public:
                    # A lost event may have been a removal: nobody gets a filled change
                    # before their access is confirmed.
                    await self.hub.check_access([self])
                for event in changes:
                    if event["rev"] > self.rev:
                        self._deliver(event)
                if len(changes) == FILL_PAGE:
                    continue
                if not self._drain_pending():
                    return
                if not changes:
                    # The database has nothing more (the missing revisions were purged):
                    # what is pending is all there is, in order.
                    self.rev = self.pending[0]["rev"] - 1
                    self._drain_pending()
                    return
        except Exception:
            log.exception("filling room %s from the database failed; the sweep retries", self.room_id)
        finally:
            self.busy = False


def _notify(callback, *args) -> None:
    """Hand an event to one socket. A socket that fails must not cost the others the event:
    the stream's revision has already moved on, so they would never be given it again."""
    try:
        callback(*args)
    except Exception:
        log.exception("a socket failed to take an event")


def _changes_since_sync(room_id: int, slug: str, rev: int) -> tuple[list[dict], bool]:
    """The room's changes after `rev`, and whether it is public now. The kind is read
    after the changes: if one of them made the room private, the caller learns it (a
    lost kind-change event must not leave outsiders reading)."""
    messages = list(
        selectors.with_details(Message.objects.filter(room_id=room_id, rev__gt=rev)).order_by("rev")[:FILL_PAGE]
    )
    public = Room.objects.filter(pk=room_id, kind=Room.Kind.PUBLIC).exists()
    return [
        events.room_change(m, room_slug=slug, was_live=False, from_database=True) for m in messages
    ], public


_changes_since = database_sync_to_async(_changes_since_sync)


@database_sync_to_async
def _rooms_info(room_ids: Iterable[int]) -> dict[int, tuple[str, bool, int]]:
    return {
        room_id: (slug, kind == Room.Kind.PUBLIC, rev)
        for room_id, slug, kind, rev in Room.objects.filter(pk__in=list(room_ids)).values_list(
            "id", "slug", "kind", "rev"
        )
    }


@database_sync_to_async
def _room_revs(room_ids: list[int]) -> dict[int, tuple[int, bool]]:
    return {
        room_id: (rev, kind == Room.Kind.PUBLIC)
        for room_id, rev, kind in Room.objects.filter(pk__in=room_ids).values_list("id", "rev", "kind")
    }


@database_sync_to_async
def _granted(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    room_ids = {room_id for room_id, _ in pairs}
    user_ids = {user_id for _, user_id in pairs}
    rows = Membership.objects.filter(room_id__in=room_ids, user_id__in=user_ids).values_list("room_id", "user_id")
    return set(rows) & pairs


@database_sync_to_async
def _live_sessions(keys: set[str]) -> set[str]:
    return set(
        Session.objects.filter(session_key__in=keys, expire_date__gt=timezone.now()).values_list(
            "session_key", flat=True
        )
    )


class Hub:
    def __init__(self):
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.rooms: dict[int, RoomStream] = {}
        self.topics: dict[str, set] = {}
        self._tasks: set[asyncio.Task] = set()
        self._starting: asyncio.Lock = asyncio.Lock()

    # Lifecycle ----------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if self.channel is not None:
            return
        async with self._starting:
            if self.channel is None:
                self.channel = await self.layer.new_channel("hub.")
                self.spawn(self._receive_forever())
                self.spawn(self._sweep_forever())

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _receive_forever(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
                self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub receive failed")
                await asyncio.sleep(0.5)

    def dispatch(self, event: dict) -> None:
        group = event.get("group", "")
        if group.startswith("chat.room."):
            stream = self.rooms.get(int(group.rsplit(".", 1)[1]))
            if stream is not None:
                stream.push(event)
            return
        for subscriber in tuple(self.topics.get(group, ())):
            _notify(subscriber.topic_event, group, event)

    # Subscriptions ------------------------------------------------------------------

    async def join_rooms(self, room_ids: Iterable[int], subscriber) -> list[RoomStream]:
        """Subscribe to rooms; returns their streams once each knows its starting revision.

        Subscribe first, read state second: whatever commits after the subscription
        reaches the stream, whatever committed before is in the state read afterwards.
        """
        await self._ensure_started()
        room_ids = list(dict.fromkeys(room_ids))
        new = []
        for room_id in room_ids:
            stream = self.rooms.get(room_id)
            if stream is None:
                stream = self.rooms[room_id] = RoomStream(self, room_id)
                new.append(stream)
            stream.subscribers.add(subscriber)
        if new:
            try:
                for stream in new:
                    await self.layer.group_add(events.room_group(stream.room_id), self.channel)
                info = await _rooms_info(s.room_id for s in new)
            except BaseException:
                for stream in new:
                    self.rooms.pop(stream.room_id, None)
                    stream.ready.set()
                raise
            for stream in new:
                slug, public, rev = info.get(stream.room_id, ("", True, 0))
                stream.start(slug=slug, public=public, rev=rev)
        streams = [self.rooms[room_id] for room_id in room_ids if room_id in self.rooms]
        for stream in streams:
            await stream.ready.wait()
        return streams

    def leave_room(self, room_id: int, subscriber) -> None:
        stream = self.rooms.get(room_id)
        if stream is None:
            return
        stream.subscribers.discard(subscriber)
        if not stream.subscribers and stream.ready.is_set():
            del self.rooms[room_id]
            self.spawn(self.layer.group_discard(events.room_group(room_id), self.channel))

    async def join_topic(self, group: str, subscriber) -> None:
        await self._ensure_started()
        members = self.topics.setdefault(group, set())
        members.add(subscriber)
        if len(members) == 1:
            await self.layer.group_add(group, self.channel)

    def leave_topic(self, group: str, subscriber) -> None:
        members = self.topics.get(group)
        if not members:
            return
        members.discard(subscriber)
        if not members:
            del self.topics[group]
            self.spawn(self.layer.group_discard(group, self.channel))

    def local_users(self, room_id: int) -> list[str]:
        stream = self.rooms.get(room_id)
        if stream is None:
            return []
        return sorted({s.username for s in stream.subscribers if s.username and s.watches_room(room_id)})

    # Sweep --------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.PARLEY_SWEEP_SECONDS)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub sweep failed")

    async def sweep(self) -> None:
        # First: heartbeats are the time-critical part (chat/presence.py).
        await presence.sweep(self)
        for group in list(self.topics):
            await self.layer.group_add(group, self.channel)
        streams = [s for s in self.rooms.values() if s.ready.is_set()]
        for stream in streams:
            await self.layer.group_add(events.room_group(stream.room_id), self.channel)
        if not streams:
            return
        revs = await _room_revs([s.room_id for s in streams])
        for stream in streams:
            rev, public = revs.get(stream.room_id, (0, stream.public))
            if stream.busy:
                continue
            if rev >= stream.rev:  # not older than what was delivered meanwhile
                stream.public = public  # in case the event that changed the kind was lost
            if rev > stream.rev:
                self.spawn(stream.fill())
        await self.check_access([s for s in streams if not s.public])
        await self.check_sessions()

    async def check_access(self, streams: list[RoomStream]) -> None:
        """Close the sockets of anyone who lost access to a private room meanwhile."""
        pairs = {
            (stream.room_id, subscriber.user_id)
            for stream in streams
            for subscriber in stream.subscribers
            if subscriber.user_id is not None
        }
        if not pairs:
            return
        granted = await _granted(pairs)
        for stream in streams:
            for subscriber in tuple(stream.subscribers):
                if (stream.room_id, subscriber.user_id) not in granted:
                    subscriber.room_revoked(stream)

    async def check_sessions(self) -> None:
        """Close sockets whose login session ended (logout elsewhere, expiry, flush)."""
        subscribers = {s for members in self.topics.values() for s in members if s.session_key}
        if not subscribers:
            return
        live = await _live_sessions({s.session_key for s in subscribers})
        for subscriber in subscribers:
            if subscriber.session_key not in live:
                subscriber.session_ended()


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """This process's hub for the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
