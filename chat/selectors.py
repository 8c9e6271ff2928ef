"""Who may see what, and the reads that feed the API, the sockets and the pages.

A room someone may not read is answered exactly like a room that does not exist
(NotFound), so slugs leak nothing.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat.models import (
    Announcement,
    AuditEntry,
    Block,
    Membership,
    Mention,
    Message,
    Preset,
    PushSubscription,
    Reaction,
    Report,
    Room,
    RoomBan,
    RoomMute,
)
from core import rows as core_rows
from core.errors import AuthRequired, InvalidInput, NotAllowed, NotFound

HISTORY_PAGE = 50
HISTORY_MAX_PAGE = 200


def _is_user(user) -> bool:
    return user is not None and user.is_authenticated


def may_read(*, public: bool, logged_in: bool, member: bool) -> bool:
    """The reading rule (SPEC §2): a public room is open to every logged-in user and, with
    PARLEY_ANONYMOUS_READ, to anonymous visitors; any other room to its members only."""
    if public:
        return logged_in or settings.PARLEY_ANONYMOUS_READ
    return logged_in and member


def _until_open(prefix: str = "") -> Q:
    """Mutes, bans: those that have not ended yet (`until` empty means until lifted)."""
    return Q(**{f"{prefix}until__isnull": True}) | Q(**{f"{prefix}until__gt": timezone.now()})


def shown_name(username: str) -> str:
    """The display name of `username` (the username itself when they have none, or no such user)."""
    from django.contrib.auth import get_user_model

    row = get_user_model().objects.filter(username=username).values_list("profile__display_name", flat=True).first()
    return row or username


def room_ban_get(*, user, room: Room) -> RoomBan | None:
    """The user's ban from the room while it lasts, else None."""
    if not _is_user(user):
        return None
    return RoomBan.objects.filter(_until_open(), room=room, user=user).first()


def room_mutes(*, room: Room) -> dict[int, datetime]:
    """The mutes in `room` that still last, as {user id: until} (the members panel)."""
    return dict(RoomMute.objects.filter(room=room, until__gt=timezone.now()).values_list("user_id", "until"))


def room_bans(*, room: Room) -> list[RoomBan]:
    """The bans from `room` that still last, longest-standing first (the members panel)."""
    return list(RoomBan.objects.filter(_until_open(), room=room).select_related("user__profile").order_by("created_at", "id"))


def room_mute_get(*, user, room: Room) -> RoomMute | None:
    """The user's mute in the room while it lasts, else None."""
    if not _is_user(user):
        return None
    return RoomMute.objects.filter(room=room, user=user, until__gt=timezone.now()).first()


@dataclass(frozen=True)
class Standing:
    """Where a logged-in user stands in a room, as a send needs to know it."""

    member: bool
    banned: bool  # a ban that still lasts
    muted: bool  # a mute that still lasts
    # Whether any other member has a push subscription (chat.services.push): most rooms
    # have none, and then a send queues no push.
    others_subscribed: bool

    def may_read(self, room: Room) -> bool:
        """room_may_read for this user, from what was read."""
        if room.is_public:
            return not self.banned and may_read(public=True, logged_in=True, member=self.member)
        return may_read(public=False, logged_in=True, member=self.member)


def standing(*, user, room: Room) -> Standing:
    """Membership, ban and mute of a logged-in user, and whether others in the room take
    pushes, in one query. Every send asks all four; as ORM look-ups they were a third of
    a send's time (~1.5 ms of ~5 ms into a 200-member room on SQLite), as one statement
    ~30 µs, and on PostgreSQL one round trip instead of four."""
    return standings(user_ids=[user.pk], room=room)[user.pk]


def standings(*, user_ids: list[int], room: Room) -> dict[int, Standing]:
    """`standing` of several users in one statement (the sends of a group commit)."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    distinct = list(dict.fromkeys(user_ids))
    if not distinct:
        return {}
    # On PostgreSQL the ids are one array: the same statement for any number of senders.
    user_id_field = Membership._meta.get_field("user").target_field
    users, ids = core_rows.rows_sql(connection, [user_id_field], [[user_id] for user_id in distinct])
    sql = (
        f"WITH u(id) AS ({users}) SELECT u.id,"
        f" EXISTS(SELECT 1 FROM {Membership._meta.db_table} WHERE room_id = %s AND user_id = u.id),"
        f" EXISTS(SELECT 1 FROM {RoomBan._meta.db_table} WHERE room_id = %s AND user_id = u.id"
        "  AND (until IS NULL OR until > %s)),"
        f" EXISTS(SELECT 1 FROM {RoomMute._meta.db_table} WHERE room_id = %s AND user_id = u.id AND until > %s),"
        f" EXISTS(SELECT 1 FROM {PushSubscription._meta.db_table} s JOIN {Membership._meta.db_table} m"
        "  ON m.user_id = s.user_id WHERE m.room_id = %s AND s.user_id <> u.id)"
        " FROM u"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*ids, room.pk, room.pk, now, room.pk, now, room.pk])
        found = cursor.fetchall()
    return {
        user_id: Standing(member=bool(member), banned=bool(banned), muted=bool(muted), others_subscribed=bool(others))
        for user_id, member, banned, muted, others in found
    }


def room_may_read(*, user, room: Room, membership: Membership | None = None) -> bool:
    """may_read, and nobody reads a room they are banned from while the ban lasts. Only a
    public room needs asking: a ban ends the membership a private room is read by, and
    nobody may invite the banned user back before it ends (chat.services.room_invite)."""
    if room.is_public and _is_user(user) and room_ban_get(user=user, room=room) is not None:
        return False
    if room.is_public or not _is_user(user):
        return may_read(public=room.is_public, logged_in=_is_user(user), member=False)
    if membership is not None:
        member = membership.room_id == room.id and membership.user_id == user.id
    else:
        member = Membership.objects.filter(room=room, user=user).exists()
    return may_read(public=False, logged_in=True, member=member)


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


# SPEC §2's unread rule, stated once: a message counts as unread for a member when it is
# live (neither recalled nor deleted), not a system message, someone else's, and after the
# member's read marker. `_unread_messages` turns it into SQL for counting; the user stream
# (`/ws/`) evaluates it on each change it hears (`unread_change`).
READER, READ_MARKER = object(), object()
UNREAD_RULE = (
    ("recalled", "is", False),
    ("deleted", "is", False),
    ("kind", "is not", Message.Kind.SYSTEM),
    ("sender_id", "is not", READER),
    ("seq", "after", READ_MARKER),
)


def _unread_messages(user) -> QuerySet[Message]:
    """UNREAD_RULE for the membership row of the outer query."""
    messages = Message.objects.filter(room_id=OuterRef("room_id"))
    bound = {READER: user.id, READ_MARKER: OuterRef("last_read_seq")}
    for field, test, value in UNREAD_RULE:
        value = bound.get(value, value)
        if test == "is":
            messages = messages.filter(**{field: value})
        elif test == "is not":
            messages = messages.exclude(**{field: value})
        else:
            messages = messages.filter(**{f"{field}__gt": value})
    return messages


def _mentioning(messages: QuerySet[Message], user) -> QuerySet[Message]:
    """Those of `messages` that mention `user`: by name, or @all / @room. Not those of
    people `user` blocks: the blocks are read now, so a mention made before the block
    stops counting once it is made (SPEC §6.4)."""
    return messages.filter(
        Q(mentions_all=True) | Exists(Mention.objects.filter(message=OuterRef("pk"), user=user))
    ).exclude(sender_id__in=Block.objects.filter(blocker=user).values("blocked_id"))


def _counted(messages: QuerySet[Message]) -> Subquery:
    counts = messages.order_by().values("room_id").annotate(count=Count("pk")).values("count")
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


def message_counts_as_unread(fields: dict, *, user_id: int, last_read_seq: int) -> bool:
    """UNREAD_RULE for one message given as a dict of its fields (an event's `meta`)."""
    bound = {READER: user_id, READ_MARKER: last_read_seq}
    for field, test, value in UNREAD_RULE:
        value = bound.get(value, value)
        actual = fields[field]
        if test == "is" and actual != value or test == "is not" and actual == value:
            return False
        if test == "after" and not actual > value:
            return False
    return True


def mentioned(meta: dict, *, username: str | None) -> bool:
    """Does the change's message (an event's `meta`) mention `username`?"""
    return bool(meta.get("mentions_all")) or (username is not None and username in meta.get("mentions", ()))


def unread_change(meta: dict, *, user_id: int, last_read_seq: int) -> int:
    """How one room change moves a member's unread count: +1 for a new message that counts,
    -1 for a recall or deletion that takes away one that counted, else 0. `meta` is the
    change's description (chat.events.room_change)."""
    after = message_counts_as_unread(meta, user_id=user_id, last_read_seq=last_read_seq)
    before = not meta["created"] and meta["was_live"] and message_counts_as_unread(
        {**meta, "recalled": False, "deleted": False}, user_id=user_id, last_read_seq=last_read_seq
    )
    return int(after) - int(before)


def memberships_with_unread(*, user) -> QuerySet[Membership]:
    """The user's memberships with `unread_count` and `mention_count` (the unread
    messages that mention them), in one query.

    Each membership counts its room's messages in a grouped subquery that walks the
    (room, seq) unique index from the read marker: only unread rows are read, and no
    sort or group over the joined rows of every room is needed
    (scripts/measure_unread.py: 200 rooms, 100k messages).
    """
    return (
        Membership.objects.filter(user=user)
        .select_related("room")
        .annotate(
            unread_count=_counted(_unread_messages(user)),
            mention_count=_counted(_mentioning(_unread_messages(user), user)),
        )
    )


def unread_counts(*, user) -> dict[str, int]:
    return {m.room.slug: m.unread_count for m in memberships_with_unread(user=user)}


def mention_counts(*, user) -> dict[str, int]:
    return {m.room.slug: m.mention_count for m in memberships_with_unread(user=user)}


MENTIONS_PAGE = 50
MENTIONS_MAX_PAGE = 200


def unread_mentions(*, user, before: int | None = None, limit: int = MENTIONS_PAGE) -> list[Message]:
    """The user's unread mentions (UNREAD_RULE in the rooms they are members of, messages
    that mention them), newest first; `before`: only messages with a lower id."""
    if not _is_user(user):
        return []
    after_marker = Membership.objects.filter(user=user, room_id=OuterRef("room_id"), last_read_seq__lt=OuterRef("seq"))
    messages = (
        Message.objects.filter(recalled=False, deleted=False)
        .exclude(kind=Message.Kind.SYSTEM)
        .exclude(sender_id=user.id)
        .filter(Exists(after_marker))
    )
    messages = _mentioning(messages, user)
    if before is not None:
        messages = messages.filter(pk__lt=before)
    limit = max(1, min(limit, MENTIONS_MAX_PAGE))
    return list(with_details(messages.select_related("room")).order_by("-pk")[:limit])


def unread_count(*, user, room: Room) -> int:
    return membership_counted(user=user, room=room)[0]


def membership_counted(*, user, room: Room) -> tuple[int, int]:
    """The user's (unread count, unread mention count) in `room`; (0, 0) for a non-member."""
    if not _is_user(user):
        return 0, 0
    membership = memberships_with_unread(user=user).filter(room=room).first()
    return (membership.unread_count, membership.mention_count) if membership else (0, 0)


ROOM_PAGE = 200
ROOM_MAX_PAGE = 500
DISCOVER_ROOMS = 20


def _visible_rooms(user) -> QuerySet[Room]:
    """Every room the user can see: their own and, where allowed, every public room."""
    public = _is_user(user) or settings.PARLEY_ANONYMOUS_READ
    mine = Membership.objects.filter(user=user).values("room_id") if _is_user(user) else None
    if mine is None:
        return Room.objects.filter(kind=Room.Kind.PUBLIC) if public else Room.objects.none()
    return Room.objects.filter(Q(kind=Room.Kind.PUBLIC) | Q(pk__in=mine)) if public else Room.objects.filter(pk__in=mine)


def _matching(rooms: QuerySet[Room], q: str | None) -> QuerySet[Room]:
    return rooms.filter(Q(slug__icontains=q) | Q(name__icontains=q)) if q else rooms


def room_list_for_user(
    *, user, after: str | None = None, limit: int = ROOM_PAGE, q: str | None = None
) -> list[tuple[Room, Membership | None, int]]:
    """One page of the rooms the user can see, ordered by slug, starting after `after`:
    (room, their membership or None, unread count). `q` keeps the rooms whose slug or
    name contains it (any case). Two queries however many rooms there are."""
    rooms = _matching(_visible_rooms(user), q)
    if after:
        rooms = rooms.filter(slug__gt=after)
    page = list(rooms.order_by("slug")[: max(1, min(limit, ROOM_MAX_PAGE))])
    memberships = {}
    if _is_user(user) and page:
        memberships = {m.room_id: m for m in memberships_with_unread(user=user).filter(room__in=[r.id for r in page])}
    rows = []
    for room in page:
        membership = memberships.get(room.id)
        rows.append((room, membership, membership.unread_count if membership else 0))
    return rows


def rooms_to_discover(*, user, q: str | None = None, limit: int = DISCOVER_ROOMS) -> list[Room]:
    """Public rooms the user has not joined, most recently active first, at most `limit`
    (the sidebar lists the user's own rooms in full, these only as a sample to search)."""
    if not (_is_user(user) or settings.PARLEY_ANONYMOUS_READ):
        return []
    rooms = Room.objects.filter(kind=Room.Kind.PUBLIC)
    if _is_user(user):
        rooms = rooms.exclude(pk__in=Membership.objects.filter(user=user).values("room_id"))
    return list(_matching(rooms, q).order_by("-last_activity_at", "slug")[:limit])


def notify_default(kind: str) -> str:
    """Two-person conversations tell everything; other rooms only mentions."""
    return Membership.Notify.ALL if kind in (Room.Kind.DM, Room.Kind.PROJECT) else Membership.Notify.MENTIONS


def settings_of(membership: Membership, room: Room) -> dict:
    """A member's settings for a room as REST shows them (the default filled in)."""
    return {
        "room": room.slug,
        "notify": membership.notify or notify_default(room.kind),
        "muted_until": membership.muted_until.isoformat() if membership.muted_until else None,
    }


def room_settings(*, user, room: Room) -> dict:
    """The user's notification settings for `room`; InvalidInput for a reader who is no member."""
    membership = membership_get(user=user, room=room)
    if membership is None:
        raise InvalidInput("Join the room to keep settings for it.")
    return settings_of(membership, room)


def room_members(*, room: Room) -> QuerySet[Membership]:
    return Membership.objects.filter(room=room).select_related("user__profile").order_by("joined_at")


def with_details(messages: QuerySet[Message]) -> QuerySet[Message]:
    """What chat.serializers.message_to_dict reads, loaded with the messages: senders, the
    original of each reply with its sender, and the reactions (one more query per page)."""
    reactions = Reaction.objects.select_related("user").only("emoji", "message", "user__username").order_by("id")
    return messages.select_related("sender__profile", "reply_to__sender__profile").prefetch_related(
        Prefetch("reactions", queryset=reactions, to_attr="reaction_list")
    )


def _messages(room: Room) -> QuerySet[Message]:
    return with_details(Message.objects.filter(room=room))


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


def changes_kept_since(*, room: Room, rev: int) -> bool:
    """Does the room still hold every change after revision `rev`? Not when retention has
    dropped tombstones above it (Room.horizon_rev): a list from there would silently
    leave deletions out."""
    return rev >= room.horizon_rev


def message_around(*, room: Room, seq: int, limit: int = HISTORY_PAGE) -> list[Message]:
    """Up to `limit` visible messages centred on `seq` (about half before it, the rest from
    it on; one side short near either end gives the other more), ascending: a client jumps
    to a message it has not loaded."""
    limit = max(1, min(limit, HISTORY_MAX_PAGE))
    visible = Message.objects.filter(room=room, deleted=False)
    before = list(visible.filter(seq__lt=seq).order_by("-seq").values_list("seq", flat=True)[:limit])
    after = list(visible.filter(seq__gte=seq).order_by("seq").values_list("seq", flat=True)[:limit])
    take_before = min(len(before), max(limit // 2, limit - len(after)))
    seqs = before[:take_before] + after[: limit - take_before]
    if not seqs:
        return []
    return list(_messages(room).filter(deleted=False, seq__gte=min(seqs), seq__lte=max(seqs)).order_by("seq"))


def message_changes_since(*, room_id: int, rev: int, limit: int) -> list[Message]:
    """Every message of the room created or changed after revision `rev`, in rev order,
    tombstones included, each once as it is now: what `?since_rev=`, `resume` and the
    hub's gap fill send."""
    return list(with_details(Message.objects.filter(room_id=room_id, rev__gt=rev)).order_by("rev")[:limit])


def message_get_for_user(*, user, message_id: int) -> Message:
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 0 < message_id < 2**63:
        raise NotFound("No such message.")
    message = Message.objects.select_related("room", "sender__profile").filter(pk=message_id).first()
    if message is None or message.deleted or not room_may_read(user=user, room=message.room):
        raise NotFound("No such message.")
    return message


def message_versions(*, user, message_id: int) -> list[tuple[str, object]]:
    """Every body the message has had, as (body, written at), oldest first: the original
    (at its created_at), then each edit. Readers of the room only; a recalled message
    has none left (its versions went with its content)."""
    message = message_get_for_user(user=user, message_id=message_id)
    if message.recalled:
        return []
    earlier = list(message.versions.order_by("id").values_list("body", "edited_at"))
    return [*earlier, (message.body, message.edited_at or message.created_at)]


def room_peers(*, user, rooms) -> dict[int, object]:
    """For the user's two-person rooms (dm, project) among `rooms`: room id → the other
    member, in one query. Lets a client show "who" instead of a room name."""
    room_ids = [r.id for r in rooms if r.kind in (Room.Kind.DM, Room.Kind.PROJECT)]
    if not room_ids or not _is_user(user):
        return {}
    others = (
        Membership.objects.filter(room_id__in=room_ids)
        .exclude(user=user)
        .select_related("user__profile")
    )
    return {m.room_id: m.user for m in others}


def message_image_may_read(*, user, name: str) -> bool:
    """May `user` see the stored message image `name` ("messages/<file>")? Only while its
    message is live and its room readable by them; anything else looks like a missing file."""
    message = Message.objects.select_related("room").filter(image=name, deleted=False, recalled=False).first()
    return message is not None and room_may_read(user=user, room=message.room)


def message_file_for_reader(*, user, name: str) -> Message | None:
    """The live `file` message whose stored file is `name`, if `user` may read its room."""
    message = Message.objects.select_related("room").filter(file=name, deleted=False, recalled=False).first()
    return message if message is not None and room_may_read(user=user, room=message.room) else None


def dm_key(user, other) -> str:
    """Room.dm_key of the pair: the same whichever of them asks."""
    low, high = sorted((user.pk, other.pk))
    return f"{low}:{high}"


def dm_find(*, user, username) -> tuple[object, Room | None]:
    """The person `username` names for a direct conversation with `user`, and their DM
    room if there is one yet. Raises AuthRequired for an anonymous user, NotFound for an
    unknown or inactive username, InvalidInput for yourself."""
    from django.contrib.auth import get_user_model

    if not _is_user(user):
        raise AuthRequired()
    if not isinstance(username, str) or not username:
        raise InvalidInput("username is required.")
    other = get_user_model().objects.filter(username=username, is_active=True).select_related("profile").first()
    if other is None:
        raise NotFound("No such user.")
    if other.pk == user.pk:
        raise InvalidInput("You cannot start a direct conversation with yourself.")
    return other, Room.objects.filter(dm_key=dm_key(user, other)).first()


def room_may_moderate(*, user, membership: Membership | None) -> bool:
    """Moderators of a room (deleting others' messages, inviting, removing) are its owner
    and admins, and staff everywhere."""
    return bool(membership is not None and membership.can_moderate) or (_is_user(user) and user.is_staff)


def preset_list(*, user) -> QuerySet[Preset]:
    """Presets are staff tools: anyone else is refused."""
    if not (_is_user(user) and user.is_staff):
        raise NotAllowed("Only staff may use presets.")
    return Preset.objects.all()


def preset_image_may_read(*, user) -> bool:
    return _is_user(user) and user.is_staff


def announcement_get() -> Announcement | None:
    return Announcement.objects.filter(pk=Announcement.SINGLETON_ID).first()


def people_search(*, user, q: str = "", limit: int = 50) -> list:
    """The people directory (/people/): active users other than `user` (guests never)
    whose username or display name contains `q` (any case), or whose name's pinyin starts
    with it (accounts.search: "zhangwei", "zw"), by username."""
    from django.db.models import Q

    from accounts.search import users_matching

    people = user_directory(user=user, limit=None)
    if not q:
        return list(people[:limit])
    found = {person.pk: person for person in users_matching(q, limit=limit) if person.pk != user.pk}
    for person in people.filter(Q(username__icontains=q) | Q(profile__display_name__icontains=q))[:limit]:
        found.setdefault(person.pk, person)
    return sorted(found.values(), key=lambda person: person.username)[:limit]


def user_directory(*, user, limit: int | None = 500) -> QuerySet:
    """People a logged-in user may start a direct conversation with (the web UI's picker);
    website-widget guests talk only to a project's owner, so they are never listed."""
    from django.contrib.auth import get_user_model

    from accounts.selectors import GUEST_PREFIX

    if not _is_user(user):
        return get_user_model().objects.none()
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(pk=user.pk)
        .exclude(username__startswith=GUEST_PREFIX)
        .select_related("profile")
        .order_by("username")[:limit]
    )


# What the realtime wing asks (chat/hub.py, chat/consumers.py) ------------------------------

# Rooms per IN list: a process may follow tens of thousands of rooms, more than SQLite
# takes as parameters of one statement.
ID_BATCH = 5000


def _batches(ids) -> list[list]:
    ids = sorted(set(ids))
    return [ids[i : i + ID_BATCH] for i in range(0, len(ids), ID_BATCH)]


@dataclass(frozen=True, slots=True)
class RoomState:
    slug: str
    kind: str
    rev: int

    @property
    def is_public(self) -> bool:
        return self.kind == Room.Kind.PUBLIC


def room_states(*, room_ids) -> dict[int, RoomState]:
    """Slug, kind and revision of each room (a deleted room is left out), one query per
    ID_BATCH rooms. Read again on every sweep: an admin may make a public room private."""
    states = {}
    for batch in _batches(room_ids):
        for room_id, slug, kind, rev in Room.objects.filter(pk__in=batch).values_list("id", "slug", "kind", "rev"):
            states[room_id] = RoomState(slug, kind, rev)
    return states


Pair = tuple[int, int | None]  # (room id, user id or None for an anonymous visitor)


def room_access(
    readable: set[Pair], member: set[Pair], *, states: dict[int, RoomState]
) -> tuple[set[Pair], set[Pair]]:
    """Of the `readable` (room, user) pairs, those where the user may read the room
    (`may_read`); of the `member` pairs, those where the user is a member. A room missing
    from `states` (deleted) allows nobody, a ban that has not ended its user. One
    membership query per ID_BATCH rooms, for the pairs whose answer depends on
    membership, and one ban query per ID_BATCH rooms, however many sockets ask."""
    readable = {pair for pair in readable if pair[0] in states}
    member = {pair for pair in member if pair[0] in states and pair[1] is not None}
    ask = member | {(room_id, user_id) for room_id, user_id in readable if user_id is not None and not states[room_id].is_public}
    members: set[Pair] = set()
    user_ids = {user_id for _, user_id in ask}
    for batch in _batches(room_id for room_id, _ in ask):
        rows = Membership.objects.filter(room_id__in=batch, user_id__in=user_ids).values_list("room_id", "user_id")
        members.update(set(rows) & ask)
    banned: set[Pair] = set()
    users = {pair for pair in readable | member if pair[1] is not None}
    for batch in _batches(room_id for room_id, _ in users):
        rows = RoomBan.objects.filter(
            _until_open(), room_id__in=batch, user_id__in={user_id for _, user_id in users}
        ).values_list("room_id", "user_id")
        banned.update(set(rows) & users)
    allowed = {
        (room_id, user_id)
        for room_id, user_id in readable
        if (room_id, user_id) not in banned
        and may_read(public=states[room_id].is_public, logged_in=user_id is not None, member=(room_id, user_id) in members)
    }
    return allowed, (member & members) - banned


def member_room_ids(*, user) -> list[int]:
    """The rooms `user` is a member of: what their user stream (`/ws/`) follows."""
    return list(Membership.objects.filter(user=user).values_list("room_id", flat=True))


@dataclass(frozen=True, slots=True)
class UnreadRow:
    """A member's unread count in one room, with the room's revision and last seq it reflects."""

    room_id: int
    slug: str
    rev: int
    last_seq: int
    last_read_seq: int
    count: int
    mentions: int = 0


def unread_rows(*, user, room_id: int | None = None) -> list[UnreadRow]:
    """The user's memberships (or the one in `room_id`) as UnreadRows, in one statement:
    the count and the revision come from the same snapshot, so a change after that
    revision is exactly what the count does not hold yet."""
    rows = memberships_with_unread(user=user)
    if room_id is not None:
        rows = rows.filter(room_id=room_id)
    return [
        UnreadRow(*row)
        for row in rows.values_list(
            "room_id", "room__slug", "room__rev", "room__last_seq", "last_read_seq", "unread_count", "mention_count"
        )
    ]


SEARCH_PAGE = 20
SEARCH_MAX_PAGE = 100
# Candidates the index may hand over per page before the page is returned short (each is
# checked against its current body; the index is exact for almost every query).
SEARCH_MAX_CANDIDATES = 1000


def message_search(
    *, user, q: str, room: Room | None = None, sender=None, before=None, after=None, limit: int = SEARCH_PAGE,
    cursor: int | None = None,
) -> tuple[list[tuple[Message, list[list[int]]]], int | None]:
    """Messages matching `q` (chat.search) in rooms the user may read now, newest first,
    each with its highlights; and the cursor of the next page (None at the end). `room`
    (already checked readable), `sender` (a user), `before`/`after` (datetimes) narrow
    it; `cursor` continues a previous page. Recalled, deleted and purged messages are
    never found: their documents go in the transaction that takes their content."""
    from chat import search

    terms = search.parse(q)
    if not terms:
        raise InvalidInput("q must contain at least one word.")
    if len(terms) > search.MAX_QUERY_TERMS:
        raise InvalidInput(f"q may have at most {search.MAX_QUERY_TERMS} terms.")
    limit = max(1, min(limit, SEARCH_MAX_PAGE))
    try:
        rooms = _visible_rooms(user)
        if _is_user(user):  # a ban hides the room's messages while it lasts (SPEC §6.4)
            rooms = rooms.exclude(pk__in=RoomBan.objects.filter(_until_open(), user=user).values("room_id"))
        rooms_sql, rooms_params = rooms.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # no room at all to read
        return [], None
    filters = {
        "room_id": room.pk if room is not None else None,
        "sender_id": sender.pk if sender is not None else None,
        "before": before,
        "after": after,
    }
    found: list[tuple[Message, list[list[int]]]] = []
    below, examined = cursor, 0
    while len(found) < limit and examined < SEARCH_MAX_CANDIDATES:
        want = limit - len(found) + 5
        ids = search.candidate_ids(
            terms, rooms_sql=rooms_sql, rooms_params=list(rooms_params), below_id=below, filters=filters, limit=want
        )
        examined += len(ids)
        messages = {
            m.pk: m
            for m in with_details(Message.objects.select_related("room")).filter(
                pk__in=ids, recalled=False, deleted=False
            )
        }
        for message_id in ids:
            below = message_id
            message = messages.get(message_id)
            marks = search.highlights(message.body, terms) if message is not None else None
            if marks is not None:
                found.append((message, marks))
                if len(found) == limit:
                    break
        if len(found) == limit:
            break
        if len(ids) < want:
            return found, None
    return found, below


# Moderation and safety (SPEC §6.4) ----------------------------------------------------------


def is_blocked_by(*, user, other) -> bool:
    """Has `other` blocked `user`?"""
    return Block.objects.filter(blocker=other, blocked=user).exists()


def blocked_in_conversation(*, user, room: Room) -> bool:
    """Has the other person of a two-person room blocked `user`?"""
    others = Membership.objects.filter(room=room).exclude(user=user).values("user_id")
    return Block.objects.filter(blocker_id__in=others, blocked=user).exists()


def blocked_ids(*, user) -> set[int]:
    """Whom `user` has blocked: their messages are collapsed for them (`blocked: true`)."""
    if not _is_user(user):
        return set()
    return set(Block.objects.filter(blocker=user).values_list("blocked_id", flat=True))


def blocked_usernames(*, user) -> set[str]:
    if not _is_user(user):
        return set()
    return set(Block.objects.filter(blocker=user).values_list("blocked__username", flat=True))


def block_list(*, user) -> QuerySet:
    return Block.objects.filter(blocker=user).select_related("blocked__profile").order_by("blocked__username")


def pinned_messages(*, room: Room) -> list[Message]:
    """The room's pinned messages, most recently pinned first."""
    return list(_messages(room).filter(pinned_at__isnull=False, deleted=False).order_by("-pinned_at", "-id"))


def room_get_for_moderation(*, user, slug: str) -> Room:
    """The room a moderation request names: staff reach every room (they moderate
    everywhere), anyone else only the rooms they may read (room_get_for_user)."""
    if _is_user(user) and user.is_staff:
        room = Room.objects.filter(slug=slug).first()
        if room is None:
            raise NotFound("No such room.")
        return room
    return room_get_for_user(user=user, slug=slug)


def room_moderation_get(*, user, slug: str) -> tuple[Room, Membership | None]:
    """A room whose moderation records (audit log) `user` may see: its owner/admins and
    staff; readers who do not moderate it are NotAllowed, anyone else NotFound."""
    room = room_get_for_moderation(user=user, slug=slug)
    membership = membership_get(user=user, room=room)
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT) and not (_is_user(user) and user.is_staff):
        raise NotAllowed("Nobody moderates a direct or project conversation.")
    if not room_may_moderate(user=user, membership=membership):
        raise NotAllowed("Only the room's owner or admins may see that.")
    return room, membership


def room_audit(*, user, slug: str, limit: int = 200) -> list[AuditEntry]:
    room, _ = room_moderation_get(user=user, slug=slug)
    return list(
        AuditEntry.objects.filter(room=room).select_related("actor", "target").order_by("-id")[: max(1, min(limit, 500))]
    )


def report_list(*, user, resolved: bool | None = False, limit: int = 200) -> list[Report]:
    """Staff's queue of reports, newest first (open ones by default)."""
    if not _is_user(user):
        raise AuthRequired()
    if not user.is_staff:
        raise NotAllowed("Only staff see reports.")
    reports = Report.objects.select_related("message__room", "message__sender__profile", "reporter")
    if resolved is not None:
        reports = reports.filter(resolved=resolved)
    return list(reports.order_by("-id")[: max(1, min(limit, 500))])


def moderation_state(*, user, room: Room) -> dict:
    """What the room page tells the viewer about their own standing: muted until when."""
    mute = room_mute_get(user=user, room=room)
    return {"muted_until": mute.until.isoformat() if mute else None}
