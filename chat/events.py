"""What travels to connected clients, and how it gets there.

Group names carry ids only (`chat.room.<id>`, `chat.user.<id>`, `chat.everyone`). Each
event is serialized to JSON once, here, and travels as text; every receiving process
hands that same text to its sockets (chat/hub.py). Room events carry the room revision,
so a receiver can put them in order, drop repeats and notice gaps.

Events leave only after the transaction that caused them commits: a client never hears
of a message that a rollback then took back.
"""

import json
import logging
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.db import transaction

from chat.dbpool import run_in_pool
from chat.models import Message
from chat.serializers import message_reactions, message_to_dict
from core.errors import AppError

log = logging.getLogger(__name__)

HUB_EVENT = "hub.event"

_deferred: ContextVar[list | None] = ContextVar("parley_deferred_events", default=None)
EVERYONE = "chat.everyone"


def room_group(room_id: int) -> str:
    return f"chat.room.{room_id}"


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


def dumps(frame: dict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def message_frame(message: Message, *, room_slug: str | None = None) -> dict:
    """The frame that tells a client a message's current state (new, recalled or deleted)."""
    slug = room_slug or message.room.slug
    if message.deleted:
        return {"type": "message.deleted", "id": message.id, "room": slug, "seq": message.seq, "rev": message.rev}
    if message.recalled:
        return {"type": "message.recalled", "id": message.id, "room": slug, "seq": message.seq, "rev": message.rev}
    return {"type": "message", **message_to_dict(message, room_slug=slug)}


def message_edited(message: Message, *, room_slug: str) -> dict:
    """The frame of an edit: the new body, its html, when, and whom it mentions now."""
    return {
        "type": "message.edited",
        "id": message.id,
        "room": room_slug,
        "seq": message.seq,
        "rev": message.rev,
        "body": message.body,
        "html": message.html,
        "edited_at": message.edited_at.isoformat(),
        "mentions": list(message.mentions),
        "mentions_all": message.mentions_all,
    }


def message_reactions_changed(message: Message, *, room_slug: str) -> dict:
    """The frame of a reaction added or removed: the message's reactions as they are now."""
    return {
        "type": "message.reactions",
        "id": message.id,
        "room": room_slug,
        "seq": message.seq,
        "rev": message.rev,
        "reactions": message_reactions(message),
    }


def message_pinned(message: Message, *, room_slug: str) -> dict:
    """The frame of a pin or unpin (chat.services.message_pin)."""
    return {
        "type": "message.pinned",
        "id": message.id,
        "room": room_slug,
        "seq": message.seq,
        "rev": message.rev,
        "pinned": message.pinned_at is not None,
    }


def room_change(
    message: Message,
    *,
    room_slug: str | None = None,
    revoke: tuple[int, ...] = (),
    was_live: bool = True,
    from_database: bool = False,
    public: bool | None = None,
    keep: tuple[int, ...] | None = None,
    update: dict | None = None,
    mentions_before: dict | None = None,
) -> dict:
    """The layer envelope for one change in a room, ordered by `rev`.

    `meta` lets the user stream keep unread counts without parsing the frame
    (selectors.unread_change): the message's fields the unread rule reads, whether this
    change created it, and `was_live`, whether a recall or deletion took away a live
    message. An edit or a reaction (`update`: its frame) neither creates nor removes, so
    it never moves a count. `revoke` names users who lose access with this change: their
    sockets close before it is sent. `from_database` marks changes a receiver rebuilt while
    filling a gap: those describe the message's state now, not what happened (an edited
    message comes back as a `message` frame), so a receiver recounts from the database
    rather than counting them (docs/realtime-protocol.md, "Replays"). `mentions` and
    `mentions_all` say whom the message mentions (selectors.mentioned); an edit that
    changed them also carries `mentions_before`, so a user stream whose user gained or
    lost the mention recounts. A change that
    switched the room's kind carries `public`; one that made it members-only also `keep`,
    the members: everyone else's sockets close before it is sent.
    """
    removed = message.recalled or message.deleted
    envelope = {
        "type": HUB_EVENT,
        "rev": message.rev,
        "frame": dumps(update if update is not None else message_frame(message, room_slug=room_slug)),
        "meta": {
            "id": message.id,
            "seq": message.seq,
            "sender_id": message.sender_id,
            "kind": message.kind,
            "recalled": message.recalled,
            "deleted": message.deleted,
            "created": not removed and update is None,
            "was_live": was_live,
            "from_database": from_database,
            "mentions": message.mentions,
            "mentions_all": message.mentions_all,
        },
        "revoke": list(revoke),
    }
    if mentions_before is not None:
        envelope["meta"]["mentions_before"] = mentions_before
    if public is not None:
        envelope["public"] = public
    if keep is not None:
        envelope["keep"] = list(keep)
    return envelope


# Frames (SPEC §3), one builder each ----------------------------------------------------------


def hello(user: dict | None, *, room: dict | None = None) -> dict:
    """The first frame of a socket: who it belongs to, and on a room socket the room
    (serializers.room_to_dict with `online`)."""
    frame = {"type": "hello", "user": user}
    if room is not None:
        frame["room"] = room
    return frame


def room_added(room: dict) -> dict:
    """`room` is shaped as in `hello` (serializers.room_to_dict with `online`)."""
    return {"type": "room.added", "room": room}


def room_removed(room_slug: str) -> dict:
    """The user is no longer in the room (left, removed, or it went private without them)."""
    return {"type": "room.removed", "room": room_slug}


def unread(room_slug: str, *, count: int, last_seq: int, mentions: int = 0) -> dict:
    """A room's unread count as of the room's message `last_seq` (clients drop an `unread`
    whose last_seq is lower than one they applied)."""
    return {"type": "unread", "room": room_slug, "count": count, "mentions": mentions, "last_seq": last_seq}


def typing(room_slug: str, username: str) -> dict:
    return {"type": "typing", "room": room_slug, "user": username}


def presence(room_slug: str, online: list[str]) -> dict:
    return {"type": "presence", "room": room_slug, "online": online}


def resumed(room_slug: str, *, rev: int, truncated: bool) -> dict:
    return {"type": "resumed", "room": room_slug, "rev": rev, "truncated": truncated}


def ack(message: Message) -> dict:
    return {"type": "ack", "client_id": message.client_id or None, "id": message.id, "seq": message.seq, "rev": message.rev}


def error(error: AppError, *, client_id: str | None = None) -> dict:
    """An error frame; `client_id` when it answers a send."""
    frame = {"type": "error", **error.as_dict()}
    if isinstance(client_id, str):
        frame["client_id"] = client_id
    return frame


def pong() -> dict:
    return {"type": "pong"}


def announcement(announcement) -> dict:
    """The `announcement` frame for the current Announcement (None: no announcement)."""
    return {
        "type": "announcement",
        "text": announcement.text if announcement else "",
        "image": announcement.image.url if announcement and announcement.image else None,
    }


# Envelopes ------------------------------------------------------------------------------------


def user_frame(frame: dict, **meta) -> dict:
    """A layer envelope for a frame sent as is to a topic's sockets (unread counts, announcements)."""
    return {"type": HUB_EVENT, "frame": dumps(frame), "meta": {**frame, **meta}}


def ephemeral(frame: dict, *, user_id: int | None) -> dict:
    """A room envelope outside the revision order (typing hints): never stored, never replayed."""
    return {"type": HUB_EVENT, "frame": dumps(frame), "ephemeral": True, "user_id": user_id}


def control(action: str, **fields) -> dict:
    """A layer envelope that changes sockets rather than telling clients something:
    `logout` (session_key), `recheck` (the user's credentials changed), `room.added` and
    `room.left` (room_id: the user's membership began or ended), `recount` (blocked:
    the ids the user now blocks; their counts changed in every room)."""
    return {"type": HUB_EVENT, "control": action, **fields}


def publish(group: str, event: dict) -> None:
    """Send now, from synchronous code. A lost publish is healed by the hub's sweep.

    Inside `run_service` the event is handed back to the event loop that called the
    service instead, saving a hop from this thread back to the loop per event.
    """
    pending = _deferred.get()
    if pending is not None:
        pending.append((group, event))
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {**event, "group": group})
    except Exception:
        # The change is committed; receivers fill the gap from the database.
        log.exception("publishing to %s failed", group)


def publish_on_commit(group: str, event: dict) -> None:
    transaction.on_commit(lambda: publish(group, event))


async def apublish(group: str, event: dict) -> None:
    """Send now, from the event loop."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, {**event, "group": group})
    except Exception:
        log.exception("publishing to %s failed", group)


def _run_collecting(function, kwargs: dict):
    token = _deferred.set([])
    try:
        try:
            return function(**kwargs), _deferred.get(), None
        except Exception as error:
            return None, _deferred.get(), error
    finally:
        _deferred.reset(token)


_run_in_database_thread = run_in_pool(_run_collecting)


async def run_service(function, /, **kwargs):
    """Call a service from async code: on a database thread (chat/dbpool.py), its events
    published from here.

    Events of transactions that committed go out even when the service then raises.
    """
    result, pending, error = await run_collecting(function, **kwargs)
    await publish_all(pending)
    if error is not None:
        raise error
    return result


async def run_collecting(function, /, **kwargs) -> tuple[object, list[tuple[str, dict]], Exception | None]:
    """run_service without the publishing: (result, the events to publish, the error)."""
    return await _run_in_database_thread(function, kwargs)


async def publish_all(pending: list[tuple[str, dict]]) -> None:
    """Publish in order, all in one go: on Redis in one round trip, in memory without
    yielding in between. Either way the hub takes a group commit's events in one loop
    turn, and writes them in one write per socket (chat/wire.py): far fewer writes for
    the server and for its clients than one event per turn."""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        await _publish_in_memory(layer, pending)
        return
    if len(pending) > 1 and isinstance(layer, RedisPubSubChannelLayer):
        try:
            await _publish_pipelined(layer, pending)
        except Exception:
            # Whatever did not go out, the hubs' sweep finds in the database (chat/hub.py).
            log.exception("publishing %d events failed", len(pending))
        return
    for group, event in pending:
        await apublish(group, event)


async def _publish_in_memory(layer: InMemoryChannelLayer, pending: list[tuple[str, dict]]) -> None:
    """What the in-memory layer's group_send does for each event, without the task per
    channel it awaits, which let the hub take each event in a loop turn of its own
    (its `send` never suspends)."""
    for group, event in pending:
        message = {**event, "group": group}
        for channel in tuple(layer.groups.get(group, ())):
            try:
                await layer.send(channel, message)
            except ChannelFull:
                log.warning("dropped an event for %s: its channel is full", channel)


async def _publish_pipelined(layer: RedisPubSubChannelLayer, pending: list[tuple[str, dict]]) -> None:
    """What `group_send` does for each event (channels_redis 4.3's pub/sub layer: the
    group's channel name, its shard's connection, under that connection's lock), with one
    pipeline per shard instead of a PUBLISH and its answer per event. A test holds it to
    group_send."""
    loop_layer = layer._get_layer()
    by_shard: dict = {}
    for group, event in pending:
        channel = loop_layer._get_group_channel_name(group)
        by_shard.setdefault(loop_layer._get_shard(channel), []).append(
            (channel, layer.serialize({**event, "group": group}))
        )
    for shard, messages in by_shard.items():
        async with shard._lock:
            shard._ensure_redis()
            pipeline = shard._redis.pipeline(transaction=False)
            for channel, message in messages:
                pipeline.publish(channel, message)
            await pipeline.execute()
