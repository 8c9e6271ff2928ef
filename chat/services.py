"""Everything that changes a room or a message. Each action has one function here, and
every door (socket, REST, pages, admin) calls it.

Rules of the house: keyword-only arguments, the permission check first, the event last
and only after commit. A room's `last_seq`/`rev` are bumped with its row locked, so
numbers follow commit order with no gaps even with many writers on PostgreSQL.
"""

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.validators import RegexValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from chat import events, selectors
from chat.models import (
    SLUG_PATTERN,
    Announcement,
    Membership,
    Message,
    Preset,
    Room,
    announcement_image_path,
    message_image_path,
)
from core import images
from core.errors import (
    InvalidInput,
    NotAllowed,
    NotFound,
    RateLimited,
    RecallWindowPassed,
)
from core.ratelimit import check_send_rate
from core.validation import clean_text, require_user

log = logging.getLogger(__name__)
User = get_user_model()

CREATABLE_KINDS = (Room.Kind.PUBLIC, Room.Kind.PRIVATE)




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
    require_user(creator)
    # fullmatch: `$` alone would let a trailing newline into the slug.
    if not isinstance(slug, str) or not RegexValidator(SLUG_PATTERN).regex.fullmatch(slug):
        raise InvalidInput("slug must be 1-50 characters of a-z, 0-9, _ and -.")
    name = clean_text(name, field="name", max_length=80)
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
    require_user(user)
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
    require_user(user)
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT):
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
    require_user(by)
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
    require_user(by)
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
    require_user(sender)
    client_id = _clean_client_id(client_id)
    body = clean_text(body, field="body", max_length=settings.PARLEY_MAX_BODY, required=image is None)
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
            seq, rev = _take_message_numbers(room)
            message = Message.objects.create(
                room=room, seq=seq, rev=rev, sender=sender, kind=kind, body=body, image=image, client_id=client_id
            )
            Membership.objects.filter(room=room, user=sender, last_read_seq__lt=seq).update(last_read_seq=seq)
            _announce(room, message)
    except IntegrityError:
        # The sender used this client_id before (a retry, maybe a concurrent one): the
        # whole transaction rolled back, numbers included; answer with the first message.
        existing = _sent_before(sender, client_id) if client_id else None
        if existing is None:
            raise
        return existing, False
    return message, True


def _take_message_numbers(room: Room) -> tuple[int, int]:
    """The room's next seq and rev, in one statement that keeps the row locked until
    commit, so numbers follow commit order under concurrent writers."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1, rev = rev + 1, last_activity_at = %s"
            " WHERE id = %s RETURNING last_seq, rev",
            [connection.ops.adapt_datetimefield_value(now), room.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such room.")
    room.last_seq, room.rev, room.last_activity_at = row[0], row[1], now
    return row[0], row[1]


def _sent_before(sender, client_id: str) -> Message | None:
    return (
        Message.objects.select_related("room", "sender__profile").filter(sender=sender, client_id=client_id).first()
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
    _change(room, message, deleted=True, body="", image=None, deleted_at=timezone.now())
    _announce(room, message, was_live=was_live)
    return message


def room_mark_read(*, user, room: Room, seq) -> int:
    """Move the user's read marker forward to `seq` (never backwards); returns the unread count.

    Every socket of the user hears the new count.
    """
    require_user(user)
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


# Direct messages and two-person conversations ----------------------------------------


def conversation_room_create(*, slug: str, name: str, kind: str, owner, other, dm_key: str | None = None) -> Room:
    """Create a non-public room whose only members are `owner` and `other`, and tell both
    users' streams (`room.added`) after commit. Other apps (projects) create their rooms
    here rather than writing chat rows themselves.

    Raises IntegrityError when the slug or `dm_key` is taken (the caller re-reads: that is
    how concurrent get-or-create calls end up with one room). Runs in its own savepoint, so
    a caller inside a transaction can catch it and carry on.
    """
    if kind not in (Room.Kind.DM, Room.Kind.PROJECT):
        raise InvalidInput("Conversation rooms are direct or project conversations.")
    with transaction.atomic():
        room = Room.objects.create(slug=slug, name=name[:80], kind=kind, created_by=other, dm_key=dm_key)
        Membership.objects.bulk_create(
            [
                Membership(room=room, user=owner, role=Membership.Role.OWNER),
                Membership(room=room, user=other, role=Membership.Role.MEMBER),
            ]
        )
        for user in (owner, other):
            _room_added(user.id, room)
    return room


def dm_get_or_create(*, user, other_username) -> tuple[Room, bool]:
    """The one direct-message room between `user` and `other_username`; (room, created).

    Idempotent and race-safe: the database keeps one room per pair (Room.dm_key), so of
    concurrent first calls one creates it and the others read it. Exactly the two users are
    members; nobody can join, be invited or be removed. Raises InvalidInput for yourself,
    NotFound for an unknown or inactive user. Both users' `/ws/` streams hear `room.added`.
    """
    require_user(user)
    if not isinstance(other_username, str) or not other_username:
        raise InvalidInput("username is required.")
    other = User.objects.filter(username=other_username, is_active=True).first()
    if other is None:
        raise NotFound("No such user.")
    if other.pk == user.pk:
        raise InvalidInput("You cannot start a direct conversation with yourself.")
    low, high = sorted((user, other), key=lambda u: u.pk)
    key = f"{low.pk}:{high.pk}"
    room = Room.objects.filter(dm_key=key).first()
    if room is not None:
        return room, False
    slug = f"dm-{low.pk}-{high.pk}"
    for attempt in range(2):
        try:
            return (
                conversation_room_create(
                    slug=slug, name=f"{low.username} · {high.username}", kind=Room.Kind.DM,
                    owner=low, other=high, dm_key=key,
                ),
                True,
            )
        except IntegrityError:
            room = Room.objects.filter(dm_key=key).first()
            if room is not None:
                return room, False  # a concurrent call created it first
            if attempt:
                raise
            # Someone named an ordinary room "dm-<a>-<b>": the DM takes a suffixed slug.
            slug = f"dm-{low.pk}-{high.pk}-{secrets.token_hex(3)}"
    raise AssertionError("unreachable")


# Images, presets, retention, the announcement -----------------------------------------


def _store(content: bytes, name: str) -> str:
    """Save bytes under MEDIA_ROOT; returns the stored name."""
    return Message._meta.get_field("image").storage.save(name, ContentFile(content))


def _unstore(name: str | None) -> None:
    if name:
        Message._meta.get_field("image").storage.delete(name)


def _send_with_stored_image(*, sender, room: Room, body, client_id: str, kind: str, image_name: str):
    """message_send with an image file already saved; the file is removed again unless it
    became part of a new message (refused, rate-limited, or a retry of an earlier one)."""
    try:
        message, created = message_send(
            sender=sender, room=room, body=body, client_id=client_id, kind=kind, image=image_name
        )
    except BaseException:
        _unstore(image_name)
        raise
    if not created:
        _unstore(image_name)
    return message, created


def message_send_image(*, sender, room: Room, upload, body="", client_id="") -> tuple[Message, bool]:
    """Send an uploaded picture (kind `image`, optional caption `body`) like message_send.

    The upload is verified, stripped of metadata and re-encoded by core.images before
    anything is stored. Raises InvalidImage (not a sound JPEG/PNG/GIF/WebP, a
    decompression bomb, truncated), TooLarge (over PARLEY_UPLOAD_MAX_BYTES), and whatever
    message_send raises; on any refusal neither a row nor a file is left behind. A
    `client_id` already used answers with the first message before any image work.
    """
    require_user(sender)
    client_id = _clean_client_id(client_id)
    body = clean_text(body, field="body", max_length=settings.PARLEY_MAX_BODY, required=False)
    if not selectors.room_may_read(user=sender, room=room):
        raise NotFound("No such room.")
    if client_id:
        existing = _sent_before(sender, client_id)
        if existing is not None:
            return existing, False
    processed = images.process_upload(upload)
    name = _store(processed.content, message_image_path(None, f"image.{processed.extension}"))
    return _send_with_stored_image(
        sender=sender, room=room, body=body, client_id=client_id, kind=Message.Kind.IMAGE, image_name=name
    )


def preset_post(*, by, room: Room, preset_id, client_id="") -> tuple[Message, bool]:
    """Staff post a preset into a room as a `preset` message (through message_send, so it
    is numbered, rate-limited and broadcast like any other). The message gets its own copy
    of the preset's picture: recalling or deleting it leaves the preset intact."""
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff may post presets.")
    if not isinstance(preset_id, int) or isinstance(preset_id, bool):
        raise InvalidInput("id must be a preset id.")
    preset = Preset.objects.filter(pk=preset_id).first()
    if preset is None:
        raise NotFound("No such preset.")
    client_id = _clean_client_id(client_id)
    if not preset.image:
        return message_send(sender=by, room=room, body=preset.body, client_id=client_id, kind=Message.Kind.PRESET)
    if not selectors.room_may_read(user=by, room=room):
        raise NotFound("No such room.")
    if client_id:
        existing = _sent_before(by, client_id)
        if existing is not None:
            return existing, False
    with preset.image.open("rb") as source:
        content = source.read()
    name = _store(content, message_image_path(None, preset.image.name))
    return _send_with_stored_image(
        sender=by, room=room, body=preset.body, client_id=client_id, kind=Message.Kind.PRESET, image_name=name
    )


PURGE_BATCH = 200
TOMBSTONE_DROP_BATCH = 1000


def _expired(room: Room, now) -> Q | None:
    """Which live messages of the room its retention policy drops, or None for none."""
    condition = None
    if room.retention_max_age is not None:
        condition = Q(created_at__lt=now - room.retention_max_age)
    if room.retention_max_count is not None:
        keep = room.retention_max_count
        if keep == 0:
            by_count = Q(seq__gt=0)
        else:
            newest = (
                Message.objects.filter(room=room, deleted=False)
                .order_by("-seq")
                .values_list("seq", flat=True)[keep - 1 : keep]
            )
            oldest_kept = next(iter(newest), None)
            by_count = Q(seq__lt=oldest_kept) if oldest_kept is not None else None
        if by_count is not None:
            condition = by_count if condition is None else condition | by_count
    return condition


def room_purge(*, room: Room, now=None, progress=None) -> tuple[int, int]:
    """Enforce the room's retention (Room.retention_max_age / retention_max_count).

    Messages past it become deletion tombstones exactly as message_delete makes them —
    each takes a new rev and is announced as `message.deleted`, their images are removed —
    so no connected or resuming client keeps showing them. Tombstones older than
    PARLEY_TOMBSTONE_SECONDS are then dropped for good, and Room.horizon_rev rises to the
    highest dropped rev, so a `resume` from below it answers `truncated`. Works in
    batches, each in its own transaction with the room row locked; safe to run again or
    concurrently. `progress(tombstoned, dropped)` is called after each batch.
    Returns (messages tombstoned, tombstones dropped).
    """
    now = now or timezone.now()
    tombstoned = dropped = 0
    while True:
        with transaction.atomic():
            locked = _lock_room(room.id)
            condition = _expired(locked, now)
            if condition is None:
                break
            batch = list(
                Message.objects.filter(room=locked, deleted=False).filter(condition).order_by("seq")[:PURGE_BATCH]
            )
            if not batch:
                break
            for message in batch:
                was_live = not message.recalled
                _discard_image_after_commit(message)
                _change(locked, message, deleted=True, body="", image=None, deleted_at=now)
                _announce(locked, message, was_live=was_live)
        tombstoned += len(batch)
        if progress:
            progress(tombstoned, dropped)
    cutoff = now - timedelta(seconds=settings.PARLEY_TOMBSTONE_SECONDS)
    while True:
        with transaction.atomic():
            locked = _lock_room(room.id)
            old = list(
                Message.objects.filter(room=locked, deleted=True)
                .filter(Q(deleted_at__lt=cutoff) | Q(deleted_at__isnull=True))
                .order_by("rev")
                .values_list("pk", "rev")[:TOMBSTONE_DROP_BATCH]
            )
            if not old:
                break
            # Raise the horizon in the same transaction: nobody can resume across the gap
            # without hearing that their replay is incomplete.
            horizon = max(rev for _, rev in old)
            Room.objects.filter(pk=locked.pk, horizon_rev__lt=horizon).update(horizon_rev=horizon)
            Message.objects.filter(pk__in=[pk for pk, _ in old]).delete()
        dropped += len(old)
        if progress:
            progress(tombstoned, dropped)
    room.horizon_rev = Room.objects.filter(pk=room.pk).values_list("horizon_rev", flat=True).first() or 0
    return tombstoned, dropped


def rooms_with_retention():
    return Room.objects.filter(Q(retention_max_age__isnull=False) | Q(retention_max_count__isnull=False))


def announcement_frame(announcement: Announcement | None) -> dict:
    return {
        "type": "announcement",
        "text": announcement.text if announcement else "",
        "image": announcement.image.url if announcement and announcement.image else None,
    }


def announcement_set(*, by, text=None, image=None, clear_image=False) -> Announcement:
    """Staff set the global announcement; every connected socket hears `announcement`.

    `text` None keeps the current text ("" clears it); `image` (an upload) replaces the
    background picture, `clear_image` removes it. Raises NotAllowed for non-staff,
    InvalidImage/TooLarge for a bad picture.
    """
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff may set the announcement.")
    if text is not None:
        text = clean_text(text, field="text", max_length=settings.PARLEY_MAX_BODY, required=False)
    new_name = None
    if image is not None:
        processed = images.process_upload(image)
        new_name = _store(processed.content, announcement_image_path(None, f"bg.{processed.extension}"))
    try:
        with transaction.atomic():
            announcement, _ = Announcement.objects.select_for_update().get_or_create(pk=Announcement.SINGLETON_ID)
            old_name = announcement.image.name if announcement.image else None
            if text is not None:
                announcement.text = text
            if new_name:
                announcement.image = new_name
            elif clear_image:
                announcement.image = None
            announcement.updated_by = by
            announcement.save()
            if old_name and old_name != (announcement.image.name if announcement.image else None):
                transaction.on_commit(lambda: _unstore(old_name))
            events.publish_on_commit(events.EVERYONE, events.user_frame(announcement_frame(announcement)))
    except BaseException:
        _unstore(new_name)
        raise
    return announcement
