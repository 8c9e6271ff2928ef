"""Who a message mentions (SPEC §6.2), decided once when it is sent.

`@username` mentions that user when they may read the room and have not blocked the
sender (anyone else, or a name nobody has, mentions nobody); `@all` and `@room` mention
every member and are allowed only to the room's owner/admins and staff. An edit decides
again from the new body (chat.services.edits): added mentions count and notify like new
ones, removed ones go.
"""

import re

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from chat import selectors
from chat.models import Membership, Mention, Message, Room, RoomBan
from core.errors import NotAllowed

# Django's usernames are word characters and . @ + - ; a mention is "@" not glued to a
# word before it (an e-mail address mentions nobody).
MENTION = re.compile(r"(?<![\w@.+-])@([\w.+-]{1,150})")
EVERYONE = frozenset({"all", "room"})
MAX_NAMED = 50


def names_in(body: str) -> tuple[list[str], bool]:
    """The usernames `body` names with @ (in order, each once, at most MAX_NAMED) and
    whether it says @all / @room. A trailing . + or - is punctuation, not part of the name."""
    names: list[str] = []
    everyone = False
    for match in MENTION.finditer(body or ""):
        name = match.group(1).rstrip(".+-")  # as chat/formatting.py marks them
        if name.lower() in EVERYONE:
            everyone = True
        elif name and name not in names and len(names) < MAX_NAMED:
            names.append(name)
    return names, everyone


def mentions_for(*, sender, room: Room, body: str, everyone_kept: bool = False) -> tuple[list, bool]:
    """The users `body` mentions in `room` (those who may read it) and whether it
    mentions everyone. Raises NotAllowed for @all / @room from anyone but the room's
    owner/admins and staff: nothing is stored then. `everyone_kept`: an edit of a message
    that already said @all, which may keep saying it."""
    names, everyone = names_in(body)
    if everyone and not everyone_kept:
        membership = selectors.membership_get(user=sender, room=room)
        if not selectors.room_may_moderate(user=sender, membership=membership):
            raise NotAllowed("Only the room's owner, its admins and staff may mention everyone.")
    if not names:
        return [], everyone
    users = (
        get_user_model()
        .objects.filter(username__in=names, is_active=True)
        # Nobody banned from the room is told of it, nor anyone who blocked the sender (SPEC §6.4).
        .exclude(pk__in=RoomBan.objects.filter(Q(until__isnull=True) | Q(until__gt=timezone.now()), room=room).values("user_id"))
        .exclude(blocks__blocked_id=sender.pk)
    )
    if not room.is_public:
        users = users.filter(pk__in=Membership.objects.filter(room=room).values("user_id"))
    found = {user.username: user for user in users}
    return [found[name] for name in names if name in found], everyone


def store_mentions(message: Message, users) -> None:
    Mention.objects.bulk_create([Mention(message=message, user=user) for user in users], ignore_conflicts=True)


def replace_mentions(message: Message, users) -> set[int]:
    """Make the message's Mention rows those of `users`; returns the ids of the users
    newly mentioned."""
    wanted = {user.id for user in users}
    had = set(Mention.objects.filter(message=message).values_list("user_id", flat=True))
    if had - wanted:
        Mention.objects.filter(message=message, user_id__in=had - wanted).delete()
    store_mentions(message, [user for user in users if user.id not in had])
    return wanted - had
