"""Two-person rooms: direct messages and the conversations other apps (projects) open."""

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import selectors
from chat.models import Membership, Room
from chat.services.changes import lock_room, system_message, tell_room_added
from core.errors import InvalidInput, NotAllowed, NotFound

SLUG_PREFIXES = {Room.Kind.DM: "dm-", Room.Kind.PROJECT: "project-"}


def conversation_room_create(*, name: str, kind: str, starter, other, dm_key: str | None = None) -> Room:
    """Create a non-public room whose only members are `starter` and `other`, and tell
    both users' streams (`room.added`) after commit. Other apps (projects) create their
    rooms here rather than writing chat rows themselves.

    Both are plain members: in a conversation between two people nobody moderates the
    other (SPEC §6.4), whoever started it and whoever owns the project it is about.
    The slug is the kind's reserved prefix and a random part: it names nobody, so it
    can be neither guessed (who talks to whom) nor taken beforehand (room_create refuses
    the prefixes). Rooms made before keep their `dm-<id>-<id>` slugs and work as ever.

    Raises IntegrityError when `dm_key` is taken (the caller re-reads: that is how
    concurrent get-or-create calls end up with one room). Runs in its own savepoint, so
    a caller inside a transaction can catch it and carry on.
    """
    if kind not in SLUG_PREFIXES:
        raise InvalidInput("Conversation rooms are direct or project conversations.")
    slug = SLUG_PREFIXES[kind] + secrets.token_hex(8)
    with transaction.atomic():
        room = Room.objects.create(slug=slug, name=name[:80], kind=kind, created_by=starter, dm_key=dm_key)
        Membership.objects.bulk_create(
            [Membership(room=room, user=user, role=Membership.Role.MEMBER) for user in (starter, other)]
        )
        for user in (starter, other):
            tell_room_added(user.id, room)
    return room


def dm_get_or_create(*, user, other_username) -> tuple[Room, bool]:
    """The one direct-message room between `user` and `other_username`; (room, created).

    Idempotent and race-safe: the database keeps one room per pair (Room.dm_key), so of
    concurrent first calls one creates it and the others read it. Exactly the two users are
    members; nobody can join, be invited or be removed. Raises InvalidInput for yourself,
    NotFound for an unknown or inactive user, NotAllowed when `other` has blocked `user`. Both users' `/ws/` streams hear `room.added`.
    """
    other, room = selectors.dm_find(user=user, username=other_username)
    if selectors.is_blocked_by(user=user, other=other):
        raise NotAllowed("You cannot open a conversation with this user.")
    if room is not None:
        return room, False
    low, high = sorted((user, other), key=lambda u: u.pk)
    try:
        room = conversation_room_create(
            name=f"{low.username} · {high.username}", kind=Room.Kind.DM, starter=user, other=other,
            dm_key=selectors.dm_key(user, other),
        )
    except IntegrityError:
        _, room = selectors.dm_find(user=user, username=other_username)
        if room is None:
            raise
        return room, False  # a concurrent call created it first
    return room, True


@transaction.atomic
def conversation_close(*, user, room: Room) -> Room:
    """Close a project conversation (SPEC §6.6): its history stays, nobody can send in it
    any more. Only the member who did not start it (the project's owner) may; a closed
    one stays closed (idempotent). One system message tells both sides, live.

    Raises NotFound when `user` may not read the room, NotAllowed for a room that is not
    a project conversation or for its visitor.
    """
    if not selectors.room_may_read(user=user, room=room) or not Membership.objects.filter(room=room, user=user).exists():
        raise NotFound("No such room.")
    if room.kind != Room.Kind.PROJECT or room.created_by_id == user.pk:
        raise NotAllowed("Only the project's owner can close this conversation.")
    closed = lock_room(room.pk).closed_at
    if closed is None:
        room.closed_at = timezone.now()
        Room.objects.filter(pk=room.pk).update(closed_at=room.closed_at)
        system_message(room, f"{user.username} closed the conversation")
    else:
        room.closed_at = closed
    return room
