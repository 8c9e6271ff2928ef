"""How a room changes: the one place that numbers changes and queues their events.

Every change in a room (a new message, an edit, a reaction, a recall, a deletion) takes
the room's next `rev` here, a new message also its next `seq`, in one `UPDATE …
RETURNING` that keeps the room row locked until commit: numbers follow commit order with
no gap, on SQLite and on PostgreSQL with many writers. The event is queued for
after commit, so nobody hears of a change that rolled back.
"""

from django.db import connection, transaction
from django.utils import timezone

from chat import events, search
from chat.formatting import render
from chat.models import Message, MessageVersion, Reaction, Room
from core import rows
from core.errors import InvalidInput, NotFound


def clean_client_id(client_id) -> str | None:
    """A sender-chosen idempotency key of 1-64 characters, or None when there is none.

    Absent (None) means none; an empty string is refused like any other bad value
    (SPEC §2), not read as "none": a client that sends "" believes it sent a key.
    """
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        raise InvalidInput("client_id must be a string of 1-64 characters.")
    return client_id


def lock_room(room_id: int) -> Room:
    return Room.objects.select_for_update().get(pk=room_id)


def take_numbers(room: Room, *, new_message: bool, count: int = 1) -> tuple[int, int]:
    """The room's next (seq, rev) for a new message, or (last_seq, next rev) for a change
    to an existing one. One statement that also locks the row until commit, and brings
    `room` up to date (numbers and kind). `count` new messages take the next `count` of
    each, and the last of them is returned."""
    now = timezone.now()
    if new_message:
        sql = (
            f"UPDATE {Room._meta.db_table} SET last_seq = last_seq + %s, rev = rev + %s, last_activity_at = %s"
            " WHERE id = %s RETURNING last_seq, rev, kind"
        )
        params = [count, count, connection.ops.adapt_datetimefield_value(now), room.pk]
    else:
        sql = f"UPDATE {Room._meta.db_table} SET rev = rev + 1 WHERE id = %s RETURNING last_seq, rev, kind"
        params = [room.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such room.")
    # The kind too: a caller holding an older copy of the room learns here, under the
    # lock, whether it went private meanwhile (message_send checks again if it did).
    room.last_seq, room.rev, room.kind = row
    if new_message:
        room.last_activity_at = now
    return row[0], row[1]


def append(room: Room, *, body: str = "", **fields) -> Message:
    """Store a new message, its body rendered, as the room's next seq and rev."""
    seq, rev = take_numbers(room, new_message=True)
    message = rows.insert(Message(room=room, seq=seq, rev=rev, body=body, html=render(body), **fields))
    search.index_message(message, new=True)
    message.reaction_list = []  # a new message has none: spares the serializer a query
    return message


def change(room: Room, message: Message, **fields) -> Message:
    """Give an existing message its new state under the room's next rev."""
    _, rev = take_numbers(room, new_message=False)
    for name, value in fields.items():
        setattr(message, name, value)
    message.rev = rev
    Message.objects.filter(pk=message.pk).update(rev=rev, **fields)
    if fields.keys() & {"body", "recalled", "deleted"}:
        search.index_message(message)  # in this transaction: the index never lags the message
    return message


def erase(room: Room, message: Message, **fields) -> Message:
    """Take a message's content away under the room's next rev (recall, deletion,
    retention): body, html, image or file, edit time, pin, earlier versions and reactions."""
    discard_image_after_commit(message)
    MessageVersion.objects.filter(message=message).delete()
    Reaction.objects.filter(message=message).delete()
    message.reaction_list = []
    discard_file_after_commit(message)
    return change(
        room, message, body="", html="", image=None, edited_at=None, pinned_at=None,
        **({"file": None, "file_name": "", "file_size": 0, "file_type": ""} if message.file else {}), **fields,
    )


def announce(
    room: Room,
    message: Message,
    *,
    revoke: tuple[int, ...] = (),
    was_live: bool = True,
    public: bool | None = None,
    keep: tuple[int, ...] | None = None,
    update: dict | None = None,
    mentions_before: dict | None = None,
) -> None:
    """Queue the message's change for the room's subscribers, after commit. `revoke`
    names users whose sockets on the room close when they reach this change; `keep`,
    when the room has just become members-only, the only users whose sockets stay.
    `public` tells receivers the room's new kind with the change that made it. `update`
    is the frame of an edit or reaction (chat.events), which never counts as unread;
    `mentions_before` ({mentions, mentions_all}), an edit's mentions before it changed them."""
    events.publish_on_commit(
        events.room_group(room.id),
        events.room_change(
            message, room_slug=room.slug, revoke=revoke, was_live=was_live, public=public, keep=keep, update=update,
            mentions_before=mentions_before,
        ),
    )


def system_message(room: Room, body: str, *, revoke: tuple[int, ...] = ()) -> Message:
    message = append(room, kind=Message.Kind.SYSTEM, body=body)
    announce(room, message, revoke=revoke)
    return message


def tell_room_added(user_id: int, room: Room) -> None:
    """Tell the user's `/ws/` streams, after commit, that they are now in `room`: each
    follows it and tells its client (`room.added`, with who is online there)."""
    events.publish_on_commit(events.user_group(user_id), events.control("room.added", room_id=room.id))


def tell_room_left(user_id: int, room: Room) -> None:
    """Tell the user's `/ws/` streams, after commit, that they are no longer in `room`
    (public rooms included, whose sockets are not revoked): the streams stop counting it."""
    events.publish_on_commit(events.user_group(user_id), events.control("room.left", room_id=room.id))


def discard_image_after_commit(message: Message) -> None:
    if message.image:
        storage, name = message.image.storage, message.image.name
        transaction.on_commit(lambda: storage.delete(name))


def discard_file_after_commit(message: Message) -> None:
    if message.file:
        storage, name = message.file.storage, message.file.name
        transaction.on_commit(lambda: storage.delete(name))
