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
when Redis restarts), re-reads each room's kind (a public room may have become private),
and re-checks that every socket may still follow its rooms and that the credential it
logged in with still holds (session or token; a `recheck` control event makes the hub
check a user's sockets at once). Every check is one batched selector call per sweep.

The hub talks to sockets only through `Subscriber`.
"""

import asyncio
import logging
import secrets
import weakref
from collections.abc import Iterable
from typing import Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from accounts import selectors as account_selectors
from chat import events, presence, selectors

log = logging.getLogger(__name__)

FILL_PAGE = 500
GAP_GRACE_SECONDS = 0.05


class Subscriber(Protocol):
    """A socket as the hub and presence see it."""

    user_id: int | None  # None: an anonymous visitor
    username: str | None
    # Set while the socket is registered in its room's presence (chat/presence.py).
    presence_id: str | None
    # How the socket logged in; the sweep closes it (`session_ended`) once that ends.
    credential: account_selectors.Credential | None
    # True: it may follow a room while its user is a member (the user stream). False:
    # while its user may read the room (a room socket).
    needs_membership: bool

    def watches_room(self, room_id: int) -> bool:
        """Whether the socket is a reader of the room (counts as online in it)."""

    def room_event(self, stream: "RoomStream", event: dict) -> None:
        """A change in one of its rooms, in rev order (or an ephemeral hint)."""

    def room_revoked(self, stream: "RoomStream") -> None:
        """It may no longer follow the room (`stream.gone`: the room was deleted)."""

    def topic_event(self, group: str, event: dict) -> None:
        """An event for one of its topics (the user's group, everyone)."""

    def session_ended(self) -> None:
        """Its credential no longer logs its user in."""


class RoomStream:
    """One room as this process sees it: its subscribers and the last revision delivered."""

    def __init__(self, hub: "Hub", room_id: int):
        self.hub = hub
        self.room_id = room_id
        self.slug = ""
        self.public = True
        self.gone = False  # the room was deleted
        self.rev = 0
        self.subscribers: set[Subscriber] = set()
        self.pending: list[dict] = []
        self.busy = True  # until the starting revision is known
        self.ready = asyncio.Event()
        self.gap_timer: asyncio.TimerHandle | None = None

    def start(self, *, slug: str, public: bool, rev: int) -> None:
        self.slug, self.public, self.rev = slug, public, rev
        self.busy = False
        self.ready.set()
        self._drain_pending()

    def push(self, event: dict) -> None:
        if event.get("ephemeral"):
            if "presence_version" in event:
                presence.remember(self.room_id, event)
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
            if self.pending and not self._drain_pending() and self.gap_timer is not None:
                self.gap_timer.cancel()
                self.gap_timer = None
            return
        self.pending.append(event)
        if self.gap_timer is None:
            # Services commit on several threads (chat/dbpool.py) and workers publish
            # independently: the missing event is usually a moment behind. Only if it is
            # still missing after GAP_GRACE_SECONDS is it read from the database.
            self.gap_timer = asyncio.get_running_loop().call_later(GAP_GRACE_SECONDS, self._gap_expired)

    def _gap_expired(self) -> None:
        self.gap_timer = None
        if self.pending:
            self.hub.spawn(self.fill())

    def _deliver(self, event: dict) -> None:
        self.rev = event["rev"]
        revoked = set(event.get("revoke") or ())
        if "public" in event:  # the room changed kind with this event (services.room_update)
            self.public = event["public"]
        # A room gone members-only: everyone else (anonymous readers too) loses it now.
        keep = set(event["keep"]) if event.get("keep") is not None else None
        for subscriber in tuple(self.subscribers):
            # What _notify does, inline: this runs once per socket per event.
            try:
                if subscriber.user_id in revoked or (keep is not None and subscriber.user_id not in keep):
                    subscriber.room_revoked(self)
                else:
                    subscriber.room_event(self, event)
            except Exception:
                log.exception("a socket failed to take an event")

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
                changes, public = await _changes_since(self.room_id, self.slug, self.rev)
                if public is not None:
                    self.public = public  # the event that changed the kind may be among the lost
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


def _changes_since_sync(room_id: int, slug: str, rev: int) -> tuple[list[dict], bool | None]:
    """The room's changes after `rev`, and whether it is public now (None: deleted). The
    kind is read after the changes: if one of them made the room private, the caller
    learns it (a lost kind-change event must not leave outsiders reading)."""
    changes = [
        events.room_change(m, room_slug=slug, was_live=False, from_database=True)
        for m in selectors.message_changes_since(room_id=room_id, rev=rev, limit=FILL_PAGE)
    ]
    state = selectors.room_states(room_ids=[room_id]).get(room_id)
    return changes, (state.is_public if state is not None else None)


_changes_since = database_sync_to_async(_changes_since_sync)
_room_states = database_sync_to_async(lambda room_ids: selectors.room_states(room_ids=room_ids))
_room_access = database_sync_to_async(selectors.room_access)
_credentials_valid = database_sync_to_async(account_selectors.credentials_valid)


def _presence_write_sync(**kwargs) -> None:
    from chat.services.push import presence_write

    presence_write(**kwargs)


_presence_write = database_sync_to_async(_presence_write_sync)


class Hub:
    def __init__(self):
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.rooms: dict[int, RoomStream] = {}
        self.topics: dict[str, set] = {}
        self._tasks: set[asyncio.Task] = set()
        self._starting: asyncio.Lock = asyncio.Lock()
        # This hub's name in UserPresence rows (chat.services.push.presence_write).
        self.process = secrets.token_hex(8)
        self._presence_changed: set[int] = set()
        self._presence_writer: asyncio.Task | None = None

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
        if event.get("control") == "recheck":
            self.spawn(self.check_credentials(tuple(self.topics.get(group, ()))))
            return
        if group.startswith("chat.room."):
            stream = self.rooms.get(int(group.rsplit(".", 1)[1]))
            if stream is not None:
                stream.push(event)
            return
        for subscriber in tuple(self.topics.get(group, ())):
            _notify(subscriber.topic_event, group, event)

    # Subscriptions ------------------------------------------------------------------

    async def join_rooms(self, room_ids: Iterable[int], subscriber: Subscriber) -> list[RoomStream]:
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
                states = await _room_states([s.room_id for s in new])
            except BaseException:
                for stream in new:
                    self.rooms.pop(stream.room_id, None)
                    stream.ready.set()
                raise
            for stream in new:
                state = states.get(stream.room_id, selectors.RoomState("", "", 0))
                stream.start(slug=state.slug, public=state.is_public, rev=state.rev)
            # Sockets that left while the streams started (closed meanwhile) left them empty.
            self.leave_rooms([s.room_id for s in new if not s.subscribers], None)
        streams = [self.rooms[room_id] for room_id in room_ids if room_id in self.rooms]
        for stream in streams:
            await stream.ready.wait()
        return streams

    def leave_room(self, room_id: int, subscriber: Subscriber) -> None:
        self.leave_rooms([room_id], subscriber)

    def leave_rooms(self, room_ids: Iterable[int], subscriber: Subscriber) -> None:
        emptied = []
        for room_id in room_ids:
            stream = self.rooms.get(room_id)
            if stream is None:
                continue
            stream.subscribers.discard(subscriber)
            if not stream.subscribers and stream.ready.is_set():
                del self.rooms[room_id]
                emptied.append(room_id)
        if emptied:
            self.spawn(self._discard_groups(emptied))

    async def _discard_groups(self, room_ids: list[int]) -> None:
        for room_id in room_ids:
            if room_id not in self.rooms:  # unless a socket joined it again meanwhile
                await self.layer.group_discard(events.room_group(room_id), self.channel)

    async def join_topic(self, group: str, subscriber: Subscriber) -> None:
        await self._ensure_started()
        members = self.topics.setdefault(group, set())
        members.add(subscriber)
        if len(members) == 1:
            if subscriber.user_id and group == events.user_group(subscriber.user_id):
                self.users_changed({subscriber.user_id})  # their first socket here
            await self.layer.group_add(group, self.channel)

    def leave_topic(self, group: str, subscriber: Subscriber) -> None:
        members = self.topics.get(group)
        if not members:
            return
        members.discard(subscriber)
        if not members:
            del self.topics[group]
            if subscriber.user_id and group == events.user_group(subscriber.user_id):
                self.users_changed({subscriber.user_id})  # their last socket here: pushes may go now
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
        await self.stamp_users()
        for group in list(self.topics):
            await self.layer.group_add(group, self.channel)
        streams = [s for s in self.rooms.values() if s.ready.is_set()]
        for stream in streams:
            await self.layer.group_add(events.room_group(stream.room_id), self.channel)
        if streams:
            states = await _room_states([s.room_id for s in streams])
            for stream in streams:
                state = states.get(stream.room_id)
                if state is None:
                    continue
                if state.rev >= stream.rev and not stream.busy:
                    # Not older than what was delivered meanwhile, which may carry a newer kind.
                    stream.slug, stream.public = state.slug, state.is_public
                if state.rev > stream.rev and not stream.busy:
                    self.spawn(stream.fill())
            await self.check_access(streams, states=states)
        await self.check_credentials({s for members in self.topics.values() for s in members})

    async def stamp_users(self) -> None:
        """Renew this process's presence rows: Web Push goes only to users with no socket
        open anywhere (chat.services.push)."""
        user_ids = {s.user_id for members in self.topics.values() for s in members if s.user_id}
        if user_ids:
            await asyncio.shield(self.users_changed(user_ids))

    def users_changed(self, user_ids) -> asyncio.Task:
        """Write these users' presence on this process as it is when the write runs. One
        writer at a time, reading the sockets afresh each round: a socket that closes
        while a stamp is under way leaves its user absent, never stuck present."""
        self._presence_changed.update(user_ids)
        if self._presence_writer is None or self._presence_writer.done():
            self._presence_writer = self.spawn(self._write_presence())
        return self._presence_writer

    async def _write_presence(self) -> None:
        while self._presence_changed:
            user_ids, self._presence_changed = self._presence_changed, set()
            here = {i for i in user_ids if events.user_group(i) in self.topics}
            try:
                await _presence_write(process=self.process, here=here, gone=user_ids - here)
            except Exception:
                # Rows left behind stop counting after PARLEY_PUSH_AWAY_SECONDS; missing
                # ones come back with the next sweep.
                log.exception("writing user presence failed")

    async def check_access(
        self, streams: list[RoomStream], *, states: dict[int, selectors.RoomState] | None = None
    ) -> None:
        """Close the sockets of anyone who may no longer follow a room: access lost, the
        room made private or deleted, or (user streams) membership ended."""
        # Who is asked about: a socket that subscribes while the answer is read is not in it.
        asked = [(stream, tuple(stream.subscribers)) for stream in streams]
        readable, member = set(), set()
        for stream, subscribers in asked:
            for subscriber in subscribers:
                (member if subscriber.needs_membership else readable).add((stream.room_id, subscriber.user_id))
        if not (readable or member):
            return
        if states is None:
            states = await _room_states([s.room_id for s in streams])
        readable, member = await _room_access(readable, member, states=states)
        for stream, subscribers in asked:
            stream.gone = stream.room_id not in states
            for subscriber in subscribers:
                allowed = member if subscriber.needs_membership else readable
                if subscriber in stream.subscribers and (stream.room_id, subscriber.user_id) not in allowed:
                    _notify(subscriber.room_revoked, stream)

    async def check_credentials(self, subscribers: Iterable[Subscriber]) -> None:
        """Close sockets whose credential ended: logout elsewhere, expiry, a password
        change, deactivation, a revoked token."""
        subscribers = [s for s in subscribers if s.credential is not None]
        if not subscribers:
            return
        valid = await _credentials_valid({s.credential for s in subscribers})
        for subscriber in subscribers:
            if subscriber.credential not in valid:
                _notify(subscriber.session_ended)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """This process's hub for the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
