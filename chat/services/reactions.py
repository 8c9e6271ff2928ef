"""Reactions: one emoji per user and message, each change a room change with its own rev."""

import regex
from django.db import transaction

from chat import events, selectors
from chat.models import Message, Reaction, Room
from chat.services.changes import announce, change, lock_room
from core.errors import InvalidInput, NotFound
from core.validation import require_user

MAX_DISTINCT = 20
MAX_CODE_POINTS = 16  # the longest standard sequences (a kiss with two skin tones) have 10

_ONE_GRAPHEME = regex.compile(r"\X")
_EMOJI_PART = regex.compile(r"[\p{Emoji}\p{Emoji_Component}]")
_PICTOGRAPHIC = regex.compile(r"\p{Extended_Pictographic}")
_REGIONAL = regex.compile(r"\p{Regional_Indicator}")
ZWJ = "\u200d"
KEYCAP = "\u20e3"


def clean_emoji(value) -> str:
    """`value` unchanged if it is one emoji, else InvalidInput.

    One emoji: a single extended grapheme cluster made only of emoji code points and
    the parts that join them (ZWJ, VS16, skin tones, keycap mark, tags) that is a
    pictograph (❤, ❤️, 👍🏽, 👨‍👩‍👧), a flag (two regional indicators, or a tag
    sequence) or a keycap (1️⃣). A bare digit or `#` is Emoji in Unicode, but no reaction.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_CODE_POINTS:
        raise InvalidInput("emoji must be one emoji.")
    if not _ONE_GRAPHEME.fullmatch(value) or not all(_EMOJI_PART.match(c) for c in value):
        raise InvalidInput("emoji must be one emoji.")
    if value[0] == ZWJ or value[-1] == ZWJ:
        raise InvalidInput("emoji must be one emoji.")
    regional = sum(1 for c in value if _REGIONAL.match(c))
    if regional:
        shaped = regional == 2 == len(value)
    else:
        shaped = bool(_PICTOGRAPHIC.search(value)) or (value[-1] == KEYCAP and len(value) > 1)
    if not shaped:
        raise InvalidInput("emoji must be one emoji.")
    return value


def _reactable(*, user, message_id) -> tuple[Room, Message, list[Reaction]]:
    """The message, read again under its room's lock, with its reactions in order."""
    require_user(user)
    found = selectors.message_get_for_user(user=user, message_id=message_id)
    room = lock_room(found.room_id)
    message = selectors.with_details(Message.objects.filter(pk=found.pk)).first()
    if message is None or message.deleted:  # deleted, or purged by retention, meanwhile
        raise NotFound("No such message.")
    message.room = room
    if message.recalled:
        raise InvalidInput("A recalled message takes no reactions.")
    return room, message, message.reaction_list


def reaction_add(*, user, message_id, emoji) -> Message:
    """`user` (anyone who may read the room) reacts with `emoji` (clean_emoji).

    At most MAX_DISTINCT different emoji per message: a new one past that is
    InvalidInput. Adding a reaction the user already has changes nothing (no rev, no
    event). Otherwise everyone in the room gets `message.reactions` after commit; it
    never counts as unread. Raises AuthRequired, NotFound (no such message where the
    user may read), InvalidInput (not one emoji, a recalled message, the limit).
    """
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        room, message, rows = _reactable(user=user, message_id=message_id)
        if any(r.emoji == emoji and r.user_id == user.id for r in rows):
            return message
        if emoji not in {r.emoji for r in rows} and len({r.emoji for r in rows}) >= MAX_DISTINCT:
            raise InvalidInput(f"A message takes at most {MAX_DISTINCT} different reactions.")
        reaction = Reaction.objects.create(message=message, user=user, emoji=emoji)
        message.reaction_list = [*rows, reaction]
        _announce(room, message)
        return message


def reaction_remove(*, user, message_id, emoji) -> Message:
    """Take back the user's `emoji` on the message; removing one they do not have changes
    nothing. Announced like reaction_add."""
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        room, message, rows = _reactable(user=user, message_id=message_id)
        mine = [r for r in rows if r.emoji == emoji and r.user_id == user.id]
        if not mine:
            return message
        Reaction.objects.filter(pk__in=[r.pk for r in mine]).delete()
        message.reaction_list = [r for r in rows if r not in mine]
        _announce(room, message)
        return message


def _announce(room: Room, message: Message) -> None:
    change(room, message)
    announce(room, message, update=events.message_reactions_changed(message, room_slug=room.slug))


def reactions_drop_user(*, user_id: int) -> None:
    """Take away every reaction of a user whose account is being deleted: each message
    changed takes its room's next rev and is announced like reaction_remove. Call inside
    the deletion's transaction; rooms are locked in id order."""
    pairs = (
        Reaction.objects.filter(user_id=user_id)
        .values_list("message__room_id", "message_id")
        .distinct()
        .order_by("message__room_id", "message_id")
    )
    for room_id, message_id in list(pairs):
        room = lock_room(room_id)
        Reaction.objects.filter(message_id=message_id, user_id=user_id).delete()
        message = selectors.with_details(Message.objects.filter(pk=message_id)).first()
        if message is None:
            continue
        message.room = room
        _announce(room, message)
