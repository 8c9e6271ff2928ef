"""Rooms and who is in them: create, join, leave, invite, remove, the read marker."""

from datetime import UTC

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat import events, selectors
from chat.models import SLUG_PATTERN, TOPIC_MAX, Membership, Message, Room
from chat.services.changes import announce, append, lock_room, system_message, tell_room_added, tell_room_left
from core.errors import InvalidInput, NotAllowed, NotFound
from core.ratelimit import check_rate
from core.validation import clean_text, require_user

User = get_user_model()

CREATABLE_KINDS = (Room.Kind.PUBLIC, Room.Kind.PRIVATE)
# The system names conversations with these (chat/services/conversations.py).
RESERVED_SLUG_PREFIXES = ("dm-", "project-")


def clean_room_slug(slug) -> str:
    """A slug people may give a room: SLUG_PATTERN, and none of the system's prefixes.

    The reserved prefixes are refused outright, before anything is looked up, so the
    answer is the same whether such a conversation exists or not: a slug tells an
    outsider nothing about who talks to whom, and nobody can squat a conversation's name.
    """
    # fullmatch: `$` alone would let a trailing newline into the slug.
    if not isinstance(slug, str) or not RegexValidator(SLUG_PATTERN).regex.fullmatch(slug):
        raise InvalidInput("slug must be 1-50 characters of a-z, 0-9, _ and -.")
    if slug.startswith(RESERVED_SLUG_PREFIXES):
        raise InvalidInput("Slugs starting with dm- or project- are reserved for conversations.")
    return slug


def room_slug_suggest(name) -> str:
    """A free slug for a room called `name`: its ASCII letters and digits (slugified), or
    for a name without any (a Chinese-only name) `room-` and a few random characters;
    a number is added when that slug is taken."""
    import secrets

    from django.utils.text import slugify

    base = slugify(name if isinstance(name, str) else "")[:40].strip("-_")
    if not base or base.startswith(RESERVED_SLUG_PREFIXES):
        base = f"room-{secrets.token_hex(3)}"
    slug, n = base, 1
    while Room.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def room_create(*, creator, slug, name, kind=Room.Kind.PUBLIC) -> Room:
    """Create a public or private room owned by `creator`. A malformed, reserved
    (clean_room_slug) or taken slug is InvalidInput; past PARLEY_ROOM_CREATE_PER_HOUR,
    RateLimited (only well-formed requests count)."""
    require_user(creator)
    slug = clean_room_slug(slug)
    name = clean_text(name, field="name", max_length=80)
    if kind not in CREATABLE_KINDS:
        raise InvalidInput("kind must be 'public' or 'private'.")
    # Every room lands in lists and sidebars: an unlimited creator floods them for all.
    check_rate(
        f"room-create:{creator.id}",
        per_hour=settings.PARLEY_ROOM_CREATE_PER_HOUR,
        detail="You are creating rooms too fast; try again in {seconds} s.",
    )
    try:
        with transaction.atomic():
            room = Room.objects.create(slug=slug, name=name, kind=kind, created_by=creator)
            Membership.objects.create(room=room, user=creator, role=Membership.Role.OWNER)
    except IntegrityError:
        raise InvalidInput("That slug is taken.") from None
    return room


def room_join(*, user, room: Room) -> Membership:
    """Join a public room (idempotent). Private rooms are joined by invitation only, and
    answer NotFound so their existence is not revealed. Joins that add a membership
    count against PARLEY_ROOM_JOIN_PER_HOUR (RateLimited past it)."""
    require_user(user)
    membership = selectors.membership_get(user=user, room=room)
    if membership is not None:
        return membership
    if not room.is_public:
        raise NotFound("No such room.")
    check_rate(
        f"room-join:{user.id}",
        per_hour=settings.PARLEY_ROOM_JOIN_PER_HOUR,
        detail="You are joining rooms too fast; try again in {seconds} s.",
    )
    with transaction.atomic():
        # Locked and read again: a join racing a switch to private (room_update) must not
        # make a member of someone the switch has just shut out.
        room = lock_room(room.id)
        if not room.is_public:
            membership = selectors.membership_get(user=user, room=room)
            if membership is None:
                raise NotFound("No such room.")
            return membership
        existing = selectors.membership_get(user=user, room=room)
        if existing is not None:  # a concurrent join, or a first send, won the lock first
            return existing
        # Announced as sending-joins are (chat/services/messages.py): the "joined" message
        # first, so the new member's read marker already covers it.
        joined = system_message(room, f"{user.username} joined")
        membership = Membership.objects.create(room=room, user=user, last_read_seq=joined.seq)
        tell_room_added(user.id, room)
    return membership


@transaction.atomic
def room_leave(*, user, room: Room) -> None:
    """Leave a room. Leaving a private room takes its sockets away at once."""
    require_user(user)
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT):
        raise NotAllowed("You cannot leave a direct conversation.")
    room = lock_room(room.id)
    membership = Membership.objects.filter(room=room, user=user).first()
    if membership is None:
        if room.is_public:
            return
        raise NotFound("No such room.")
    membership.delete()
    if room.is_public:
        tell_room_left(user.id, room)  # a public room's sockets stay: only the user streams drop it
    else:
        system_message(room, f"{user.username} left", revoke=(user.id,))


def _moderator(by, room: Room) -> Membership | None:
    """`by`'s membership, once they are known to moderate `room` (its owner/admins, or
    staff: the admin acts through these services). NotFound for a room they cannot see."""
    actor = selectors.membership_get(user=by, room=room)
    if actor is None and not room.is_public and not by.is_staff:
        raise NotFound("No such room.")
    return actor


@transaction.atomic
def room_invite(*, by, room: Room, username) -> Membership:
    """Add a user to a private room; only its owner or admins (or staff) may."""
    require_user(by)
    room = lock_room(room.id)
    actor = _moderator(by, room)
    if room.kind != Room.Kind.PRIVATE:
        raise InvalidInput("Only private rooms take invitations.")
    if not selectors.room_may_moderate(user=by, membership=actor):
        raise NotAllowed("Only the room's owner or admins may invite.")
    if not isinstance(username, str) or not username:
        raise InvalidInput("username is required.")
    invitee = User.objects.filter(username=username, is_active=True).first()
    if invitee is None:
        raise NotFound("No such user.")
    if selectors.room_ban_get(user=invitee, room=room) is not None:
        raise NotAllowed("That user is banned from this room.")
    membership, created = Membership.objects.get_or_create(
        room=room, user=invitee, defaults={"last_read_seq": room.last_seq}
    )
    if created:
        system_message(room, f"{by.username} added {invitee.username}")
        tell_room_added(invitee.id, room)
    return membership


@transaction.atomic
def room_remove_member(*, by, room: Room, username: str) -> None:
    """Remove someone from a room (owner/admin, or staff). Their open sockets close with 4403."""
    require_user(by)
    room = lock_room(room.id)
    actor = _moderator(by, room)
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT):
        raise NotAllowed("Members of this conversation cannot be removed.")
    if not selectors.room_may_moderate(user=by, membership=actor):
        raise NotAllowed("Only the room's owner or admins may remove members.")
    target = Membership.objects.filter(room=room, user__username=username).select_related("user").first()
    if target is None:
        raise NotFound("No such member.")
    if target.role == Membership.Role.OWNER:
        raise NotAllowed("The owner cannot be removed.")
    target.delete()
    if room.is_public:
        tell_room_left(target.user_id, room)
    system_message(
        room, f"{target.user.username} was removed", revoke=(() if room.is_public else (target.user_id,))
    )


@transaction.atomic
def room_update(*, by, room: Room, name=None, kind=None, topic=None) -> Room:
    """Rename a room or switch it between public and private: its owner/admins or staff
    (the admin changes rooms through here). None leaves a field as it is.

    The change is one system message ("stan made the room private"). Going private takes
    the room from everyone who is not a member, as a removal does: their sockets (and
    anonymous readers') close with 4403 before that message reaches anyone, and they can
    neither read nor send any more. Raises InvalidInput for a bad name or kind, or for a
    direct or project conversation (they keep theirs), NotAllowed for non-moderators,
    NotFound for a private room `by` cannot see.
    """
    require_user(by)
    room = lock_room(room.id)
    actor = _moderator(by, room)
    if not selectors.room_may_moderate(user=by, membership=actor):
        raise NotAllowed("Only the room's owner or admins may change it.")
    if room.kind not in CREATABLE_KINDS:
        raise InvalidInput("Direct and project conversations cannot be changed.")
    if name is not None:
        name = clean_text(name, field="name", max_length=80)
    if kind is not None and kind not in CREATABLE_KINDS:
        raise InvalidInput("kind must be 'public' or 'private'.")
    if topic is not None:
        topic = clean_text(topic, field="topic", max_length=TOPIC_MAX, required=False)
        if topic != room.topic:
            # Its own system message (the header follows it live), before any change of kind.
            room.topic = topic
            Room.objects.filter(pk=room.pk).update(topic=topic)
            system_message(room, f"{by.username} set the topic to “{topic}”" if topic else f"{by.username} cleared the topic")
    news = []
    if name is not None and name != room.name:
        room.name = name
        news.append(f"renamed the room to “{name}”")
    kind_changed = kind is not None and kind != room.kind
    if kind_changed:
        room.kind = kind
        news.append(f"made the room {kind}")
    if not news:
        return room
    Room.objects.filter(pk=room.pk).update(name=room.name, kind=room.kind)
    message = append(room, kind=Message.Kind.SYSTEM, body=f"{by.username} {' and '.join(news)}")
    if not kind_changed:
        announce(room, message)
    elif room.is_public:
        announce(room, message, public=True)
    else:
        # Who keeps the room; read under the lock, which invitations and joins take too.
        members = tuple(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        announce(room, message, public=False, keep=members)
    return room


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
        rows = selectors.unread_rows(user=user, room_id=room.id)
        if not rows:  # left the room meanwhile
            raise InvalidInput("Join the room to keep a read marker.")
        row = rows[0]
        # `rev` and `last_read_seq` let each user stream tell whether this count covers
        # exactly the changes it has seen (chat.consumers_user.UserConsumer).
        events.publish_on_commit(
            events.user_group(user.id),
            events.user_frame(
                events.unread(room.slug, count=row.count, last_seq=row.last_seq, mentions=row.mentions),
                room_id=room.id,
                rev=row.rev,
                last_read_seq=row.last_read_seq,
            ),
        )
    return row.count


def room_settings_update(*, user, room: Room, notify=None, muted_until=...) -> dict:
    """Change the user's notification settings for `room` (a member's): `notify` one of
    all / mentions / none (None: unchanged), `muted_until` an ISO 8601 time or None to
    unmute (left out: unchanged). A time without a zone is UTC. Bad values are
    InvalidInput and change nothing. Returns the settings as now (selectors.room_settings)."""
    require_user(user)
    membership = selectors.membership_get(user=user, room=room)
    if membership is None:
        raise InvalidInput("Join the room to keep settings for it.")
    fields = {}
    if notify is not None:
        if notify not in Membership.Notify.values:
            raise InvalidInput("notify must be all, mentions or none.")
        fields["notify"] = notify
    if muted_until is not ...:
        fields["muted_until"] = clean_time(muted_until, field="muted_until")
    if fields:
        Membership.objects.filter(pk=membership.pk).update(**fields)
        for name, value in fields.items():
            setattr(membership, name, value)
        settings_now = selectors.settings_of(membership, room)
        # The user's other tabs follow (their badges and notifications obey the settings).
        events.publish_on_commit(
            events.user_group(user.id), events.user_frame({"type": "room.settings", **settings_now})
        )
    return selectors.settings_of(membership, room)


def clean_time(value, *, field: str):
    """None, or an ISO 8601 date-time string as an aware datetime (no zone: UTC)."""
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) and len(value) <= 64 else None
    if parsed is None:
        raise InvalidInput(f"{field} must be an ISO 8601 date-time or null.")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


RETENTION_MAX_COUNT = 1_000_000


@transaction.atomic
def room_set_retention(*, by, room: Room, max_age=None, max_count=None) -> Room:
    """How long the room keeps messages: `max_age` (a timedelta, or None: no age limit) and
    `max_count` (the newest N, or None). Its owner/admins or staff; enforced by the
    periodic purge (chat.retention). Conversations keep everything."""
    import datetime

    require_user(by)
    room = lock_room(room.id)
    actor = _moderator(by, room)
    if not selectors.room_may_moderate(user=by, membership=actor):
        raise NotAllowed("Only the room's owner or admins may change it.")
    if room.kind not in CREATABLE_KINDS:
        raise InvalidInput("Direct and project conversations cannot be changed.")
    if max_age is not None and (not isinstance(max_age, datetime.timedelta) or max_age.total_seconds() < 60):
        raise InvalidInput("max_age must be at least a minute.")
    if max_count is not None and (
        not isinstance(max_count, int) or isinstance(max_count, bool) or not 1 <= max_count <= RETENTION_MAX_COUNT
    ):
        raise InvalidInput(f"max_count must be 1-{RETENTION_MAX_COUNT}.")
    Room.objects.filter(pk=room.pk).update(retention_max_age=max_age, retention_max_count=max_count)
    room.retention_max_age, room.retention_max_count = max_age, max_count
    return room
