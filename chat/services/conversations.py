"""Two-person rooms: direct messages and the conversations other apps (projects) open."""

import secrets

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from chat.models import Membership, Room
from chat.services.changes import tell_room_added
from core.errors import InvalidInput, NotFound
from core.validation import require_user

User = get_user_model()


def conversation_room_create(*, slug: str, name: str, kind: str, starter, other, dm_key: str | None = None) -> Room:
    """Create a non-public room whose only members are `starter` and `other`, and tell
    both users' streams (`room.added`) after commit. Other apps (projects) create their
    rooms here rather than writing chat rows themselves.

    Both are plain members: in a conversation between two people nobody moderates the
    other (SPEC §6.4), whoever started it and whoever owns the project it is about.

    Raises IntegrityError when the slug or `dm_key` is taken (the caller re-reads: that is
    how concurrent get-or-create calls end up with one room). Runs in its own savepoint, so
    a caller inside a transaction can catch it and carry on.
    """
    if kind not in (Room.Kind.DM, Room.Kind.PROJECT):
        raise InvalidInput("Conversation rooms are direct or project conversations.")
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
                    starter=user, other=other, dm_key=key,
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

