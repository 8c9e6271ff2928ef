"""Who may see what, and the reads that feed the API, the sockets and the pages.

A room someone may not read is answered exactly like a room that does not exist
(NotFound), so slugs leak nothing.
"""

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet

from chat.models import Membership, Message, Room
from core.errors import AuthRequired, NotFound

HISTORY_PAGE = 50
HISTORY_MAX_PAGE = 200


def _is_user(user) -> bool:
    return user is not None and user.is_authenticated


def room_may_read(*, user, room: Room, membership: Membership | None = None) -> bool:
    if room.is_public:
        return _is_user(user) or settings.PARLEY_ANONYMOUS_READ
    if not _is_user(user):
        return False
    if membership is not None:
        return membership.room_id == room.id and membership.user_id == user.id
    return Membership.objects.filter(room=room, user=user).exists()


def room_get_for_user(*, user, slug: str) -> Room:
    """The room if `user` may read it, else NotFound (or AuthRequired for an anonymous
    visitor where only a login would help)."""
    room = Room.objects.filter(slug=slug).first()
    if room is None or not room_may_read(user=user, room=room):
        if room is not None and room.is_public and not _is_user(user):
            raise AuthRequired()
        raise NotFound("No such room.")
    return room


def room_get_by_id_for_user(*, user, room_id: int) -> Room:
    room = Room.objects.filter(pk=room_id).first()
    if room is None or not room_may_read(user=user, room=room):
        raise NotFound("No such room.")
    return room


def membership_get(*, user, room: Room) -> Membership | None:
    if not _is_user(user):
        return None
    return Membership.objects.filter(room=room, user=user).first()


def _unread_filter(user) -> Q:
    """Other people's live, non-system messages after the member's read marker (SPEC §2)."""
    return (
        Q(room__messages__seq__gt=F("last_read_seq"))
        & Q(room__messages__deleted=False)
        & Q(room__messages__recalled=False)
        & ~Q(room__messages__kind=Message.Kind.SYSTEM)
        & ~Q(room__messages__sender_id=user.id)
    )


def memberships_with_unread(*, user) -> QuerySet[Membership]:
    """The user's memberships with `unread_count`, in one grouped query."""
    return (
        Membership.objects.filter(user=user)
        .select_related("room")
        .annotate(unread_count=Count("room__messages", filter=_unread_filter(user)))
    )


def unread_counts(*, user) -> dict[str, int]:
    return {m.room.slug: m.unread_count for m in memberships_with_unread(user=user)}


def unread_count(*, user, room: Room) -> int:
    membership = memberships_with_unread(user=user).filter(room=room).first()
    return membership.unread_count if membership else 0


def room_list_for_user(*, user) -> list[tuple[Room, Membership | None, int]]:
    """Rooms the user can see: their own (with unread counts) and every public room."""
    rows: dict[int, tuple[Room, Membership | None, int]] = {}
    if _is_user(user):
        for membership in memberships_with_unread(user=user):
            rows[membership.room_id] = (membership.room, membership, membership.unread_count)
    if _is_user(user) or settings.PARLEY_ANONYMOUS_READ:
        for room in Room.objects.filter(kind=Room.Kind.PUBLIC).exclude(pk__in=rows.keys()):
            rows[room.id] = (room, None, 0)
    return sorted(rows.values(), key=lambda row: (row[0].kind != Room.Kind.PUBLIC, row[0].name.lower()))


def room_members(*, room: Room) -> QuerySet[Membership]:
    return Membership.objects.filter(room=room).select_related("user__profile").order_by("joined_at")


def _messages(room: Room) -> QuerySet[Message]:
    return Message.objects.filter(room=room).select_related("sender__profile")


def message_history(
    *, room: Room, before_seq: int | None = None, after_seq: int | None = None, limit: int = HISTORY_PAGE
) -> list[Message]:
    """A page of the room's visible history in ascending seq; deleted messages left out.

    Default: the latest `limit`. `before_seq`: the page just older than it. `after_seq`:
    the messages after it, oldest first (what a poller missed).
    """
    limit = max(1, min(limit, HISTORY_MAX_PAGE))
    messages = _messages(room).filter(deleted=False)
    if after_seq is not None:
        return list(messages.filter(seq__gt=after_seq).order_by("seq")[:limit])
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    page = list(messages.order_by("-seq")[:limit])
    page.reverse()
    return page


def message_changes_since(*, room: Room, rev: int, limit: int) -> list[Message]:
    """Every message created or changed after revision `rev`, in rev order, tombstones included."""
    return list(_messages(room).filter(rev__gt=rev).order_by("rev")[:limit])


def message_get_for_user(*, user, message_id: int) -> Message:
    message = Message.objects.select_related("room", "sender__profile").filter(pk=message_id).first()
    if message is None or message.deleted or not room_may_read(user=user, room=message.room):
        raise NotFound("No such message.")
    return message
