"""Everything that changes a room or a message. Each action has one function here, and
every door (socket, REST, pages, admin) calls it.

Rules of the house: keyword-only arguments, the permission check first, the event last
and only after commit. A room's `last_seq`/`rev` are bumped with its row locked, so
numbers follow commit order with no gaps even with many writers on PostgreSQL.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import events, selectors
from chat.models import SLUG_PATTERN, Membership, Message, Room
from core.errors import (
    AuthRequired,
    InvalidInput,
    NotAllowed,
    NotFound,
    RateLimited,
    RecallWindowPassed,
    TooLarge,
)
from core.ratelimit import check_send_rate

log = logging.getLogger(__name__)
User = get_user_model()

CREATABLE_KINDS = (Room.Kind.PUBLIC, Room.Kind.PRIVATE)


def _require_user(user) -> None:
    if user is None or not user.is_authenticated:
        raise AuthRequired()


def _clean_text(value, *, field: str, max_length: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} must not be empty.")
    if len(value) > max_length:
        raise TooLarge(f"{field} is limited to {max_length} characters.")
    return value


def _clean_client_id(client_id) -> str:
    if client_id is None or client_id == "":
        return ""
    if not isinstance(client_id, str) or len(client_id) > 64:
        raise InvalidInput("client_id must be a string of 1-64 characters.")
    return client_id


def _lock_room(room_id: int) -> Room:
    return Room.objects.select_for_update().get(pk=room_id)


def _append(room: Room, **fields) -> Message:
    """Store a new message as the room's next seq and rev. The caller holds the room lock."""
    seq, rev = room.last_seq + 1, room.rev + 1
    now = timezone.now()
    Room.objects.filter(pk=room.pk).update(last_seq=seq, rev=rev, last_activity_at=now)
    room.last_seq, room.rev, room.last_activity_at = seq, rev, now
    return Message.objects.create(room=room, seq=seq, rev=rev, **fields)


def _change(room: Room, message: Message, **fields) -> Message:
    """Give an existing message its new state under the room's next rev (room locked)."""
    rev = room.rev + 1
    Room.objects.filter(pk=room.pk).update(rev=rev)
    room.rev = rev
    for name, value in fields.items():
        setattr(message, name, value)
    message.rev = rev
    Message.objects.filter(pk=message.pk).update(rev=rev, **fields)
    return message


def _announce(room: Room, message: Message, *, revoke: tuple[int, ...] = (), was_live: bool = True) -> None:
    events.publish_on_commit(
        events.room_group(room.id),
        events.room_change(message, room_slug=room.slug, revoke=revoke, was_live=was_live),
    )


def _system_message(room: Room, body: str, *, revoke: tuple[int, ...] = ()) -> Message:
    message = _append(room, kind=Message.Kind.SYSTEM, body=body)
    _announce(room, message, revoke=revoke)
    return message


def _room_added(user_id: int, room: Room) -> None:
    from chat.serializers import room_to_dict

    events.publish_on_commit(
        events.user_group(user_id), events.user_frame({"type": "room.added", "room": room_to_dict(room)})
    )


# Rooms -------------------------------------------------------------------------------


def room_create(*, creator, slug, name, kind=Room.Kind.PUBLIC) -> Room:
    """Create a public or private room owned by `creator`. A taken slug is InvalidInput."""
    _require_user(creator)
    # fullmatch: `$` alone would let a trailing newline into the slug.
    if not isinstance(slug, str) or not RegexValidator(SLUG_PATTERN).regex.fullmatch(slug):
        raise InvalidInput("slug must be 1-50 characters of a-z, 0-9, _ and -.")
    name = _clean_text(name, field="name", max_length=80)
    if kind not in CREATABLE_KINDS:
        raise InvalidInput("kind must be 'public' or 'private'.")
    try:
        with transaction.atomic():
            room = Room.objects.create(slug=slug, name=name, kind=kind, created_by=creator)
            Membership.objects.create(room=room, user=creator, role=Membership.Role.OWNER)
    except IntegrityError:
        raise InvalidInput("That slug is taken.") from None
    return room


def room_join(*, user, room: Room) -> Membership:
    """Join a public room (idempotent). Private rooms are joined by invitation only, and
    answer NotFound so their existence is not revealed."""
    _require_user(user)
    if not room.is_public:
        if selectors.membership_get(user=user, room=room) is not None:
            return selectors.membership_get(user=user, room=room)
        raise NotFound("No such room.")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(
            room=room, user=user, defaults={"last_read_seq": room.last_seq}
        )
        if created:
            _room_added(user.id, room)
    return membership


@transaction.atomic
def room_leave(*, user, room: Room) -> None:
    """Leave a room. Leaving a private room takes its sockets away at once."""
    _require_user(user)
    if room.kind == Room.Kind.DM:
        raise NotAllowed("You cannot leave a direct conversation.")
    room = _lock_room(room.id)
    membership = Membership.objects.filter(room=room, user=user).first()
    if membership is None:
        if room.is_public:
            return
        raise NotFound("No such room.")
    membership.delete()
    if not room.is_public:
        _system_message(room, f"{user.username} left", revoke=(user.id,))


@transaction.atomic
def room_invite(*, by, room: Room, username) -> Membership:
    """Add a user to a private room; only its owner or admins may."""
    _require_user(by)
    room = _lock_room(room.id)
    actor = selectors.membership_get(user=by, room=room)
    if actor is None and not room.is_public:
        raise NotFound("No such room.")
    if room.kind != Room.Kind.PRIVATE:
        raise InvalidInput("Only private rooms take invitations.")
    if actor is None or not actor.can_moderate:
        raise NotAllowed("Only the room's owner or admins may invite.")
    if not isinstance(username, str) or not username:
        raise InvalidInput("username is required.")
    invitee = User.objects.filter(username=username, is_active=True).first()
    if invitee is None:
        raise NotFound("No such user.")
    membership, created = Membership.objects.get_or_create(
        room=room, user=invitee, defaults={"last_read_seq": room.last_seq}
    )
    if created:
        _system_message(room, f"{by.username} added {invitee.username}")
        _room_added(invitee.id, room)
    return membership


@transaction.atomic
def room_remove_member(*, by, room: Room, username: str) -> None:
    """Remove someone from a room (owner/admin). Their open sockets close with 4403."""
    _require_user(by)
    room = _lock_room(room.id)
    actor = selectors.membership_get(user=by, room=room)
    if actor is None and not room.is_public:
        raise NotFound("No such room.")
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT):
        raise NotAllowed("Members of this conversation cannot be removed.")
    if actor is None or not actor.can_moderate:
        raise NotAllowed("Only the room's owner or admins may remove members.")
    target = Membership.objects.filter(room=room, user__username=username).select_related("user").first()
    if target is None:
        raise NotFound("No such member.")
    if target.role == Membership.Role.OWNER:
        raise NotAllowed("The owner cannot be removed.")
    target.delete()
    _system_message(
        room, f"{target.user.username} was removed", revoke=(() if room.is_public else (target.user_id,))
    )


# Messages ----------------------------------------------------------------------------


def message_send(
    *, sender, room: Room, body="", client_id="", kind=Message.Kind.TEXT, image=None
) -> tuple[Message, bool]:
    """Store a message as the room's next seq and announce it after commit.

    Returns (message, created). A `client_id` this sender already used returns the first
    message unchanged, whatever the body now says: retries after a dropped connection
    are safe, concurrent ones included. Raises AuthRequired for anonymous senders,
    NotFound when the sender may not read the room, InvalidInput/TooLarge for bad input,
    RateLimited past the sender's allowance (nothing is stored).
    Sending moves the sender's own read marker to the new message.
    """
    _require_user(sender)
    client_id = _clean_client_id(client_id)
    body = _clean_text(body, field="body", max_length=settings.PARLEY_MAX_BODY, required=image is None)
    if not selectors.room_may_read(user=sender, room=room):
        raise NotFound("No such room.")
    try:
        check_send_rate(sender.id)
    except RateLimited:
        # A retry of a message that made it is answered with it, not refused.
        existing = _sent_before(sender, client_id) if client_id else None
        if existing is None:
            raise
        return existing, False
    try:
        with transaction.atomic():
            locked = _lock_room(room.id)
            if client_id:
                # After the lock: a concurrent duplicate in the same room has committed by now.
                existing = _sent_before(sender, client_id)
                if existing is not None:
                    return existing, False
            message = _append(locked, sender=sender, kind=kind, body=body, image=image, client_id=client_id)
            Membership.objects.filter(room=locked, user=sender, last_read_seq__lt=message.seq).update(
                last_read_seq=message.seq
            )
            _announce(locked, message)
    except IntegrityError:
        # The same client_id raced in through another room; the first one won.
        existing = _sent_before(sender, client_id) if client_id else None
        if existing is None:
            raise
        return existing, False
    room.last_seq, room.rev = locked.last_seq, locked.rev
    return message, True


def _sent_before(sender, client_id: str) -> Message | None:
    return (
        Message.objects.select_related("room", "sender__profile").filter(sender=sender, client_id=client_id).first()
    )


def _message_for_change(*, user, message_id) -> tuple[Room, Message, Membership | None]:
    _require_user(user)
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 0 < message_id < 2**63:
        raise InvalidInput("id must be a message id.")
    if user.is_staff:
        # Staff moderate every room, including ones they cannot read.
        message = Message.objects.filter(pk=message_id, deleted=False).first()
        if message is None:
            raise NotFound("No such message.")
    else:
        message = selectors.message_get_for_user(user=user, message_id=message_id)
    room = _lock_room(message.room_id)
    message = Message.objects.select_related("sender__profile").get(pk=message.pk)
    message.room = room
    return room, message, selectors.membership_get(user=user, room=room)


def _discard_image_after_commit(message: Message) -> None:
    if message.image:
        storage, name = message.image.storage, message.image.name
        transaction.on_commit(lambda: storage.delete(name))


@transaction.atomic
def message_recall(*, user, message_id) -> Message:
    """The sender takes a message back within PARLEY_RECALL_SECONDS (server clock).

    Its body and image are erased from the server; clients see "message recalled".
    """
    room, message, _ = _message_for_change(user=user, message_id=message_id)
    if message.sender_id != user.id:
        raise NotAllowed("Only the sender may recall a message.")
    if message.deleted:
        raise NotFound("No such message.")
    if message.recalled:
        return message
    if timezone.now() - message.created_at > timedelta(seconds=settings.PARLEY_RECALL_SECONDS):
        raise RecallWindowPassed()
    _discard_image_after_commit(message)
    _change(room, message, recalled=True, body="", image=None)
    _announce(room, message)
    return message


@transaction.atomic
def message_delete(*, user, message_id) -> Message:
    """Delete a message for everyone: its sender, a room owner/admin, or staff may.

    A content-free tombstone stays, so reconnecting clients learn of the deletion.
    """
    room, message, membership = _message_for_change(user=user, message_id=message_id)
    allowed = (
        message.sender_id == user.id
        or user.is_staff
        or (membership is not None and membership.can_moderate)
    )
    if not allowed:
        raise NotAllowed("You may not delete this message.")
    was_live = not message.recalled
    _discard_image_after_commit(message)
    _change(room, message, deleted=True, body="", image=None)
    _announce(room, message, was_live=was_live)
    return message


def room_mark_read(*, user, room: Room, seq) -> int:
    """Move the user's read marker forward to `seq` (never backwards); returns the unread count.

    Every socket of the user hears the new count.
    """
    _require_user(user)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidInput("seq must be a non-negative integer.")
    membership = selectors.membership_get(user=user, room=room)
    if membership is None:
        if not selectors.room_may_read(user=user, room=room):
            raise NotFound("No such room.")
        raise InvalidInput("Join the room to keep a read marker.")
    seq = min(seq, room.last_seq)
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk, last_read_seq__lt=seq).update(last_read_seq=seq)
        count = selectors.unread_count(user=user, room=room)
        events.publish_on_commit(
            events.user_group(user.id),
            events.user_frame(
                {"type": "unread", "room": room.slug, "count": count},
                last_read_seq=max(seq, membership.last_read_seq),
            ),
        )
    return count
