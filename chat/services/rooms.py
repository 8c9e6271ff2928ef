"""Rooms and who is in them: create, join, leave, invite, remove, the read marker."""

from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.db import IntegrityError, transaction

from chat import events, selectors
from chat.models import SLUG_PATTERN, Membership, Room
from chat.services.changes import lock_room, system_message, tell_room_added, tell_room_left
from core.errors import InvalidInput, NotAllowed, NotFound
from core.validation import clean_text, require_user

User = get_user_model()

CREATABLE_KINDS = (Room.Kind.PUBLIC, Room.Kind.PRIVATE)


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


@transaction.atomic
def room_invite(*, by, room: Room, username) -> Membership:
    """Add a user to a private room; only its owner or admins may."""
    require_user(by)
    room = lock_room(room.id)
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
        system_message(room, f"{by.username} added {invitee.username}")
        tell_room_added(invitee.id, room)
    return membership


@transaction.atomic
def room_remove_member(*, by, room: Room, username: str) -> None:
    """Remove someone from a room (owner/admin). Their open sockets close with 4403."""
    require_user(by)
    room = lock_room(room.id)
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
    if room.is_public:
        tell_room_left(target.user_id, room)
    system_message(
        room, f"{target.user.username} was removed", revoke=(() if room.is_public else (target.user_id,))
    )


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
        # exactly the changes it has seen (chat.consumers.UserConsumer).
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
