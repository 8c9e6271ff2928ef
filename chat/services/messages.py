"""What a message goes through after it is sent: sending (a reply too), recall, deletion.
Edits are in chat/services/edits.py, reactions in chat/services/reactions.py."""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from chat import search, selectors
from chat.formatting import render
from chat.models import AuditEntry, Membership, Message, Room
from chat.services.changes import (
    announce,
    append,
    clean_client_id,
    erase,
    lock_room,
    take_numbers,
    tell_room_added,
)
from chat.services.mentions import mentions_for, store_mentions
from chat.services.push import enqueue_for_message
from core import rows
from core.errors import InvalidInput, Muted, NotAllowed, NotFound, RateLimited, RecallWindowPassed, TooLarge
from core.ratelimit import check_send_rate
from core.validation import clean_text, require_user

# Sent after commit for each new message in a project conversation (`message`, `room`):
# how the projects app hears of replies to email (projects/notify.py) without chat
# knowing about it.
message_stored = Signal()


def message_send(
    *, sender, room: Room, body="", client_id=None, kind=Message.Kind.TEXT, image=None, allowance_taken=False,
    reply_to=None, sender_name="", sender_icon="", attachment: dict | None = None, savepoint=True,
) -> tuple[Message, bool]:
    """Store a message as the room's next seq and announce it after commit.

    `reply_to` (optional) is the id of the message this one answers: one in the same
    room that is not deleted, else InvalidInput. Returns (message, created). A
    `client_id` this sender already used returns the first message unchanged, whatever the body now says: retries after a dropped connection
    are safe, concurrent ones included. Raises AuthRequired for anonymous senders,
    NotFound when the sender may not read the room, InvalidInput/TooLarge for bad input,
    RateLimited past the sender's allowance (nothing is stored), NotAllowed for @all /
    @room from a sender who may not mention everyone (chat.services.mentions); `allowance_taken`: the
    caller already called take_send_allowance for this message (image sends, which check
    before decoding). `attachment`: the stored file of a `file` message (chat.services.files).
    Sending moves the sender's own read marker to the new message; into a public room
    the sender has not joined, it joins them first (_join_by_sending). `sender_name` and
    `sender_icon` are a bot's name and icon URL for this message (incoming webhooks).
    `savepoint=False`, inside the caller's transaction: no savepoint of its own (a round
    trip each way on PostgreSQL); if the send fails after writing, the caller must roll
    back its whole transaction (chat.groupcommit does, then sends one by one).
    """
    require_user(sender)
    client_id = clean_client_id(client_id)
    body = clean_text(
        body, field="body", max_length=settings.PARLEY_MAX_BODY, required=image is None and attachment is None,
        too_long=TooLarge,
    )
    standing = selectors.standing(user=sender, room=room)
    if not standing.may_read(room):
        raise NotFound("No such room.")
    may_send_here(sender=sender, room=room, standing=standing)
    original = reply_target(room=room, reply_to=reply_to)
    mentioned, mentions_all = mentions_for(sender=sender, room=room, body=body)
    if not allowance_taken:
        existing = take_send_allowance(sender, client_id)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic(savepoint=savepoint):
            kind_seen = room.kind
            if kind in (Message.Kind.TEXT, Message.Kind.IMAGE, Message.Kind.FILE) and not sender_name:  # people, not presets or bots
                _join_by_sending(sender, room, member=standing.member)
            seq, rev = take_numbers(room, new_message=True)
            if room.kind != kind_seen and not selectors.room_may_read(user=sender, room=room):
                # It went private after the check above (a socket holds the room from its
                # connect): an outsider's message must not land in it.
                raise NotFound("No such room.")
            if room.kind == Room.Kind.PROJECT and Room.objects.filter(pk=room.pk, closed_at__isnull=False).exists():
                # Checked under the row lock: a close that committed first wins (SPEC §6.6).
                raise NotAllowed("This conversation is closed.")
            message = rows.insert(Message(
                room=room, seq=seq, rev=rev, sender=sender, kind=kind, body=body, html=render(body), image=image,
                client_id=client_id or "", reply_to=original, sender_name=sender_name, sender_icon=sender_icon,
                mentions=[user.username for user in mentioned], mentions_all=mentions_all, **(attachment or {}),
            ))
            store_mentions(message, mentioned)
            enqueue_for_message(room, message, others_subscribed=standing.others_subscribed)
            message.reaction_list = []  # a new message has none: spares the serializer a query
            search.index_message(message, new=True)
            _read_up_to(sender, room, seq)
            announce(room, message)
            if room.kind == Room.Kind.PROJECT:
                transaction.on_commit(lambda: message_stored.send(sender=Message, message=message, room=room))
    except IntegrityError:
        # The sender used this client_id before (a retry, maybe a concurrent one): the
        # whole transaction rolled back, numbers included; answer with the first message.
        existing = sent_before(sender, client_id) if client_id else None
        if existing is None:
            raise
        return existing, False
    return message, True


def _read_up_to(sender, room: Room, seq: int) -> None:
    """The sender has read their own message: their marker moves to it. A plain UPDATE:
    the ORM's took ~0.3 ms of a send's ~1.6 ms (SQLite, 200-member room), this ~30 µs."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Membership._meta.db_table} SET last_read_seq = %s"
            " WHERE room_id = %s AND user_id = %s AND last_read_seq < %s",
            [seq, room.pk, sender.pk, seq],
        )


def _join_by_sending(sender, room: Room, *, member: bool) -> None:
    """Sending into a public room one has not joined (`member`: as read before the
    transaction) joins it (docs/api.md "Joining"): the "joined" system message first,
    then the membership (badge, unread, sidebar)."""
    if not room.is_public or member:
        return
    # Under the room's lock, asked again: a concurrent first send of the same person may
    # have joined them meanwhile (one "joined", and no duplicate membership to fail on).
    if not lock_room(room.id).is_public:  # it went private: no outsider joins (rolled back)
        raise NotFound("No such room.")
    if Membership.objects.filter(room=room, user=sender).exists():
        return
    joined = append(room, kind=Message.Kind.SYSTEM, body=f"{sender.username} joined")
    announce(room, joined)
    Membership.objects.create(room=room, user=sender, last_read_seq=joined.seq)
    tell_room_added(sender.id, room)


def may_send_here(*, sender, room: Room, standing: selectors.Standing | None = None) -> None:
    """What a reader needs beyond reading to send: not muted there (Muted, with its end),
    and in a direct or project conversation not blocked by the other person (NotAllowed).
    `standing`: already read (selectors.standing); the mute is then only read if it lasts."""
    mute = selectors.room_mute_get(user=sender, room=room) if standing is None or standing.muted else None
    if mute is not None:
        raise Muted(mute.until)
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT) and selectors.blocked_in_conversation(user=sender, room=room):
        raise NotAllowed("You cannot write to this conversation.")


def reply_target(*, room: Room, reply_to) -> Message | None:
    """The message a reply answers (None for no reply): in `room`, not deleted."""
    if reply_to is None:
        return None
    if not isinstance(reply_to, int) or isinstance(reply_to, bool) or not 0 < reply_to < 2**63:
        raise InvalidInput("reply_to must be a message id.")
    original = (
        Message.objects.select_related("sender__profile").filter(pk=reply_to, room=room, deleted=False).first()
    )
    if original is None:
        raise InvalidInput("reply_to must be a message in this room.")
    return original


def take_send_allowance(sender, client_id: str) -> Message | None:
    """Take one send from the sender's allowance: None when granted, RateLimited past it,
    except that a retry of a message that made it is answered with that message."""
    try:
        check_send_rate(sender.id)
    except RateLimited:
        existing = sent_before(sender, client_id) if client_id else None
        if existing is None:
            raise
        return existing
    return None


def sent_before(sender, client_id: str) -> Message | None:
    return (
        selectors.with_details(Message.objects.select_related("room"))
        .filter(sender=sender, client_id=client_id)
        .first()
    )


def _message_for_change(*, user, message_id) -> tuple[Room, Message, Membership | None]:
    require_user(user)
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 0 < message_id < 2**63:
        raise InvalidInput("id must be a message id.")
    if user.is_staff:
        # Staff moderate every room, including ones they cannot read.
        message = Message.objects.filter(pk=message_id, deleted=False).first()
        if message is None:
            raise NotFound("No such message.")
    else:
        message = selectors.message_get_for_user(user=user, message_id=message_id)
    room = lock_room(message.room_id)
    # Read again under the room lock: a concurrent delete may have tombstoned it, or
    # retention purged it, since the check above. Changing it again would take a second
    # rev and announce the deletion twice.
    message = Message.objects.select_related("sender__profile").filter(pk=message.pk, deleted=False).first()
    if message is None:
        raise NotFound("No such message.")
    message.room = room
    return room, message, selectors.membership_get(user=user, room=room)


@transaction.atomic
def message_recall(*, user, message_id) -> Message:
    """The sender takes a message back within PARLEY_RECALL_SECONDS (server clock).

    Its body, image, earlier versions and reactions are erased from the server; clients
    see "message recalled".
    """
    room, message, _ = _message_for_change(user=user, message_id=message_id)
    if message.sender_id != user.id:
        raise NotAllowed("Only the sender may recall a message.")
    if message.recalled:
        return message
    if timezone.now() - message.created_at > timedelta(seconds=settings.PARLEY_RECALL_SECONDS):
        raise RecallWindowPassed()
    erase(room, message, recalled=True)
    announce(room, message)
    return message


@transaction.atomic
def message_delete(*, user, message_id) -> Message:
    """Delete a message for everyone: its sender, a room owner/admin, or staff may.

    A content-free tombstone stays, so reconnecting clients learn of the deletion; its
    versions and reactions go with the content. A message already deleted (or purged) is
    NotFound, however many deletes race: exactly one takes a rev and is announced.
    """
    room, message, membership = _message_for_change(user=user, message_id=message_id)
    if message.sender_id != user.id and not selectors.room_may_moderate(user=user, membership=membership):
        raise NotAllowed("You may not delete this message.")
    was_live = not message.recalled
    if message.sender_id != user.id:
        from chat.services.moderation import audit

        audit(actor=user, action=AuditEntry.Action.DELETE, room=room, target=message.sender, message=message)
    erase(room, message, deleted=True, deleted_at=timezone.now())
    announce(room, message, was_live=was_live)
    return message
